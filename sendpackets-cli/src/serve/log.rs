//! The access log: one line per response on stdout, in the Combined Log Format (default) or
//! as JSON lines.
//!
//! Combined (Apache's and nginx's `combined`, then two fields):
//!
//! ```text
//! 127.0.0.1 - - [07/Dec/2026:15:57:33 +0000] "GET /a.txt HTTP/1.1" 200 1234 "REFERER" "AGENT" 0.003 complete
//! ```
//!
//! - the time is the moment the request head was complete, in UTC;
//! - the bytes are body bytes that reached the kernel (the library's progress, also when the
//!   send failed), not the planned length;
//! - after the user agent come the duration in seconds (from the complete head to the end of
//!   the send, as nginx's `$request_time`) and the outcome: `complete`, `cut` (part of the
//!   response reached the kernel, then the send failed or stalled) or `not-sent` (none of it
//!   did);
//! - a response of which not a byte reached the kernel is logged with status **499** (nginx's
//!   "client closed request"), whatever status it would have had;
//! - `"`, `\` and bytes outside printable ASCII in the quoted fields are written `\xHH`; a
//!   missing field is `-`; a head refused before it could be parsed (400, 408, 431) has `-` as
//!   its request line.
//!
//! JSON (`--log-format json`), one object per line with the same facts and a few more:
//! `time` (RFC 3339, UTC, milliseconds), `remote_addr`, `method`, `target`, `protocol` (the
//! three `null` for an unparsed head), `status` (499 as above), `intended_status`,
//! `bytes_sent` (head and body), `body_bytes_sent`, `referer`, `user_agent`, `duration_ms`,
//! `outcome`, `error` (why the send failed, or `null`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use sendpackets_http::{RequestHead, Status};

use super::peer::SendFailure;

/// The status logged for a response none of whose bytes reached the kernel.
pub(crate) const NOT_SENT_STATUS: u16 = 499;

/// The access log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Combined Log Format, then the duration in seconds and the outcome.
    Combined,
    /// One JSON object per line.
    Json,
}

/// One response, as the log tells it.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// The client.
    pub(crate) peer: SocketAddr,
    /// The request, when its head could be parsed.
    pub(crate) request: Option<&'a RequestHead<'a>>,
    /// The status the response has (or would have had).
    pub(crate) status: Status,
    /// Bytes of the head (the part of the response before the body).
    pub(crate) head_len: u64,
    /// Bytes that reached the kernel, head included.
    pub(crate) sent: u64,
    /// Why the send failed, if it did.
    pub(crate) failed: Option<&'a SendFailure>,
    /// When the request head was complete.
    pub(crate) started: SystemTime,
    /// From then to the end of the send.
    pub(crate) duration: Duration,
}

