//! `sendpackets_http::serve` in front of an axum application, on loopback, with raw sockets,
//! curl, Python's `http.client` and a WebSocket client: static and application requests in
//! every order on one keep-alive connection, pipelined, with bodies, upgrades, HTTP/1.0,
//! streaming and graceful shutdown; each response checked byte for byte, and the application
//! seeing exactly its own requests.

mod util;

use std::time::Duration;

use util::{Raw, Running, Site, body_of, mask_date, pattern, run, status_of};

const HELLO: &str = "GET /api/hello HTTP/1.1\r\nHost: t\r\n\r\n";
const SMALL: &str = "GET /static/small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
const BIG: &str = "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
const RANGE: &str = "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-66535\r\n\r\n";

/// The application's answer to `/api/hello`, as hyper writes it (Date masked).
const HELLO_RESPONSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n\
                              content-length: 5\r\ndate: *\r\n\r\nhello";

/// One kind of request in a sequence.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `GET /api/hello`.
    Api,
    /// A 13-byte file.
    Small,
    /// A 300,000-byte file.
    Big,
    /// 64 KiB of the big file.
    Range,
    /// `POST /api/echo` with a Content-Length body.
    Post,
    /// `POST /api/echo` with a chunked body.
    Chunked,
}

const KINDS: [Kind; 6] = [
    Kind::Api,
    Kind::Small,
    Kind::Big,
    Kind::Range,
    Kind::Post,
    Kind::Chunked,
];

/// The body posted by [`Kind::Post`] and [`Kind::Chunked`] at position `i` of a sequence.
fn post_body(i: usize) -> Vec<u8> {
    pattern(1000 + 997 * i, i as u8)
}

/// The request bytes, and what the application must see for it (if anything).
fn request(kind: Kind, i: usize) -> (Vec<u8>, Option<&'static str>) {
    match kind {
        Kind::Api => (HELLO.into(), Some("GET /api/hello")),
        Kind::Small => (SMALL.into(), None),
        Kind::Big => (BIG.into(), None),
        Kind::Range => (RANGE.into(), None),
        Kind::Post => {
            let body = post_body(i);
            let mut r = format!(
                "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            (r, Some("POST /api/echo"))
        }
        Kind::Chunked => {
            let body = post_body(i);
            let mut r = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
            for (n, piece) in body.chunks(700).enumerate() {
                r.extend_from_slice(format!("{:x};n={n}\r\n", piece.len()).as_bytes());
                r.extend_from_slice(piece);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
            (r, Some("POST /api/echo"))
        }
    }
}

/// The response expected for `kind` at position `i`, byte for byte (Date masked).
fn expected(site: &Site, kind: Kind, i: usize) -> Vec<u8> {
    match kind {
        Kind::Api => HELLO_RESPONSE.into(),
        Kind::Small => site.expected(SMALL),
        Kind::Big => site.expected(BIG),
        Kind::Range => site.expected(RANGE),
        Kind::Post | Kind::Chunked => {
            let body = post_body(i);
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                 content-length: {}\r\ndate: *\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
    }
}

/// Every sequence of `len` kinds.
fn sequences(len: u32) -> Vec<Vec<Kind>> {
    let n = KINDS.len();
    (0..n.pow(len))
        .map(|mut code| {
            (0..len)
                .map(|_| {
                    let k = KINDS[code % n];
                    code /= n;
                    k
                })
                .collect()
        })
        .collect()
}

fn check(site: &Site, got: &[u8], kind: Kind, i: usize, seq: &[Kind]) {
    let want = expected(site, kind, i);
    let got = mask_date(got);
    if got != want {
        panic!(
            "{seq:?} #{i} {kind:?}:\n got {:?}\nwant {:?}",
            String::from_utf8_lossy(&got[..got.len().min(400)]),
            String::from_utf8_lossy(&want[..want.len().min(400)])
        );
    }
}

#[test]
fn every_order_on_one_keep_alive_connection() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut app_expects = Vec::new();
    let seqs = sequences(3);
    for seq in &seqs {
        let mut c = Raw::connect(srv.addr);
        for (i, &kind) in seq.iter().enumerate() {
            let (req, app) = request(kind, i);
            app_expects.extend(app);
            c.send(&req);
            let got = c.response(false);
            check(&site, &got, kind, i, seq);
        }
    }
    assert_eq!(srv.seen(), app_expects);
    assert_eq!(srv.stats.connections(), seqs.len() as u64);
    assert_eq!(srv.stats.app_requests(), app_expects.len() as u64);
}

#[test]
fn pipelined_mixes() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut app_expects = Vec::new();
    for seq in sequences(3).iter().step_by(3).chain(&[KINDS.to_vec()]) {
        let mut c = Raw::connect(srv.addr);
        let mut all = Vec::new();
        for (i, &kind) in seq.iter().enumerate() {
            let (req, app) = request(kind, i);
            app_expects.extend(app);
            all.extend(req);
        }
        c.send(&all); // every request in one write
        for (i, &kind) in seq.iter().enumerate() {
            let got = c.response(false);
            check(&site, &got, kind, i, seq);
        }
    }
    assert_eq!(srv.seen(), app_expects);
}

#[test]
fn after_an_api_request_the_next_file_goes_out_with_sendfile() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut c = Raw::connect(srv.addr);
    for kind in [
        Kind::Api,
        Kind::Big,
        Kind::Post,
        Kind::Range,
        Kind::Api,
        Kind::Big,
    ] {
        let (req, _) = request(kind, 0);
        let before = srv.stats.sendfile_calls();
        let files_before = srv.stats.file_responses();
        c.send(&req);
        let got = c.response(false);
        check(&site, &got, kind, 0, &[kind]);
        match kind {
            Kind::Big | Kind::Range => {
                // The counters are added to once the send has returned, which may be after the
                // client has read everything.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while srv.stats.file_responses() == files_before {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no file response counted"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(srv.stats.file_responses(), files_before + 1);
                let calls = srv.stats.sendfile_calls() - before;
                assert!(calls >= 1, "{kind:?} went out without sendfile");
            }
            _ => assert_eq!(srv.stats.sendfile_calls(), before, "{kind:?}"),
        }
    }
    assert_eq!(srv.stats.connections(), 1);
}

