//! Header values a deployment sets: `Cache-Control` by path pattern, `Content-Type` with its
//! charset, CORS. Pure.

use std::borrow::Cow;
use std::io;
use std::path::Path;

/// `Cache-Control` values: the first rule whose pattern matches the path relative to the
/// served directory gives its value, else the default (none: no header).
#[derive(Clone, Debug, Default)]
pub(crate) struct CacheControl {
    rules: Vec<(Glob, String)>,
    default: Option<String>,
}

impl CacheControl {
    pub(crate) fn set_default(&mut self, value: Option<&str>) -> io::Result<()> {
        self.default = value.map(checked_value).transpose()?;
        Ok(())
    }

    pub(crate) fn add_rule(&mut self, pattern: &str, value: &str) -> io::Result<()> {
        let glob = Glob::new(pattern)?;
        self.rules.push((glob, checked_value(value)?));
        Ok(())
    }

    /// The value for a file at `relative` (relative to the served directory).
    pub(crate) fn value_for(&self, relative: &Path) -> Option<&str> {
        if !self.rules.is_empty() {
            let path = relative.as_os_str().as_encoded_bytes();
            if let Some((_, v)) = self.rules.iter().find(|(g, _)| g.matches(path)) {
                return Some(v);
            }
        }
        self.default.as_deref()
    }
}

/// A header value: visible ASCII and spaces only (no CR, LF or other controls), not empty.
pub(crate) fn checked_value(value: &str) -> io::Result<String> {
    let v = value.trim();
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value:?} is not a valid header value"),
        ));
    }
    Ok(v.to_string())
}

