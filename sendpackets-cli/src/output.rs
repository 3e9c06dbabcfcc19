//! How results and failures are shown: one JSON object on stdout with `--json`, short human
//! lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::exit::Failure;

/// Prints one JSON object on its own line on stdout.
pub(crate) fn print_json(value: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout is not worth a second error.
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Shows a failure: as JSON on stdout with `json`, else as `sendpackets: MESSAGE` on stderr.
pub(crate) fn report_failure(f: &Failure, json: bool) {
    if json {
        print_json(&failure_json(f));
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "sendpackets: {}", f.message);
    for note in &f.notes {
        let _ = writeln!(err, "  {note}");
    }
}

/// The JSON form of a failure.
pub(crate) fn failure_json(f: &Failure) -> Value {
    json!({
        "ok": false,
        "exit_code": f.code as u8,
        "error": {
            "category": f.code.category(),
            "kind": f.kind,
            "message": f.message,
            "element": f.element,
            "path": f.path,
        },
        "bytes_sent": f.bytes_sent,
        "notes": f.notes,
    })
}

/// Whether stderr is a terminal a person watches.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Bytes in a short human form: `512 B`, `64.0 KiB`, `256.0 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A throughput in a short human form: `1.23 GB/s` (decimal units, as network tools use).
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let per_sec = bytes as f64 / secs;
    if per_sec >= 1e9 {
        format!("{:.2} GB/s", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.1} MB/s", per_sec / 1e6)
    } else {
        format!("{:.1} kB/s", per_sec / 1e3)
    }
}

/// Bytes per second as a number (for JSON).
pub(crate) fn bytes_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// A duration in a short human form: `850 ms`, `2.41 s`.
pub(crate) fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `io::Error` without std's ` (os error N)` suffix, for people.
pub(crate) fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The kernel-call counts of a send as a JSON object.
pub(crate) fn calls_json(c: &sendpackets::KernelCalls) -> serde_json::Value {
    serde_json::json!({
        "gather_writes": c.gather_writes,
        "sendfile": c.sendfile,
        "file_reads": c.file_reads,
        "fallback_files": c.fallback_files,
        "cork_toggles": c.cork_toggles,
        "waits": c.waits,
        "udp_gso_messages": c.udp_gso_messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(256 << 20), "256.0 MiB");
        assert_eq!(rate(2_000_000_000, Duration::from_secs(1)), "2.00 GB/s");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(hex(&[0, 0xab]), "00ab");
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_message(&e), "No such file or directory");
    }
}