impl Entry<'_> {
    fn outcome(&self) -> &'static str {
        match (self.failed, self.sent) {
            (None, _) => "complete",
            (Some(_), 0) => "not-sent",
            (Some(_), _) => "cut",
        }
    }

    fn logged_status(&self) -> u16 {
        if self.failed.is_some() && self.sent == 0 {
            NOT_SENT_STATUS
        } else {
            self.status.code()
        }
    }

    fn body_bytes(&self) -> u64 {
        self.sent.saturating_sub(self.head_len)
    }

    /// The line, without its newline.
    pub(crate) fn format(&self, format: LogFormat) -> String {
        match format {
            LogFormat::Combined => self.combined(),
            LogFormat::Json => self.json(),
        }
    }

    fn combined(&self) -> String {
        let mut line = String::with_capacity(200);
        let _ = write!(line, "{} - - [", self.peer.ip());
        clf_time(&mut line, self.started);
        line.push_str("] \"");
        match self.request {
            Some(r) => {
                quoted(&mut line, r.method_text().as_bytes());
                line.push(' ');
                quoted(&mut line, r.target().as_bytes());
                let _ = write!(line, " HTTP/1.{}", r.minor_version());
            }
            None => line.push('-'),
        }
        let _ = write!(line, "\" {} {} \"", self.logged_status(), self.body_bytes());
        quoted(
            &mut line,
            self.request.and_then(|r| r.referer()).unwrap_or(b"-"),
        );
        line.push_str("\" \"");
        quoted(
            &mut line,
            self.request.and_then(|r| r.user_agent()).unwrap_or(b"-"),
        );
        let _ = write!(
            line,
            "\" {}.{:03} {}",
            self.duration.as_secs(),
            self.duration.subsec_millis(),
            self.outcome()
        );
        line
    }

    fn json(&self) -> String {
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let error = self.failed.map(|f| match f {
            SendFailure::Stalled(_) => "client stopped reading".to_string(),
            SendFailure::Send(e) => e.to_string(),
        });
        let mut time = String::with_capacity(24);
        rfc3339(&mut time, self.started);
        serde_json::json!({
            "time": time,
            "remote_addr": self.peer.ip().to_string(),
            "method": self.request.map(|r| r.method_text()),
            "target": self.request.map(|r| r.target()),
            "protocol": self.request.map(|r| format!("HTTP/1.{}", r.minor_version())),
            "status": self.logged_status(),
            "intended_status": self.status.code(),
            "bytes_sent": self.sent,
            "body_bytes_sent": self.body_bytes(),
            "referer": text(self.request.and_then(|r| r.referer())),
            "user_agent": text(self.request.and_then(|r| r.user_agent())),
            "duration_ms": self.duration.as_secs_f64() * 1000.0,
            "outcome": self.outcome(),
            "error": error,
        })
        .to_string()
    }
}

/// Writes `line` and a newline on stdout at once.
pub(crate) fn write(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// `bytes` inside double quotes: printable ASCII as is, `"`, `\` and the rest as `\xHH`.
fn quoted(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (the proleptic Gregorian
/// calendar, by eras of 400 years).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Calendar date and time of day (UTC) of `t`, and its milliseconds.
fn parts(t: SystemTime) -> ((i64, u32, u32), (u64, u64, u64), u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let date = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (date, (s / 3600, s / 60 % 60, s % 60), since.subsec_millis())
}

/// `07/Dec/2026:15:57:33 +0000`.
fn clf_time(out: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((y, mo, d), (h, mi, s), _) = parts(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    );
}

/// `2026-12-07T15:57:33.123Z`.
fn rfc3339(out: &mut String, t: SystemTime) {
    let ((y, mo, d), (h, mi, s), ms) = parts(t);
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms)
    }

    #[test]
    fn times() {
        let mut s = String::new();
        clf_time(&mut s, at(0, 0));
        assert_eq!(s, "01/Jan/1970:00:00:00 +0000");
        s.clear();
        // 2000-02-29 23:59:59 UTC (a leap day of a century year divisible by 400).
        rfc3339(&mut s, at(951_868_799, 7));
        assert_eq!(s, "2000-02-29T23:59:59.007Z");
        s.clear();
        // Against httpdate, for a day every ~3 days over 400 years.
        for day in (0..146_097i64).step_by(1000) {
            let t = at(day as u64 * 86_400 + 45_296, 0);
            let http = httpdate::fmt_http_date(t); // "Sun, 06 Nov 1994 12:34:56 GMT"
            s.clear();
            clf_time(&mut s, t);
            let (d, rest) = s.split_once('/').unwrap();
            let (mon, rest) = rest.split_once('/').unwrap();
            let (y, time) = rest.split_once(':').unwrap();
            let expected = format!("{d} {mon} {y} {}", &time[..8]);
            assert_eq!(&http[5..25], expected, "day {day}");
        }
    }

    #[test]
    fn quoting() {
        let mut s = String::new();
        quoted(&mut s, b"a \"b\"\\c\n\xff");
        assert_eq!(s, "a \\x22b\\x22\\x5Cc\\x0A\\xFF");
    }
}
