//! Request heads, parsed with `httparse`: what the server needs from one request, borrowed
//! from the connection's buffer.

use super::args::{MAX_HEAD, MAX_HEADERS};

/// The request method, as far as a read-only file server cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the same headers, no body.
    Head,
    /// Anything else: 405.
    Other,
}

/// One parsed request head.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The method.
    pub(crate) method: Method,
    /// The method as sent (for the log).
    pub(crate) method_text: &'a str,
    /// The request target as sent.
    pub(crate) target: &'a str,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub(crate) minor: u8,
    /// Whether the client lets the connection stay open after the response.
    pub(crate) keep_alive: bool,
    /// The request announces a body (`Content-Length` > 0 or `Transfer-Encoding`). The server
    /// never reads request bodies: it answers and closes.
    pub(crate) has_body: bool,
    /// `Range`.
    pub(crate) range: Option<&'a [u8]>,
    /// `If-Range`.
    pub(crate) if_range: Option<&'a [u8]>,
    /// `If-None-Match`.
    pub(crate) if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub(crate) if_modified_since: Option<&'a [u8]>,
    /// `Referer` (for the log).
    pub(crate) referer: Option<&'a [u8]>,
    /// `User-Agent` (for the log).
    pub(crate) user_agent: Option<&'a [u8]>,
    /// Bytes of the buffer the head took (the next request starts there).
    pub(crate) head_len: usize,
}

/// Why a head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not HTTP/1.x, bad syntax, bad or conflicting framing headers, no Host on HTTP/1.1: 400.
    Malformed,
    /// Head longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields: 431.
    TooLarge,
}

/// What the buffered bytes hold.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// A complete head.
    Complete(Request<'a>),
    /// Not complete yet (and still within bounds): read more.
    Partial,
    /// Refused: answer and close.
    Refused(Refusal),
}

/// Parses the head at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed<'_> {
    // Empty lines before a request line are to be ignored (RFC 9112, section 2.2); httparse
    // does that itself.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD {
                Parsed::Refused(Refusal::TooLarge)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Refusal::TooLarge),
        Err(_) => return Parsed::Refused(Refusal::Malformed),
    };
    if head_len > MAX_HEAD {
        return Parsed::Refused(Refusal::TooLarge);
    }
    let (Some(method_text), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Refused(Refusal::Malformed);
    };
    let method = match method_text {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let mut r = Request {
        method,
        method_text,
        target,
        minor,
        keep_alive: minor >= 1,
        has_body: false,
        range: None,
        if_range: None,
        if_none_match: None,
        if_modified_since: None,
        referer: None,
        user_agent: None,
        head_len,
    };
    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    r.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    r.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_decimal(h.value.trim_ascii()) else {
                return Parsed::Refused(Refusal::Malformed);
            };
            if content_length.is_some_and(|c| c != n) {
                return Parsed::Refused(Refusal::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            r.has_body = true;
        } else if name.eq_ignore_ascii_case("range") {
            r.range.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("if-range") {
            r.if_range.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            r.if_none_match.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            r.if_modified_since.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("referer") {
            r.referer.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("user-agent") {
            r.user_agent.get_or_insert(h.value);
        }
    }
    // RFC 9112 section 3.2: a 1.1 request without exactly one Host is answered with 400.
    if hosts > 1 || (minor >= 1 && hosts == 0) {
        return Parsed::Refused(Refusal::Malformed);
    }
    if content_length.is_some_and(|n| n > 0) {
        r.has_body = true;
    }
    if r.has_body {
        r.keep_alive = false;
    }
    Parsed::Complete(r)
}

/// A non-empty string of ASCII digits as a number; `None` for anything else or overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(s: &str) -> Request<'_> {
        match parse(s.as_bytes()) {
            Parsed::Complete(r) => r,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn get_with_everything() {
        let s = "GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\
                 If-None-Match: \"x\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 If-Range: \"x\"\r\n\r\nGET / HTTP/1.1\r\n";
        let r = complete(s);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/a/b.txt?x=1");
        assert!(r.keep_alive && !r.has_body);
        assert_eq!(r.range, Some(&b"bytes=0-9"[..]));
        assert_eq!(r.if_none_match, Some(&b"\"x\""[..]));
        assert_eq!(r.if_range, Some(&b"\"x\""[..]));
        assert!(r.if_modified_since.is_some());
        assert_eq!(&s[r.head_len..], "GET / HTTP/1.1\r\n");
    }

    #[test]
    fn connection_and_versions() {
        assert!(!complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let r = complete("HEAD / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n");
        assert!(!r.keep_alive);
        assert_eq!(r.method, Method::Head);
        assert_eq!(
            complete("POST / HTTP/1.1\r\nHost: h\r\n\r\n").method,
            Method::Other
        );
    }

    #[test]
    fn bodies_close_the_connection() {
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
        assert!(r.has_body && !r.keep_alive);
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.has_body && r.keep_alive);
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(r.has_body && !r.keep_alive);
    }

    #[test]
    fn refusals() {
        let bad = |s: &str| match parse(s.as_bytes()) {
            Parsed::Refused(r) => r,
            other => panic!("{s:?}: {other:?}"),
        };
        assert_eq!(bad("GET / HTTP/1.1\r\n\r\n"), Refusal::Malformed); // no Host
        assert_eq!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Refusal::Malformed
        );
        assert_eq!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Refusal::Malformed
        );
        assert_eq!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            Refusal::Malformed
        );
        assert_eq!(bad("GET / HTTP/2.0\r\n\r\n"), Refusal::Malformed);
        assert_eq!(bad("G\0T / HTTP/1.1\r\n\r\n"), Refusal::Malformed);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            bad(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Refusal::TooLarge
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(bad(&long), Refusal::TooLarge);
    }

    #[test]
    fn partial_heads_wait() {
        assert!(matches!(parse(b""), Parsed::Partial));
        assert!(matches!(parse(b"GET / HT"), Parsed::Partial));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), None); // 20 digits
        assert_eq!(
            parse_decimal(b"1234567890123456789"),
            Some(1_234_567_890_123_456_789)
        );
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
    }
}
