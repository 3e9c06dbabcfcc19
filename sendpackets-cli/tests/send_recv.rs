//! `sendpackets send` into `sendpackets recv`, over every socket kind, checked by SHA-256.

mod util;

use util::{Recv, bin, json, pattern, run, run_with_stdin, sha256, stderr, stdout};

#[test]
fn tcp_files_ranges_text_hex_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let a = pattern(300_000, 1);
    let b = pattern(5_000, 2);
    std::fs::write(dir.path().join("a.bin"), &a).unwrap();
    std::fs::write(dir.path().join("b.bin"), &b).unwrap();
    let stdin = b"from stdin\n".to_vec();

    let recv = Recv::start("127.0.0.1:0", &["--json"]);
    let out = run_with_stdin(
        bin().current_dir(dir.path()).args([
            "send",
            &recv.addr,
            r"text:HEAD\r\n\x00",
            "a.bin@4096+65536",
            "hex:de ad:be_ef",
            "b.bin",
            "-",
            "a.bin@299990",
            "--json",
        ]),
        &stdin,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected = b"HEAD\r\n\0".to_vec();
    expected.extend_from_slice(&a[4096..4096 + 65536]);
    expected.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    expected.extend_from_slice(&b);
    expected.extend_from_slice(&stdin);
    expected.extend_from_slice(&a[299_990..]);

    let sent = json(&out);
    assert_eq!(sent["ok"], true);
    assert_eq!(sent["bytes_sent"], expected.len() as u64);
    assert_eq!(sent["elements"], 6);
    assert!(sent["calls"]["gather_writes"].as_u64().unwrap() >= 1);

    let got = recv.json();
    assert_eq!(got["bytes"], expected.len() as u64);
    assert_eq!(got["sha256"], sha256(&expected));
    assert!(got["datagrams"].is_null());
}

#[test]
fn every_engine_and_send_size_delivers_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 << 20, 7);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    for engine in ["auto", "zero-copy", "portable"] {
        let recv = Recv::start("tcp://:0", &["--json"]);
        let out = run(bin().args([
            "send",
            &recv.addr,
            file.to_str().unwrap(),
            "--engine",
            engine,
            "--send-size",
            "64K",
            "--disconnect",
            "--quiet",
        ]));
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        let got = recv.json();
        assert_eq!(got["sha256"], sha256(&data), "{engine}");
    }
}

#[test]
fn glob_sends_sorted_files_and_out_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for (name, body) in [
        ("c.log", "third\n"),
        ("a.log", "first\n"),
        ("b.log", "second\n"),
    ] {
        std::fs::write(logs.join(name), body).unwrap();
    }
    std::fs::write(logs.join("skip.txt"), "no").unwrap();
    let copy = dir.path().join("copy.txt");

    let recv = Recv::start("0", &["--out", copy.to_str().unwrap()]);
    let out =
        run(bin()
            .current_dir(dir.path())
            .args(["send", &recv.addr, "logs/*.log", "text:end\n"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let done = recv.finish();
    assert!(done.status.success());
    let expected = "first\nsecond\nthird\nend\n";
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), expected);
    let text = stdout(&done);
    assert!(
        text.contains(&format!("received {} bytes", expected.len())),
        "{text}"
    );
    assert!(text.contains(&sha256(expected.as_bytes())), "{text}");

    // --out never overwrites without --force.
    let refused = run(bin().args(["recv", "0", "--out", copy.to_str().unwrap()]));
    assert_eq!(refused.status.code(), Some(3));
    assert!(stderr(&refused).contains("exists"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--force"));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), expected);

    let recv = Recv::start("0", &["--out", copy.to_str().unwrap(), "--force"]);
    let out = run(bin().args(["send", &recv.addr, "text:new"]));
    assert!(out.status.success());
    assert!(recv.finish().status.success());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "new");
}

#[test]
fn udp_datagrams_follow_eop_markers() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(10_000, 3);
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let recv = Recv::start("udp://0", &["--json", "--datagrams", "4"]);
    let out = run(bin().current_dir(dir.path()).args([
        "send",
        &recv.addr,
        "hex:01",
        "d.bin@0+1200",
        "eop",
        "hex:02",
        "d.bin@1200+1200",
        "eop",
        "eop",
        "text:last",
        "--json",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["datagrams"], 4);
    let got = recv.json();
    let mut expected = vec![1];
    expected.extend_from_slice(&data[..1200]);
    expected.push(2);
    expected.extend_from_slice(&data[1200..2400]);
    expected.extend_from_slice(b"last");
    assert_eq!(got["datagrams"], 4);
    assert_eq!(got["bytes"], expected.len() as u64);
    assert_eq!(got["sha256"], sha256(&expected));
}

#[test]
fn unix_stream_and_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let listen = format!("unix://{}", sock.display());
    let recv = Recv::start(&listen, &["--json"]);
    assert_eq!(recv.addr, listen);
    let out = run(bin().args(["send", &listen, "text:over unix", "--disconnect"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(recv.json()["sha256"], sha256(b"over unix"));
    assert!(!sock.exists(), "recv removes its socket file");

    let gram = format!("unixgram://{}", dir.path().join("g.sock").display());
    let recv = Recv::start(&gram, &["--json", "--idle-timeout", "0.5"]);
    let out = run(bin().args(["send", &gram, "text:one", "eop", "text:two"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let got = recv.json();
    assert_eq!(got["datagrams"], 2);
    assert_eq!(got["sha256"], sha256(b"onetwo"));
}

#[test]
fn quiet_when_piped() {
    let recv = Recv::start("0", &[]);
    let out = run(bin().args(["send", &recv.addr, "text:hello"]));
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    let done = recv.finish();
    assert!(stdout(&done).contains(&sha256(b"hello")));
}
