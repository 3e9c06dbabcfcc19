//! `sendpackets serve` end to end: the built binary on port 0 in a temporary directory, checked
//! by curl, raw TCP and Python's `http.client`, byte for byte.

mod serve_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serve_util::{Raw, Server, curl, have_curl, run, wait_for};
use sha2::{Digest, Sha256};

/// Deterministic test bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A directory with: `small.txt`, `data.bin` (300,000 bytes), `empty`, `sub/index.html`,
/// `nodir/` (no index), `.secret`, `inside` (symlink to small.txt), `outside` (symlink to a
/// file outside the directory).
struct Site {
    _outer: tempfile::TempDir,
    root: std::path::PathBuf,
    data: Vec<u8>,
}

fn site() -> Site {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("nodir")).unwrap();
    std::fs::write(root.join("small.txt"), "hello, world\n").unwrap();
    let data = pattern(300_000, 7);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").unwrap();
    std::fs::write(root.join(".secret"), "hidden\n").unwrap();
    std::fs::write(outer.path().join("private.txt"), "outside the root\n").unwrap();
    std::os::unix::fs::symlink("small.txt", root.join("inside")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("private.txt"), root.join("outside")).unwrap();
    Site {
        _outer: outer,
        root,
        data,
    }
}

/// `curl -D - -o BODY ARGS URL`: status, headers (lower-cased names), body.
fn curl_full(args: &[&str], url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let body_s = body.to_str().unwrap();
    let mut all = vec!["-D", "-", "-o", body_s];
    all.extend_from_slice(args);
    all.push(url);
    let head = String::from_utf8(curl(&all)).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let bytes = std::fs::read(&body).unwrap_or_default();
    (status, headers, bytes)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn whole_files_directories_and_types() {
    if !have_curl() {
        return;
    }
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let (st, h, body) = curl_full(&[], &srv.url("small.txt"));
    assert_eq!((st, body.as_slice()), (200, &b"hello, world\n"[..]));
    assert_eq!(
        header(&h, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&h, "content-length"), Some("13"));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    assert!(header(&h, "etag").is_some_and(|e| e.starts_with('"')));
    assert!(header(&h, "last-modified").is_some_and(|d| d.ends_with(" GMT")));
    assert!(header(&h, "date").is_some());

    let (st, h, body) = curl_full(&[], &srv.url("data.bin"));
    assert_eq!(st, 200);
    assert_eq!(body, s.data);
    assert_eq!(header(&h, "content-type"), Some("application/octet-stream"));

    let (st, _, body) = curl_full(&[], &srv.url("empty"));
    assert_eq!((st, body.len()), (200, 0));

    let (st, h, body) = curl_full(&[], &srv.url("sub/"));
    assert_eq!((st, body.as_slice()), (200, &b"<h1>sub</h1>\n"[..]));
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    let (st, h, _) = curl_full(&[], &srv.url("sub?x=1"));
    assert_eq!((st, header(&h, "location")), (301, Some("/sub/?x=1")));
    let (_, _, body) = curl_full(&["-L"], &srv.url("sub"));
    assert_eq!(body, b"<h1>sub</h1>\n");
    assert_eq!(curl_full(&[], &srv.url("nodir/")).0, 403); // no index, no --list: nginx's 403
    assert_eq!(curl_full(&[], &srv.url("missing")).0, 404);
    assert_eq!(curl_full(&[], &srv.url("small.txt/")).0, 404);
    let (st, _, body) = curl_full(&[], &srv.url("inside"));
    assert_eq!((st, body.as_slice()), (200, &b"hello, world\n"[..]));
}

#[test]
fn every_range_form() {
    if !have_curl() {
        return;
    }
    let s = site();
    let len = s.data.len();
    let srv = Server::start(&s.root, &[]);
    let url = srv.url("data.bin");
    for (range, start, end) in [
        ("0-0", 0, 1),
        ("100-199", 100, 200),
        ("299990-400000", 299_990, len),
        ("150000-", 150_000, len),
        ("-1000", len - 1000, len),
        ("-999999", 0, len),
    ] {
        let (st, h, body) = curl_full(&["-r", range], &url);
        assert_eq!(st, 206, "{range}");
        assert_eq!(body, &s.data[start..end], "{range}");
        assert_eq!(
            header(&h, "content-range"),
            Some(format!("bytes {start}-{}/{len}", end - 1).as_str()),
            "{range}"
        );
    }
    // Several ranges: 206 multipart/byteranges (serve_features.rs checks the parts).
    let (st, h, _) = curl_full(&["-r", "0-1,5-6"], &url);
    assert_eq!(st, 206);
    assert!(header(&h, "content-type").is_some_and(|t| t.starts_with("multipart/byteranges")));
    assert_eq!(header(&h, "content-range"), None);
    // Unsatisfiable: 416 with the length.
    for range in ["300000-", "400000-500000"] {
        let (st, h, body) = curl_full(&["-r", range], &url);
        assert_eq!((st, body.len()), (416, 0), "{range}");
        assert_eq!(header(&h, "content-range"), Some("bytes */300000"));
    }
    let (st, _, _) = curl_full(&["-H", "Range: bytes=-0"], &url);
    assert_eq!(st, 416);
    // Malformed: ignored.
    let (st, _, body) = curl_full(&["-H", "Range: bytes=9-1"], &url);
    assert_eq!((st, body.len()), (200, len));
    // If-Range with the current ETag keeps the range, with another drops it.
    let (_, h, _) = curl_full(&["-I"], &url);
    let etag = header(&h, "etag").unwrap().to_string();
    let (st, _, body) = curl_full(&["-r", "0-9", "-H", &format!("If-Range: {etag}")], &url);
    assert_eq!((st, body.as_slice()), (206, &s.data[..10]));
    let (st, _, body) = curl_full(&["-r", "0-9", "-H", "If-Range: \"other\""], &url);
    assert_eq!((st, body.len()), (200, len));
}

#[test]
fn head_and_not_modified() {
    if !have_curl() {
        return;
    }
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let url = srv.url("data.bin");
    let (st, h, _) = curl_full(&["-I"], &url);
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-length"), Some("300000"));
    let etag = header(&h, "etag").unwrap().to_string();
    let date = header(&h, "last-modified").unwrap().to_string();

    let (st, h, body) = curl_full(&["-H", &format!("If-None-Match: {etag}")], &url);
    assert_eq!((st, body.len()), (304, 0));
    assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    let (st, _, body) = curl_full(&["-H", &format!("If-Modified-Since: {date}")], &url);
    assert_eq!((st, body.len()), (304, 0));
    let (st, _, body) = curl_full(&["-H", "If-None-Match: \"nope\""], &url);
    assert_eq!((st, body.len()), (200, 300_000));
    let (st, _, body) = curl_full(
        &["-H", "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT"],
        &url,
    );
    assert_eq!((st, body.len()), (200, 300_000));
}

#[test]
fn keep_alive_several_urls_on_one_connection() {
    if !have_curl() {
        return;
    }
    let s = site();
    let srv = Server::start(&s.root, &["--log"]);
    // curl reuses the connection for URLs of one command: num_connects is 0 after the first.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects} %{size_download}\n",
        &srv.url("small.txt"),
        &srv.url("missing"),
        &srv.url("data.bin"),
        &srv.url("sub/"),
    ]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "200 1 13\n404 0 14\n200 0 300000\n200 0 13\n"
    );
    // And raw: one socket, keep-alive, including a 404 and a HEAD.
    let mut c = Raw::connect(srv.addr);
    for (req, status, body) in [
        ("GET /small.txt", 200, &b"hello, world\n"[..]),
        ("GET /nope", 404, &b"404 Not Found\n"[..]),
        ("HEAD /data.bin", 200, &b""[..]),
        ("GET /sub/index.html", 200, &b"<h1>sub</h1>\n"[..]),
    ] {
        c.send(format!("{req} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.response(req.starts_with("HEAD"));
        assert_eq!((r.status, r.body.as_slice()), (status, body), "{req}");
        assert_eq!(r.header("connection"), None);
    }
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // The access log has one line per request.
    assert!(wait_for(Duration::from_secs(10), || {
        srv.log_lines()
            .iter()
            .any(|l| l.contains("\"GET /nope HTTP/1.1\" 404"))
    }));
}

#[test]
fn pipelined_requests_answered_in_order() {
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let mut c = Raw::connect(srv.addr);
    let mut reqs = String::new();
    reqs += "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    reqs += "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n";
    reqs += "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\n";
    reqs += "HEAD /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    reqs += "GET /data.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    c.send(reqs.as_bytes());
    let r = c.response(false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world\n"[..]));
    assert_eq!(c.response(false).status, 404);
    let r = c.response(false);
    assert_eq!((r.status, r.body.as_slice()), (206, &s.data[10..20]));
    let r = c.response(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("13")));
    let r = c.response(false);
    assert_eq!((r.status, r.body == s.data), (200, true));
    assert!(c.closed());
}

#[test]
fn sparse_gibibyte_file_verified_by_sha256() {
    if !have_curl() {
        return;
    }
    let s = site();
    let path = s.root.join("sparse.bin");
    {
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(1 << 30).unwrap();
        use std::os::unix::fs::FileExt;
        for (i, at) in [0u64, 123_456_789, (1 << 30) - 4096]
            .into_iter()
            .enumerate()
        {
            f.write_all_at(&pattern(4096, i as u8), at).unwrap();
        }
    }
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let expected = hex(&h.finalize());
    let srv = Server::start(&s.root, &[]);
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "curl -sS --max-time 50 {} | sha256sum",
        srv.url("sparse.bin")
    )));
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(got.split_whitespace().next(), Some(expected.as_str()));
}

