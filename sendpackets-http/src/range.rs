//! Validators (`ETag`, `Last-Modified`), conditional requests and byte ranges. Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a file is known by, for validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validators {
    /// Length in bytes.
    pub(crate) len: u64,
    /// Modification time, whole seconds since the epoch (HTTP dates have no finer unit).
    pub(crate) mtime: u64,
}

impl Validators {
    /// From a length and a modification time (before the epoch counts as 0).
    pub(crate) fn new(len: u64, modified: SystemTime) -> Self {
        let mtime = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Validators { len, mtime }
    }

    /// The strong entity tag, nginx's form: `"MTIME-LEN"` in hex.
    #[cfg(test)]
    pub(crate) fn etag(&self) -> String {
        self.etag_for(None)
    }

    /// The strong entity tag of a representation: `"MTIME-LEN"`, or `"MTIME-LEN-CODING"` for a
    /// content coding (a precompressed sidecar), so that no two representations share one.
    pub(crate) fn etag_for(&self, coding: Option<&str>) -> String {
        match coding {
            None => format!("\"{:x}-{:x}\"", self.mtime, self.len),
            Some(c) => format!("\"{:x}-{:x}-{c}\"", self.mtime, self.len),
        }
    }

    /// The `Last-Modified` value.
    pub(crate) fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.mtime))
    }
}

/// The conditional header fields of a request (RFC 9110 section 13.1).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Conditions<'a> {
    pub(crate) if_match: Option<&'a [u8]>,
    pub(crate) if_unmodified_since: Option<&'a [u8]>,
    pub(crate) if_none_match: Option<&'a [u8]>,
    pub(crate) if_modified_since: Option<&'a [u8]>,
}

