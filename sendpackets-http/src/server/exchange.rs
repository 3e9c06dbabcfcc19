//! The IO hyper is given for one request: it reads exactly that request's bytes (head and
//! body, by its framing) and then nothing until the response hyper writes through it is
//! complete; then it reads end of file, so hyper ends the connection and the stream comes back
//! to the crate's loop, with every byte read ahead (a pipelined request) still unread by
//! hyper. A `101 Switching Protocols` response turns it into a plain pass-through for good.
//!
//! The end of the response is found in the bytes hyper writes (its head's framing, the
//! chunked scanner), not from hyper's internals.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, BytesMut};
use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::chunked::{Chunked, Scan};
use crate::request::BodyFraming;

/// Most bytes of a response head the tracker keeps; a longer head is not followed (the
/// connection then closes after the response).
const MAX_RESPONSE_HEAD: usize = 64 << 10;

/// Most header fields of a response head the tracker parses.
const MAX_RESPONSE_HEADERS: usize = 128;

/// Bytes read from the socket at a time while hyper reads the request.
const READ_CHUNK: usize = 16 << 10;

/// What comes back to the connection's loop when hyper lets go of the IO.
#[derive(Debug)]
pub(crate) struct Returned {
    pub(crate) stream: TcpStream,
    /// Bytes read from the socket and not given to hyper: the next requests.
    pub(crate) unread: BytesMut,
    /// The request was given whole, the response went out whole, and both sides let the
    /// connection stay open.
    pub(crate) reusable: bool,
    /// The client may still be sending (part of the request body was not read): close with
    /// a lingering close, so that the unread bytes do not turn the close into a reset.
    pub(crate) unread_input: bool,
}

/// How much of the request hyper may still read.
#[derive(Debug)]
enum RequestLeft {
    /// This many bytes, then the body (if chunked).
    Bytes(u64, Option<Chunked>),
    /// The chunked body.
    Chunked(Chunked),
    /// All given.
    Done,
    /// No limit (the framing was not understood; the connection closes after).
    Unbounded,
}

/// Where the response hyper writes stands.
#[derive(Debug)]
enum ResponseAt {
    /// Collecting the head.
    Head(Vec<u8>),
    /// This many body bytes left.
    Length(u64),
    /// A chunked body.
    Chunked(Chunked),
    /// Written whole.
    Complete,
    /// Without framing (ends with the connection) or not understood.
    UntilClose,
    /// `101`: the connection belongs to the upgraded protocol.
    Upgraded,
}

/// The IO given to hyper for one request.
#[derive(Debug)]
pub(crate) struct Exchange {
    stream: Option<TcpStream>,
    pre: BytesMut,
    request: RequestLeft,
    response: ResponseAt,
    head_request: bool,
    /// Both sides asked for the connection to stay open so far.
    keep_alive: bool,
    /// Hyper wrote after the response was complete, or the client closed early.
    broken: bool,
    read_waker: Option<Waker>,
    back: Option<oneshot::Sender<Returned>>,
}

impl Exchange {
    /// `pre`: the buffered bytes, starting with the request head of `head_len` bytes.
    pub(crate) fn new(
        stream: TcpStream,
        pre: BytesMut,
        head_len: usize,
        body: BodyFraming,
        head_request: bool,
        keep_alive: bool,
        back: oneshot::Sender<Returned>,
    ) -> Exchange {
        Exchange::build(
            Some(stream),
            pre,
            head_len,
            body,
            head_request,
            keep_alive,
            back,
        )
    }

    fn build(
        stream: Option<TcpStream>,
        pre: BytesMut,
        head_len: usize,
        body: BodyFraming,
        head_request: bool,
        keep_alive: bool,
        back: oneshot::Sender<Returned>,
    ) -> Exchange {
        let head = head_len as u64;
        let request = match body {
            BodyFraming::None => RequestLeft::Bytes(head, None),
            BodyFraming::Length(n) => RequestLeft::Bytes(head.saturating_add(n), None),
            BodyFraming::Chunked => RequestLeft::Bytes(head, Some(Chunked::new())),
        };
        let keep_alive = keep_alive && !matches!(request, RequestLeft::Unbounded);
        Exchange {
            stream,
            pre,
            request,
            response: ResponseAt::Head(Vec::new()),
            head_request,
            keep_alive,
            broken: false,
            read_waker: None,
            back: Some(back),
        }
    }