#[test]
fn expect_100_continue_then_a_file() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut c = Raw::connect(srv.addr);
    let body = pattern(5000, 9);
    c.send(
        format!(
            "POST /api/echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.response(false);
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(&body);
    let got = c.response(false);
    assert_eq!(status_of(&got), 200);
    assert_eq!(body_of(&got), body);
    c.send(SMALL.as_bytes());
    check(&site, &c.response(false), Kind::Small, 0, &[]);
    assert_eq!(srv.seen(), ["POST /api/echo"]);
}

#[test]
fn streaming_response_then_files() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /api/stream HTTP/1.1\r\nHost: t\r\n\r\nGET /static/small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let got = c.response(false);
    assert!(
        String::from_utf8_lossy(&got).contains("\r\ntransfer-encoding: chunked\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(body_of(&got), b"part 0\npart 1\npart 2\npart 3\npart 4\n");
    check(&site, &c.response(false), Kind::Small, 0, &[]);
    c.send(BIG.as_bytes());
    check(&site, &c.response(false), Kind::Big, 0, &[]);
    assert_eq!(srv.seen(), ["GET /api/stream"]);
}

#[test]
fn http_1_0_and_connection_close() {
    let site = Site::new();
    let srv = Running::start(&site);

    // HTTP/1.0 without keep-alive: one response, then the close.
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /api/hello HTTP/1.0\r\n\r\n");
    let got = c.response(false);
    assert!(
        got.starts_with(b"HTTP/1.0 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(body_of(&got), b"hello");
    assert!(c.closed());

    // HTTP/1.0 with keep-alive: files and the application on one connection.
    let mut c = Raw::connect(srv.addr);
    for path in ["/static/small.txt", "/api/hello", "/static/small.txt"] {
        c.send(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let got = String::from_utf8(c.response(false)).unwrap();
        assert!(
            got.to_ascii_lowercase()
                .contains("\r\nconnection: keep-alive\r\n"),
            "{got}"
        );
    }

    // The application says close: the connection closes after its response, and the
    // request pipelined behind it is not answered.
    let mut c = Raw::connect(srv.addr);
    c.send(format!("GET /api/close HTTP/1.1\r\nHost: t\r\n\r\n{SMALL}").as_bytes());
    assert_eq!(body_of(&c.response(false)), b"bye");
    assert!(c.closed());

    // A client's close on an application request.
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /api/hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(body_of(&c.response(false)), b"hello");
    assert!(c.closed());
    assert_eq!(
        srv.seen(),
        [
            "GET /api/hello",
            "GET /api/hello",
            "GET /api/close",
            "GET /api/hello"
        ]
    );
}

#[test]
fn head_requests_and_static_errors_stay_with_the_files() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut c = Raw::connect(srv.addr);
    let head = "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    c.send(head.as_bytes());
    assert_eq!(mask_date(&c.response(true)), site.expected(head));
    c.send(b"HEAD /api/hello HTTP/1.1\r\nHost: t\r\n\r\n");
    let got = c.response(true);
    assert_eq!(status_of(&got), 200);
    for (path, status) in [("/static/missing", 404), ("/static/../x", 400)] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(status_of(&c.response(false)), status, "{path}");
    }
    // 400 closes.
    assert!(c.closed());
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /api/missing HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status_of(&c.response(false)), 404);
    assert_eq!(srv.seen(), ["HEAD /api/hello", "GET /api/missing"]);
}

#[test]
fn websocket_upgrade_reaches_the_app_and_works() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let site = Site::new();
    let srv = Running::start(&site);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("ws://{}/api/ws", srv.addr);
        let (mut ws, response) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(response.status(), 101);
        for i in 0..3 {
            let text = format!("message {i}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let back = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(back, Message::text(text));
        }
        let big = pattern(200_000, 1);
        ws.send(Message::binary(big.clone())).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_data().as_ref(), &big[..]);
        ws.close(None).await.unwrap();
    });
    assert_eq!(srv.stats.upgrades(), 1);
    assert_eq!(srv.seen(), ["GET /api/ws"]);
}