#[test]
fn nothing_outside_the_directory() {
    if !have_curl() {
        return;
    }
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let code = |addr: std::net::SocketAddr, path: &str| -> u16 {
        let out = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{addr}{path}"),
        ]);
        String::from_utf8(out).unwrap().parse().unwrap()
    };
    for path in [
        "/../private.txt",
        "/sub/../../private.txt",
        "/%2e%2e/private.txt",
        "/%2E%2E/private.txt",
        "/.%2e/private.txt",
        "/..%2fprivate.txt",
        "/sub%2f..%2f..%2fprivate.txt",
        "/sub%5c..%5c..%5cprivate.txt",
        "/small.txt%00.html",
        "/..\\private.txt",
    ] {
        assert_eq!(code(srv.addr, path), 400, "{path}");
    }
    assert_eq!(code(srv.addr, "/outside"), 403);
    assert_eq!(code(srv.addr, "/.secret"), 404);
    assert_eq!(code(srv.addr, "/%2esecret"), 404);
    assert_eq!(code(srv.addr, "//small.txt"), 200);
    // Absolute-form and asterisk targets, raw.
    for target in [
        "http://localhost/etc/passwd",
        "/etc/../../../../etc/passwd",
        "*",
    ] {
        let mut c = Raw::connect(srv.addr);
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.response(false);
        assert_eq!(r.status, 400, "{target}");
        assert!(c.closed());
    }
    drop(srv);
    // With the flags, the symlink and the dotfile are served.
    let srv = Server::start(&s.root, &["--follow-symlinks", "--dotfiles"]);
    assert_eq!(code(srv.addr, "/outside"), 200);
    assert_eq!(code(srv.addr, "/.secret"), 200);
    assert_eq!(code(srv.addr, "/../private.txt"), 400);
}

