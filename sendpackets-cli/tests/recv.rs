//! What `sendpackets recv` promises: whole datagrams, an `--out` file that changes only on
//! success, socket files cleaned up on SIGINT/SIGTERM and stale ones replaced, and checks of
//! what must arrive (`--expect-bytes`, `--expect-sha256`, UDP locked to the first peer).

mod util;

use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use util::{LIMIT, Recv, bin, finish, json, pattern, run, run_with_stdin, sha256, stderr, stdout};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exited")
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `python3 -c SCRIPT ARGS...` to its end (bounded) and returns what it printed.
fn python(script: &str, args: &[&str]) -> std::process::Output {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    finish(child, LIMIT)
}

/// Sends one datagram of up to 1,000,000 bytes (as large as its SO_SNDBUF allows) to the
/// Unix datagram socket argv[1]; prints `SIZE SHA256`.
const PY_BIG_UNIX_DATAGRAM: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
size = min(s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32, 1000000)
data = bytes((i * 7 + i // 251) & 0xff for i in range(size))
s.sendto(data, sys.argv[1])
print(size, hashlib.sha256(data).hexdigest(), flush=True)
"#;

#[test]
fn unix_datagrams_larger_than_128_kib_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let gram = format!("unixgram://{}", dir.path().join("g.sock").display());

    // The largest datagram the command itself sends on a default socket: SO_SNDBUF - 32.
    let recv = Recv::start(&gram, &["--json", "--datagrams", "2"]);
    let big = pattern(212_960, 11);
    let out = run_with_stdin(bin().args(["send", &gram, "-", "eop", "text:tail"]), &big);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = recv.json();
    let mut expected = big.clone();
    expected.extend_from_slice(b"tail");
    assert_eq!(got["datagrams"], 2);
    assert_eq!(got["bytes"], expected.len() as u64);
    assert_eq!(got["sha256"], sha256(&expected));

    // A sender with a larger SO_SNDBUF sends larger datagrams; they arrive whole too.
    let recv = Recv::start(&gram, &["--json", "--datagrams", "1"]);
    let sock = dir.path().join("g.sock");
    let py = python(PY_BIG_UNIX_DATAGRAM, &[sock.to_str().unwrap()]);
    assert!(py.status.success(), "{}", stderr(&py));
    let printed = stdout(&py);
    let (size, digest) = printed.trim().split_once(' ').unwrap();
    assert!(size.parse::<u64>().unwrap() > 212_960, "{printed}");
    let got = recv.json();
    assert_eq!(got["datagrams"], 1);
    assert_eq!(got["bytes"].to_string(), size);
    assert_eq!(got["sha256"], digest);
}

#[test]
fn a_failed_recv_leaves_the_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.txt");
    let link = dir.path().join("link.txt");
    std::fs::write(&keep, "precious").unwrap();
    std::os::unix::fs::symlink("keep.txt", &link).unwrap();
    let before = names(dir.path());

    for out in [&keep, &link] {
        let failed = run(bin().args([
            "recv",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--force",
            "--wait",
            "0.3",
        ]));
        assert_eq!(code(&failed), 4, "{}", stderr(&failed));
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
        assert_eq!(names(dir.path()), before, "no file left behind");
    }

    // A failed receive into a new file leaves no file, so the retry is not refused.
    let new = dir.path().join("new.txt");
    let failed = run(bin().args(["recv", "0", "--out", new.to_str().unwrap(), "--wait", "0.3"]));
    assert_eq!(code(&failed), 4);
    assert!(!new.exists(), "a failed recv created {}", new.display());
    assert_eq!(names(dir.path()), before);
    let recv = Recv::start("0", &["--out", new.to_str().unwrap()]);
    let out = run(bin().args(["send", &recv.addr, "text:retried"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let done = recv.finish();
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "retried");

    // On success through a symlink, the link stays and its target gets the new bytes.
    let recv = Recv::start("0", &["--out", link.to_str().unwrap(), "--force"]);
    let out = run(bin().args(["send", &recv.addr, "text:fresh"]));
    assert!(out.status.success());
    assert!(recv.finish().status.success());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "fresh");
    assert_eq!(names(dir.path()), ["keep.txt", "link.txt", "new.txt"]);
}

#[test]
fn sigterm_and_sigint_remove_the_socket_file_and_the_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.txt");
    std::fs::write(&keep, "precious").unwrap();
    for (scheme, signal, number) in [("unix", "TERM", 15), ("unixgram", "INT", 2)] {
        let sock = dir.path().join("s.sock");
        let listen = format!("{scheme}://{}", sock.display());
        let recv = Recv::start(&listen, &["--out", keep.to_str().unwrap(), "--force"]);
        assert!(sock.exists());
        recv.signal(signal);
        let done = recv.finish();
        assert_eq!(
            done.status.signal(),
            Some(number),
            "{scheme}: {:?}",
            done.status
        );
        assert!(
            !sock.exists(),
            "{scheme}: the socket file is left after SIG{signal}"
        );
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
        assert_eq!(names(dir.path()), ["keep.txt"], "{scheme}");

        // The next recv on the same path starts and works.
        let recv = Recv::start(&listen, &["--json", "--idle-timeout", "0.5"]);
        let out = run(bin().args(["send", &listen, "text:again"]));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(recv.json()["sha256"], sha256(b"again"));
    }
}