#[test]
fn websocket_frame_sent_with_the_handshake_is_not_lost() {
    let site = Site::new();
    let srv = Running::start(&site);
    let mut c = Raw::connect(srv.addr);
    // A file first, then the handshake with a masked text frame "hi" in the same write.
    let mut bytes = SMALL.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x80 | 2, 1, 2, 3, 4, b'h' ^ mask[0], b'i' ^ mask[1]]);
    c.send(&bytes);
    check(&site, &c.response(false), Kind::Small, 0, &[]);
    let switch = String::from_utf8(c.response(false)).unwrap();
    assert!(
        switch.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{switch}"
    );
    assert!(
        switch.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{switch}"
    );
    assert_eq!(c.read_exact(4), [0x81, 2, b'h', b'i']);
    assert_eq!(srv.seen(), ["GET /api/ws"]);
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let site = Site::new();
    let mut srv = Running::start(&site);
    let mut idle = Raw::connect(srv.addr);
    idle.send(SMALL.as_bytes());
    idle.response(false);
    let mut busy = Raw::connect(srv.addr);
    busy.send(b"GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100)); // the request is with the application
    let addr = srv.addr;
    let stopper = std::thread::spawn(move || srv.stop());
    let got = busy.response(false);
    assert_eq!(body_of(&got), b"slow");
    // The response in flight tells the client the connection ends with it.
    assert_eq!(
        util::header_value(&got, "connection").as_deref(),
        Some("close"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    stopper.join().unwrap().unwrap();
    assert!(idle.closed());
    assert!(busy.closed());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn curl_reuses_one_connection_across_api_and_files() {
    let site = Site::new();
    let srv = Running::start(&site);
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let Some(o) = run(std::process::Command::new("curl").args([
        "-s",
        "-w",
        "%{http_code} %{num_connects}\\n",
        &srv.url("/api/hello"),
        "-o",
        &out("1"),
        &srv.url("/static/big.bin"),
        "-o",
        &out("2"),
        &srv.url("/api/hello"),
        "-o",
        &out("3"),
        &srv.url("/static/small.txt"),
        "-o",
        &out("4"),
    ])) else {
        eprintln!("skipped: curl is not installed");
        return;
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "200 1\n200 0\n200 0\n200 0\n"
    );
    assert_eq!(std::fs::read(out("1")).unwrap(), b"hello");
    assert_eq!(std::fs::read(out("2")).unwrap(), site.big);
    assert_eq!(std::fs::read(out("4")).unwrap(), b"hello, world\n");

    // A chunked upload through curl reaches the application intact.
    let upload = dir.path().join("upload");
    let data = pattern(150_000, 5);
    std::fs::write(&upload, &data).unwrap();
    let o = run(std::process::Command::new("curl").args([
        "-s",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", upload.display()),
        "-o",
        &out("5"),
        &srv.url("/api/echo"),
    ]))
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(out("5")).unwrap(), data);
    assert_eq!(
        srv.seen(),
        ["GET /api/hello", "GET /api/hello", "POST /api/echo"]
    );
}

#[test]
fn python_http_client_mixes_on_one_connection() {
    let site = Site::new();
    let srv = Running::start(&site);
    let script = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
out = []
sock = None
body = bytes(range(256)) * 40
for method, path, data, headers in [
        ("GET", "/api/hello", None, {}), ("GET", "/static/big.bin", None, {}),
        ("POST", "/api/echo", body, {}),
        ("GET", "/static/big.bin", None, {"Range": "bytes=1000-66535"}),
        ("POST", "/api/echo", iter([body[:1000], body[1000:]]), {"Transfer-Encoding": "chunked"}),
        ("GET", "/api/stream", None, {}), ("HEAD", "/static/small.txt", None, {}),
        ("GET", "/api/hello", None, {})]:
    c.request(method, path, body=data, headers=headers, encode_chunked="Transfer-Encoding" in headers)
    r = c.getresponse()
    got = r.read()
    if sock is None:
        sock = c.sock
    out.append("%s %s %d %d %d %s" % (method, path, r.status, len(got), sum(got) % 65521,
                                     "same" if c.sock is sock else "new"))
print("\n".join(out))
"#;
    let Some(o) = run(std::process::Command::new("python3").args([
        "-c",
        script,
        &srv.addr.ip().to_string(),
        &srv.addr.port().to_string(),
    ])) else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>() % 65521;
    let body: Vec<u8> = (0..40).flat_map(|_| 0..=255u8).collect();
    let stream = b"part 0\npart 1\npart 2\npart 3\npart 4\n";
    let want = [
        format!("GET /api/hello 200 5 {} same", sum(b"hello")),
        format!("GET /static/big.bin 200 300000 {} same", sum(&site.big)),
        format!("POST /api/echo 200 10240 {} same", sum(&body)),
        format!(
            "GET /static/big.bin 206 65536 {} same",
            sum(&site.big[1000..66536])
        ),
        format!("POST /api/echo 200 10240 {} same", sum(&body)),
        format!("GET /api/stream 200 35 {} same", sum(stream)),
        "HEAD /static/small.txt 200 0 0 same".to_string(),
        format!("GET /api/hello 200 5 {} same", sum(b"hello")),
    ]
    .join("\n");
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), want);
    assert_eq!(srv.stats.connections(), 1);
    assert_eq!(
        srv.seen(),
        [
            "GET /api/hello",
            "POST /api/echo",
            "POST /api/echo",
            "GET /api/stream",
            "GET /api/hello"
        ]
    );
}

