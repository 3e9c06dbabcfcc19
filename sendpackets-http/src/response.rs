//! Responses: status lines, heads, the `Date` cache, the small bodies of error responses, and
//! [`Response`], one answer as an element list.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::ops::Range;

use bytes::Bytes;
use sendpackets::Element;

use crate::files::ServedFile;
use crate::request::Refusal;

/// The statuses a file response has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// 200.
    Ok,
    /// 204 (the answer to `OPTIONS` when CORS is on).
    NoContent,
    /// 206.
    PartialContent,
    /// 301 (a directory asked for without its trailing `/`).
    MovedPermanently,
    /// 304.
    NotModified,
    /// 412 (`If-Match` or `If-Unmodified-Since` failed).
    PreconditionFailed,
    /// 400.
    BadRequest,
    /// 403 (a symlink leading outside the directory, a file the server may not read).
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408.
    RequestTimeout,
    /// 416.
    RangeNotSatisfiable,
    /// 431.
    HeadersTooLarge,
    /// 500 (an unexpected error opening a file: I/O error).
    InternalError,
    /// 503 (out of descriptors).
    ServiceUnavailable,
}

impl Status {
    /// The number.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::PreconditionFailed => 412,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The status line, up to and including its CRLF.
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "HTTP/1.1 200 OK\r\n",
            Status::NoContent => "HTTP/1.1 204 No Content\r\n",
            Status::PartialContent => "HTTP/1.1 206 Partial Content\r\n",
            Status::MovedPermanently => "HTTP/1.1 301 Moved Permanently\r\n",
            Status::NotModified => "HTTP/1.1 304 Not Modified\r\n",
            Status::PreconditionFailed => "HTTP/1.1 412 Precondition Failed\r\n",
            Status::BadRequest => "HTTP/1.1 400 Bad Request\r\n",
            Status::Forbidden => "HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => "HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => "HTTP/1.1 405 Method Not Allowed\r\n",
            Status::RequestTimeout => "HTTP/1.1 408 Request Timeout\r\n",
            Status::RangeNotSatisfiable => "HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::HeadersTooLarge => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalError => "HTTP/1.1 500 Internal Server Error\r\n",
            Status::ServiceUnavailable => "HTTP/1.1 503 Service Unavailable\r\n",
        }
    }

    /// The code and reason phrase, as in the status line: `404 Not Found`.
    pub fn text(self) -> &'static str {
        let line = self.line();
        // Without "HTTP/1.1 " (9 bytes) and the CRLF.
        &line[9..line.len() - 2]
    }
}

/// A response head under construction.
#[derive(Debug)]
pub(crate) struct Head {
    buf: String,
}

/// Typical head length; one allocation holds it.
const HEAD_CAPACITY: usize = 320;

impl Head {
    /// Starts a head: status line, `Server` and `Date`.
    pub(crate) fn new(status: Status) -> Head {
        let mut buf = String::with_capacity(HEAD_CAPACITY);
        buf.push_str(status.line());
        buf.push_str("Server: sendpackets\r\nDate: ");
        with_date(|d| buf.push_str(d));
        buf.push_str("\r\n");
        Head { buf }
    }

    /// Adds `name: value`.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> &mut Head {
        self.buf.push_str(name);
        self.buf.push_str(": ");
        self.buf.push_str(value);
        self.buf.push_str("\r\n");
        self
    }

    /// Adds `Content-Length: n`.
    pub(crate) fn content_length(&mut self, n: u64) -> &mut Head {
        let _ = write!(self.buf, "Content-Length: {n}\r\n");
        self
    }

    /// Adds `Content-Range: bytes start-last/len`.
    pub(crate) fn content_range(&mut self, start: u64, end: u64, len: u64) -> &mut Head {
        let _ = write!(
            self.buf,
            "Content-Range: bytes {start}-{}/{len}\r\n",
            end - 1
        );
        self
    }

    /// Adds `Content-Range: bytes */len` (for 416).
    pub(crate) fn content_range_unsatisfied(&mut self, len: u64) -> &mut Head {
        let _ = write!(self.buf, "Content-Range: bytes */{len}\r\n");
        self
    }

    /// Ends the head with the connection's fate: `Connection: close` when it closes after this
    /// response, `Connection: keep-alive` for an HTTP/1.0 client that keeps it, nothing for
    /// HTTP/1.1 (persistent by default).
    pub(crate) fn finish(mut self, keep_alive: bool, minor: u8) -> Vec<u8> {
        if !keep_alive {
            self.buf.push_str("Connection: close\r\n");
        } else if minor == 0 {
            self.buf.push_str("Connection: keep-alive\r\n");
        }
        self.buf.push_str("\r\n");
        self.buf.into_bytes()
    }
}

