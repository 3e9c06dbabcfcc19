//! Every success case over TCP (IPv4 and IPv6) and Unix stream sockets, through every engine,
//! with the receiver checking the exact bytes.

mod util;

use std::os::unix::net::UnixStream;

use sendpackets::{Element, Engine, SendOptions, TransmitFlags};
use util::{Files, Kind, cases};

#[test]
fn every_case_sends_exactly_the_model() {
    let files = Files::new();
    for case in cases::success_cases(&files) {
        eprintln!("case: {}", case.name);
        util::assert_sends_exactly(&case.list);
    }
}

#[test]
fn relative_path_resolves_against_the_working_directory() {
    // The test binary's working directory is the package root.
    let list = [
        Element::file("Cargo.toml", ..),
        Element::file("src/lib.rs", 3..90),
    ];
    util::assert_sends_exactly(&list);
}

#[test]
fn proc_file_is_sent_through_the_copy_path() {
    // procfs reports size 0; the send reads the file once at the start.
    let (result, got) = util::roundtrip(
        Kind::Unix,
        Engine::Auto,
        &[Element::file("/proc/version", ..)],
    );
    let report = result.unwrap();
    let expected = std::fs::read("/proc/version").unwrap();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    assert_eq!(report.bytes_sent, expected.len() as u64);
    // /proc/self/status: sendfile refuses it (EINVAL); its contents change, so check the shape.
    let (result, got) = util::roundtrip(
        Kind::Tcp4,
        Engine::ZeroCopy,
        &[
            Element::file("/proc/self/status", ..),
            Element::file("/proc/self/status", 0..5),
        ],
    );
    let report = result.unwrap();
    assert_eq!(report.bytes_sent, got.len() as u64);
    assert!(got.starts_with(b"Name:"));
    assert!(got.ends_with(b"Name:"));
}

#[test]
fn sparse_3_gib_file_from_offset_past_2_gib() {
    use std::os::unix::fs::FileExt;
    let files = Files::new();
    let path = files.path("sparse.bin");
    let f = std::fs::File::create(&path).unwrap();
    let size: u64 = 3 << 30;
    f.set_len(size).unwrap();
    let start: u64 = (1 << 31) + 7;
    let markers = [start, start + 0x7fff_f000 / 2 + 1, size - 1];
    for (i, &m) in markers.iter().enumerate() {
        f.write_all_at(&[i as u8 + 1], m).unwrap();
    }
    drop(f);
    for engine in [Engine::Auto, Engine::Portable] {
        let (sender, handle) = util::stream_pair_with(Kind::Tcp4, |mut end| {
            // Record the positions of the nonzero bytes instead of keeping a GiB.
            use std::io::Read;
            let mut buf = vec![0u8; 1 << 20];
            let (mut total, mut found) = (0u64, Vec::new());
            loop {
                let n = end.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                for (i, &b) in buf[..n].iter().enumerate() {
                    if b != 0 {
                        found.push(total + i as u64);
                        found.push(b as u64);
                    }
                }
                total += n as u64;
            }
            found.push(total);
            Ok(found.iter().flat_map(|v| v.to_le_bytes()).collect())
        });
        let report = sendpackets::send_with(
            &sender,
            &[Element::file(&path, start..)],
            &SendOptions::new().engine(engine),
        )
        .unwrap();
        drop(sender);
        let raw = handle.join().unwrap().unwrap();
        let found: Vec<u64> = raw
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let expected: Vec<u64> = markers
            .iter()
            .enumerate()
            .flat_map(|(i, &m)| [m - start, i as u64 + 1])
            .chain([size - start])
            .collect();
        assert_eq!(found, expected, "{engine:?}");
        assert_eq!(report.bytes_sent, size - start);
    }
}

#[test]
fn disconnect_shuts_the_connection_down() {
    let files = Files::new();
    let body = files.make("body.bin", 100_000, 9);
    for (front, kind) in util::FRONTS
        .into_iter()
        .flat_map(|f| util::STREAM_KINDS.map(|k| (f, k)))
    {
        let (sender, receiver) = util::stream_pair(kind);
        let list = [Element::memory("head"), Element::file(&body, ..)];
        let opts = SendOptions::new().flags(TransmitFlags::DISCONNECT);
        let report = util::send_via(front, &sender, &list, &opts).unwrap();
        // The receiver sees end of stream although the sender is still open.
        let got = receiver.bytes();
        assert_eq!(got, util::model(&list).unwrap());
        assert_eq!(report.bytes_sent, got.len() as u64);
        // A later send on the socket fails.
        let err = sendpackets::send(&sender, &[Element::memory("more")]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                sendpackets::ErrorKind::Socket | sendpackets::ErrorKind::NotConnected
            ),
            "{front:?} {kind:?}: {err}"
        );
    }
}

