//! What only the async front end has: many sends at once on one runtime, and a send future
//! dropped midway.

#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use sendpackets::{Element, FileIo, ProgressHandle, SendOptions};
use tokio::io::AsyncReadExt;
use util::{Files, Front};

/// Peak resident set size of this process, from /proc/self/status.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The tests that count this process's descriptors run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A digest of a byte stream (the receivers keep this, not the bytes).
fn digest(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

#[test]
fn a_thousand_concurrent_sends_on_one_runtime() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1000;
    let files = Files::new();
    let body = files.make("body.bin", 256 * 1024, 5);
    let rt = util::front::runtime(Front::MultiThread);
    let fds_before = util::open_fds();
    let (peak_fds, rss) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pairs = Vec::with_capacity(N);
        for _ in 0..N {
            let (client, accepted) =
                tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
            pairs.push((client.unwrap(), accepted.unwrap().0));
        }
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(N);
        for (i, (client, mut server)) in pairs.into_iter().enumerate() {
            // Each response: its own header, a different 64 KiB range of one file, a trailer.
            let offset = (i as u64 * 97) % (192 * 1024);
            let list = vec![
                Element::memory(format!("HTTP/1.1 200 OK\r\nX-Request: {i}\r\n\r\n")),
                Element::file(&body, offset..offset + 65_536),
                Element::memory(format!("\r\n-- end of {i}\r\n")),
            ];
            let expected = util::model(&list).unwrap();
            let expected = (expected.len(), digest(&expected));
            let peak = std::sync::Arc::clone(&peak);
            let send = tokio::spawn(async move {
                let report = sendpackets::tokio::send(&client, &list).await;
                peak.fetch_max(util::open_fds(), std::sync::atomic::Ordering::Relaxed);
                drop(client);
                report
            });
            let recv = tokio::spawn(async move {
                // Whole response, then digest: 66 KiB at a time per receiver.
                let mut got = Vec::new();
                server.read_to_end(&mut got).await?;
                Ok::<_, std::io::Error>((got.len(), digest(&got)))
            });
            tasks.push((send, recv, expected));
        }
        for (i, (send, recv, expected)) in tasks.into_iter().enumerate() {
            let report = send
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("send {i}: {e}"));
            let got = recv.await.unwrap().unwrap();
            assert_eq!(report.bytes_sent, expected.0 as u64);
            assert_eq!(got, expected, "receiver {i} got other bytes");
        }
        (
            peak.load(std::sync::atomic::Ordering::Relaxed),
            peak_rss_kib(),
        )
    });
    drop(rt);
    eprintln!(
        "{N} concurrent sends: peak open descriptors {peak_fds} (before: {fds_before}), peak RSS {rss} KiB"
    );
    assert!(
        util::open_fds() <= fds_before + 2,
        "no descriptor left open"
    );
}

#[test]
fn dropping_a_send_midway_leaves_a_usable_socket_and_exact_progress() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = Files::new();
    let big = files.make("big.bin", 64 << 20, 6);
    for (front, file_io) in [
        (Front::CurrentThread, FileIo::Inline),
        (Front::MultiThread, FileIo::Inline),
        (Front::CurrentThread, FileIo::Offload),
        (Front::MultiThread, FileIo::Readahead),
    ] {
        // TCP: the send corks around the big file, so dropping it must uncork.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(util::PATIENCE)).unwrap();
        let list = vec![
            Element::memory("header\r\n"),
            Element::file(&big, ..),
            Element::memory("trailer"),
        ];
        let fds_before = util::open_fds();
        let progress = ProgressHandle::new();
        let opts = SendOptions::new().file_io(file_io).observe(&progress);
        let rt = util::front::runtime(front);
        let client = rt.block_on(async {
            client.set_nonblocking(true).unwrap();
            let tokio_client = tokio::net::TcpStream::from_std(client).unwrap();
            // Nobody reads yet: the socket fills, and the send is dropped after 200 ms.
            let send = sendpackets::tokio::send_with(&tokio_client, &list, &opts);
            let r = tokio::time::timeout(Duration::from_millis(200), send).await;
            assert!(
                r.is_err(),
                "{front:?} {file_io:?}: the send was still running"
            );
            tokio_client.into_std().unwrap()
        });
        drop(rt); // waits for an offloaded read to finish
        // Every file the send opened is closed.
        assert_eq!(util::open_fds(), fds_before, "{front:?} {file_io:?}");
        // Uncorked, and usable: resume from the progress handle, then close.
        let p = progress.get();
        assert!(
            p.bytes_sent > 0,
            "{front:?} {file_io:?}: something was sent"
        );
        assert!(
            !util::cork_on(&client),
            "{front:?} {file_io:?}: left uncorked"
        );
        client.set_nonblocking(false).unwrap();
        let rest = p.remaining(&list);
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut got = Vec::new();
            server.read_to_end(&mut got).map(|_| got)
        });
        let report = sendpackets::send(&client, &rest).unwrap();
        drop(client);
        let got = reader.join().unwrap().unwrap();
        // What arrived is exactly what the handle said, then the rest: the whole model.
        assert_eq!(p.bytes_sent + report.bytes_sent, got.len() as u64);
        assert!(
            got == util::model(&list).unwrap(),
            "{front:?} {file_io:?}: the resumed send completes the exact bytes"
        );
    }
}

#[test]
fn a_blocked_send_never_blocks_the_runtime() {
    // Current-thread runtime: while one send waits for a full socket, another task runs.
    util::front::block_on(Front::CurrentThread, async {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let big = Element::memory(vec![3u8; 16 << 20]);
        let list = [big];
        let send = sendpackets::tokio::send(&a, &list);
        let ticker = async {
            // Only this task can drain the socket: if the send blocked the thread, this would
            // never run and the send would never finish.
            let mut got = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            while got < 16 << 20 {
                got += b.read(&mut buf).await.unwrap();
            }
            got
        };
        let (report, got) =
            tokio::time::timeout(util::PATIENCE, async { tokio::join!(send, ticker) })
                .await
                .expect("no hang");
        assert_eq!(report.unwrap().bytes_sent, 16 << 20);
        assert_eq!(got, 16 << 20);
    });
}
