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

// RFC 9110 section 13.2.2: If-Match (strong comparison, `*`) first, then If-Unmodified-Since
// only without it; a failure is 412. Then If-None-Match / If-Modified-Since (304), then Range.
#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let s = site();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    touch(&s.root.join("data.bin"), mtime);
    let srv = Server::start(&s.root, &[]);
    let etag = get(&srv, "HEAD", "/data.bin", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let at = http_date(mtime);
    let before = http_date(mtime - Duration::from_secs(1));
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    let cases: &[(&[String], u16)] = &[
        (&[format!("If-Match: {etag}")], 200),
        (&[format!("If-Match: {listed}")], 200),
        (&["If-Match: *".into()], 200),
        (&["If-Match: \"other\"".into()], 412),
        (&[format!("If-Match: {weak}")], 412), // weak tags never match strongly
        (&[format!("If-Unmodified-Since: {at}")], 200),
        (&[format!("If-Unmodified-Since: {before}")], 412),
        (&["If-Unmodified-Since: not a date".into()], 200),
        // If-Match present: If-Unmodified-Since is not evaluated.
        (
            &[
                format!("If-Match: {etag}"),
                format!("If-Unmodified-Since: {before}"),
            ],
            200,
        ),
        // If-Match fails before If-None-Match is looked at.
        (
            &[
                "If-Match: \"other\"".into(),
                format!("If-None-Match: {etag}"),
            ],
            412,
        ),
        (&["If-Match: *".into(), "If-None-Match: *".into()], 304),
        (
            &[
                format!("If-Unmodified-Since: {at}"),
                format!("If-Modified-Since: {at}"),
            ],
            304,
        ),
        (
            &[format!("If-Match: {etag}"), "Range: bytes=0-9".into()],
            206,
        ),
        (
            &["If-Match: \"other\"".into(), "Range: bytes=0-9".into()],
            412,
        ),
    ];
    for (headers, want) in cases {
        let hs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = get(&srv, "GET", "/data.bin", &hs);
        assert_eq!(r.status, *want, "{headers:?}");
        match want {
            200 => assert_eq!(r.body, s.data),
            206 => assert_eq!(r.body, &s.data[..10]),
            412 => assert_eq!(r.body, b"412 Precondition Failed\n"),
            _ => assert!(r.body.is_empty()),
        }
    }
    // Preconditions are ignored where the answer would not be 2xx: a missing file stays 404.
    assert_eq!(get(&srv, "GET", "/missing", &["If-Match: *"]).status, 404);
    // HEAD: the same status, no body; the connection stays usable.
    let mut raw = Raw::connect(srv.addr);
    raw.send(b"HEAD /data.bin HTTP/1.1\r\nHost: t\r\nIf-Match: \"x\"\r\n\r\n");
    assert_eq!(raw.response(true).status, 412);
    raw.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(raw.response(false).body, b"hello, world\n");

    let script = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
for h in [{"If-Match": sys.argv[3]}, {"If-Match": '"nope"'}, {"If-Unmodified-Since": sys.argv[4]}]:
    c.request("GET", "/data.bin", headers=h)
    r = c.getresponse()
    print(r.status, len(r.read()))
"#;
    if let Some(out) = python(&srv, script, &[&etag, &before]) {
        assert_eq!(out, "200 100000\n412 24\n412 24\n");
    }
}