/// A path pattern, matched against a path relative to the served directory (no leading `/`):
/// `*` matches any run of bytes within one path segment, `**` (a whole segment) any number of
/// segments, `?` one byte other than `/`, `{a,b}` either alternative (no nesting). Everything
/// else matches itself. For example `assets/**`, `*.woff2`, `**/*.{js,css}`.
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    /// The alternatives, each a sequence of tokens.
    alternatives: Vec<Vec<Token>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**/` or a final `**`: any number of whole segments.
    Segments,
}

/// Most tokens in a pattern, after expanding `{}` (matching costs tokens x path length).
const GLOB_MAX: usize = 1024;

impl Glob {
    pub(crate) fn new(pattern: &str) -> io::Result<Glob> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pattern {pattern:?}: {why}"),
            )
        };
        let p = pattern.trim_start_matches('/');
        if p.is_empty() {
            return Err(bad("empty"));
        }
        // Expand one level of `{a,b}` groups, left to right.
        let mut expanded = vec![String::new()];
        let mut rest = p;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| bad("'{' without '}'"))?;
            let (before, group) = (&rest[..open], &rest[open + 1..close]);
            if group.contains('{') {
                return Err(bad("nested '{'"));
            }
            expanded = expanded
                .iter()
                .flat_map(|e| group.split(',').map(move |alt| format!("{e}{before}{alt}")))
                .collect();
            if expanded.len() > 64 {
                return Err(bad("too many alternatives"));
            }
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(bad("'}' without '{'"));
        }
        let alternatives: Vec<Vec<Token>> = expanded
            .into_iter()
            .map(|e| tokens(&format!("{e}{rest}")))
            .collect();
        if alternatives.iter().map(Vec::len).sum::<usize>() > GLOB_MAX {
            return Err(bad("too long"));
        }
        Ok(Glob { alternatives })
    }

    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        self.alternatives.iter().any(|t| match_tokens(t, path))
    }
}

fn tokens(p: &str) -> Vec<Token> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let segment_start = i == 0 || b[i - 1] == b'/';
        if b[i..].starts_with(b"**") && segment_start && matches!(b.get(i + 2), None | Some(b'/')) {
            out.push(Token::Segments);
            i += 3; // "**/" (or "**" at the end)
            continue;
        }
        out.push(match b[i] {
            b'*' => Token::Star,
            b'?' => Token::One,
            c => Token::Byte(c),
        });
        i += 1;
    }
    out
}

/// Whether the tokens match the whole path: the set of path positions reachable after each
/// token, one pass per token, so O(tokens x path) whatever the pattern (no backtracking a
/// request's path could make exponential).
fn match_tokens(tokens: &[Token], p: &[u8]) -> bool {
    let mut cur = vec![false; p.len() + 1];
    let mut next = vec![false; p.len() + 1];
    cur[0] = true;
    for (k, t) in tokens.iter().enumerate() {
        next.fill(false);
        let last = k + 1 == tokens.len();
        match t {
            Token::Byte(c) => {
                for i in 0..p.len() {
                    next[i + 1] = cur[i] && p[i] == *c;
                }
            }
            Token::One => {
                for i in 0..p.len() {
                    next[i + 1] = cur[i] && p[i] != b'/';
                }
            }
            Token::Star => {
                // Any run of bytes without '/'.
                let mut reach = false;
                for j in 0..=p.len() {
                    reach |= cur[j];
                    next[j] = reach;
                    if j < p.len() && p[j] == b'/' {
                        reach = false;
                    }
                }
            }
            Token::Segments if last => {
                // A final `**`: everything after.
                let mut reach = false;
                for j in 0..=p.len() {
                    reach |= cur[j];
                    next[j] = reach;
                }
            }
            Token::Segments => {
                // `**/`: zero or more whole segments, each ending in '/'.
                let mut reach = false;
                for j in 0..=p.len() {
                    next[j] = cur[j] || (reach && j > 0 && p[j - 1] == b'/');
                    reach |= cur[j];
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
        if !cur.contains(&true) {
            return false;
        }
    }
    cur[p.len()]
}

/// The `Content-Type` of a file name: from its extension (`mime_guess`), with
/// `charset=utf-8` on text types, JavaScript, JSON and SVG; `application/octet-stream` when
/// the extension is unknown.
pub(crate) fn content_type(name: &Path) -> Cow<'static, str> {
    let Some(t) = mime_guess::from_path(name).first_raw() else {
        return Cow::Borrowed("application/octet-stream");
    };
    // The frequent ones without an allocation.
    let known: Option<&'static str> = match t {
        "text/html" => Some("text/html; charset=utf-8"),
        "text/css" => Some("text/css; charset=utf-8"),
        "text/plain" => Some("text/plain; charset=utf-8"),
        "text/javascript" => Some("text/javascript; charset=utf-8"),
        "application/javascript" => Some("application/javascript; charset=utf-8"),
        "application/json" => Some("application/json; charset=utf-8"),
        "image/svg+xml" => Some("image/svg+xml; charset=utf-8"),
        "text/markdown" => Some("text/markdown; charset=utf-8"),
        "text/csv" => Some("text/csv; charset=utf-8"),
        "text/xml" => Some("text/xml; charset=utf-8"),
        _ => None,
    };
    if let Some(k) = known {
        return Cow::Borrowed(k);
    }
    if t.starts_with("text/") || t.ends_with("+json") || t == "application/manifest+json" {
        return Cow::Owned(format!("{t}; charset=utf-8"));
    }
    Cow::Borrowed(t)
}

/// A content coding of a precompressed sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    Brotli,
    Zstd,
    Gzip,
}

impl Encoding {
    /// In order of preference when the client accepts several equally.
    pub(crate) const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    /// The sidecar's suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }
}

/// Chooses among the `available` sidecars by `Accept-Encoding` (RFC 9110 section 12.5.3):
/// `None` is identity. A coding's weight is its own entry's `q` (`x-gzip` counts as `gzip`),
/// else that of `*`, else 0 (not acceptable). The acceptable coding (q > 0) with the highest
/// weight wins, provided it is not below an explicit `identity;q=` entry (a tie goes to the
/// compressed one; identity's implicit acceptability is no preference, as nginx and
/// tower-http read it); among equal codings, the first of `available`. Without the header:
/// identity. Malformed entries are skipped.
pub(crate) fn choose_encoding(accept: Option<&[u8]>, available: &[Encoding]) -> Option<Encoding> {
    let accept = accept?;
    // Weights in thousandths.
    let mut star: Option<u16> = None;
    let mut identity: Option<u16> = None;
    let mut weights: [Option<u16>; 3] = [None; 3];
    for entry in accept.split(|&b| b == b',') {
        let mut fields = entry.split(|&b| b == b';');
        let name = fields.next().unwrap_or_default().trim_ascii();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in fields {
            let param = param.trim_ascii();
            if let Some(v) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                q = qvalue(v.trim_ascii());
            }
        }
        let Some(q) = q else { continue };
        let slot = if name == b"*" {
            &mut star
        } else if name.eq_ignore_ascii_case(b"identity") {
            &mut identity
        } else if let Some(i) = Encoding::ALL.iter().position(|e| {
            name.eq_ignore_ascii_case(e.token().as_bytes())
                || (*e == Encoding::Gzip && name.eq_ignore_ascii_case(b"x-gzip"))
        }) {
            &mut weights[i]
        } else {
            continue;
        };
        // The first entry for a name counts.
        slot.get_or_insert(q);
    }
    let identity = identity.unwrap_or(0);
    let mut best: Option<(Encoding, u16)> = None;
    for &e in available {
        let i = Encoding::ALL.iter().position(|x| *x == e).unwrap_or(0);
        let q = weights[i].or(star).unwrap_or(0);
        if q > 0 && q >= identity && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// A q-value (`0`, `0.5`, `1`, `1.000`) in thousandths; `None` when malformed.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Cross-origin resource sharing: which origins may read the files.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cors {
    /// Any origin (`*`).
    any: bool,
    /// These origins (`https://example.org`), compared exactly.
    origins: Vec<String>,
}