#[test]
fn reuse_socket_needs_an_owned_socket() {
    // Replacing a descriptor is for its owner: `send_reusing` takes `&mut OwnedFd`.
    let (sender, receiver) = util::stream_pair(Kind::Tcp4);
    let util::Sender::Tcp(tcp) = sender else {
        unreachable!()
    };
    let mut fd = std::os::fd::OwnedFd::from(tcp);
    let opts = SendOptions::new().flags(TransmitFlags::DISCONNECT | TransmitFlags::REUSE_SOCKET);
    sendpackets::send_reusing(&mut fd, &[Element::memory("bye")], &opts).unwrap();
    assert_eq!(receiver.bytes(), b"bye");
    let err = sendpackets::send(&fd, &[]).unwrap_err();
    assert_eq!(err.kind(), sendpackets::ErrorKind::NotConnected);
    // Every front end that borrows its socket refuses the flag before the first byte.
    for front in util::FRONTS {
        let (sender, receiver) = util::stream_pair(Kind::Tcp4);
        let err = util::send_via(front, &sender, &[Element::memory("no")], &opts).unwrap_err();
        assert_eq!(err.kind(), sendpackets::ErrorKind::Misuse, "{front:?}");
        assert_eq!(err.progress().bytes_sent, 0);
        drop(sender);
        assert!(receiver.bytes().is_empty(), "{front:?}");
    }
}

#[test]
fn send_size_caps_calls_without_changing_bytes() {
    let files = Files::new();
    let f = files.make("f.bin", 300_000, 5);
    let list = [
        Element::memory("abc"),
        Element::file(&f, ..),
        Element::memory(vec![7u8; 5000]),
    ];
    let expected = util::model(&list).unwrap();
    for (front, engine) in util::FRONTS
        .into_iter()
        .flat_map(|f| util::ENGINES.map(|e| (f, e)))
    {
        let opts = SendOptions::new().engine(engine).send_size(4096);
        let (result, got) = util::roundtrip_via(front, Kind::Unix, &list, &opts);
        let report = result.unwrap();
        assert!(got == expected, "{front:?} {engine:?}");
        let calls = report.calls.gather_writes + report.calls.sendfile;
        assert!(
            calls >= expected.len() as u64 / 4096,
            "{engine:?}: {calls} calls"
        );
    }
}

#[test]
fn nonblocking_socket_waits_for_room() {
    // The blocking front on a non-blocking socket (it polls); the async fronts always wait.
    let files = Files::new();
    let f = files.make("big.bin", 8 << 20, 6);
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut b = b;
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut v = Vec::new();
        b.read_to_end(&mut v).map(|_| v)
    });
    let list = [
        Element::memory("x"),
        Element::file(&f, ..),
        Element::memory(vec![1u8; 1 << 20]),
    ];
    let report = sendpackets::send(&a, &list).unwrap();
    drop(a);
    let got = reader.join().unwrap().unwrap();
    assert!(got == util::model(&list).unwrap());
    assert!(report.calls.waits > 0, "the socket filled up at least once");
}

#[test]
fn tcp_is_corked_around_header_file_and_trailer_on_every_front() {
    // One policy on every path: loopback TCP is corked around header + sendfile + trailer as a
    // real link is, and always left uncorked.
    let files = Files::new();
    let f = files.make("big.bin", 512 << 10, 8);
    for front in util::FRONTS {
        let (sender, receiver) = util::stream_pair(Kind::Tcp4);
        let list = [
            Element::memory("H"),
            Element::file(&f, ..),
            Element::memory("T"),
        ];
        let report = util::send_via(front, &sender, &list, &SendOptions::new()).unwrap();
        assert!(report.calls.sendfile > 0);
        assert!(report.calls.cork_toggles >= 2, "{front:?}");
        let util::Sender::Tcp(tcp) = &sender else {
            unreachable!()
        };
        assert!(!util::cork_on(tcp), "{front:?}");
        drop(sender);
        assert!(receiver.bytes() == util::model(&list).unwrap());
    }
}

#[test]
fn any_connected_socket_as_asfd() {
    // A socket2 socket connected over IPv6 loopback, given as AsFd.
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
    sock.connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(util::PATIENCE)).unwrap();
    let report = sendpackets::send(&sock, &[Element::memory("via socket2")]).unwrap();
    drop(sock);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut server, &mut got).unwrap();
    assert_eq!(got, "via socket2");
    assert_eq!(report.bytes_sent, 11);
}