#[test]
fn cache_control_by_pattern() {
    let s = site();
    std::fs::create_dir_all(s.root.join("assets/js")).unwrap();
    std::fs::write(s.root.join("assets/js/app.0a1b2c3d.js"), "let a = 1;\n").unwrap();
    std::fs::write(s.root.join("index.html"), "<p>hi</p>\n").unwrap();
    let immutable = "public, max-age=31536000, immutable";
    let srv = Server::start(
        &s.root,
        &[
            "--cache-control",
            "no-cache",
            "--cache-control-for",
            &format!("assets/**={immutable}"),
        ],
    );
    let r = get(&srv, "GET", "/", &[]);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("no-cache"))
    );
    let r = get(&srv, "GET", "/assets/js/app.0a1b2c3d.js", &[]);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some(immutable))
    );
    let etag = r.header("etag").unwrap().to_string();
    let inm = format!("If-None-Match: {etag}");
    let r = get(&srv, "GET", "/assets/js/app.0a1b2c3d.js", &[&inm]);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (304, Some(immutable))
    );
    let r = get(&srv, "GET", "/data.bin", &["Range: bytes=0-1"]);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (206, Some("no-cache"))
    );
    let r = get(&srv, "GET", "/missing", &[]);
    assert_eq!((r.status, r.header("cache-control")), (404, None));
    // Without the options: no header.
    let plain = Server::start(&s.root, &[]);
    assert_eq!(get(&plain, "GET", "/", &[]).header("cache-control"), None);
    // A value that would split the head is refused at start.
    let bad = run(Command::new(env!("CARGO_BIN_EXE_sendpackets")).args([
        "serve",
        s.root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-control",
        "a\r\nX-Evil: 1",
    ]));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn charset_on_text_types() {
    let s = site();
    for (name, want) in [
        ("a.html", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.woff2", "font/woff2"),
    ] {
        std::fs::write(s.root.join(name), "x").unwrap();
        let srv = Server::start(&s.root, &[]);
        let r = get(&srv, "GET", &format!("/{name}"), &[]);
        assert_eq!(r.header("content-type"), Some(want), "{name}");
    }
}

#[test]
fn cors_is_opt_in() {
    let s = site();
    let origin = "https://app.example";
    let plain = Server::start(&s.root, &[]);
    let r = get(&plain, "GET", "/small.txt", &[&format!("Origin: {origin}")]);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(get(&plain, "OPTIONS", "/small.txt", &[]).status, 405);

    let one = Server::start(&s.root, &["--cors", origin]);
    let r = get(&one, "GET", "/small.txt", &[&format!("Origin: {origin}")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("Content-Range")
    );
    assert_eq!(r.body, b"hello, world\n");
    let r = get(&one, "GET", "/small.txt", &["Origin: https://evil.example"]);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = get(
        &one,
        "OPTIONS",
        "/data.bin",
        &[
            &format!("Origin: {origin}"),
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: range, if-none-match",
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("range, if-none-match")
    );
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert_eq!(r.header("content-length"), None);
    // A 404 carries the header too, so the script can read the error.
    let r = get(&one, "GET", "/missing", &[&format!("Origin: {origin}")]);
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (404, Some(origin))
    );

    let any = Server::start(&s.root, &["--cors", "*"]);
    if have_curl() {
        let head = String::from_utf8(curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Origin: https://x.example",
            &any.url("small.txt"),
        ]))
        .unwrap()
        .to_ascii_lowercase();
        assert!(
            head.contains("access-control-allow-origin: *\r\n"),
            "{head}"
        );
        assert!(!head.contains("vary: origin"), "{head}");
    }
}

/// Splits a `multipart/byteranges` body by hand: for each part, its `Content-Range` and bytes.
/// Asserts the framing (delimiters, CRLFs, closing delimiter, nothing after it).
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart content type");
    let mut parts = Vec::new();
    let mut rest = body;
    let first = format!("--{boundary}\r\n");
    assert!(rest.starts_with(first.as_bytes()), "first delimiter");
    rest = &rest[first.len()..];
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part header end");
        let header = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 4..];
        let range = header
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .expect("Content-Range")
            .to_string();
        let (span, _) = range.split_once('/').unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push((range.clone(), rest[..n].to_vec()));
        rest = &rest[n..];
        let next = format!("\r\n--{boundary}\r\n");
        let last = format!("\r\n--{boundary}--\r\n");
        if rest.starts_with(next.as_bytes()) {
            rest = &rest[next.len()..];
        } else {
            assert_eq!(rest, last.as_bytes(), "closing delimiter, then nothing");
            return parts;
        }
    }
}

