//! Response heads: status lines, the `Date` cache, and the small bodies of error responses.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The statuses the server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// 200.
    Ok,
    /// 206.
    PartialContent,
    /// 301 (a directory asked for without its trailing `/`).
    MovedPermanently,
    /// 304.
    NotModified,
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
    pub(crate) fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
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
            Status::PartialContent => "HTTP/1.1 206 Partial Content\r\n",
            Status::MovedPermanently => "HTTP/1.1 301 Moved Permanently\r\n",
            Status::NotModified => "HTTP/1.1 304 Not Modified\r\n",
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
    pub(crate) fn text(self) -> &'static str {
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
