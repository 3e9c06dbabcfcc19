//! One connection: read request heads (pipelined ones included) into one bounded buffer,
//! answer each in order, close on error, on `Connection: close`, at the idle deadline, or when
//! the server stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::{LINGER_BYTES, LINGER_TIME, MAX_HEAD};
use super::log::{self, Entry, LogFormat};
use super::path::{self, Refused};
use super::range::{self, RangeAnswer};
use super::request::{self, Method, Parsed, Refusal, Request};
use super::respond::{Body, OpenFailure, Opened, Peer, Root, SendFailure, ServedFile};
use super::response::{Head, Status};

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// The served directory.
    pub(crate) root: Root,
    /// Serve names starting with a dot.
    pub(crate) dotfiles: bool,
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

/// Serves one connection until it closes. Never panics on input; every wait is bounded by the
/// idle or the stall timeout.
///
/// An idle connection holds no head buffer: the buffer is taken when bytes arrive and given
/// back once they are all answered. The work of a response (`answer`, `refuse`, `linger`) is
/// boxed, so the task of an idle connection keeps only this loop's few hundred bytes.
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
    loop {
        match request::parse(&buf) {
            Parsed::Complete(req) => {
                let used = req.head_len;
                let unread = req.has_body || buf.len() > used;
                let next = Box::pin(answer(&mut peer, addr, ctx, &req, Started::now())).await;
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
                let status = match why {
                    Refusal::Malformed => Status::BadRequest,
                    Refusal::TooLarge => Status::HeadersTooLarge,
                };
                Box::pin(refuse(&mut peer, addr, ctx, status)).await;
                Box::pin(linger(peer.into_stream())).await;
                return;
            }
            Parsed::Partial => {}
        }
        if buf.is_empty() {
            if *stop.borrow() {
                return;
            }
            buf = Vec::new(); // idle: no buffer
        }
        tokio::select! {
            r = peer.stream_mut().readable() => if r.is_err() {
                return;
            },
            () = tokio::time::sleep_until(deadline) => {
                if !buf.is_empty() {
                    Box::pin(refuse(&mut peer, addr, ctx, Status::RequestTimeout)).await;
                    Box::pin(linger(peer.into_stream())).await;
                }
                return;
            }
            _ = stop.changed(), if buf.is_empty() => return,
        }
        // `parse` refuses a partial head that fills `MAX_HEAD`, so there is room to read,
        // and reading into the spare capacity never grows the buffer past it.
        buf.reserve_exact(MAX_HEAD - buf.len());
        match peer.stream_mut().try_read_buf(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
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

/// Logs one response (when logging): `head_len` bytes of `head` come before the body, `sent`
/// is the library's answer.
fn log_response(
    ctx: &Context,
    peer: SocketAddr,
    request: Option<&Request<'_>>,
    status: Status,
    head_len: u64,
    sent: &Result<u64, SendFailure>,
    started: Started,
) {
    let Some(format) = ctx.log else { return };
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
async fn refuse(peer: &mut Peer, addr: SocketAddr, ctx: &Context, status: Status) {
    let started = Started::now();
    let (head, body) = error_head(status, true, Next::Close, 1);
    let head_len = head.len() as u64;
    let sent = peer.send(with_body(head, body), None).await;
    log_response(ctx, addr, None, status, head_len, &sent, started);
}

/// A short text response for `status` (and its body, sent unless HEAD).
fn error_head(status: Status, with: bool, next: Next, minor: u8) -> (Vec<u8>, &'static str) {
    let body = status.text();
    let mut h = Head::new(status);
    h.header("Content-Type", "text/plain; charset=utf-8")
        .content_length(body.len() as u64 + 1);
    if status == Status::MethodNotAllowed {
        h.header("Allow", "GET, HEAD");
    }
    if status == Status::ServiceUnavailable {
        h.header("Retry-After", "1");
    }
    (
        h.finish(next == Next::KeepOpen, minor),
        if with { body } else { "" },
    )
}

/// Head and text body as one buffer (the body ends with a newline).
fn with_body(mut head: Vec<u8>, body: &str) -> Vec<u8> {
    if !body.is_empty() {
        head.extend_from_slice(body.as_bytes());
        head.push(b'\n');
    }
    head
}

/// Answers one complete request.
async fn answer(
    peer: &mut Peer,
    addr: SocketAddr,
    ctx: &Context,
    req: &Request<'_>,
    started: Started,
) -> Next {
    let keep = if req.keep_alive {
        Next::KeepOpen
    } else {
        Next::Close
    };
    let plan = plan(ctx, req, keep);
    // `text`: bytes of a text body sent inside `head` (for the log).
    let (status, head, text, body, next) = match plan {
        Plan::Text { status, next } => {
            let (head, text) = error_head(status, req.method != Method::Head, next, req.minor);
            let n = if text.is_empty() { 0 } else { text.len() + 1 };
            (status, with_body(head, text), n as u64, None, next)
        }
        Plan::Redirect { location } => {
            let mut h = Head::new(Status::MovedPermanently);
            h.header("Location", &location).content_length(0);
            let head = h.finish(keep == Next::KeepOpen, req.minor);
            (Status::MovedPermanently, head, 0, None, keep)
        }
        Plan::File {
            status,
            head,
            file,
            start,
            end,
        } => (status, head, 0, Some((file, start, end)), keep),
    };
    let head_len = head.len() as u64 - text;
    let body = body.as_ref().map(|(file, start, end)| Body {
        file,
        start: *start,
        end: *end,
    });
    let sent = peer.send(head, body).await;
    log_response(ctx, addr, Some(req), status, head_len, &sent, started);
    if sent.is_err() { Next::Close } else { next }
}

/// What to answer.
enum Plan {
    /// A short text response (errors, 304 without body is a `File` with an empty range).
    Text { status: Status, next: Next },
    /// 301 to the directory's path with a slash.
    Redirect { location: String },
    /// A head and a range of a file (empty for HEAD, 304, 416).
    File {
        status: Status,
        head: Vec<u8>,
        file: Arc<ServedFile>,
        start: u64,
        end: u64,
    },
}

fn plan(ctx: &Context, req: &Request<'_>, keep: Next) -> Plan {
    let text = |status| Plan::Text { status, next: keep };
    if req.method == Method::Other {
        return text(Status::MethodNotAllowed);
    }
    let mapped = match path::map(req.target, ctx.dotfiles) {
        Ok(m) => m,
        Err(Refused::BadTarget) => {
            return Plan::Text {
                status: Status::BadRequest,
                next: Next::Close,
            };
        }
        Err(Refused::Hidden) => return text(Status::NotFound),
    };
    let mut relative = mapped.relative;
    let file = match ctx.root.open_cached(&relative) {
        Ok(Opened::File(f)) if !mapped.trailing_slash => f,
        Ok(Opened::File(_)) => return text(Status::NotFound), // "/file.txt/"
        Ok(Opened::Directory) if !mapped.trailing_slash => {
            let (path, query) = req.target.split_at(mapped.raw_path_len);
            return Plan::Redirect {
                location: format!("{path}/{query}"),
            };
        }
        Ok(Opened::Directory) => {
            relative.push("index.html");
            match ctx.root.open_cached(&relative) {
                Ok(Opened::File(f)) => f,
                Ok(Opened::Directory) => return text(Status::NotFound),
                Err(f) => return open_failed(ctx, &relative, f, keep),
            }
        }
        Err(f) => return open_failed(ctx, &relative, f, keep),
    };
    let v = file.validators;
    let ka = keep == Next::KeepOpen;
    if range::not_modified(&v, req.if_none_match, req.if_modified_since) {
        let mut h = Head::new(Status::NotModified);
        h.header("ETag", &file.etag)
            .header("Last-Modified", &file.last_modified);
        return Plan::File {
            status: Status::NotModified,
            head: h.finish(ka, req.minor),
            file,
            start: 0,
            end: 0,
        };
    }
    let answer = if range::if_range_holds(&v, req.if_range) {
        range::range(req.range, v.len)
    } else {
        RangeAnswer::Whole
    };
    let (status, start, end) = match answer {
        RangeAnswer::Whole => (Status::Ok, 0, v.len),
        RangeAnswer::Part { start, end } => (Status::PartialContent, start, end),
        RangeAnswer::Unsatisfiable => {
            let mut h = Head::new(Status::RangeNotSatisfiable);
            h.content_length(0).content_range_unsatisfied(v.len);
            return Plan::File {
                status: Status::RangeNotSatisfiable,
                head: h.finish(ka, req.minor),
                file,
                start: 0,
                end: 0,
            };
        }
    };
    let mut h = Head::new(status);
    h.header("Content-Type", file.content_type)
        .content_length(end - start)
        .header("Last-Modified", &file.last_modified)
        .header("ETag", &file.etag)
        .header("Accept-Ranges", "bytes");
    if status == Status::PartialContent {
        h.content_range(start, end, v.len);
    }
    let end = if req.method == Method::Head {
        start
    } else {
        end
    };
    Plan::File {
        status,
        head: h.finish(ka, req.minor),
        file,
        start,
        end,
    }
}

/// The answer to a failed open: 404, 403, 503 when out of descriptors (after the tables let
/// go of theirs), 500 for the unexpected (both on stderr when logging, and closing, which
/// gives a descriptor back).
fn open_failed(ctx: &Context, relative: &std::path::Path, f: OpenFailure, keep: Next) -> Plan {
    let (status, e) = match f {
        OpenFailure::NotFound => {
            return Plan::Text {
                status: Status::NotFound,
                next: keep,
            };
        }
        OpenFailure::Forbidden => {
            return Plan::Text {
                status: Status::Forbidden,
                next: keep,
            };
        }
        OpenFailure::Unavailable(e) => (Status::ServiceUnavailable, e),
        OpenFailure::Other(e) => (Status::InternalError, e),
    };
    if ctx.log.is_some() {
        eprintln!("cannot open {}: {e}", relative.display());
    }
    Plan::Text {
        status,
        next: Next::Close,
    }
}