#[test]
fn several_ranges_are_one_multipart_response() {
    let s = site();
    let len = s.data.len();
    let srv = Server::start(&s.root, &[]);
    // Out of order, overlapping (0-99 and 50-149), adjacent (99400-99499 and the last 600),
    // and one unsatisfiable (dropped).
    let spec = "bytes=1000-1999,0-99,50-149,99400-99499,-600,200000-";
    let want = [(0usize, 150usize), (1000, 2000), (99_400, len)];
    let r = get(&srv, "GET", "/data.bin", &[&format!("Range: {spec}")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), None);
    let ct = r.header("content-type").unwrap().to_string();
    let parts = parse_multipart(&ct, &r.body);
    assert_eq!(parts.len(), want.len());
    for ((range, bytes), (a, b)) in parts.iter().zip(want) {
        assert_eq!(range, &format!("{a}-{}/{len}", b - 1));
        assert_eq!(bytes, &s.data[a..b], "{range}");
    }
    // HEAD: the same Content-Length, computed before sending; no body.
    let h = get(&srv, "HEAD", "/data.bin", &[&format!("Range: {spec}")]);
    assert_eq!(h.status, 206);
    assert_eq!(
        h.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    // Parts large enough to go out with sendfile (past --zero-copy-from, 64 KiB), interleaved
    // with the part headers, on one keep-alive connection followed by another request.
    let mut raw = Raw::connect(srv.addr);
    raw.send(b"GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-49999,60000-99999\r\n\r\n");
    let r = raw.response(false);
    let parts = parse_multipart(r.header("content-type").unwrap(), &r.body);
    assert_eq!(parts[0].1, &s.data[..50_000]);
    assert_eq!(parts[1].1, &s.data[60_000..]);
    raw.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(raw.response(false).body, b"hello, world\n");

    // Coalesced into one: a plain 206.
    let r = get(&srv, "GET", "/data.bin", &["Range: bytes=0-9,10-19,5-25"]);
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 0-25/100000"))
    );
    assert_eq!(r.body, &s.data[..26]);
    // All unsatisfiable: 416.
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &["Range: bytes=100000-,200000-300000"],
    );
    assert_eq!(r.status, 416);
    // Beyond the cap of 64 ranges: the whole file, 200 (as nginx max_ranges, Apache MaxRanges).
    let many: Vec<String> = (0..65)
        .map(|i| format!("{}-{}", 10 * i, 10 * i + 1))
        .collect();
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &[&format!("Range: bytes={}", many.join(","))],
    );
    assert_eq!((r.status, r.body.len()), (200, len));
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &[&format!("Range: bytes={}", many[..64].join(","))],
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        parse_multipart(r.header("content-type").unwrap(), &r.body).len(),
        64
    );
    // If-Range that does not hold: the whole file.
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &[&format!("Range: {spec}"), "If-Range: \"old\""],
    );
    assert_eq!((r.status, r.body.len()), (200, len));

    // Python: http.client fetches, the email package parses every part.
    let script = r#"
import email, email.policy, hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
c.request("GET", "/data.bin", headers={"Range": sys.argv[3]})
r = c.getresponse()
body = r.read()
assert r.status == 206, r.status
assert int(r.getheader("Content-Length")) == len(body)
msg = email.message_from_bytes(b"Content-Type: " + r.getheader("Content-Type").encode() + b"\r\n\r\n" + body,
                               policy=email.policy.HTTP)
assert msg.is_multipart()
for part in msg.iter_parts():
    data = part.get_payload(decode=True)
    print(part["Content-Type"], part["Content-Range"], len(data), hashlib.sha256(data).hexdigest())
"#;
    if let Some(out) = python(&srv, script, &[spec]) {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), want.len(), "{out}");
        for (line, (a, b)) in lines.iter().zip(want) {
            let expect = format!(
                "application/octet-stream bytes {a}-{}/{len} {} {}",
                b - 1,
                b - a,
                serve_util_sha256(&s.data[a..b])
            );
            assert_eq!(*line, expect);
        }
    }
    if have_curl() {
        let body = curl(&["-r", "0-9,500-509", &srv.url("data.bin")]);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("Content-Range: bytes 0-9/100000\r\n"));
        assert!(text.contains("Content-Range: bytes 500-509/100000\r\n"));
    }
}

