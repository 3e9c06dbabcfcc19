//! `sendpackets serve` end to end, the features beyond plain files: conditionals (304, 412),
//! paths nginx refuses, response headers (Cache-Control, charsets, CORS), multipart ranges,
//! precompressed sidecars and directory listings. Real clients: curl (skipped when absent),
//! Python's `http.client` and `email` parser, raw sockets.

mod serve_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serve_util::{Raw, Server, curl, have_curl, run};

/// Deterministic test bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A temporary directory with `small.txt` and `data.bin` (100,000 bytes).
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: Vec<u8>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("small.txt"), "hello, world\n").unwrap();
    let data = pattern(100_000, 3);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    Site {
        _dir: dir,
        root,
        data,
    }
}

/// One request on a fresh connection: `GET PATH` with extra header lines.
fn get(srv: &Server, method: &str, path: &str, headers: &[&str]) -> serve_util::Response {
    let mut raw = Raw::connect(srv.addr);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw.send(req.as_bytes());
    raw.response(method == "HEAD")
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Runs a Python script with `ADDR PORT` as arguments; `None` (and a line saying so) when
/// python3 is missing.
fn python(srv: &Server, script: &str, extra: &[&str]) -> Option<String> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        script,
        &srv.addr.ip().to_string(),
        &srv.addr.port().to_string(),
    ])
    .args(extra);
    let out = run(&mut cmd);
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No such file") {
        eprintln!("skipped: python3 is not installed");
        return None;
    }
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn touch(path: &Path, t: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

// S4: a date in the future is not a valid If-Modified-Since (RFC 9110 section 13.1.3): the
// file is served.
#[test]
fn future_if_modified_since_is_ignored() {
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let past = get(&srv, "GET", "/data.bin", &[])
        .header("last-modified")
        .unwrap()
        .to_string();
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &[&format!("If-Modified-Since: {past}")],
    );
    assert_eq!(r.status, 304);
    let future = http_date(SystemTime::now() + Duration::from_secs(86_400));
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &[&format!("If-Modified-Since: {future}")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, s.data);
}

// S5: a file name followed by `/.` or `/` names a directory that does not exist: 404 (nginx).
#[test]
fn file_name_with_slash_dot_is_not_found() {
    let s = site();
    let srv = Server::start(&s.root, &[]);
    for path in [
        "/small.txt/.",
        "/small.txt/",
        "/small.txt/./",
        "/small.txt/%2e",
        "/small.txt//.",
    ] {
        let r = get(&srv, "GET", path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, b"404 Not Found\n", "{path}");
    }
    assert_eq!(get(&srv, "GET", "/./small.txt", &[]).status, 200);
    if have_curl() {
        let out = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &srv.url("small.txt/."),
        ]);
        assert_eq!(out, b"404");
    }
}