/// One response, ready to send: the head (status line and header fields) as memory, then the
/// body as memory or file ranges. Send [`elements`](Response::elements) with one sendpackets
/// call.
///
/// # Examples
///
/// ```
/// use sendpackets_http::{Refusal, Response, Status};
///
/// let r = Response::refusal(Refusal::Malformed);
/// assert_eq!(r.status(), Status::BadRequest);
/// assert!(!r.keep_alive());
/// let list = r.elements();
/// assert_eq!(list.len(), 1); // head and its short text body, one buffer
/// assert!(r.head().starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Response {
    status: Status,
    /// The head, followed by the bytes of an inline body.
    bytes: Vec<u8>,
    /// Bytes of `bytes` that are the head.
    head_len: usize,
    body: Body,
    keep_alive: bool,
    open_error: Option<(PathBuf, io::Error)>,
}

/// What follows the head.
#[derive(Debug)]
enum Body {
    /// Nothing, or a short text inside the head's buffer.
    Inline,
    /// Bytes `start..end` of a file.
    File {
        file: Arc<ServedFile>,
        start: u64,
        end: u64,
    },
    /// `multipart/byteranges`: for each part, its header (a slice of `seps`) then bytes
    /// `start..end` of the file; then the closing delimiter (`tail`, a slice of `seps`).
    Multipart {
        file: Arc<ServedFile>,
        seps: Bytes,
        parts: Vec<(Range<usize>, u64, u64)>,
        tail: Range<usize>,
    },
}

impl Response {
    /// A head with no body (HEAD, 304, 416, 301).
    pub(crate) fn head_only(status: Status, head: Vec<u8>, keep_alive: bool) -> Response {
        Response {
            status,
            head_len: head.len(),
            bytes: head,
            body: Body::Inline,
            keep_alive,
            open_error: None,
        }
    }

    /// A head and bytes `start..end` of `file` (empty for HEAD).
    pub(crate) fn file(
        status: Status,
        head: Vec<u8>,
        file: Arc<ServedFile>,
        start: u64,
        end: u64,
        keep_alive: bool,
    ) -> Response {
        Response {
            status,
            head_len: head.len(),
            bytes: head,
            body: Body::File { file, start, end },
            keep_alive,
            open_error: None,
        }
    }

    /// 206 `multipart/byteranges`: the head, then the parts (see [`Body::Multipart`]).
    pub(crate) fn multipart(
        head: Vec<u8>,
        file: Arc<ServedFile>,
        seps: Vec<u8>,
        parts: Vec<(Range<usize>, u64, u64)>,
        tail: Range<usize>,
        keep_alive: bool,
    ) -> Response {
        Response {
            status: Status::PartialContent,
            head_len: head.len(),
            bytes: head,
            body: Body::Multipart {
                file,
                seps: Bytes::from(seps),
                parts,
                tail,
            },
            keep_alive,
            open_error: None,
        }
    }

    /// A response whose body is `body`, of type `content_type` (none sent for HEAD).
    pub(crate) fn inline(
        status: Status,
        content_type: &str,
        body: Vec<u8>,
        with_body: bool,
        keep_alive: bool,
        minor: u8,
    ) -> Response {
        let mut h = Head::new(status);
        h.header("Content-Type", content_type)
            .content_length(body.len() as u64);
        let mut bytes = h.finish(keep_alive, minor);
        let head_len = bytes.len();
        if with_body {
            bytes.extend_from_slice(&body);
        }
        Response {
            status,
            bytes,
            head_len,
            body: Body::Inline,
            keep_alive,
            open_error: None,
        }
    }

    /// A short text response for `status`: its code and reason as a plain-text body (none for
    /// HEAD). `minor`: the request's version; `keep_alive`: whether the connection stays open.
    pub(crate) fn text(status: Status, with_body: bool, keep_alive: bool, minor: u8) -> Response {
        let text = status.text();
        let mut h = Head::new(status);
        h.header("Content-Type", "text/plain; charset=utf-8")
            .content_length(text.len() as u64 + 1);
        if status == Status::MethodNotAllowed {
            h.header("Allow", "GET, HEAD");
        }
        if status == Status::ServiceUnavailable {
            h.header("Retry-After", "1");
        }
        let mut bytes = h.finish(keep_alive, minor);
        let head_len = bytes.len();
        if with_body {
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(b'\n');
        }
        Response {
            status,
            bytes,
            head_len,
            body: Body::Inline,
            keep_alive,
            open_error: None,
        }
    }

