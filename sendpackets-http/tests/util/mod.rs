//! Helpers for the server tests: an axum application that records what it sees, run by
//! `sendpackets_http::serve` on 127.0.0.1:0 in a thread of its own; a raw HTTP/1.1 client over
//! a blocking socket; expected bytes of file responses from `Files::respond`. Every wait is
//! bounded.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use sendpackets_http::{Files, Parsed, RequestHead, StaticFiles, Stats};

/// Socket reads give up after this long.
pub const READ_LIMIT: Duration = Duration::from_secs(20);

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A directory with `small.txt` (13 bytes) and `big.bin` (300,000 bytes), served at
/// `/static`.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub big: Vec<u8>,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small.txt"), "hello, world\n").unwrap();
        let big = pattern(300_000, 3);
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        Site { dir, big }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The bytes `Files::respond` gives for `request` (a whole head), Date masked.
    pub fn expected(&self, request: &str) -> Vec<u8> {
        let files = Files::open(self.dir.path()).unwrap().at("/static");
        let Parsed::Complete(req) = RequestHead::parse(request.as_bytes()) else {
            panic!("{request:?}")
        };
        let r = files.respond(&req);
        let mut out = r.head().to_vec();
        let path = req.target().strip_prefix("/static/").unwrap();
        let data = std::fs::read(self.dir.path().join(path)).unwrap_or_default();
        let body_len = r.body_len() as usize;
        // The body is the file range the head announces (or the whole file).
        let start = header_value(&out, "Content-Range")
            .and_then(|v| v.strip_prefix("bytes ")?.split('-').next()?.parse().ok())
            .unwrap_or(0usize);
        if req.method_text() != "HEAD" {
            out.extend_from_slice(&data[start..start + body_len]);
        }
        mask_date(&out)
    }
}

/// The value of header `name` (case-insensitive) in a response's bytes.
pub fn header_value(bytes: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The response with its `Date` line's value replaced by `*`.
pub fn mask_date(bytes: &[u8]) -> Vec<u8> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return bytes.to_vec();
    };
    let head = String::from_utf8_lossy(&bytes[..end + 4]).to_string();
    let masked: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("date: ") {
                format!("{}: *", &l[..4])
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut out = masked.join("\r\n").into_bytes();
    out.extend_from_slice(&bytes[end + 4..]);
    out
}

/// The application: what it answers, and the requests it saw (`METHOD PATH`, in order).
pub fn app(seen: Arc<Mutex<Vec<String>>>) -> Router {
    Router::new()
        .route("/api/hello", get(|| async { "hello" }))
        .route("/api/echo", post(|body: Bytes| async move { body }))
        .route(
            "/api/stream",
            get(|| async {
                let parts = futures_util::stream::unfold(0u32, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("part {i}\n"))),
                        i + 1,
                    ))
                });
                Body::from_stream(parts)
            }),
        )
        .route(
            "/api/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route(
            "/api/close",
            get(|| async { ([(header::CONNECTION, "close")], "bye") }),
        )
        .route(
            "/api/ws",
            get(|ws: WebSocketUpgrade| async {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        )
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.uri()));
                next.run(req).await
            }
        }))
}

/// `serve` running in a thread with its own runtime; stopped gracefully on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: Stats,
    pub seen: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn start(site: &Site) -> Running {
        Running::start_with(site, None)
    }

    /// [`start`](Self::start), with the server's idle timeout set.
    pub fn start_with(site: &Site, idle_timeout: Option<Duration>) -> Running {
        Running::start_files(site, idle_timeout, |files| files)
    }

    /// [`start_with`](Self::start_with), with options given to the files at `/static`.
    pub fn start_files(
        site: &Site,
        idle_timeout: Option<Duration>,
        options: impl FnOnce(StaticFiles) -> StaticFiles,
    ) -> Running {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router = app(seen.clone());
        let files = options(StaticFiles::new(site.root()).at("/static"));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let server =
                    sendpackets_http::serve(listener_with_addr(listener, &addr_tx)?, router, files)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        });
                let server = match idle_timeout {
                    Some(d) => server.idle_timeout(d),
                    None => server,
                };
                addr_tx.send(Err(server.stats())).ok();
                server.await
            })
        });
        let addr = match addr_rx.recv_timeout(READ_LIMIT).unwrap() {
            Ok(a) => a,
            Err(_) => panic!("no address"),
        };
        let stats = match addr_rx.recv_timeout(READ_LIMIT).unwrap() {
            Err(s) => s,
            Ok(_) => panic!("no stats"),
        };
        Running {
            addr,
            stats,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The requests the application saw so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Signals the graceful stop and waits (at most 20 s) for the server's future to end.
    pub fn stop(&mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + READ_LIMIT;
        while !t.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        t.join().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.stop();
        }
    }
}

fn listener_with_addr(
    listener: tokio::net::TcpListener,
    tx: &std::sync::mpsc::Sender<Result<SocketAddr, Stats>>,
) -> std::io::Result<tokio::net::TcpListener> {
    let _ = tx.send(Ok(listener.local_addr()?));
    Ok(listener)
}

/// A raw HTTP/1.1 client over a blocking socket.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "closed after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response as sent, bytes for bytes (head and body; a chunked body with its
    /// framing). `head_only`: the request was HEAD.
    pub fn response(&mut self, head_only: bool) -> Vec<u8> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(
                self.fill(),
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = self.buf[..end].to_vec();
        let status: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
        let mut out: Vec<u8> = self.buf.drain(..end).collect();
        if head_only || status == 304 || status == 204 || (100..200).contains(&status) {
            return out;
        }
        if let Some(n) = header_value(&head, "content-length") {
            out.extend(self.read_exact(n.parse().unwrap()));
        } else if header_value(&head, "transfer-encoding").is_some() {
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p + 2;
                    }
                    assert!(self.fill(), "closed inside a chunked body");
                };
                let line: Vec<u8> = self.buf.drain(..line_end).collect();
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&line)
                        .trim_end()
                        .split(';')
                        .next()
                        .unwrap(),
                    16,
                )
                .unwrap();
                out.extend(line);
                out.extend(self.read_exact(size + 2));
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill() {}
            out.append(&mut self.buf);
        }
        out
    }

    /// The next response, or `None` when the server closed the connection instead.
    pub fn response_or_close(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() && !self.fill() {
            return None;
        }
        Some(self.response(false))
    }

    /// Whether the server closed the connection (end of file within the read limit, nothing
    /// more buffered).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// The body of a response read by [`Raw::response`] (de-chunked).
pub fn body_of(response: &[u8]) -> Vec<u8> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &response[end..];
    if header_value(response, "transfer-encoding").is_none() {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let p = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..p])
                .unwrap()
                .split(';')
                .next()
                .unwrap(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[p + 2..p + 2 + size]);
        rest = &rest[p + 2 + size + 2..];
    }
}

/// The status code of a response.
pub fn status_of(response: &[u8]) -> u16 {
    String::from_utf8_lossy(&response[9..12]).parse().unwrap()
}

/// Runs a command with a time limit; `None` when the program is missing.
pub fn run(cmd: &mut std::process::Command) -> Option<std::process::Output> {
    use wait_timeout::ChildExt;
    let mut child = match cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("spawn: {e}"),
    };
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = { stdout }.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = { stderr }.read_to_end(&mut v);
        v
    });
    let status = match child.wait_timeout(Duration::from_secs(60)).unwrap() {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().unwrap()
        }
    };
    Some(std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}