#[test]
fn malformed_and_oversized_requests() {
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400), // no Host
        (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(10_000)).into_bytes(),
            431,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
                (0..100)
                    .map(|i| format!("X-{i}: v\r\n"))
                    .collect::<String>()
            )
            .into_bytes(),
            431,
        ),
    ];
    for (req, status) in cases {
        let mut c = Raw::connect(srv.addr);
        c.send(&req);
        let r = c.response(false);
        assert_eq!(
            r.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&req[..20])
        );
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
    }
    // 405 with Allow keeps the connection.
    let mut c = Raw::connect(srv.addr);
    c.send(b"DELETE /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    // A request with a body is answered, then the connection closes (bodies are never read).
    c.send(b"POST /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.response(false);
    assert_eq!((r.status, r.header("connection")), (405, Some("close")));
    assert!(c.closed());
}

#[test]
fn slowloris_gets_408_and_a_close() {
    let s = site();
    let srv = Server::start(&s.root, &["--idle-timeout", "1"]);
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /small.txt HT");
    std::thread::sleep(Duration::from_millis(300));
    c.send(b"T"); // a byte now and then does not extend the deadline
    let r = c.response(false);
    assert_eq!((r.status, r.header("connection")), (408, Some("close")));
    assert!(c.closed());
    // An idle connection with nothing sent is closed silently.
    let mut idle = Raw::connect(srv.addr);
    assert!(idle.closed());
    // The server still answers.
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
}

/// The idle deadline counts from the previous response: requests 0.6 s apart keep a
/// connection with a 1 s idle timeout open well past its first deadline (the connection's
/// one timer, set for that deadline, fires and is set again); then idleness closes it.
#[test]
fn idle_deadline_moves_with_each_response() {
    let s = site();
    let srv = Server::start(&s.root, &["--idle-timeout", "1"]);
    let mut c = Raw::connect(srv.addr);
    let start = std::time::Instant::now();
    for _ in 0..4 {
        c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(start.elapsed() > Duration::from_millis(2000));
    // Idle for the timeout: closed silently.
    assert!(c.closed());
}

#[test]
fn aborted_download_leaves_no_descriptor_open() {
    let s = site();
    let big = pattern(64 << 20, 3);
    std::fs::write(s.root.join("big.bin"), &big).unwrap();
    let srv = Server::start(&s.root, &["--stall-timeout", "2"]);
    // Settle: requests served so lazily opened descriptors exist before counting (the file
    // the server keeps checked and open is among them).
    let mut warm = Raw::connect(srv.addr);
    warm.send(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(warm.response(true).status, 200);
    warm.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(warm.response(false).status, 200);
    assert!(warm.closed());
    drop(warm);
    let before_ok = wait_for(Duration::from_secs(10), || srv.open_fds() <= 32);
    assert!(before_ok);
    let before = srv.open_fds();
    // Reader that takes 1 MiB, then closes.
    let mut c = TcpStream::connect(srv.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = vec![0u8; 1 << 20];
    c.read_exact(&mut got).unwrap();
    assert!(
        srv.open_fds() > before,
        "the file and socket are open mid-send"
    );
    drop(c);
    // Reader that stops reading without closing: dropped after the stall timeout.
    let mut stalled = TcpStream::connect(srv.addr).unwrap();
    stalled
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let gone = wait_for(Duration::from_secs(30), || srv.open_fds() == before);
    assert!(
        gone,
        "descriptors: {} before, {} now",
        before,
        srv.open_fds()
    );
    drop(stalled);
}

#[test]
fn python_http_client_agrees() {
    let s = site();
    let srv = Server::start(&s.root, &[]);
    let script = r#"
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
out = []
for method, path, headers in [("GET", "/data.bin", {}), ("GET", "/data.bin", {"Range": "bytes=1000-1999"}),
                              ("HEAD", "/small.txt", {}), ("GET", "/nope", {}), ("GET", "/small.txt", {})]:
    c.request(method, path, headers=headers)
    r = c.getresponse()
    body = r.read()
    out.append("%s %d %d %s %s" % (method, r.status, len(body), hashlib.sha256(body).hexdigest()[:16],
                                   r.getheader("Content-Length")))
print("\n".join(out))
"#;
    let out = run(Command::new("python3").args([
        "-c",
        script,
        &srv.addr.ip().to_string(),
        &srv.addr.port().to_string(),
    ]));
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No such file") {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = |b: &[u8]| hex(&Sha256::digest(b))[..16].to_string();
    let expected = [
        format!("GET 200 300000 {} 300000", short(&s.data)),
        format!("GET 206 1000 {} 1000", short(&s.data[1000..2000])),
        format!("HEAD 200 0 {} 13", short(b"")),
        format!("GET 404 14 {} 14", short(b"404 Not Found\n")),
        format!("GET 200 13 {} 13", short(b"hello, world\n")),
    ]
    .join("\n");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), expected);
}

#[test]
fn sigterm_stops_gracefully() {
    let s = site();
    let srv = Server::start(&s.root, &["--grace", "5"]);
    // An idle keep-alive connection does not hold the stop.
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
    assert!(c.closed());
}

/// `--threads 1` (one thread accepts and serves everything): concurrent keep-alive
/// connections are all answered byte for byte, a partial head still gets its 408, and
/// SIGTERM stops it gracefully.
#[test]
fn one_thread_serves_concurrent_connections_and_stops() {
    let s = site();
    let srv = Server::start(&s.root, &["--threads", "1", "--idle-timeout", "2"]);
    let addr = srv.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Raw::connect(addr);
                for _ in 0..50 {
                    c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
                    let r = c.response(false);
                    assert_eq!((r.status, &r.body[..]), (200, &b"hello, world\n"[..]));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut slow = Raw::connect(srv.addr);
    slow.send(b"GET /small.txt HT");
    assert_eq!(slow.response(false).status, 408);
    let mut idle = Raw::connect(srv.addr);
    idle.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response(false).status, 200);
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
    assert!(idle.closed());
}

#[test]
fn missing_directory_is_an_input_error() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_sendpackets")).args([
        "serve",
        "/nonexistent/dir",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot serve"));
}

/// With `--open-file-cache`, a file renamed over, changed in place or deleted is seen at once,
/// within the validity period: every hit `fstat`s the open descriptor (nginx's cache, which
/// trusts an entry for its whole validity, would keep serving the old file).
#[test]
fn open_file_cache_sees_a_file_replaced_at_once() {
    let s = site();
    let srv = Server::start(&s.root, &["--open-file-cache", "600"]);
    let get = |srv: &Server| {
        let mut c = Raw::connect(srv.addr);
        c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        c.response(false)
    };
    let first = get(&srv);
    assert_eq!(first.body, b"hello, world\n");
    assert_eq!(get(&srv).header("etag"), first.header("etag"));
    // Renamed over: the new file and its validators at once.
    let tmp = s.root.join("small.txt.new");
    std::fs::write(&tmp, "replaced, longer\n").unwrap();
    std::fs::rename(&tmp, s.root.join("small.txt")).unwrap();
    let replaced = get(&srv);
    assert_eq!(replaced.body, b"replaced, longer\n");
    assert_ne!(replaced.header("etag"), first.header("etag"));
    // Written in place (same inode): the new bytes.
    std::fs::write(s.root.join("small.txt"), "written\n").unwrap();
    assert_eq!(get(&srv).body, b"written\n");
    // Deleted: 404 at once; created again: served at once (failures are not cached).
    std::fs::remove_file(s.root.join("small.txt")).unwrap();
    assert_eq!(get(&srv).status, 404);
    std::fs::write(s.root.join("small.txt"), "back\n").unwrap();
    assert_eq!(get(&srv).body, b"back\n");
    drop(srv);
    // Without the cache every request looks the path up again, and sees the same.
    let srv = Server::start(&s.root, &[]);
    assert_eq!(get(&srv).body, b"back\n");
    std::fs::write(s.root.join("small.txt"), "in place\n").unwrap();
    assert_eq!(get(&srv).body, b"in place\n");
    std::fs::write(&tmp, "renamed over\n").unwrap();
    std::fs::rename(&tmp, s.root.join("small.txt")).unwrap();
    assert_eq!(get(&srv).body, b"renamed over\n");
}

/// S2: with `--open-file-cache`, a file truncated in place (same inode, shorter) is answered
/// with its new bytes and length, by curl, and the access log says what went out; never an
/// empty reply under a `Content-Length` the file no longer has.
#[test]
fn open_file_cache_sees_a_file_truncated_in_place() {
    if !have_curl() {
        return;
    }
    let s = site();
    let srv = Server::start(&s.root, &["--open-file-cache", "600", "--log"]);
    let url = srv.url("small.txt");
    let fetch = || {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body");
        let out = run(Command::new("curl").args([
            "-sS",
            "--max-time",
            "30",
            "-D",
            "-",
            "-o",
            body.to_str().unwrap(),
            &url,
        ]));
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let body = std::fs::read(&body).unwrap_or_default();
        (
            out.status.code(),
            head,
            body,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, body, _) = fetch();
    assert_eq!((code, body.as_slice()), (Some(0), &b"hello, world\n"[..]));
    let mut log = Vec::new();
    assert!(wait_for(Duration::from_secs(10), || {
        log.extend(srv.log_lines());
        !log.is_empty()
    }));
    // Truncated and rewritten in place: the same inode, 6 bytes instead of 13.
    std::fs::write(s.root.join("small.txt"), "short\n").unwrap();
    for round in 0..3 {
        let (code, head, body, err) = fetch();
        assert_eq!(code, Some(0), "round {round}: curl failed: {err}\n{head}");
        assert!(head.starts_with("HTTP/1.1 200 "), "round {round}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 6\r\n"),
            "round {round}: {head}"
        );
        assert_eq!(body, b"short\n", "round {round}");
    }
    // Each of those requests is logged as 200 with its 6 bytes.
    assert!(wait_for(Duration::from_secs(10), || {
        log.extend(srv.log_lines());
        log.len() >= 4
    }));
    for l in &log[1..] {
        assert!(l.contains("\"GET /small.txt HTTP/1.1\" 200 6 "), "{l}");
    }
}

#[test]
fn large_responses_and_ranges_of_them() {
    let s = site();
    let big = pattern(3 << 20, 11);
    std::fs::write(s.root.join("big.bin"), &big).unwrap();
    for args in [
        &[][..],
        &["--open-file-cache", "60"][..],
        &["--zero-copy-from", "1"][..],
    ] {
        let srv = Server::start(&s.root, args);
        let mut c = Raw::connect(srv.addr);
        for (range, start, end) in [
            (None, 0, big.len()),
            (Some("bytes=1000-2000999"), 1000, 2_001_000),
            (Some("bytes=-70000"), big.len() - 70_000, big.len()),
            (Some("bytes=5-14"), 5, 15),
        ] {
            let extra = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
            c.send(format!("GET /big.bin HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
            let r = c.response(false);
            assert!(r.body == big[start..end], "{args:?} {range:?}");
        }
    }
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let s = site();
    let srv = Server::start(&s.root, &["--max-connections", "2"]);
    let mut a = Raw::connect(srv.addr);
    let mut b = Raw::connect(srv.addr);
    for c in [&mut a, &mut b] {
        c.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
    }
    // The third is accepted by the kernel (backlog) but not served while two are open.
    let mut third = Raw::connect(srv.addr);
    third
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    third.send(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut byte = [0u8; 1];
    let waited = third.reader.get_mut().read(&mut byte);
    assert!(waited.is_err(), "served beyond the limit: {waited:?}");
    // One closes: the third is served.
    drop(a);
    third
        .reader
        .get_ref()
        .set_read_timeout(Some(serve_util::READ_LIMIT))
        .unwrap();
    let r = third.response(false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world\n"[..]));
}

#[test]
fn sigterm_cuts_a_stuck_response_after_the_grace_period() {
    let s = site();
    std::fs::write(s.root.join("big.bin"), pattern(64 << 20, 5)).unwrap();
    let srv = Server::start(&s.root, &["--grace", "1"]);
    // A client that asks for 64 MiB and reads nothing: the response cannot finish.
    let mut stuck = TcpStream::connect(srv.addr).unwrap();
    stuck
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut first = [0u8; 9];
    stuck.read_exact(&mut first).unwrap(); // the response has started
    assert_eq!(&first, b"HTTP/1.1 ");
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
}
