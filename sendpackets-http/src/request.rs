//! Request heads: what a file response needs from one request, borrowed from the caller's
//! buffer. Parsed from bytes with `httparse` ([`RequestHead::parse`]) or built from parts a
//! caller already has ([`RequestHead::new`]).

use crate::range::Conditions;

/// Longest request head (request line + headers + blank line) [`RequestHead::parse`] accepts;
/// longer is refused as [`Refusal::TooLarge`] (431). nginx reads heads into buffers of 1 KiB,
/// then up to 4 x 8 KiB (`large_client_header_buffers`); one 8 KiB buffer per connection is the
/// bound on memory a slow client can hold.
pub const MAX_HEAD: usize = 8 << 10;

/// Most header fields [`RequestHead::parse`] accepts in one request; more is 431. (httparse
/// parses into a fixed array.)
pub const MAX_HEADERS: usize = 64;

/// The request method, as far as a read-only file server cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the same headers, no body.
    Head,
    /// `OPTIONS`: answered (CORS preflights among them) when CORS is on, else 405.
    Options,
    /// Anything else: answered 405 by [`Files::respond`](crate::Files::respond).
    Other,
}

impl Method {
    /// `GET` and `HEAD` as such, anything else as [`Method::Other`].
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// One request head: method, target, version, and the header fields a file response reads.
///
/// Header fields the crate does not use are not kept; [`header`](RequestHead::header) ignores
/// them, so a caller can pass every field it has.
///
/// # Examples
///
/// Parsing a head from the bytes a connection read:
///
/// ```
/// use sendpackets_http::{Method, Parsed, RequestHead};
///
/// let bytes = b"GET /a.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\nGET /b";
/// let Parsed::Complete(req) = RequestHead::parse(bytes) else { panic!() };
/// assert_eq!(req.method(), Method::Get);
/// assert_eq!(req.target(), "/a.txt");
/// assert!(req.keep_alive());
/// assert_eq!(&bytes[req.head_len()..], b"GET /b"); // the next request starts there
/// ```
///
/// Building one from parts (for example from an `http::Request`):
///
/// ```
/// use sendpackets_http::{Method, RequestHead};
///
/// let req = RequestHead::new("GET", "/a.txt", 1).header("If-None-Match", b"\"x\"");
/// assert_eq!(req.method(), Method::Get);
/// assert!(req.keep_alive());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    method: Method,
    method_text: &'a str,
    target: &'a str,
    minor: u8,
    keep_alive: bool,
    client_keep_alive: bool,
    has_body: bool,
    upgrade: bool,
    range: Option<&'a [u8]>,
    if_range: Option<&'a [u8]>,
    if_none_match: Option<&'a [u8]>,
    if_modified_since: Option<&'a [u8]>,
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    if_match: Option<&'a [u8]>,
    if_unmodified_since: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    accept_encoding: Option<&'a [u8]>,
    request_method: Option<&'a [u8]>,
    request_headers: Option<&'a [u8]>,
    head_len: usize,
    body: BodyFraming,
}

/// How the body of a request is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`, n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Not HTTP/1.x, bad syntax, bad or conflicting framing headers, no Host on HTTP/1.1: 400.
    Malformed,
    /// Head longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields: 431.
    TooLarge,
}

/// What the buffered bytes hold.
// `Complete` is much larger than the others: a head is returned by value and matched at once,
// and boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Parsed<'a> {
    /// A complete head.
    Complete(RequestHead<'a>),
    /// Not complete yet (and still within bounds): read more.
    Partial,
    /// Refused: answer ([`Response::refusal`](crate::Response::refusal)) and close.
    Refused(Refusal),
}

