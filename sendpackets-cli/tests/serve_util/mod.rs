//! Helpers for the `sendpackets serve` tests: start the server on port 0 in a directory, run
//! curl with a time limit, speak raw HTTP over TCP. Every wait is bounded.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// Every child process and every socket read gets at most this long.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Socket reads in raw-TCP tests give up after this long.
pub const READ_LIMIT: Duration = Duration::from_secs(20);

/// A running `sendpackets serve`.
pub struct Server {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout (access log) lines, read by a thread.
    log: mpsc::Receiver<String>,
    /// Its stderr lines after the first, read by a thread (and echoed).
    errors: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `sendpackets serve DIR --listen 127.0.0.1:0 --threads 2 ARGS...` (`--threads 2`
    /// unless ARGS name `--threads`), waits for its address.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_with(dir, args, |_| {})
    }

    /// [`start`](Self::start), with `prepare` applied to the command before it is spawned.
    pub fn start_with(dir: &Path, args: &[&str], prepare: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sendpackets"));
        cmd.arg("serve").arg(dir).args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--threads") {
            cmd.args(["--threads", "2"]);
        }
        cmd.args(args);
        prepare(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sendpackets serve");
        let (tx, rx) = mpsc::channel();
        let (err_tx, errors) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for l in lines.map_while(Result::ok) {
                eprintln!("server: {l}");
                let _ = err_tx.send(l);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server printed no address within 20 s");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .expect("an address");
        let (log_tx, log) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = log_tx.send(l);
            }
        });
        Server {
            child: Some(child),
            addr,
            log,
            errors,
        }
    }

    /// `http://ADDR/PATH` (path without its leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Open descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/PID/fd")
            .count()
    }

    /// Access-log lines printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// Stderr lines printed so far (after the address line).
    pub fn error_lines(&self) -> Vec<String> {
        self.errors.try_iter().collect()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM failed");
        match child.wait_timeout(LIMIT).expect("wait") {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not stop within {LIMIT:?} of SIGTERM");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether curl can run here; prints why not.
pub fn have_curl() -> bool {
    let ok = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: curl is not installed");
    }
    ok
}

/// Runs a command with a time limit; returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = match child.wait_timeout(LIMIT).expect("wait") {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {LIMIT:?}");
        }
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `curl -sS --max-time 30 ARGS...`; returns stdout, asserting success.
pub fn curl(args: &[&str]) -> Vec<u8> {
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args));
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One response read from a raw connection.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; none for HEAD, 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw client connection.
pub struct Raw {
    pub reader: BufReader<TcpStream>,
}

impl Raw {
    /// Connects to `addr` with [`READ_LIMIT`] read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        s.set_write_timeout(Some(READ_LIMIT)).unwrap();
        Raw {
            reader: BufReader::new(s),
        }
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Reads one response; `head_only` for answers to HEAD.
    pub fn response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        for _ in 0..100 {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("a header field");
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .map_or(0, |v| v.parse().expect("content-length"));
        if !head_only && status != 304 {
            r.body = vec![0; len];
            self.reader.read_exact(&mut r.body).expect("body");
        }
        r
    }

    /// Whether the server closed the connection (EOF) within [`READ_LIMIT`].
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// Waits until `f()` holds, polling every 50 ms, at most `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
