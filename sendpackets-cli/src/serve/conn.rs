//! One connection: read request heads (pipelined ones included) into one bounded buffer,
//! answer each in order, close on error, on `Connection: close`, at the idle deadline, or when
//! the server stops.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use sendpackets_http::{Files, MAX_HEAD, Parsed, RequestHead, Response, Status};

use super::args::{LINGER_BYTES, LINGER_TIME};
use super::log::{self, Entry, LogFormat};
use super::peer::{Peer, SendFailure};

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// The served directory.
    pub(crate) files: Files,
    /// The access log on stdout, in this format.
    pub(crate) log: Option<LogFormat>,
    /// Time to deliver a complete head, from the start or the previous response.
    pub(crate) idle_timeout: Duration,
    /// Time a response may make no progress.
    pub(crate) stall_timeout: Duration,
    /// Bodies of at least this many bytes are sent with `sendfile` only.
    pub(crate) zero_copy_from: u64,
}

/// The fate of the connection after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    KeepOpen,
    Close,
}

/// Bytes a connection reads first into a fresh head buffer. Most request heads fit, and a
/// buffer this small comes from the allocator's per-thread cache; a partial head that fills it
/// grows the buffer to [`MAX_HEAD`].
const FIRST_READ: usize = 1 << 10;

/// Serves one connection until it closes. Never panics on input; every wait is bounded by the
/// idle or the stall timeout.
///
/// An idle connection holds no head buffer: the buffer is taken when bytes arrive and given
/// back once they are all answered. The work of a response (`answer`, `refuse`, `linger`) is
/// boxed, so the task of an idle connection keeps only this loop's few hundred bytes.
///
/// The idle timer and the wait for the stop are made once per connection, not once per
/// request: the timer is set for the first deadline and, when it fires before the current one
/// (later requests moved the deadline on), set again for that one.
pub(crate) async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: &Context,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut peer) = Peer::new(stream, ctx.stall_timeout, ctx.zero_copy_from) else {
        return; // gone before the first request
    };
    // Bytes read and not yet answered: `buf.len()`, at most `MAX_HEAD`.
    let mut buf: Vec<u8> = Vec::new();
    let mut deadline = Instant::now() + ctx.idle_timeout;
    let idle = tokio::time::sleep_until(deadline);
    tokio::pin!(idle);
    // Ready once the server stops (also when the stop came before this connection began).
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        match RequestHead::parse(&buf) {
            Parsed::Complete(req) => {
                let used = req.head_len();
                let unread = req.has_body() || buf.len() > used;
                let started = ctx.log.map(|_| Started::now());
                let next = Box::pin(answer(&mut peer, addr, ctx, &req, started)).await;
                if next == Next::Close {
                    if unread {
                        Box::pin(linger(peer.into_stream())).await;
                    }
                    return;
                }
                buf.drain(..used);
                deadline = Instant::now() + ctx.idle_timeout;
                continue;
            }
            Parsed::Refused(why) => {
                Box::pin(refuse(&mut peer, addr, ctx, Response::refusal(why))).await;
                Box::pin(linger(peer.into_stream())).await;
                return;
            }
            _ => {} // Partial: read more
        }
        if buf.is_empty() {
            buf = Vec::new(); // idle: no buffer
        }
        let read = tokio::select! {
            biased;
            _ = &mut stopped, if buf.is_empty() => return,
            r = read_some(peer.stream_mut(), &mut buf) => r,
            () = &mut idle => {
                if Instant::now() < deadline {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                if !buf.is_empty() {
                    Box::pin(refuse(&mut peer, addr, ctx, Response::request_timeout())).await;
                    Box::pin(linger(peer.into_stream())).await;
                }
                return;
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Waits for request bytes, then reads them into `buf`, which holds part of a head or nothing.
///
/// The buffer grows only once there is something to read, so an idle connection holds none:
/// to [`FIRST_READ`] bytes, or to [`MAX_HEAD`] for a head that filled it. `parse` refuses a
/// partial head that fills `MAX_HEAD`, so there is always room to read, and the read never
/// grows the buffer past it. `read_buf` tells the runtime that a read shorter than the room
/// drained the socket, so the next wait goes straight to epoll; `try_read` would leave the
/// socket marked readable and cost a `recvfrom` that fails with EAGAIN after most responses.
///
/// # Cancel safety
///
/// Cancel safe: bytes are only added to `buf` by the read that completes.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    stream.readable().await?;
    let room = if buf.len() < FIRST_READ {
        FIRST_READ
    } else {
        MAX_HEAD
    };
    buf.reserve_exact(room - buf.len());
    stream.read_buf(buf).await
}

/// Closes after an answer the client may still be sending behind: shut our side down, then
/// discard its bytes until it closes, at most [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut discarded = 0usize;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while discarded < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

/// When a request began, for the log.
#[derive(Clone, Copy, Debug)]
struct Started {
    at: SystemTime,
    clock: Instant,
}

impl Started {
    fn now() -> Started {
        Started {
            at: SystemTime::now(),
            clock: Instant::now(),
        }
    }
}

/// Logs one response (when logging): `head_len` bytes of the response come before the body,
/// `sent` is the library's answer, `started` is taken only when logging (two clock reads
/// saved per response otherwise).
fn log_response(
    ctx: &Context,
    peer: SocketAddr,
    request: Option<&RequestHead<'_>>,
    status: Status,
    head_len: u64,
    sent: &Result<u64, SendFailure>,
    started: Option<Started>,
) {
    let (Some(format), Some(started)) = (ctx.log, started) else {
        return;
    };
    let entry = Entry {
        peer,
        request,
        status,
        head_len,
        sent: match sent {
            Ok(n) => *n,
            Err(f) => f.bytes_sent(),
        },
        failed: sent.as_ref().err(),
        started: started.at,
        duration: started.clock.elapsed(),
    };
    log::write(&entry.format(format));
}

/// Answers a refused or timed-out head, then the caller closes.
async fn refuse(peer: &mut Peer, addr: SocketAddr, ctx: &Context, response: Response) {
    let started = ctx.log.map(|_| Started::now());
    let status = response.status();
    let head_len = response.head().len() as u64;
    let sent = peer.send(response).await;
    log_response(ctx, addr, None, status, head_len, &sent, started);
}

/// Answers one complete request. An open that failed unexpectedly (500) or for want of
/// descriptors (503) is told on stderr when logging; the response closes the connection,
/// which gives a descriptor back.
async fn answer(
    peer: &mut Peer,
    addr: SocketAddr,
    ctx: &Context,
    req: &RequestHead<'_>,
    started: Option<Started>,
) -> Next {
    let response = ctx.files.respond(req);
    if let Some((path, e)) = response.open_error() {
        if ctx.log.is_some() {
            eprintln!("cannot open {}: {e}", path.display());
        }
    }
    let status = response.status();
    let head_len = response.head().len() as u64;
    let next = if response.keep_alive() {
        Next::KeepOpen
    } else {
        Next::Close
    };
    let sent = peer.send(response).await;
    log_response(ctx, addr, Some(req), status, head_len, &sent, started);
    if sent.is_err() { Next::Close } else { next }
}