impl Cors {
    pub(crate) fn allow(&mut self, origin: &str) -> io::Result<()> {
        let o = checked_value(origin)?;
        if o == "*" {
            self.any = true;
        } else if o.contains([' ', ',']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{origin:?} is not one origin"),
            ));
        } else {
            self.origins.push(o);
        }
        Ok(())
    }

    pub(crate) fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The header lines for a request with `origin`: `Access-Control-Allow-Origin` (`*`, or the
    /// request's origin when it is one of the allowed), `Vary: Origin` whenever the answer
    /// depends on the origin, and the response headers a script may read. Empty when CORS is
    /// off.
    pub(crate) fn headers(&self, origin: Option<&[u8]>, out: &mut String) {
        if self.any {
            out.push_str("Access-Control-Allow-Origin: *\r\n");
        } else if self.origins.is_empty() {
            return;
        } else {
            out.push_str("Vary: Origin\r\n");
            match origin.and_then(|o| self.origins.iter().find(|a| a.as_bytes() == o)) {
                Some(o) => {
                    out.push_str("Access-Control-Allow-Origin: ");
                    out.push_str(o);
                    out.push_str("\r\n");
                }
                None => return,
            }
        }
        out.push_str(
            "Access-Control-Expose-Headers: Content-Range, Accept-Ranges, ETag, Content-Encoding\r\n",
        );
    }
}

