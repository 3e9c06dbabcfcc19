//! `sendpackets serve`: a static HTTP/1.1 file server on the library.
//!
//! The HTTP file logic (request heads, confined opening, conditionals, ranges, MIME types,
//! response heads) is the `sendpackets-http` crate's [`Files`]; what stays here:
//! - `args`: the command line and every bound, in one place;
//! - `peer`: the one call to the library per response;
//! - `conn`: one connection's loop; `log`: the access log;
//! - `limits`: the descriptor limit and its shares, memory given back after bursts;
//! - this file: the listener, the connection cap and graceful stop.

mod args;
mod conn;
mod limits;
mod log;
mod peer;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let budget = limits::Budget::of(limits::raise_nofile());
    let files = match Files::open(&args.dir) {
        Ok(f) => f
            .follow_symlinks(args.follow_symlinks)
            .dotfiles(args.dotfiles)
            .open_file_cache(Some(args.open_file_cache))
            .max_open_files(budget.files)
            .precompressed(args.precompressed)
            .list(args.list)
            // Files below 64 KiB (the library's copy limit) go from memory, unless they
            // are to go with sendfile.
            .keep_in_memory_below(args.zero_copy_from.min(64 << 10)),
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
    // One thread: a current-thread runtime, where the accepting loop and the connections share
    // the thread and a wake-up is a push on a local queue. A multi-thread runtime with one
    // worker would add a second thread for the accepting loop and the work-stealing
    // scheduler's bookkeeping to every wake-up.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Code::Internal;
        }
    };
    let ctx = Context {
        files,
        log: match (args.log, args.log_format) {
            (_, Some(f)) => Some(f),
            (true, None) => Some(log::LogFormat::Combined),
            (false, None) => None,
        },
        idle_timeout: args.idle_timeout,
        stall_timeout: args.stall_timeout,
        zero_copy_from: args.zero_copy_from,
    };
    let code = runtime.block_on(serve(args, budget, Arc::new(ctx)));
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

async fn serve(args: &ServeArgs, budget: limits::Budget, ctx: Arc<Context>) -> Code {
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
    let max_connections = match args.max_connections {
        Some(n) => {
            if n as usize > budget.connections {
                eprintln!(
                    "warning: --max-connections {n} leaves too few of the {} descriptors for \
                     files; out of descriptors, requests get 503",
                    budget.limit
                );
            }
            n as usize
        }
        None => args::MAX_CONNECTIONS.min(budget.connections),
    };

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
    let slots = Arc::new(Semaphore::new(max_connections));
    // Connections closed so far, and the most open since the trimmer last looked.
    let closes = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let trimmer = {
        let (slots, closes, peak) = (slots.clone(), closes.clone(), peak.clone());
        tokio::spawn(async move {
            let mut trim = limits::Trim::default();
            let mut every = tokio::time::interval(limits::TRIM_EVERY);
            loop {
                every.tick().await;
                trim.saw(peak.swap(0, Ordering::Relaxed));
                let live = max_connections - slots.available_permits();
                trim.tick(closes.load(Ordering::Relaxed), live);
            }
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // Finished tasks keep their memory until joined: reap them at every accept and, when no
    // connection comes, every TRIM_EVERY (before the trimmer looks).
    let mut reap = tokio::time::interval(limits::TRIM_EVERY);
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
            _ = reap.tick() => continue,
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors: let go of the open-file cache's files. Then, as after a connection
                // reset before accept, wait briefly and go on.
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    ctx.files.shed();
                }
                if ctx.log.is_some() {
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
        let closes = closes.clone();
        tasks.spawn(async move {
            conn::serve(stream, peer, &ctx, stop).await;
            drop(permit);
            closes.fetch_add(1, Ordering::Relaxed);
        });
        peak.fetch_max(
            max_connections - slots.available_permits(),
            Ordering::Relaxed,
        );
    };

    drop(listener);
    sweeper.abort();
    trimmer.abort();
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
