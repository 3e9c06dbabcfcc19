//! One connection: read request heads (pipelined ones included) into one bounded buffer,
//! answer each in order, close on error, on `Connection: close`, at the idle deadline, or when
//! the server stops.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use sendpackets_http::{Files, MAX_HEAD, Parsed, RequestHead, Response, Status};

use super::args::{LINGER_BYTES, LINGER_TIME};
use super::peer::{Peer, SendFailure};

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// The served directory.
    pub(crate) files: Files,
    /// One line per request on stdout.
    pub(crate) log: bool,
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

/// Serves one connection until it closes. Never panics on input; every wait is bounded by the
/// idle or the stall timeout.
pub(crate) async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: &Context,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut peer) = Peer::new(stream, ctx.stall_timeout, ctx.zero_copy_from) else {
        return; // gone before the first request
    };
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0usize;
    let mut deadline = Instant::now() + ctx.idle_timeout;
    loop {
        match RequestHead::parse(&buf[..filled]) {
            Parsed::Complete(req) => {
                let used = req.head_len();
                let unread = req.has_body() || filled > used;
                let next = answer(&mut peer, addr, ctx, &req).await;
                if next == Next::Close {
                    if unread {
                        linger(peer.into_stream()).await;
                    }
                    return;
                }
                buf.copy_within(used..filled, 0);
                filled -= used;
                deadline = Instant::now() + ctx.idle_timeout;
                continue;
            }
            Parsed::Refused(why) => {
                refuse(&mut peer, addr, ctx, Response::refusal(why)).await;
                linger(peer.into_stream()).await;
                return;
            }
            _ => {} // Partial: read more
        }
        if *stop.borrow() && filled == 0 {
            return;
        }
        // `parse` refuses a partial head that fills the buffer, so there is room to read.
        tokio::select! {
            r = peer.stream_mut().read(&mut buf[filled..]) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            },
            () = tokio::time::sleep_until(deadline) => {
                if filled > 0 {
                    refuse(&mut peer, addr, ctx, Response::request_timeout()).await;
                    linger(peer.into_stream()).await;
                }
                return;
            }
            _ = stop.changed(), if filled == 0 => return,
        }
    }
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

/// Answers a refused or timed-out head, then the caller closes.
async fn refuse(peer: &mut Peer, addr: SocketAddr, ctx: &Context, response: Response) {
    let status = response.status();
    let body = response.body_len();
    let sent = peer.send(response).await;
    if ctx.log {
        log_line(addr, None, status, body, sent.as_ref().err());
    }
}

/// Answers one complete request.
async fn answer(peer: &mut Peer, addr: SocketAddr, ctx: &Context, req: &RequestHead<'_>) -> Next {
    let response = ctx.files.respond(req);
    if let Some((path, e)) = response.open_error() {
        if ctx.log {
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
    if ctx.log {
        let bytes = sent.as_ref().map_or(0, |n| n.saturating_sub(head_len));
        log_line(addr, Some(req), status, bytes, sent.as_ref().err());
    }
    if sent.is_err() { Next::Close } else { next }
}

/// One access-log line on stdout: peer, request line, status, body bytes, and why the send
/// failed if it did.
fn log_line(
    peer: SocketAddr,
    req: Option<&RequestHead<'_>>,
    status: Status,
    body_bytes: u64,
    failed: Option<&SendFailure>,
) {
    let request = match req {
        Some(r) => format!(
            "{} {} HTTP/1.{}",
            r.method_text(),
            r.target().escape_debug(),
            r.minor_version()
        ),
        None => "-".to_string(),
    };
    let failed = match failed {
        None => String::new(),
        Some(SendFailure::Stalled) => " (dropped: client stopped reading)".to_string(),
        Some(SendFailure::Send(e)) => format!(" (send failed: {e})"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{peer} \"{request}\" {} {body_bytes}{failed}",
        status.code()
    );
    let _ = out.flush();
}