    /// How many of the first bytes of `avail` belong to the request; advances past them.
    fn take(&mut self, avail: &[u8]) -> usize {
        let mut given = 0;
        loop {
            let rest = &avail[given..];
            match &mut self.request {
                RequestLeft::Unbounded => return avail.len(),
                RequestLeft::Done => return given,
                _ if rest.is_empty() => return given,
                RequestLeft::Bytes(n, then) => {
                    let k = (*n).min(rest.len() as u64);
                    *n -= k;
                    given += k as usize;
                    if *n == 0 {
                        self.request = match then.take() {
                            Some(c) => RequestLeft::Chunked(c),
                            None => RequestLeft::Done,
                        };
                    }
                }
                RequestLeft::Chunked(c) => match c.feed(rest) {
                    Scan::More => return avail.len(),
                    Scan::Done(k) => {
                        self.request = RequestLeft::Done;
                        return given + k;
                    }
                    Scan::Invalid => {
                        self.request = RequestLeft::Unbounded;
                        self.keep_alive = false;
                        return avail.len();
                    }
                },
            }
        }
    }

    /// Follows `bytes` that went out to the socket.
    fn wrote(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.response {
                ResponseAt::Upgraded | ResponseAt::UntilClose => return,
                ResponseAt::Complete => {
                    self.broken = true;
                    return;
                }
                ResponseAt::Head(head) => {
                    let before = head.len();
                    head.extend_from_slice(bytes);
                    let Some(end) = find_head_end(head, before) else {
                        if head.len() > MAX_RESPONSE_HEAD {
                            self.response = ResponseAt::UntilClose;
                        }
                        return;
                    };
                    let complete = head[..end].to_vec();
                    let next = self.on_head(&complete);
                    bytes = &bytes[end - before..];
                    self.response = next;
                }
                ResponseAt::Length(n) => {
                    let k = (*n).min(bytes.len() as u64);
                    *n -= k;
                    bytes = &bytes[k as usize..];
                    if *n == 0 {
                        self.response = ResponseAt::Complete;
                    }
                }
                ResponseAt::Chunked(c) => match c.feed(bytes) {
                    Scan::More => return,
                    Scan::Done(k) => {
                        bytes = &bytes[k..];
                        self.response = ResponseAt::Complete;
                    }
                    Scan::Invalid => self.response = ResponseAt::UntilClose,
                },
            }
        }
        if matches!(self.response, ResponseAt::Length(0)) {
            self.response = ResponseAt::Complete;
        }
    }

    /// What follows a complete response head.
    fn on_head(&mut self, head: &[u8]) -> ResponseAt {
        let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut r = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(_)) = r.parse(head) else {
            return ResponseAt::UntilClose;
        };
        let (Some(code), Some(minor)) = (r.code, r.version) else {
            return ResponseAt::UntilClose;
        };
        if code == 101 {
            return ResponseAt::Upgraded;
        }
        if (100..200).contains(&code) {
            return ResponseAt::Head(Vec::new()); // interim (100 Continue): the real one follows
        }
        let mut length = None;
        let mut chunked = false;
        let mut persists = minor >= 1;
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        persists = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        persists = persists || minor == 0;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        if !persists {
            self.keep_alive = false;
        }
        if self.head_request || code == 204 || code == 304 {
            ResponseAt::Complete
        } else if chunked {
            ResponseAt::Chunked(Chunked::new())
        } else if let Some(n) = length {
            if n == 0 {
                ResponseAt::Complete
            } else {
                ResponseAt::Length(n)
            }
        } else {
            ResponseAt::UntilClose
        }
    }

    fn upgraded(&self) -> bool {
        matches!(self.response, ResponseAt::Upgraded)
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// After a write: the response may be complete, so a read waiting for that can go on.
    fn after_write(&mut self, bytes: &[u8]) {
        let was = self.upgraded();
        self.wrote(bytes);
        if self.upgraded() && !was {
            // For good: nothing goes back to the loop.
            self.back = None;
            self.request = RequestLeft::Unbounded;
        }
        if matches!(self.response, ResponseAt::Complete) {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
    }
}

/// The end of a head (after its blank line) in `buf`, looking from a little before `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

impl Read for Exchange {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if matches!(this.request, RequestLeft::Done) {
                if matches!(this.response, ResponseAt::Complete) {
                    return Poll::Ready(Ok(())); // end of file: hyper is done with us
                }
                this.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if !this.pre.is_empty() && buf.remaining() > 0 {
                let n = this.pre.len().min(buf.remaining());
                let pre = std::mem::take(&mut this.pre);
                let k = this.take(&pre[..n]);
                this.pre = pre;
                if k > 0 {
                    buf.put_slice(&this.pre[..k]);
                    this.pre.advance(k);
                    return Poll::Ready(Ok(()));
                }
                continue; // the request just ended
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            this.pre.reserve(READ_CHUNK);
            let pre = &mut this.pre;
            let stream = this
                .stream
                .as_mut()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            match stream.try_read_buf(pre) {
                Ok(0) => {
                    this.broken = true;
                    return Poll::Ready(Ok(())); // the client closed
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Write for Exchange {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(this.stream()?).poll_write(cx, buf))?;
        this.after_write(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(this.stream()?).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let k = left.min(b.len());
            this.after_write(&b[..k]);
            left -= k;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Pin::new(this.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.upgraded() {
            return Pin::new(this.stream()?).poll_shutdown(cx);
        }
        // The loop decides whether the connection goes on or closes.
        Pin::new(this.stream()?).poll_flush(cx)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let (Some(back), Some(stream)) = (self.back.take(), self.stream.take()) else {
            return;
        };
        let reusable = !self.broken
            && self.keep_alive
            && matches!(self.request, RequestLeft::Done)
            && matches!(self.response, ResponseAt::Complete);
        let unread = std::mem::take(&mut self.pre);
        let unread_input = !matches!(self.request, RequestLeft::Done) || !unread.is_empty();
        let _ = back.send(Returned {
            stream,
            unread,
            reusable,
            unread_input,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(body: BodyFraming, head_request: bool) -> Exchange {
        // No stream: these tests drive `take` and `wrote` directly.
        let (tx, _rx) = oneshot::channel();
        Exchange::build(None, BytesMut::new(), 10, body, head_request, true, tx)
    }

    #[test]
    fn requests_are_cut_at_their_framing() {
        let mut e = exchange(BodyFraming::Length(5), false);
        assert_eq!(e.take(b"0123456789abcdefgh"), 15);
        assert!(matches!(e.request, RequestLeft::Done));
        assert_eq!(e.take(b"next"), 0);

        let mut e = exchange(BodyFraming::None, false);
        assert_eq!(e.take(b"0123"), 4);
        assert_eq!(e.take(b"456789GET"), 6);

        let mut e = exchange(BodyFraming::Chunked, false);
        assert_eq!(e.take(b"0123456789"), 10);
        assert_eq!(e.take(b"3\r\nabc\r\n"), 8);
        assert_eq!(e.take(b"0\r\n\r\nGET / HTTP/1.1"), 5);
        assert!(matches!(e.request, RequestLeft::Done));
    }

    #[test]
    fn responses_are_followed_to_their_end() {
        let mut e = exchange(BodyFraming::None, false);
        e.wrote(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-len");
        assert!(matches!(e.response, ResponseAt::Head(_)));
        e.wrote(b"gth: 5\r\n\r\nhel");
        assert!(matches!(e.response, ResponseAt::Length(2)));
        e.wrote(b"lo");
        assert!(matches!(e.response, ResponseAt::Complete));
        assert!(e.keep_alive);

        let mut e = exchange(BodyFraming::None, false);
        e.wrote(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
        e.wrote(b"5\r\nhello\r\n");
        assert!(matches!(e.response, ResponseAt::Chunked(_)));
        e.wrote(b"0\r\n\r\n");
        assert!(matches!(e.response, ResponseAt::Complete));
        assert!(!e.keep_alive);

        let mut e = exchange(BodyFraming::None, true);
        e.wrote(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n");
        assert!(matches!(e.response, ResponseAt::Complete));

        let mut e = exchange(BodyFraming::None, false);
        e.wrote(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx");
        assert!(matches!(e.response, ResponseAt::Complete));
        assert!(!e.keep_alive);

        let mut e = exchange(BodyFraming::None, false);
        e.wrote(b"HTTP/1.1 200 OK\r\n\r\nstream");
        assert!(matches!(e.response, ResponseAt::UntilClose));

        let mut e = exchange(BodyFraming::None, false);
        e.after_write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x02hi");
        assert!(e.upgraded() && e.back.is_none());
    }
}