impl<'a> RequestHead<'a> {
    /// A head from its parts: the method as sent, the request target, and the minor version
    /// (`1` for HTTP/1.1, `0` for HTTP/1.0). Add fields with [`header`](Self::header).
    pub fn new(method: &'a str, target: &'a str, minor: u8) -> RequestHead<'a> {
        RequestHead {
            method: Method::from_name(method),
            method_text: method,
            target,
            minor,
            keep_alive: minor >= 1,
            client_keep_alive: minor >= 1,
            has_body: false,
            upgrade: false,
            range: None,
            if_range: None,
            if_none_match: None,
            if_modified_since: None,
            referer: None,
            user_agent: None,
            if_match: None,
            if_unmodified_since: None,
            origin: None,
            accept_encoding: None,
            request_method: None,
            request_headers: None,
            head_len: 0,
            body: BodyFraming::None,
        }
    }

    /// Adds one header field. The first of repeated conditional or range fields counts;
    /// `Connection` tokens are read as they come; fields the crate does not use are ignored.
    /// No framing checks here: [`parse`](Self::parse) makes them.
    pub fn header(mut self, name: &str, value: &'a [u8]) -> RequestHead<'a> {
        self.add(name, value);
        self
    }

    fn add(&mut self, name: &str, value: &'a [u8]) {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.keep_alive = false;
                    self.client_keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && self.minor == 0 {
                    self.keep_alive = !self.has_body;
                    self.client_keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("range") {
            self.range.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("if-range") {
            self.if_range.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            self.if_none_match.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            self.if_modified_since.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("referer") {
            self.referer.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("user-agent") {
            self.user_agent.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("if-match") {
            self.if_match.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            self.if_unmodified_since.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            self.accept_encoding.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("origin") {
            self.origin.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            self.request_method.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            self.request_headers.get_or_insert(value);
        }
    }

    /// Parses the head at the start of `buf` and checks its framing: exactly one `Host` on
    /// HTTP/1.1, no conflicting `Content-Length`, `Transfer-Encoding` only as `chunked` at the
    /// end (RFC 9112 sections 3.2 and 6).
    ///
    /// A request that announces a body does not keep the connection open
    /// ([`keep_alive`](Self::keep_alive) is false): a file server answers it without reading
    /// the body. Callers that read bodies use [`body`](Self::body).
    pub fn parse(buf: &'a [u8]) -> Parsed<'a> {
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
        let (Some(method_text), Some(target), Some(minor)) = (req.method, req.path, req.version)
        else {
            return Parsed::Refused(Refusal::Malformed);
        };
        let mut r = RequestHead::new(method_text, target, minor);
        r.head_len = head_len;
        let mut hosts = 0usize;
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut transfer_encoding = false;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if name.eq_ignore_ascii_case("content-length") {
                let Some(n) = parse_decimal(h.value.trim_ascii()) else {
                    return Parsed::Refused(Refusal::Malformed);
                };
                if content_length.is_some_and(|c| c != n) {
                    return Parsed::Refused(Refusal::Malformed);
                }
                content_length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                // Only the last coding says how the body ends; anything after `chunked` is
                // not a framing a server can read (RFC 9112 section 6.3, item 4).
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else {
                r.add(name, h.value);
            }
        }
        // RFC 9112 section 3.2: a 1.1 request without exactly one Host is answered with 400.
        if hosts > 1 || (minor >= 1 && hosts == 0) {
            return Parsed::Refused(Refusal::Malformed);
        }
        if transfer_encoding {
            // Both framings at once is how requests are smuggled; an unknown last coding
            // cannot be delimited.
            if content_length.is_some() || !chunked || minor == 0 {
                return Parsed::Refused(Refusal::Malformed);
            }
            r.body = BodyFraming::Chunked;
        } else if let Some(n) = content_length.filter(|&n| n > 0) {
            r.body = BodyFraming::Length(n);
        }
        if r.body != BodyFraming::None {
            r.has_body = true;
            r.keep_alive = false;
        }
        Parsed::Complete(r)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method as sent.
    pub fn method_text(&self) -> &'a str {
        self.method_text
    }

    /// The request target as sent.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor
    }

    /// Whether the connection may stay open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, and never after a
    /// request with a body that nobody reads.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client lets the connection stay open after the response (HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`), whether or not the
    /// request has a body. A server that reads the body may keep the connection on this.
    pub fn client_keep_alive(&self) -> bool {
        self.client_keep_alive
    }

    /// The request announces a body (`Content-Length` > 0 or `Transfer-Encoding`).
    pub fn has_body(&self) -> bool {
        self.has_body
    }

    /// How the body is delimited (from [`parse`](Self::parse); [`BodyFraming::None`] for a
    /// head built with [`new`](Self::new)).
    pub fn body(&self) -> BodyFraming {
        self.body
    }

    /// `Connection: upgrade` was sent (a WebSocket handshake, for example).
    pub fn wants_upgrade(&self) -> bool {
        self.upgrade
    }

    /// Bytes of the buffer the head took (the body or the next request starts there); 0 for a
    /// head built with [`new`](Self::new).
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The first `Referer` field, as sent (for an access log).
    pub fn referer(&self) -> Option<&'a [u8]> {
        self.referer
    }

    /// The first `User-Agent` field, as sent (for an access log).
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.user_agent
    }

    pub(crate) fn range(&self) -> Option<&'a [u8]> {
        self.range
    }

    pub(crate) fn if_range(&self) -> Option<&'a [u8]> {
        self.if_range
    }

    /// `Accept-Encoding`.
    pub(crate) fn accept_encoding(&self) -> Option<&'a [u8]> {
        self.accept_encoding
    }

    /// `Origin`.
    pub(crate) fn origin(&self) -> Option<&'a [u8]> {
        self.origin
    }

    /// `Access-Control-Request-Method` and `Access-Control-Request-Headers` (a CORS
    /// preflight).
    pub(crate) fn preflight(&self) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
        (self.request_method, self.request_headers)
    }

    /// The conditional header fields.
    pub(crate) fn conditions(&self) -> Conditions<'a> {
        Conditions {
            if_match: self.if_match,
            if_unmodified_since: self.if_unmodified_since,
            if_none_match: self.if_none_match,
            if_modified_since: self.if_modified_since,
        }
    }
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

    fn complete(s: &str) -> RequestHead<'_> {
        match RequestHead::parse(s.as_bytes()) {
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
        assert_eq!(r.method(), Method::Get);
        assert_eq!(r.target(), "/a/b.txt?x=1");
        assert!(r.keep_alive() && !r.has_body());
        assert_eq!(r.range(), Some(&b"bytes=0-9"[..]));
        assert_eq!(r.conditions().if_none_match, Some(&b"\"x\""[..]));
        assert_eq!(r.if_range(), Some(&b"\"x\""[..]));
        assert!(r.conditions().if_modified_since.is_some());
        assert_eq!(&s[r.head_len()..], "GET / HTTP/1.1\r\n");
    }

    #[test]
    fn referer_and_user_agent_first_of_each() {
        let r = complete(
            "GET / HTTP/1.1\r\nHost: h\r\nuser-agent: curl/8\r\nReferer: http://a/\r\n\
             User-Agent: second\r\n\r\n",
        );
        assert_eq!(r.referer(), Some(&b"http://a/"[..]));
        assert_eq!(r.user_agent(), Some(&b"curl/8"[..]));
        assert_eq!(complete("GET / HTTP/1.0\r\n\r\n").referer(), None);
    }

    #[test]
    fn connection_and_versions() {
        assert!(!complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        let r = complete("HEAD / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n");
        assert!(!r.keep_alive());
        assert_eq!(r.method(), Method::Head);
        assert_eq!(
            complete("POST / HTTP/1.1\r\nHost: h\r\n\r\n").method(),
            Method::Other
        );
        let up = complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n");
        assert!(up.wants_upgrade());
        let post = complete("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab");
        assert!(!post.keep_alive() && post.client_keep_alive());
    }

    #[test]
    fn bodies_close_the_connection() {
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
        assert!(r.has_body() && !r.keep_alive());
        assert_eq!(r.body(), BodyFraming::Length(5));
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.has_body() && r.keep_alive());
        assert_eq!(r.body(), BodyFraming::None);
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(r.has_body() && !r.keep_alive());
        assert_eq!(r.body(), BodyFraming::Chunked);
        let r = complete("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(r.body(), BodyFraming::Chunked);
    }

    #[test]
    fn refusals() {
        let bad = |s: &str| match RequestHead::parse(s.as_bytes()) {
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
        assert_eq!(
            bad(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Refusal::Malformed
        );
        assert_eq!(
            bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
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
        assert!(matches!(RequestHead::parse(b""), Parsed::Partial));
        assert!(matches!(RequestHead::parse(b"GET / HT"), Parsed::Partial));
        assert!(matches!(
            RequestHead::parse(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn built_heads() {
        let r = RequestHead::new("HEAD", "/x", 0)
            .header("Connection", b"keep-alive")
            .header("Range", b"bytes=1-2")
            .header("Range", b"bytes=3-4")
            .header("X-Other", b"ignored");
        assert_eq!(r.method(), Method::Head);
        assert!(r.keep_alive());
        assert_eq!(r.range(), Some(&b"bytes=1-2"[..]));
        assert_eq!(r.head_len(), 0);
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