#[test]
fn the_example_serves_files_and_the_api() {
    // Built beside the test binaries by `cargo test`.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples/axum_static"))
        .unwrap();
    if !example.exists() {
        eprintln!("skipped: {} is not built", example.display());
        return;
    }
    let site = Site::new();
    let mut child = std::process::Command::new(&example)
        .args([
            "--dir",
            site.dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().unwrap();
    let mut c = Raw::connect(addr);
    c.send(HELLO.as_bytes());
    assert_eq!(mask_date(&c.response(false)), HELLO_RESPONSE.as_bytes());
    c.send(BIG.as_bytes());
    check(&site, &c.response(false), Kind::Big, 0, &[]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_body_the_app_does_not_read_never_desyncs_the_connection() {
    let site = Site::new();
    let srv = Running::start(&site);
    for len in [10usize, 100_000] {
        let mut c = Raw::connect(srv.addr);
        let mut bytes =
            format!("POST /api/hello HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                .into_bytes();
        bytes.extend(pattern(len, 1));
        bytes.extend_from_slice(SMALL.as_bytes());
        c.send(&bytes);
        assert_eq!(status_of(&c.response(false)), 405, "{len}");
        // The file request behind the unread body is answered, or the connection closes
        // cleanly (no reset that could destroy the 405 before the client reads it); the body
        // is never taken for a request.
        if let Some(next) = c.response_or_close() {
            assert_eq!(mask_date(&next), site.expected(SMALL), "{len}");
            assert_eq!(len, 10, "hyper drains only small unread bodies");
        }
    }
    assert_eq!(srv.seen(), ["POST /api/hello", "POST /api/hello"]);
}

#[test]
fn the_idle_timeout_counts_from_the_last_response() {
    let site = Site::new();
    let srv = Running::start_with(&site, Some(Duration::from_millis(600)));
    let mut c = Raw::connect(srv.addr);
    // Five requests 300 ms apart: 1.5 s in all, each within 600 ms of the previous response.
    for kind in [Kind::Small, Kind::Api, Kind::Small, Kind::Api, Kind::Small] {
        std::thread::sleep(Duration::from_millis(300));
        let (req, _) = request(kind, 0);
        c.send(&req);
        check(&site, &c.response(false), kind, 0, &[kind]);
    }
    // Silence longer than the timeout: the connection is closed without a response.
    std::thread::sleep(Duration::from_millis(900));
    assert!(c.closed());
    // A head begun but not finished in time gets 408.
    let mut c = Raw::connect(srv.addr);
    c.send(b"GET /static/small.txt HTTP/1.1\r\nHost:");
    assert_eq!(status_of(&c.response(false)), 408);
    assert!(c.closed());
}
