//! Error cases: exit codes, messages that name the element and the cause, and `--json` errors.

mod util;

use util::{PY_RESET, PyRecv, Recv, bin, json, pattern, run, run_with_stdin, stderr};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exited")
}

#[test]
fn help_documents_exit_codes_and_syntax() {
    let out = run(bin().args(["send", "--help"]));
    assert!(out.status.success());
    let text = util::stdout(&out);
    for needle in [
        "Exit codes:",
        "PATH@OFFSET+COUNT",
        "text:",
        "hex:",
        "eop",
        "  5  ",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
    assert!(util::stdout(&run(bin().arg("--help"))).contains("Exit codes:"));
}

#[test]
fn usage_errors_exit_2() {
    let bad_element = run(bin().args(["send", "127.0.0.1:9", "text:ok", r"text:\q"]));
    assert_eq!(code(&bad_element), 2);
    assert!(stderr(&bad_element).contains(r"element 1 ('text:\q'): unknown escape \q"));

    let bad_range = run(bin().args(["send", "127.0.0.1:9", "a.bin@12x"]));
    assert_eq!(code(&bad_range), 2);
    assert!(stderr(&bad_range).contains("@OFFSET+COUNT"));

    let bad_target = run(bin().args(["send", "http://x:1", "text:a"]));
    assert_eq!(code(&bad_target), 2);
    assert!(stderr(&bad_target).contains("unknown scheme"));

    assert_eq!(code(&run(bin().args(["send", "127.0.0.1:9"]))), 2);
    assert_eq!(code(&run(bin().args(["send", "127.0.0.1:9", "-", "-"]))), 2);
    assert_eq!(code(&run(bin().arg("frobnicate"))), 2);
}

#[test]
fn input_errors_exit_3_and_name_the_element() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("logs/a.log"), "a").unwrap();
    std::fs::write(dir.path().join("small.bin"), pattern(1024, 0)).unwrap();
    // A listener that is never accepted from: every connect completes through the backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let send = |args: &[&str]| {
        let mut c = bin();
        c.current_dir(dir.path()).arg("send").arg(&addr).args(args);
        run(&mut c)
    };

    let missing = send(&["text:x", "logs/*.log", "logs/b.log"]);
    assert_eq!(code(&missing), 3);
    assert!(
        stderr(&missing).contains("element 2 (logs/b.log): no such file"),
        "{}",
        stderr(&missing)
    );
    assert!(stderr(&missing).contains("nothing was sent"));

    let no_match = send(&["logs/*.txt"]);
    assert_eq!(code(&no_match), 3);
    assert!(stderr(&no_match).contains("element 0 (logs/*.txt): no file matches"));

    let out_of_bounds = send(&["small.bin@5+10000"]);
    assert_eq!(code(&out_of_bounds), 3);
    let msg = stderr(&out_of_bounds);
    assert!(
        msg.contains("element 0 (small.bin): range out of bounds"),
        "{msg}"
    );
    assert!(msg.contains("1024"), "{msg}");

    let directory = send(&["logs"]);
    assert_eq!(code(&directory), 3);
    assert!(stderr(&directory).contains("element 0 (logs): is a directory"));
    drop(listener);
}

#[test]
fn json_errors_are_one_object() {
    let recv = Recv::start("0", &[]);
    let out = run(bin().args(["send", &recv.addr, "text:a", "/no/such/dir/f.bin", "--json"]));
    assert_eq!(code(&out), 3);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["error"]["category"], "input");
    assert_eq!(v["error"]["kind"], "directory_not_found");
    assert_eq!(v["error"]["element"], 1);
    assert_eq!(v["error"]["path"], "/no/such/dir/f.bin");
    assert_eq!(v["bytes_sent"], 0);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("element 1 (/no/such/dir/f.bin)")
    );
    // One numbering: the library names the same element of the same list alike.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let lib = sendpackets::send(
        &a,
        &[
            sendpackets::Element::memory(b"a".to_vec()),
            sendpackets::Element::file("/no/such/dir/f.bin", ..),
        ],
    )
    .unwrap_err();
    assert_eq!(lib.element(), Some(1));
    assert!(
        lib.to_string()
            .starts_with("element 1 (/no/such/dir/f.bin)")
    );
}

#[test]
fn datagram_too_large_exits_3() {
    let recv = Recv::start("udp://0", &["--idle-timeout", "0.3"]);
    let out = run_with_stdin(
        bin().args(["send", &recv.addr, "text:x", "eop", "-", "--json"]),
        &pattern(70_000, 1),
    );
    assert_eq!(code(&out), 3);
    let v = json(&out);
    assert_eq!(v["error"]["kind"], "message_too_large");
    assert_eq!(v["error"]["element"], 2);
    assert_eq!(v["bytes_sent"], 0);
    drop(recv);
}

