//! Helpers shared by the end-to-end tests: run the binary with a time limit, start `recv` and
//! Python receivers, hash bytes.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wait_timeout::ChildExt;

/// Every child process gets at most this long.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The `sendpackets` binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sendpackets"));
    c.env_remove("SENDPACKETS_DEMO_CORRUPT");
    c
}

/// Lower-case hex SHA-256.
pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Waits for `child` at most `limit`, killing it (and failing) if it runs longer.
pub fn finish(mut child: Child, limit: Duration) -> Output {
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let status = match child.wait_timeout(limit).expect("wait") {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process ran longer than {limit:?}");
        }
    };
    Output {
        status,
        stdout: out.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: err.map(|h| h.join().unwrap()).unwrap_or_default(),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Runs `cmd` with `stdin` as its standard input, bounded by [`LIMIT`].
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = finish(child, LIMIT);
    writer.join().unwrap();
    out
}

/// Runs `cmd` with empty standard input, bounded by [`LIMIT`].
pub fn run(cmd: &mut Command) -> Output {
    run_with_stdin(cmd, b"")
}

/// Reads the first line of a pipe, waiting at most 20 s.
fn first_line<R: Read + Send + 'static>(r: R) -> (String, BufReader<R>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send((line, reader));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the receiver printed no first line within 20 s")
}

/// A running `sendpackets recv`.
pub struct Recv {
    child: Option<Child>,
    /// The address it listens on, as printed (`tcp://127.0.0.1:PORT`, ...).
    pub addr: String,
    stderr: BufReader<ChildStderr>,
}

impl Recv {
    /// Starts `sendpackets recv LISTEN ARGS... --wait 20` and waits for its `listening on` line.
    pub fn start(listen: &str, args: &[&str]) -> Recv {
        let mut child = bin()
            .arg("recv")
            .arg(listen)
            .args(args)
            .args(["--wait", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn recv");
        let (line, stderr) = first_line(child.stderr.take().unwrap());
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Recv {
            child: Some(child),
            addr,
            stderr,
        }
    }

    /// The process id of the running recv.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (`TERM`, `INT`, ...) to the running recv with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for recv to end; returns its output (stderr without the first line).
    pub fn finish(mut self) -> Output {
        let mut out = finish(self.child.take().expect("running"), LIMIT);
        let mut rest = Vec::new();
        let _ = self.stderr.read_to_end(&mut rest);
        out.stderr = rest;
        out
    }

    /// Waits for recv and parses its `--json` result.
    pub fn json(self) -> serde_json::Value {
        let out = self.finish();
        assert!(
            out.status.success(),
            "recv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("recv --json output")
    }
}

/// A receiver written with Python's `socket` module.
pub struct PyRecv {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    stdout: BufReader<ChildStdout>,
}

/// TCP: accept one connection, read to EOF, print `BYTES SHA256`.
pub const PY_TCP: &str = r#"
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(20)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(20)
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"#;

/// UDP: receive argv[1] datagrams, print `BYTES SHA256 LEN,LEN,...`.
pub const PY_UDP: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0)); s.settimeout(20)
print(s.getsockname()[1], flush=True)
h = hashlib.sha256(); lens = []
for _ in range(int(sys.argv[1])):
    b = s.recv(65536)
    h.update(b); lens.append(len(b))
print(sum(lens), h.hexdigest(), ",".join(map(str, lens)), flush=True)
"#;

/// TCP: accept, read 1000 bytes, then reset the connection (SO_LINGER 0).
pub const PY_RESET: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(20)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(20)
c.recv(1000)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("reset", flush=True)
"#;

impl PyRecv {
    /// Starts `python3 -c SCRIPT ARGS...` and reads the port it prints.
    pub fn start(script: &str, args: &[&str]) -> PyRecv {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let (line, stdout) = first_line(child.stdout.take().unwrap());
        let port = line.trim().parse().expect("python printed a port");
        PyRecv {
            child,
            port,
            stdout,
        }
    }

    /// Waits for the script and returns the rest of what it printed.
    pub fn finish(mut self) -> String {
        let status = match self.child.wait_timeout(LIMIT).expect("wait") {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                panic!("python receiver ran too long");
            }
        };
        assert!(status.success(), "python receiver failed");
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        rest.trim().to_string()
    }
}

impl Drop for PyRecv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Recv {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses the one JSON object a `--json` run prints.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}
