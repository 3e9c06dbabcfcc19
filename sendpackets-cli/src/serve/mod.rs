//! `sendpackets serve`: a static HTTP/1.1 file server on the library.
//!
//! The HTTP file logic (request heads, confined opening, conditionals, ranges, MIME types,
//! response heads) is the `sendpackets-http` crate's [`Files`]; what stays here:
//! - `args`: the command line and every bound, in one place;
//! - `peer`: the one call to the library per response;
//! - `conn`: one connection's loop; this file: the listener, limits and graceful stop.

mod args;
mod conn;
mod peer;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub(crate) use args::ServeArgs;

use crate::exit::Code;
use args::{ACCEPT_BACKOFF, BACKLOG};
use conn::Context;
use sendpackets_http::Files;

/// Runs the server until SIGINT or SIGTERM; returns the exit code.
pub(crate) fn run(args: &ServeArgs) -> Code {
    let files = match Files::open(&args.dir) {
        Ok(f) => f
            .follow_symlinks(args.follow_symlinks)
            .dotfiles(args.dotfiles)
            .open_file_cache(args.open_file_cache)
            .precompressed(args.precompressed)
            .list(args.list),
        Err(e) => {
            eprintln!(
                "error: cannot serve {}: {}",
                args.dir.display(),
                crate::output::io_message(&e)
            );
            return Code::Input;
        }
    };
    let files = match configure(files, args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Code::Usage;
        }
    };
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Code::Internal;
        }
    };
    let ctx = Context {
        files,
        log: args.log,
        idle_timeout: args.idle_timeout,
        stall_timeout: args.stall_timeout,
        zero_copy_from: args.zero_copy_from,
    };
    let code = runtime.block_on(serve(args, Arc::new(ctx)));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// The header options.
fn configure(mut files: Files, args: &ServeArgs) -> io::Result<Files> {
    if let Some(v) = &args.cache_control {
        files = files.cache_control(v)?;
    }
    for (pattern, value) in &args.cache_control_for {
        files = files.cache_control_for(pattern, value)?;
    }
    for origin in &args.cors {
        files = files.cors_origin(origin)?;
    }
    Ok(files)
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG as u32)
}

async fn serve(args: &ServeArgs, ctx: Arc<Context>) -> Code {
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: cannot handle signals: {e}");
            return Code::Internal;
        }
    };
    let listener = match bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {}",
                args.listen,
                crate::output::io_message(&e)
            );
            return Code::Connect;
        }
    };
    match listener.local_addr() {
        Ok(a) => eprintln!("listening on http://{a}/"),
        Err(e) => {
            eprintln!("error: cannot read the listening address: {e}");
            return Code::Connect;
        }
    }

    let sweeper = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ctx.files.sweep_interval());
            loop {
                every.tick().await;
                ctx.files.sweep();
            }
        })
    };
    let slots = Arc::new(Semaphore::new(args.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let signal_name = loop {
        // Reap finished connections so the set stays as large as the live ones.
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break "closed",
            },
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait, go on.
                if ctx.log {
                    eprintln!("accept failed: {e}");
                }
                drop(permit);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Headers and body leave in one library call; nothing waits for more to coalesce.
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            conn::serve(stream, peer, &ctx, stop).await;
            drop(permit);
        });
    };

    drop(listener);
    sweeper.abort();
    let _ = stop_tx.send(true);
    let in_flight = tasks.len();
    let finished = tokio::time::timeout(args.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if finished {
        eprintln!("stopped ({signal_name}); {in_flight} connection(s) were open and finished");
    } else {
        eprintln!(
            "stopped ({signal_name}); {} of {in_flight} connection(s) cut after the {:?} grace period",
            tasks.len(),
            args.grace
        );
        tasks.abort_all();
    }
    Code::Ok
}