    /// Adds header lines (each ending in CRLF) at the end of the head.
    pub(crate) fn add_headers(&mut self, lines: &str) {
        if lines.is_empty() {
            return;
        }
        let at = self.head_len - 2; // before the blank line
        self.bytes.splice(at..at, lines.bytes());
        self.head_len += lines.len();
    }

    pub(crate) fn with_open_error(mut self, path: PathBuf, e: io::Error) -> Response {
        self.open_error = Some((path, e));
        self
    }

    /// The answer to a refused head (400 or 431); the connection closes after it.
    pub fn refusal(why: Refusal) -> Response {
        let status = match why {
            Refusal::Malformed => Status::BadRequest,
            Refusal::TooLarge => Status::HeadersTooLarge,
        };
        Response::text(status, true, false, 1)
    }

    /// 408 for a head not complete in time; the connection closes after it.
    pub fn request_timeout() -> Response {
        Response::text(Status::RequestTimeout, true, false, 1)
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The head: status line and header fields, up to and including the blank line.
    pub fn head(&self) -> &[u8] {
        &self.bytes[..self.head_len]
    }

    /// Bytes of the body that follow the head (0 for HEAD, 304, ...).
    pub fn body_len(&self) -> u64 {
        let inline = (self.bytes.len() - self.head_len) as u64;
        match &self.body {
            Body::Inline => inline,
            Body::File { start, end, .. } => inline + (end - start),
            Body::Multipart { parts, tail, .. } => {
                let parts: u64 = parts
                    .iter()
                    .map(|(sep, start, end)| sep.len() as u64 + (end - start))
                    .sum();
                inline + parts + tail.len() as u64
            }
        }
    }

    /// Whether the connection may stay open after this response (the head says so too).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// For a 500 or a 503: the path relative to the root that could not be opened, and why.
    pub fn open_error(&self) -> Option<(&Path, &io::Error)> {
        self.open_error.as_ref().map(|(p, e)| (p.as_path(), e))
    }

    /// The response as one element list: the head (with any short body) as memory, then the
    /// file range. The file is shared, not reopened; the memory is copied once per call.
    pub fn elements(&self) -> Vec<Element> {
        let mut list = Vec::with_capacity(2);
        list.push(Element::memory(self.bytes.clone()));
        self.push_body(&mut list);
        list
    }

    /// [`elements`](Self::elements), without copying the head.
    pub fn into_elements(self) -> Vec<Element> {
        let mut list = Vec::with_capacity(2);
        self.push_body(&mut list);
        list.insert(0, Element::memory(self.bytes));
        list
    }

    fn push_body(&self, list: &mut Vec<Element>) {
        match &self.body {
            Body::Inline => {}
            Body::File { file, start, end } => {
                if end > start {
                    list.push(file.element(*start..*end));
                }
            }
            Body::Multipart {
                file,
                seps,
                parts,
                tail,
            } => {
                list.reserve(2 * parts.len() + 1);
                for (sep, start, end) in parts {
                    list.push(Element::memory(seps.slice(sep.clone())));
                    list.push(file.element(*start..*end));
                }
                list.push(Element::memory(seps.slice(tail.clone())));
            }
        }
    }
}

thread_local! {
    /// The `Date` value, formatted once per second per thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn with_date(f: impl FnOnce(&str)) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        f(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let mut h = Head::new(Status::PartialContent);
        h.header("Content-Type", "text/plain")
            .content_length(10)
            .content_range(5, 15, 100);
        let text = String::from_utf8(h.finish(true, 1)).unwrap();
        assert!(text.starts_with("HTTP/1.1 206 Partial Content\r\nServer: sendpackets\r\nDate: "));
        assert!(text.ends_with(
            " GMT\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\
             Content-Range: bytes 5-14/100\r\n\r\n"
        ));
        let close = String::from_utf8(Head::new(Status::NotFound).finish(false, 1)).unwrap();
        assert!(close.ends_with("Connection: close\r\n\r\n"));
        let ten = String::from_utf8(Head::new(Status::Ok).finish(true, 0)).unwrap();
        assert!(ten.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(Status::NotFound.text(), "404 Not Found");
        assert_eq!(Status::HeadersTooLarge.code(), 431);
    }
}