/// The `Access-Control-Request-Headers` of a preflight, if it is a plain list of field names
/// (so it can be echoed in `Access-Control-Allow-Headers`).
pub(crate) fn field_names(value: &[u8]) -> Option<&str> {
    let ok = value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b));
    (ok && !value.trim_ascii().is_empty())
        .then(|| std::str::from_utf8(value.trim_ascii()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, path: &str) -> bool {
        Glob::new(p).unwrap().matches(path.as_bytes())
    }

    #[test]
    fn globs() {
        assert!(g("*.js", "app.js"));
        assert!(!g("*.js", "a/app.js"));
        assert!(g("**/*.js", "app.js"));
        assert!(g("**/*.js", "a/b/app.js"));
        assert!(g("/assets/**", "assets/x/y.css"));
        assert!(!g("assets/**", "assetsx/y.css"));
        assert!(g("assets/*.????????.*", "assets/app.0a1b2c3d.js"));
        assert!(!g("assets/*.????????.*", "assets/app.js"));
        assert!(g("**/*.{js,css}", "x/y.css"));
        assert!(!g("**/*.{js,css}", "x/y.html"));
        assert!(g("a?c", "abc") && !g("a?c", "a/c"));
        assert!(g("**", "anything/at/all"));
        assert!(g("a/**/b", "a/b") && g("a/**/b", "a/x/y/b") && !g("a/**/b", "a/xb"));
        // Linear in the path: a pattern of many stars against a long segment returns at once.
        let long = "-".repeat(8000);
        assert!(!g("*-*-*-*-*-*-*-*.js", &long));
        for bad in ["", "{a", "a}", "{{a}}"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_control_rules() {
        let mut c = CacheControl::default();
        assert_eq!(c.value_for(Path::new("a.js")), None);
        c.set_default(Some("no-cache")).unwrap();
        c.add_rule("assets/**", "public, max-age=31536000, immutable")
            .unwrap();
        assert_eq!(c.value_for(Path::new("index.html")), Some("no-cache"));
        assert_eq!(
            c.value_for(Path::new("assets/a.js")),
            Some("public, max-age=31536000, immutable")
        );
        assert!(c.set_default(Some("a\r\nX-Evil: 1")).is_err());
        assert!(c.add_rule("*", "").is_err());
    }

    #[test]
    fn charsets() {
        let t = |n: &str| content_type(Path::new(n)).into_owned();
        assert_eq!(t("a.html"), "text/html; charset=utf-8");
        assert_eq!(t("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(t("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(t("a.json"), "application/json; charset=utf-8");
        assert_eq!(t("a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(
            t("a.rtf").contains("charset"),
            t("a.rtf").starts_with("text/")
        );
        assert_eq!(t("a.png"), "image/png");
        assert_eq!(t("a.unknownext"), "application/octet-stream");
    }

    #[test]
    fn encodings_by_q_value() {
        use Encoding::{Brotli, Gzip, Zstd};
        let all = [Brotli, Zstd, Gzip];
        let c = |h: &str, av: &[Encoding]| choose_encoding(Some(h.as_bytes()), av);
        assert_eq!(choose_encoding(None, &all), None);
        assert_eq!(c("gzip, deflate, br, zstd", &all), Some(Brotli));
        assert_eq!(c("gzip, deflate, br, zstd", &[Zstd, Gzip]), Some(Zstd));
        assert_eq!(c("gzip;q=1.0, br;q=0.5", &all), Some(Gzip));
        assert_eq!(c("gzip;q=0.2, br;q=0.8, zstd;q=0.9", &all), Some(Zstd));
        assert_eq!(c("br;q=0", &all), None);
        assert_eq!(c("br;q=0, *;q=0.1", &all), Some(Zstd));
        assert_eq!(c("*", &[Gzip]), Some(Gzip));
        assert_eq!(c("x-gzip", &all), Some(Gzip));
        assert_eq!(c("identity", &all), None);
        assert_eq!(c("gzip;q=0.5, identity;q=0.9", &all), None);
        assert_eq!(c("gzip;q=0.5, identity;q=0", &all), Some(Gzip));
        assert_eq!(c("gzip;q=0.5", &all), Some(Gzip));
        assert_eq!(c("gzip;q=0.5, *;q=0.9", &[Gzip]), Some(Gzip));
        assert_eq!(c("gzip;q=2, br;q=abc", &all), None); // malformed entries skipped
        assert_eq!(c("", &all), None);
        assert_eq!(qvalue(b"0.123"), Some(123));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"1.001"), None);
        assert_eq!(qvalue(b"0.1234"), None);
    }

    #[test]
    fn cors_headers() {
        let mut c = Cors::default();
        let mut out = String::new();
        c.headers(Some(b"https://a.example"), &mut out);
        assert!(out.is_empty());
        c.allow("https://a.example").unwrap();
        c.headers(Some(b"https://a.example"), &mut out);
        assert!(
            out.starts_with("Vary: Origin\r\nAccess-Control-Allow-Origin: https://a.example\r\n")
        );
        out.clear();
        c.headers(Some(b"https://b.example"), &mut out);
        assert_eq!(out, "Vary: Origin\r\n");
        let mut any = Cors::default();
        any.allow("*").unwrap();
        out.clear();
        any.headers(None, &mut out);
        assert!(out.starts_with("Access-Control-Allow-Origin: *\r\n"));
        assert!(!out.contains("Vary"));
        assert!(c.allow("a, b").is_err());
        assert_eq!(field_names(b"range, if-match"), Some("range, if-match"));
        assert_eq!(field_names(b"x\r\ny"), None);
    }
}
