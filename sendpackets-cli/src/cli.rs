//! The command line, as clap sees it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::target::Endpoint;

const SEND_HELP: &str = "\
ELEMENT syntax (sent in the order given; messages and --json number the ELEMENT arguments
from 0, as the library numbers elements, a glob being one argument):
  PATH                 the whole file
  PATH@OFFSET          the file from byte OFFSET to its end
  PATH@OFFSET+COUNT    COUNT bytes of the file from byte OFFSET
  'logs/*.log'         a path with * ? or [ is a glob: every matching regular file, in sorted
                       order (a range after it applies to each); no match is an error
  file:PATH[@RANGE]    a path taken literally: never a glob or a keyword (file:eop, file:-)
  text:TEXT            literal text; escapes \\r \\n \\t \\0 \\\\ \\xNN
  hex:HEX              bytes in hex (spaces, _ and : between digits are ignored)
  -                    standard input, read into memory first (at most once)
  eop                  end of packet: marks the element before it. On udp:// and unixgram://
                       the elements up to each eop form one datagram; on streams it only
                       pushes. An eop with nothing before it sends an empty datagram.
Numbers take the suffixes K, M, G (powers of 1024). The last @ followed by a digit starts a
range; to send a file named like 'a@1', write 'a@1@0'.

Examples:
  sendpackets send localhost:8080 'text:HTTP/1.1 200 OK\\r\\nContent-Length: 11\\r\\n\\r\\n' index.html
  sendpackets send tcp://127.0.0.1:9000 movie.mp4@1M+64K --disconnect
  sendpackets send udp://127.0.0.1:5000 hex:01 data.bin@0+1200 eop hex:02 data.bin@1200+1200 eop
  sendpackets send unix:///run/app.sock 'logs/*.log'
  printf 'hi' | sendpackets send 127.0.0.1:9000 text:head: - --json";

const RECV_HELP: &str = "\
LISTEN is tcp://HOST:PORT (or HOST:PORT), udp://HOST:PORT, unix:///PATH or unixgram:///PATH.
Without a host it listens on 127.0.0.1 only (9000, :9000, udp://9000); port 0 picks a free port.
The address actually listened on is printed on stderr as 'listening on ADDRESS'.
A stream receive ends when the peer closes; a datagram receive ends after --datagrams N, or
when no datagram came for --idle-timeout seconds.

What arrives:
  Datagrams arrive whole, whatever their size; one that the kernel truncated anyway is an
  error (exit 5), never silently shortened.
  udp:// locks to the first peer: datagrams from any other address are not counted, hashed or
  written, and the summary (text and JSON 'ignored_datagrams') says how many were ignored.
  --expect-bytes N and --expect-sha256 HEX state what must arrive; anything else (a stream
  cut short by a killed sender, extra bytes, other bytes) exits 6. Without them a short stream
  cannot be told from a whole one.

--out FILE:
  The bytes go to a temporary file beside FILE, renamed over FILE only when recv exits 0. A
  failed receive, or one ended by SIGINT/SIGTERM, removes the temporary file and leaves FILE
  as it was (or absent), so a retry is not refused.
  An existing FILE is refused unless --force; with --force a symbolic link stays and its target
  is replaced, and a FILE that is not a regular file (a FIFO, /dev/null) is written in place.

Unix socket paths:
  recv removes its socket file when it ends, also on SIGINT and SIGTERM (it then dies of that
  signal: a shell shows 130 or 143). A socket file nothing
  listens on (left by a killed program) is replaced; a live socket, or anything at the path
  that is not a socket, is an error (exit 4) and is never removed.

Examples:
  sendpackets recv 9000 --out copy.bin       then, in another terminal:
  sendpackets send 127.0.0.1:9000 original.bin
  sha256sum original.bin                      and compare with the sha256 recv printed
  sendpackets recv 9000 --expect-sha256 \"$(sha256sum original.bin | cut -d' ' -f1)\"";

const DEMO_HELP: &str = "\
Builds its own data in a temporary directory (removed on exit), starts loopback receivers,
sends HTTP-like responses, a UDP datagram burst, and one bulk file, and checks every received
byte with SHA-256 against digests computed from the generated data.
The bulk file goes 5 times with sendpackets and 5 times with a plain read/write loop,
interleaved, alternating which goes first; the table shows the median throughput with its
min-max and the sending thread's CPU time per GB (steadier on a busy machine). A few rounds
on one machine are no benchmark: 'cargo run --release -p sendpackets-bench' is.";

/// Send files and buffers over a socket as fast as the kernel allows.
#[derive(Debug, Parser)]
#[command(name = "sendpackets", version, after_help = crate::exit::HELP)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send an ordered list of file ranges and buffers to TARGET.
    #[command(after_help = format!("{SEND_HELP}\n\n{}", crate::exit::HELP))]
    Send(SendArgs),
    /// Receive one connection (or datagrams) and print bytes, datagrams and SHA-256.
    #[command(after_help = format!("{RECV_HELP}\n\n{}", crate::exit::HELP))]
    Recv(RecvArgs),
    /// Run a self-contained, self-checking demonstration on loopback.
    #[command(after_help = format!("{DEMO_HELP}\n\n{}", crate::exit::HELP))]
    Demo(DemoArgs),
    /// Serve a directory over HTTP/1.1 (GET, HEAD, ranges), one sendpackets call per response.
    #[command(after_help = crate::exit::HELP)]
    Serve(crate::serve::ServeArgs),
}

/// Output options every subcommand has.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct OutputArgs {
    /// Print the result or the error as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress display and no summary on stderr (errors are still printed).
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// Which kernel paths the send may use.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EngineArg {
    /// sendfile for large file ranges, coalesced vectored writes for the rest, corking on TCP.
    Auto,
    /// Every file range with sendfile.
    ZeroCopy,
    /// Only portable calls: pread and sendmsg.
    Portable,
}