#[test]
fn connection_errors_exit_4() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(bin().args(["send", &format!("127.0.0.1:{port}"), "text:a"]));
    assert_eq!(code(&out), 4);
    assert!(
        stderr(&out).contains("cannot connect to tcp://127.0.0.1:"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix://{}", dir.path().join("none.sock").display());
    let out = run(bin().args(["send", &nowhere, "text:a", "--json"]));
    assert_eq!(code(&out), 4);
    assert_eq!(json(&out)["error"]["category"], "connection");

    let waited = run(bin().args(["recv", "0", "--wait", "0.2"]));
    assert_eq!(code(&waited), 4);
    assert!(stderr(&waited).contains("no connection within"));
}

#[test]
fn mid_send_failure_exits_5_and_says_how_much_went_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), pattern(64 << 20, 5)).unwrap();
    let py = PyRecv::start(PY_RESET, &[]);
    let target = format!("127.0.0.1:{}", py.port);
    let out = run_with_stdin(
        bin()
            .current_dir(dir.path())
            .args(["send", &target, "text:start", "big.bin", "--json"]),
        b"",
    );
    assert_eq!(py.finish(), "reset");
    assert_eq!(code(&out), 5, "{}", util::stdout(&out));
    let v = json(&out);
    assert_eq!(v["error"]["category"], "transfer");
    let sent = v["bytes_sent"].as_u64().unwrap();
    assert!((1000..64 << 20).contains(&sent), "{sent}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains(&format!("{sent} of {} bytes were sent", (64 << 20) + 5)),
        "{notes}"
    );

    // The human form says the same on stderr.
    let py = PyRecv::start(PY_RESET, &[]);
    let target = format!("127.0.0.1:{}", py.port);
    let out = run(bin()
        .current_dir(dir.path())
        .args(["send", &target, "big.bin"]));
    assert_eq!(py.finish(), "reset");
    assert_eq!(code(&out), 5);
    let msg = stderr(&out);
    assert!(
        msg.starts_with("sendpackets: element 0 (big.bin): "),
        "{msg}"
    );
    assert!(msg.contains("bytes were sent before the error"), "{msg}");
}

#[test]
fn a_check_time_read_failure_exits_3() {
    // A listener that is never accepted from: the connect completes through the backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = run(bin().args(["send", &addr, "text:hi", "/proc/self/mem", "--json"]));
    assert_eq!(code(&out), 3, "{}", util::stdout(&out));
    let v = json(&out);
    assert_eq!(v["error"]["category"], "input");
    assert_eq!(v["error"]["element"], 1);
    assert_eq!(v["bytes_sent"], 0);
    assert!(v["notes"].to_string().contains("nothing was sent"), "{v}");
    drop(listener);
}

#[test]
fn a_file_failure_after_bytes_went_out_exits_5() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    const FILES: usize = 100;
    const FILE_LEN: usize = 300_000;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let name = dir.path().join(format!("f{i:03}.bin"));
        std::fs::write(name, pattern(FILE_LEN, i as u8)).unwrap();
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // A fixed, small receive buffer (inherited by the accepted socket) turns off autotuning,
    // so what can be in flight before the swap below is bounded by the sender's buffer.
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(64 << 10)
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // With 32 descriptors the files cannot all stay open: the last ones are reopened by path
    // when the send reaches them, long after the first bytes went out.
    let child = std::process::Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", r#"ulimit -n 32 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_sendpackets"))
        .args(["send", &addr, "text:start", "f*.bin", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no connection from the sender: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The first bytes arrived, so the checks are done. At most the sender's buffer (4 MiB by
    // default) and our 64 KiB are in flight; the last file starts about 30 MB in. Make it unopenable: a symbolic link to itself (ELOOP).
    let mut head = [0u8; 4096];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head[..5], b"start");
    let last = dir.path().join(format!("f{:03}.bin", FILES - 1));
    std::fs::remove_file(&last).unwrap();
    std::os::unix::fs::symlink(last.file_name().unwrap(), &last).unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    let received = (head.len() + rest.len()) as u64;

    let out = util::finish(child, util::LIMIT);
    assert_eq!(code(&out), 5, "{}{}", util::stdout(&out), stderr(&out));
    let v = json(&out);
    assert_eq!(v["error"]["category"], "transfer");
    assert_eq!(v["error"]["path"], format!("f{:03}.bin", FILES - 1));
    let expected = (5 + (FILES - 1) * FILE_LEN) as u64;
    assert_eq!(v["bytes_sent"], expected, "{v}");
    assert_eq!(received, expected);
}