/// What the preconditions of a GET/HEAD say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on (to `Range`, then the representation).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions of a GET/HEAD of a representation with entity tag `etag` and
/// modification time `mtime`, in the order of RFC 9110 section 13.2.2:
/// 1. `If-Match`: unless `*` or one of its tags matches `etag` by strong comparison, 412;
/// 2. without `If-Match`, `If-Unmodified-Since`: a valid date earlier than `mtime` is 412;
/// 3. `If-None-Match`: `*` or a weak match is 304;
/// 4. without `If-None-Match`, `If-Modified-Since`: a valid date not earlier than `mtime` is
///    304. `now`: seconds since the epoch; a date later than that is not valid and is ignored
///    (section 13.1.3), since the client cannot have seen a version from the future.
///
/// Dates that do not parse are ignored.
pub(crate) fn evaluate(etag: &str, mtime: u64, c: &Conditions<'_>, now: u64) -> Precondition {
    if let Some(im) = c.if_match {
        let any = im.trim_ascii() == b"*";
        if !any && !tags(im).any(|t| strong_match(t, etag.as_bytes())) {
            return Precondition::Failed;
        }
    } else if let Some(ius) = c.if_unmodified_since.and_then(parse_date) {
        if mtime > ius {
            return Precondition::Failed;
        }
    }
    if let Some(inm) = c.if_none_match {
        let any = inm.trim_ascii() == b"*";
        if any || tags(inm).any(|t| weak_match(t, etag.as_bytes())) {
            return Precondition::NotModified;
        }
        return Precondition::Proceed;
    }
    if let Some(ims) = c.if_modified_since.and_then(parse_date) {
        if ims <= now && mtime <= ims {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// The entity tags of a list (`"a", W/"b"`), trimmed.
fn tags(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether `If-Range` lets the `Range` apply: a strong match of the entity tag, or exactly the
/// `Last-Modified` date.
pub(crate) fn if_range_holds(etag: &str, mtime: u64, if_range: Option<&[u8]>) -> bool {
    let Some(value) = if_range.map(<[u8]>::trim_ascii) else {
        return true;
    };
    if value.first() == Some(&b'"') || value.starts_with(b"W/") {
        strong_match(value, etag.as_bytes())
    } else {
        parse_date(value) == Some(mtime)
    }
}

/// Strong comparison: both tags strong (no `W/`) and equal.
fn strong_match(tag: &[u8], etag: &[u8]) -> bool {
    !tag.starts_with(b"W/") && !etag.starts_with(b"W/") && tag == etag
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Weak comparison: the opaque tags equal, either side may be `W/`.
fn weak_match(tag: &[u8], etag: &[u8]) -> bool {
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    let etag = etag.strip_prefix(b"W/").unwrap_or(etag);
    tag == etag
}

/// An HTTP date as seconds since the epoch.
fn parse_date(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Most ranges one `Range` header may ask for; with more, the header is ignored and the whole
/// file is sent (200), as nginx's `max_ranges` and Apache's `MaxRanges` do: a client asking
/// for that many pieces gets all of them in one piece, never an error, and a response stays a
/// bounded element list (two elements per part).
pub const MAX_RANGES: usize = 64;

/// The answer to a `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No usable range (absent, not `bytes=`, malformed, or more than [`MAX_RANGES`]): 200,
    /// whole file.
    Whole,
    /// One satisfiable range (or several that coalesce into one): 206 with these bytes,
    /// `start..end`.
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Several disjoint ranges, ascending, none adjacent to the next: 206
    /// `multipart/byteranges`, one part each (`start..end`).
    Parts(Vec<(u64, u64)>),
    /// No satisfiable range (each starts past the end, or is `-0`, or the file is empty): 416.
    Unsatisfiable,
}

/// Interprets a `Range` header against a file of `len` bytes. Ranges that cannot be satisfied
/// are dropped when others can; the rest are sorted, and overlapping or adjacent ones
/// coalesced (RFC 9110 section 15.3.7.2 lets a server do both), so no byte goes out twice.
pub(crate) fn range(header: Option<&[u8]>, len: u64) -> RangeAnswer {
    let Some(header) = header else {
        return RangeAnswer::Whole;
    };
    let header = header.trim_ascii();
    let Some(unit) = header.get(..6) else {
        return RangeAnswer::Whole;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeAnswer::Whole;
    }
    let mut wanted: Vec<(u64, u64)> = Vec::new();
    let mut count = 0usize;
    for spec in header[6..]
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|s| !s.is_empty())
    {
        count += 1;
        if count > MAX_RANGES {
            return RangeAnswer::Whole;
        }
        match one(spec, len) {
            Spec::Malformed => return RangeAnswer::Whole, // ignored (RFC 9110 section 14.2)
            Spec::Unsatisfiable => {}
            Spec::Range(s, e) => wanted.push((s, e)),
        }
    }
    if count == 0 {
        return RangeAnswer::Whole;
    }
    wanted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(wanted.len());
    for (s, e) in wanted {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    match merged.as_slice() {
        [] => RangeAnswer::Unsatisfiable,
        [(start, end)] => RangeAnswer::Part {
            start: *start,
            end: *end,
        },
        _ => RangeAnswer::Parts(merged),
    }
}

/// One range-spec.
enum Spec {
    Malformed,
    Unsatisfiable,
    Range(u64, u64),
}

fn one(spec: &[u8], len: u64) -> Spec {
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Spec::Malformed;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (digits(first), digits(last)) {
        // "-n": the last n bytes
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                Spec::Unsatisfiable
            } else {
                Spec::Range(len.saturating_sub(n), len)
            }
        }
        // "a-"
        (Some(a), None) if last.is_empty() => {
            if a >= len {
                Spec::Unsatisfiable
            } else {
                Spec::Range(a, len)
            }
        }
        // "a-b"
        (Some(a), Some(b)) if a <= b => {
            if a >= len {
                Spec::Unsatisfiable
            } else {
                Spec::Range(a, b.saturating_add(1).min(len))
            }
        }
        _ => Spec::Malformed,
    }
}

/// A non-empty run of ASCII digits; a number too large for u64 saturates (it is past any end).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(h: &str, len: u64) -> RangeAnswer {
        range(Some(h.as_bytes()), len)
    }

    fn part(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Part { start, end }
    }

    #[test]
    fn range_forms() {
        assert_eq!(range(None, 10), RangeAnswer::Whole);
        assert_eq!(r("bytes=0-0", 10), part(0, 1));
        assert_eq!(r("bytes=2-5", 10), part(2, 6));
        assert_eq!(r("bytes=2-500", 10), part(2, 10));
        assert_eq!(r("bytes=9-", 10), part(9, 10));
        assert_eq!(r("bytes=-3", 10), part(7, 10));
        assert_eq!(r("bytes=-30", 10), part(0, 10));
        assert_eq!(r("BYTES= 1-2 ", 10), part(1, 2 + 1));
        assert_eq!(r("bytes=1-2,", 10), part(1, 3));
        assert_eq!(
            r("bytes=99999999999999999999-", 10),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(r("bytes=0-99999999999999999999", 10), part(0, 10));
    }

    #[test]
    fn several_ranges() {
        let parts = |v: &[(u64, u64)]| RangeAnswer::Parts(v.to_vec());
        assert_eq!(r("bytes=0-1,5-6", 10), parts(&[(0, 2), (5, 7)]));
        // Sorted; overlapping and adjacent ones coalesced.
        assert_eq!(r("bytes=5-6,0-1", 10), parts(&[(0, 2), (5, 7)]));
        assert_eq!(r("bytes=0-1,2-3", 10), part(0, 4));
        assert_eq!(r("bytes=0-4,2-3,3-6", 10), part(0, 7));
        assert_eq!(r("bytes=0-0,-1", 10), parts(&[(0, 1), (9, 10)]));
        assert_eq!(r("bytes=0-0,0-0,0-0", 10), part(0, 1));
        assert_eq!(r("bytes=8-,-5", 10), part(5, 10));
        // Unsatisfiable ones dropped while others remain.
        assert_eq!(r("bytes=0-1,20-30", 10), part(0, 2));
        assert_eq!(r("bytes=20-30,40-", 10), RangeAnswer::Unsatisfiable);
        // Up to the cap, then the whole file.
        let at_cap: Vec<String> = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", 2 * i, 2 * i))
            .collect();
        let RangeAnswer::Parts(p) = r(&format!("bytes={}", at_cap.join(",")), 1000) else {
            panic!()
        };
        assert_eq!(p.len(), MAX_RANGES);
        let over = format!("bytes={},500-501", at_cap.join(","));
        assert_eq!(r(&over, 1000), RangeAnswer::Whole);
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(r("bytes=10-", 10), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=10-20", 10), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), RangeAnswer::Unsatisfiable);
        for ignored in [
            "bytes=5-2",
            "bytes=0-1,5-2",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "items=0-1",
            "bytes",
            "bytes=--1",
            "bytes=+1-2",
        ] {
            assert_eq!(r(ignored, 10), RangeAnswer::Whole, "{ignored}");
        }
    }

    /// "Now" in the tests: a day after the file's time.
    const NOW: u64 = 784_111_777 + 86_400;

    fn check(v: &Validators, c: Conditions<'_>, now: u64) -> Precondition {
        evaluate(&v.etag(), v.mtime, &c, now)
    }

    fn inm(v: &[u8]) -> Conditions<'_> {
        Conditions {
            if_none_match: Some(v),
            ..Conditions::default()
        }
    }

    fn ims(v: &[u8]) -> Conditions<'_> {
        Conditions {
            if_modified_since: Some(v),
            ..Conditions::default()
        }
    }

    #[test]
    fn conditionals() {
        use Precondition::{Failed, NotModified, Proceed};
        let v = Validators {
            len: 300,
            mtime: 784_111_777,
        }; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(v.etag(), "\"2ebc98a1-12c\"");
        assert_eq!(v.last_modified(), "Sun, 06 Nov 1994 08:49:37 GMT");
        let etag = v.etag();
        assert_eq!(check(&v, inm(etag.as_bytes()), NOW), NotModified);
        let listed = format!("\"x\", W/{etag}");
        assert_eq!(check(&v, inm(listed.as_bytes()), NOW), NotModified);
        assert_eq!(check(&v, inm(b"*"), NOW), NotModified);
        assert_eq!(check(&v, inm(b"\"x\""), NOW), Proceed);
        let same = b"Sun, 06 Nov 1994 08:49:37 GMT";
        let before = b"Sun, 06 Nov 1994 08:49:36 GMT";
        assert_eq!(check(&v, ims(same), NOW), NotModified);
        assert_eq!(check(&v, ims(before), NOW), Proceed);
        assert_eq!(check(&v, ims(b"garbage"), NOW), Proceed);
        // If-None-Match wins over If-Modified-Since.
        let both = Conditions {
            if_modified_since: Some(same),
            ..inm(b"\"x\"")
        };
        assert_eq!(check(&v, both, NOW), Proceed);
        // A date later than now is not valid: ignored (S4).
        let future = b"Sun, 06 Nov 1994 08:49:39 GMT";
        assert_eq!(check(&v, ims(future), 784_111_778), Proceed);
        assert_eq!(check(&v, ims(same), 784_111_778), NotModified);

        // If-Match: strong comparison, `*`; then If-Unmodified-Since only without it.
        let im = |t: &'static [u8]| Conditions {
            if_match: Some(t),
            ..Conditions::default()
        };
        let ius = |d: &'static [u8]| Conditions {
            if_unmodified_since: Some(d),
            ..Conditions::default()
        };
        let strong: &'static [u8] = b"\"2ebc98a1-12c\"";
        assert_eq!(check(&v, im(strong), NOW), Proceed);
        assert_eq!(check(&v, im(b"*"), NOW), Proceed);
        assert_eq!(check(&v, im(b"\"a\", \"2ebc98a1-12c\""), NOW), Proceed);
        assert_eq!(check(&v, im(b"W/\"2ebc98a1-12c\""), NOW), Failed);
        assert_eq!(check(&v, im(b"\"a\""), NOW), Failed);
        assert_eq!(check(&v, ius(same), NOW), Proceed);
        assert_eq!(check(&v, ius(before), NOW), Failed);
        assert_eq!(check(&v, ius(b"garbage"), NOW), Proceed);
        let im_and_ius = Conditions {
            if_unmodified_since: Some(before),
            ..im(strong)
        };
        assert_eq!(check(&v, im_and_ius, NOW), Proceed);
        let failed_first = Conditions {
            if_none_match: Some(strong),
            ..im(b"\"a\"")
        };
        assert_eq!(check(&v, failed_first, NOW), Failed);
        let then_304 = Conditions {
            if_none_match: Some(b"*"),
            ..im(b"*")
        };
        assert_eq!(check(&v, then_304, NOW), NotModified);

        let ir = |x: Option<&[u8]>| if_range_holds(&etag, v.mtime, x);
        assert!(ir(None));
        assert!(ir(Some(etag.as_bytes())));
        assert!(!ir(Some(format!("W/{etag}").as_bytes())));
        assert!(ir(Some(same)));
        assert!(!ir(Some(before)));
    }
}
