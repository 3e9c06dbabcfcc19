//! `sendpackets serve` under random and mutated requests over real sockets: every answer is a
//! well-formed HTTP/1.1 status line (or a close), nothing outside the directory ever comes
//! back, and the server keeps answering. Bounded: a fixed number of cases, every read with a
//! timeout. (The parser and path mapper get many more cases in-process, in `src/serve/fuzz.rs`.)

mod serve_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serve_util::{Raw, Server};

/// Requests sent to the running server.
const CASES: u32 = 300;

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE";

const SEEDS: [&str; 4] = [
    "GET /f.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=1-3\r\n\r\n",
    "GET /../secret.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    "HEAD /%2e%2e/secret.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\n\r\n",
    "GET /d/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

/// Sends `req`, half-closes, reads everything the server answers within the time limit.
fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(req);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut got);
    got
}

#[test]
fn random_requests_get_well_formed_answers() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("www");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("f.txt"), "0123456789").unwrap();
    std::fs::write(root.join("d/index.html"), "<p>d</p>").unwrap();
    std::fs::write(outer.path().join("secret.txt"), SECRET).unwrap();
    let srv = Server::start(&root, &["--idle-timeout", "2"]);
    let addr = srv.addr;

    let seed = (
        0..SEEDS.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6),
    );
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&seed, |(which, edits)| {
            let mut req = SEEDS[which].as_bytes().to_vec();
            for (at, byte, op) in edits {
                let n = req.len().max(1);
                match op {
                    0 if !req.is_empty() => req[at % n] = byte,
                    1 => req.insert(at % (req.len() + 1), byte),
                    _ if !req.is_empty() => {
                        req.remove(at % n);
                    }
                    _ => {}
                }
            }
            let got = exchange(addr, &req);
            prop_assert!(
                got.is_empty() || got.starts_with(b"HTTP/1.1 "),
                "request {:?} got {:?}",
                String::from_utf8_lossy(&req),
                String::from_utf8_lossy(&got[..got.len().min(64)])
            );
            prop_assert!(!got.windows(SECRET.len()).any(|w| w == SECRET));
            Ok(())
        })
        .unwrap();

    // Still serving.
    let mut c = Raw::connect(addr);
    c.send(b"GET /f.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"0123456789"[..]));
}