#[test]
fn progress_handle_follows_the_send_and_its_failure() {
    let files = Files::new();
    let f = files.make("p.bin", 4 << 20, 3);
    let list = [
        Element::memory("h"),
        Element::file(&f, ..),
        Element::memory("t"),
    ];
    for front in util::FRONTS {
        let (sender, receiver) = util::stream_pair(Kind::Unix);
        let progress = sendpackets::ProgressHandle::new();
        let watcher = progress.clone();
        let opts = SendOptions::new();
        let report =
            util::send_observed_via(front, &sender, &list, &opts, Some(&progress)).unwrap();
        drop(sender);
        assert_eq!(receiver.bytes().len() as u64, report.bytes_sent);
        let seen = watcher.get();
        assert_eq!(seen.bytes_sent, report.bytes_sent, "{front:?}");
        assert_eq!(seen.elements_completed, list.len());
        // After a failure, the handle holds the error's progress.
        let missing_later = [Element::memory("x"), Element::file(files.path("none"), ..)];
        let (sender, _receiver) = util::stream_pair(Kind::Unix);
        let progress = sendpackets::ProgressHandle::new();
        let err = util::send_observed_via(front, &sender, &missing_later, &opts, Some(&progress))
            .unwrap_err();
        assert_eq!(progress.get(), err.progress(), "{front:?}");
    }
}

#[test]
fn bulk_ranges_go_zero_copy_on_every_path() {
    // A range of 1 MiB or more goes out with sendfile over loopback TCP as over a Unix socket
    // or a real link (no loopback rule); the portable engine copies it in bounded chunks.
    let files = Files::new();
    let f = files.make("bulk.bin", 3 << 20, 4);
    let list = [
        Element::memory("h"),
        Element::file(&f, ..),
        Element::memory("t"),
    ];
    let expected = util::model(&list).unwrap();
    for (kind, engine, zero_copy) in [
        (Kind::Tcp4, Engine::Auto, true),
        (Kind::Tcp6, Engine::Auto, true),
        (Kind::Unix, Engine::Auto, true),
        (Kind::Tcp4, Engine::ZeroCopy, true),
        (Kind::Tcp4, Engine::Portable, false),
    ] {
        let (r, got) = util::roundtrip(kind, engine, &list);
        let report = r.unwrap();
        assert!(got == expected, "{kind:?} {engine:?}");
        assert_eq!(
            report.calls.sendfile > 0,
            zero_copy,
            "{kind:?} {engine:?}: {:?}",
            report.calls
        );
        if !zero_copy {
            // 128 KiB chunks (the bound on memory per send): 24 or 25 reads for 3 MiB.
            assert!(
                (24..=25).contains(&report.calls.file_reads),
                "{:?}",
                report.calls
            );
        }
    }
}

#[test]
fn one_connection_many_sends_then_disconnect() {
    let files = Files::new();
    let f = files.make("page.bin", 3000, 5);
    let (sender, receiver) = util::stream_pair(Kind::Tcp4);
    let mut conn = sendpackets::Connection::new(&sender).unwrap();
    let mut list = Vec::new();
    for i in 0..200u64 {
        let one = [
            Element::memory(format!("HTTP/1.1 200 OK\r\nX-N: {i}\r\n\r\n")),
            Element::file(&f, i..i + 1000),
        ];
        let report = conn.send(&one).unwrap();
        assert_eq!(report.bytes_sent, util::model(&one).unwrap().len() as u64);
        assert_eq!(report.datagrams, 0);
        list.extend(one);
    }
    conn.set_options(SendOptions::new().flags(TransmitFlags::DISCONNECT));
    conn.send(&[Element::memory("bye")]).unwrap();
    list.push(Element::memory("bye"));
    assert!(receiver.bytes() == util::model(&list).unwrap());
    // The connection is over: a later send fails with the socket's error.
    let err = conn.send(&[Element::memory("more")]).unwrap_err();
    assert_eq!(err.kind(), sendpackets::ErrorKind::Socket, "{err}");
    assert_eq!(err.progress().bytes_sent, 0);
}

/// A watched send (a progress handle) or one with a deadline makes no call larger than a few
/// MiB, so the watcher and the deadline act between calls: one `sendfile` into a blocking local
/// socket used to move a whole 32 MiB file, and a progress bar showed nothing until the end.
#[test]
fn a_watched_send_makes_bounded_calls() {
    let files = Files::new();
    let path = files.make("big.bin", 32 << 20, 3);
    let list = [Element::file(&path, ..)];
    let expected = std::fs::read(&path).unwrap();
    let progress = sendpackets::ProgressHandle::new();
    for opts in [
        SendOptions::new().observe(&progress),
        SendOptions::new().timeout(std::time::Duration::from_secs(60)),
    ] {
        let (sender, receiver) = util::stream_pair(Kind::Unix);
        let report = sendpackets::send_with(&sender, &list, &opts).unwrap();
        drop(sender);
        assert_eq!(receiver.bytes(), &expected[..]);
        let calls = report.calls.sendfile + report.calls.gather_writes;
        assert!(calls >= 8, "32 MiB in {calls} calls: {:?}", report.calls);
    }
    assert_eq!(progress.get().bytes_sent, 32 << 20);
}