#[test]
fn a_stale_socket_is_replaced_and_anything_else_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    let listen = format!("unix://{}", sock.display());
    // A socket file nothing listens on: bound, then closed without removing the file.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(
        std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket()
    );
    let recv = Recv::start(&listen, &["--json"]);
    let out = run(bin().args(["send", &listen, "text:over a stale path"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(recv.json()["sha256"], sha256(b"over a stale path"));

    // The same for a datagram socket left behind.
    let gram_path = dir.path().join("stale-g.sock");
    drop(std::os::unix::net::UnixDatagram::bind(&gram_path).unwrap());
    let gram = format!("unixgram://{}", gram_path.display());
    let recv = Recv::start(&gram, &["--json", "--datagrams", "1"]);
    let out = run(bin().args(["send", &gram, "text:dgram"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(recv.json()["sha256"], sha256(b"dgram"));

    // A live socket is never replaced.
    let live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let refused = run(bin().args(["recv", &listen, "--wait", "0.3"]));
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("in use"), "{}", stderr(&refused));
    let client = std::os::unix::net::UnixStream::connect(&sock);
    assert!(client.is_ok(), "the live listener lost its path");
    drop((client, live));

    // A regular file is never removed, and the message does not advise removing it.
    let file = dir.path().join("data.txt");
    std::fs::write(&file, "not a socket").unwrap();
    for scheme in ["unix", "unixgram"] {
        let refused = run(bin().args([
            "recv",
            &format!("{scheme}://{}", file.display()),
            "--wait",
            "0.3",
        ]));
        assert_eq!(code(&refused), 4, "{}", stderr(&refused));
        let msg = stderr(&refused);
        assert!(msg.contains("not a socket"), "{msg}");
        assert!(!msg.contains("remove"), "{msg}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket");
    }
}

/// Connects to 127.0.0.1:argv[1], sends argv[2] zero bytes, then kills itself (SIGKILL).
const PY_KILLED_SENDER: &str = r#"
import os, signal, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes(int(sys.argv[2])))
os.kill(os.getpid(), signal.SIGKILL)
"#;

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn expect_bytes_detects_a_stream_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("cut.bin");
    let recv = Recv::start(
        "0",
        &[
            "--expect-bytes",
            "1000000",
            "--out",
            out_file.to_str().unwrap(),
            "--json",
        ],
    );
    let py = python(PY_KILLED_SENDER, &[port_of(&recv.addr), "300000"]);
    assert_eq!(py.status.signal(), Some(9));
    let done = recv.finish();
    assert_eq!(code(&done), 6, "{}{}", stdout(&done), stderr(&done));
    let v = json(&done);
    assert_eq!(v["error"]["category"], "verification");
    assert_eq!(v["error"]["kind"], "short");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("300000") && msg.contains("1000000"), "{msg}");
    assert!(!out_file.exists(), "a failed receive placed its output");

    // The whole stream passes; more than expected fails.
    let recv = Recv::start("0", &["--expect-bytes", "300000", "--json"]);
    let py = python(PY_KILLED_SENDER, &[port_of(&recv.addr), "300000"]);
    assert_eq!(py.status.signal(), Some(9));
    let v = recv.json();
    assert_eq!(v["bytes"], 300_000);
    let recv = Recv::start("0", &["--expect-bytes", "299999"]);
    let py = python(PY_KILLED_SENDER, &[port_of(&recv.addr), "300000"]);
    assert_eq!(py.status.signal(), Some(9));
    let done = recv.finish();
    assert_eq!(code(&done), 6);
    assert!(
        stderr(&done).contains("more than 299999 bytes"),
        "{}",
        stderr(&done)
    );
}

#[test]
fn expect_sha256_checks_the_digest() {
    let good = sha256(b"exact bytes");
    let recv = Recv::start("0", &["--expect-sha256", &good.to_uppercase(), "--json"]);
    let out = run(bin().args(["send", &recv.addr, "text:exact bytes"]));
    assert!(out.status.success());
    assert_eq!(recv.json()["sha256"], good);

    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.txt");
    std::fs::write(&keep, "precious").unwrap();
    let recv = Recv::start(
        "0",
        &[
            "--expect-sha256",
            &good,
            "--out",
            keep.to_str().unwrap(),
            "--force",
        ],
    );
    let out = run(bin().args(["send", &recv.addr, "text:exact bytez"]));
    assert!(out.status.success());
    let done = recv.finish();
    assert_eq!(code(&done), 6);
    let msg = stderr(&done);
    assert!(
        msg.contains(&good) && msg.contains(&sha256(b"exact bytez")),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");

    let bad = run(bin().args(["recv", "0", "--expect-sha256", "abc"]));
    assert_eq!(code(&bad), 2);
}

#[test]
fn udp_receive_locks_to_the_first_peer() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("dgrams.bin");
    let recv = Recv::start(
        "udp://0",
        &[
            "--datagrams",
            "2",
            "--json",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let to = recv.addr.strip_prefix("udp://").unwrap().to_string();
    let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    first.send_to(b"one", &to).unwrap();
    stranger.send_to(b"stranger", &to).unwrap();
    stranger.send_to(b"again", &to).unwrap();
    first.send_to(b"two", &to).unwrap();
    let v = recv.json();
    assert_eq!(v["datagrams"], 2);
    assert_eq!(v["bytes"], 6);
    assert_eq!(v["sha256"], sha256(b"onetwo"));
    assert_eq!(v["ignored_datagrams"], 2);
    assert_eq!(v["peer"], first.local_addr().unwrap().to_string());
    assert_eq!(std::fs::read(&out_file).unwrap(), b"onetwo");

    // The human summary says so too.
    let recv = Recv::start("udp://0", &["--datagrams", "2"]);
    let to = recv.addr.strip_prefix("udp://").unwrap().to_string();
    first.send_to(b"one", &to).unwrap();
    stranger.send_to(b"stranger", &to).unwrap();
    first.send_to(b"two", &to).unwrap();
    let done = recv.finish();
    assert!(done.status.success());
    let text = stdout(&done);
    assert!(text.contains("received 6 bytes"), "{text}");
    assert!(
        text.contains("ignored 1 datagram from other peers"),
        "{text}"
    );
}

#[test]
fn an_out_that_is_not_a_regular_file_is_written_in_place() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Held open for reading and writing, so recv's open does not wait for a reader and the
    // bytes stay in the pipe until read below.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let recv = Recv::start("0", &["--out", fifo.to_str().unwrap(), "--force"]);
    let out = run(bin().args(["send", &recv.addr, "text:through the pipe"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let done = recv.finish();
    assert!(done.status.success(), "{}", stderr(&done));
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "--out replaced the FIFO with {kind:?}");
    let mut got = [0u8; 64];
    let n = reader.read(&mut got).unwrap();
    assert_eq!(&got[..n], b"through the pipe");
    assert_eq!(names(dir.path()), ["pipe"]);
}
