//! `sendpackets send` checked by receivers written with Python's `socket` module.

mod util;

use util::{PY_TCP, PY_UDP, PyRecv, bin, json, pattern, run, sha256, stderr};

#[test]
fn tcp_to_python() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(2 << 20, 9);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let py = PyRecv::start(PY_TCP, &[]);
    let target = format!("tcp://127.0.0.1:{}", py.port);
    let out = run(bin().current_dir(dir.path()).args([
        "send",
        &target,
        r"text:HTTP/1.1 200 OK\r\n\r\n",
        "f.bin",
        "f.bin@1M+1000",
        "--disconnect",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    expected.extend_from_slice(&data);
    expected.extend_from_slice(&data[1 << 20..(1 << 20) + 1000]);
    assert_eq!(
        py.finish(),
        format!("{} {}", expected.len(), sha256(&expected))
    );
}

#[test]
fn udp_to_python() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(8_000, 4);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let py = PyRecv::start(PY_UDP, &["3"]);
    let target = format!("udp://127.0.0.1:{}", py.port);
    let out = run(bin().current_dir(dir.path()).args([
        "send",
        &target,
        "hex:0001",
        "f.bin@0+1400",
        "eop",
        "hex:0002",
        "f.bin@1400+1400",
        "eop",
        "text:bye",
        "--json",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["datagrams"], 3);
    let mut expected = vec![0, 1];
    expected.extend_from_slice(&data[..1400]);
    expected.extend_from_slice(&[0, 2]);
    expected.extend_from_slice(&data[1400..2800]);
    expected.extend_from_slice(b"bye");
    assert_eq!(
        py.finish(),
        format!("{} {} 1402,1402,3", expected.len(), sha256(&expected))
    );
}