fn serve_util_sha256(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn precompressed_sidecars_chosen_by_q_value() {
    let s = site();
    // The sidecars' bytes stand for compressed ones: the server sends them as they are.
    let br = pattern(5_000, 1);
    let zst = pattern(5_500, 2);
    let gz = pattern(6_000, 4);
    std::fs::write(s.root.join("data.bin.br"), &br).unwrap();
    std::fs::write(s.root.join("data.bin.zst"), &zst).unwrap();
    std::fs::write(s.root.join("data.bin.gz"), &gz).unwrap();
    std::fs::write(s.root.join("app.js"), "let a = 1;\n").unwrap();
    std::fs::write(s.root.join("app.js.gz"), &gz).unwrap();
    let srv = Server::start(&s.root, &["--precompressed"]);
    let identity = (None, &s.data);
    for (accept, (coding, bytes)) in [
        (None, identity),
        (Some("gzip, deflate, br, zstd"), (Some("br"), &br)),
        (Some("gzip;q=1.0, br;q=0.5"), (Some("gzip"), &gz)),
        (
            Some("br;q=0, zstd;q=0.1, gzip;q=0.05"),
            (Some("zstd"), &zst),
        ),
        (Some("br;q=0.3, zstd;q=0.3, gzip;q=0.3"), (Some("br"), &br)),
        (Some("x-gzip"), (Some("gzip"), &gz)),
        (Some("*"), (Some("br"), &br)),
        (Some("identity"), identity),
        (Some("deflate"), identity),
        (Some("gzip;q=0.5, identity;q=0.8"), identity),
        (Some("br;q=0, zstd;q=0, gzip;q=0"), identity),
        (Some("*;q=0"), identity), // nothing acceptable: identity anyway
    ] {
        let header = accept.map(|a| format!("Accept-Encoding: {a}"));
        let hs: Vec<&str> = header.iter().map(String::as_str).collect();
        let r = get(&srv, "GET", "/data.bin", &hs);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("content-encoding"), coding, "{accept:?}");
        assert_eq!(&r.body, bytes, "{accept:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept:?}");
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(
            r.header("content-length"),
            Some(bytes.len().to_string().as_str())
        );
    }
    // Each representation has its own ETag; conditionals and ranges apply to it.
    let plain = get(&srv, "GET", "/data.bin", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let r = get(&srv, "GET", "/data.bin", &["Accept-Encoding: br"]);
    let br_tag = r.header("etag").unwrap().to_string();
    assert_ne!(plain, br_tag);
    assert!(br_tag.ends_with("-br\""), "{br_tag}");
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &["Accept-Encoding: br", &format!("If-None-Match: {br_tag}")],
    );
    assert_eq!((r.status, r.header("vary")), (304, Some("Accept-Encoding")));
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &["Accept-Encoding: gzip", &format!("If-None-Match: {br_tag}")],
    );
    assert_eq!(r.status, 200);
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &["Accept-Encoding: br", "Range: bytes=100-199"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/5000"));
    assert_eq!(r.body, &br[100..200]);
    let r = get(
        &srv,
        "GET",
        "/data.bin",
        &["Accept-Encoding: br", "Range: bytes=0-1,10-11"],
    );
    assert_eq!(r.status, 206);
    assert!(String::from_utf8_lossy(&r.body).contains("Content-Range: bytes 10-11/5000"));
    // The sidecar keeps the original's type.
    let r = get(&srv, "GET", "/app.js", &["Accept-Encoding: gzip"]);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!((r.header("content-encoding"), &r.body), (Some("gzip"), &gz));
    // A file without sidecars: no Vary. Asked for directly, a sidecar is a file like others.
    let r = get(&srv, "GET", "/small.txt", &["Accept-Encoding: gzip"]);
    assert_eq!(
        (r.header("vary"), r.header("content-encoding")),
        (None, None)
    );
    let r = get(&srv, "GET", "/data.bin.gz", &["Accept-Encoding: gzip"]);
    assert_eq!((r.header("content-encoding"), &r.body), (None, &gz));
    // Without --precompressed: identity, no Vary.
    let off = Server::start(&s.root, &[]);
    let r = get(&off, "GET", "/data.bin", &["Accept-Encoding: br"]);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    assert_eq!(r.body, s.data);

    let script = r#"
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
for ae in ["br;q=0.2, gzip;q=0.9", "zstd", "identity"]:
    c.request("GET", "/data.bin", headers={"Accept-Encoding": ae})
    r = c.getresponse()
    b = r.read()
    print(r.getheader("Content-Encoding"), len(b))
"#;
    if let Some(out) = python(&srv, script, &[]) {
        assert_eq!(out, "gzip 6000\nzstd 5500\nNone 100000\n");
    }
}