/// `sendpackets send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Where to send: HOST:PORT, tcp://HOST:PORT, udp://HOST:PORT, unix:///PATH,
    /// unixgram:///PATH.
    #[arg(value_name = "TARGET")]
    pub(crate) target: Endpoint,
    /// What to send, in order (see ELEMENT syntax below).
    #[arg(value_name = "ELEMENT", required = true)]
    pub(crate) elements: Vec<OsString>,
    /// Most bytes handed to the kernel per call (K, M, G suffixes); default: the library's.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub(crate) send_size: Option<u64>,
    /// Shut the connection down after the last byte (the peer sees end of stream).
    #[arg(long)]
    pub(crate) disconnect: bool,
    /// Which kernel paths to use.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) engine: EngineArg,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) connect_timeout: Duration,
    /// Fail when the socket accepts nothing for this many seconds (SO_SNDTIMEO).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) send_timeout: Option<Duration>,
    /// Output options.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `sendpackets recv`.
#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// Where to listen (loopback unless a host is given).
    #[arg(value_name = "LISTEN")]
    pub(crate) listen: Endpoint,
    /// Write what arrives to FILE ('-' for stdout); without it the bytes are only counted.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Replace --out if it exists (only when the receive succeeds; a symlink's target is
    /// replaced).
    #[arg(long)]
    pub(crate) force: bool,
    /// Fail (exit 6) unless exactly this many bytes arrive (K, M, G suffixes).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub(crate) expect_bytes: Option<u64>,
    /// Fail (exit 6) unless the SHA-256 of what arrives is HEX (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub(crate) expect_sha256: Option<String>,
    /// Datagrams: stop when none came for this long (default 2). Streams: fail when no byte
    /// came for this long (default: wait).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) idle_timeout: Option<Duration>,
    /// Give up when no connection (or first datagram) came within this long (default: wait).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) wait: Option<Duration>,
    /// Datagrams: stop after N datagrams.
    #[arg(long, value_name = "N")]
    pub(crate) datagrams: Option<u64>,
    /// Output options.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `sendpackets demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Size of the generated bulk file, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) size: u64,
    /// Output options.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::spec::parse_size(s)
}

fn parse_sha256(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("'{s}' is not a SHA-256 digest (64 hex digits)"))
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0 * 365.0) {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_parses() {
        let cli = Cli::try_parse_from([
            "sendpackets",
            "send",
            "udp://127.0.0.1:9",
            "-",
            "text:x",
            "eop",
            "--send-size",
            "64K",
            "--engine",
            "zero-copy",
        ])
        .unwrap();
        let Command::Send(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.elements.len(), 3);
        assert_eq!(a.send_size, Some(65536));
        assert!(matches!(a.engine, EngineArg::ZeroCopy));
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("nan").is_err());
    }

    #[test]
    fn sha256_digests() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_sha256(&upper).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
    }
}
