//! The `sendpackets` command: send files and buffers over a socket, receive and check them, and
//! a self-checking demo. Run `sendpackets --help`.

mod cleanup;
mod cli;
mod demo;
mod exit;
mod output;
mod progress;
mod recv_cmd;
mod send_cmd;
mod serve;
mod spec;
mod target;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let code = match &cli.command {
        cli::Command::Send(args) => send_cmd::run(args),
        cli::Command::Recv(args) => recv_cmd::run(args),
        cli::Command::Demo(args) => demo::run(args),
        cli::Command::Serve(args) => serve::run(args),
    };
    code.into()
}