#[test]
fn directory_listing_escapes_hostile_names() {
    use std::os::unix::ffi::OsStrExt;
    let s = site();
    let d = s.root.join("d");
    std::fs::create_dir_all(d.join("sub<b>dir")).unwrap();
    std::fs::create_dir_all(s.root.join("empty-dir")).unwrap();
    let names: &[&[u8]] = &[
        b"<script>alert(1).txt",
        b"<img src=x onerror=alert(1)>",
        b"quote\"and'apos.txt",
        b"amp&lt;.txt",
        b"caf\xe9-not-utf8.txt",
        b"javascript:alert(1)",
        b"100% sure ?#.txt",
        b"a.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        let p = d.join(std::ffi::OsStr::from_bytes(n));
        std::fs::write(&p, vec![b'x'; i + 1]).unwrap();
    }
    std::fs::write(d.join(".hidden"), "h").unwrap();

    // Without --list: a directory without index is 403, a missing one 404; the bodies differ.
    let off = Server::start(&s.root, &[]);
    let forbidden = get(&off, "GET", "/d/", &[]);
    let missing = get(&off, "GET", "/nope/", &[]);
    assert_eq!((forbidden.status, missing.status), (403, 404));
    assert_eq!(forbidden.body, b"403 Forbidden\n");
    assert_eq!(missing.body, b"404 Not Found\n");

    let srv = Server::start(&s.root, &["--list"]);
    let r = get(&srv, "GET", "/d/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body.clone()).expect("the page is UTF-8");
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1).txt"), "{html}");
    assert!(html.contains("quote&quot;and&#39;apos.txt"), "{html}");
    assert!(html.contains("amp&amp;lt;.txt"), "{html}");
    assert!(html.contains("caf\u{fffd}-not-utf8.txt"), "{html}");
    assert!(
        html.contains("href=\"./javascript%3Aalert%281%29\""),
        "{html}"
    );
    assert!(!html.contains(".hidden"), "{html}");
    assert!(html.contains("<h1>Index of /d/</h1>"));
    // Directories first, then by name; sizes shown.
    let hrefs: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .map(|h| &h[..h.find('"').unwrap()])
        .collect();
    assert_eq!(hrefs[0], "../");
    assert_eq!(hrefs[1], "./sub%3Cb%3Edir/");
    let mut files: Vec<&str> = hrefs[2..].to_vec();
    let sorted = {
        let mut v = files.clone();
        v.sort_by_key(|h| percent_decode(h));
        v
    };
    assert_eq!(files, sorted);
    assert_eq!(files.len(), names.len());
    assert!(html.contains("<td>8</td>"), "{html}"); // a.txt, 8 bytes
    // Every link leads to its file (non-UTF-8 name included), byte for byte.
    files.sort();
    for h in &files {
        let r = get(&srv, "GET", &format!("/d/{}", &h[2..]), &[]);
        assert_eq!(r.status, 200, "{h}");
        let name = percent_decode(&h[2..]);
        let i = names.iter().position(|n| *n == name.as_slice()).unwrap();
        assert_eq!(r.body, vec![b'x'; i + 1], "{h}");
    }
    // HEAD: same length, no body. The root lists without a parent link. Dotfiles with
    // --dotfiles.
    let h = get(&srv, "HEAD", "/d/", &[]);
    assert_eq!(
        h.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let root = String::from_utf8(get(&srv, "GET", "/", &[]).body).unwrap();
    assert!(
        !root.contains("href=\"../\"") && root.contains("href=\"./d/\""),
        "{root}"
    );
    let dots = Server::start(&s.root, &["--list", "--dotfiles"]);
    let page = String::from_utf8(get(&dots, "GET", "/d/", &[]).body).unwrap();
    assert!(page.contains("href=\"./.hidden\""), "{page}");
    assert_eq!(get(&srv, "GET", "/nope/", &[]).status, 404);

    // Python: the standard HTML parser finds every link and text; http.client follows them.
    let script = r#"
import html.parser, http.client, sys, urllib.parse
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
c.request("GET", "/d/")
page = c.getresponse().read().decode("utf-8")
class P(html.parser.HTMLParser):
    links = []; texts = []; scripts = 0
    def handle_starttag(self, tag, attrs):
        if tag == "script": P.scripts += 1
        if tag == "a": P.links.append(dict(attrs)["href"])
    def handle_data(self, d): P.texts.append(d)
P().feed(page)
assert P.scripts == 0
assert "<script>alert(1).txt" in P.texts, P.texts
for link in P.links[2:]:
    c.request("GET", "/d/" + link[2:])
    r = c.getresponse(); b = r.read()
    print(r.status, len(b), urllib.parse.unquote_to_bytes(link[2:]).hex())
"#;
    if let Some(out) = python(&srv, script, &[]) {
        let mut got: Vec<&str> = out.lines().collect();
        got.sort();
        let mut want: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let hexname: String = n.iter().map(|b| format!("{b:02x}")).collect();
                format!("200 {} {hexname}", i + 1)
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
