//! Every check before the first byte: the error's kind, its element, and 0 bytes received.
//! Then failures mid-send: peer gone, file truncated, with exact progress.

mod util;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;

use sendpackets::{Element, Engine, ErrorKind, SendOptions};
use util::{Files, Kind};

/// Sends `list` over every stream kind and engine, through every front end; asserts the error
/// and that nothing arrived.
fn assert_rejected(list: &[Element], kind: ErrorKind, element: usize) {
    for front in util::FRONTS {
        for sock in util::STREAM_KINDS {
            for engine in util::ENGINES {
                let opts = SendOptions::new().engine(engine);
                let (result, got) = util::roundtrip_via(front, sock, list, &opts);
                let err = result.expect_err("the list is rejected");
                assert_eq!(err.kind(), kind, "{front:?} {sock:?} {engine:?}: {err}");
                assert_eq!(err.element(), Some(element), "{err}");
                assert_eq!(err.progress().bytes_sent, 0);
                assert!(got.is_empty(), "0 bytes reach the receiver");
            }
        }
    }
}

#[test]
fn missing_file() {
    let files = Files::new();
    let ok = files.make("ok.bin", 10, 1);
    let missing = files.path("missing.bin");
    let list = [
        Element::memory("header"),
        Element::file(&ok, ..),
        Element::file(&missing, ..),
    ];
    assert_rejected(&list, ErrorKind::FileNotFound, 2);
    let (result, _) = util::roundtrip(Kind::Unix, Engine::Auto, &list);
    let err = result.unwrap_err();
    assert_eq!(err.path(), Some(missing.as_path()));
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let text = err.to_string();
    assert!(
        text.starts_with("element 2 (") && text.contains("no such file"),
        "{text}"
    );
}

#[test]
fn missing_directory() {
    let files = Files::new();
    let list = [
        Element::memory("h"),
        Element::file(files.path("nodir/file.bin"), ..),
    ];
    assert_rejected(&list, ErrorKind::DirectoryNotFound, 1);
    // A file used as a directory is a missing directory too.
    let f = files.make("plain", 3, 1);
    assert_rejected(
        &[Element::file(f.join("x"), ..)],
        ErrorKind::DirectoryNotFound,
        0,
    );
}

#[test]
fn empty_path() {
    assert_rejected(
        &[Element::memory("h"), Element::file("", ..)],
        ErrorKind::EmptyPath,
        1,
    );
}

#[test]
fn directory_as_file() {
    let files = Files::new();
    assert_rejected(
        &[Element::file(files.dir.path(), ..)],
        ErrorKind::IsADirectory,
        0,
    );
}

#[test]
fn offset_past_end() {
    let files = Files::new();
    let f = files.make("f.bin", 1024, 1);
    let list = [Element::memory("h"), Element::file(&f, 11000..)];
    assert_rejected(&list, ErrorKind::RangeOutOfBounds, 1);
    let list = [Element::file(
        &f,
        sendpackets::FileRange::from_dotnet_count_or_to_end(11000, 5),
    )];
    assert_rejected(&list, ErrorKind::RangeOutOfBounds, 0);
}

#[test]
fn range_past_end() {
    let files = Files::new();
    let f = files.make("f.bin", 1024, 1);
    let list = [
        Element::file(&f, 0..10),
        Element::file(
            &f,
            sendpackets::FileRange::from_dotnet_count_or_to_end(5, 10000),
        ),
    ];
    assert_rejected(&list, ErrorKind::RangeOutOfBounds, 1);
    let (result, _) = util::roundtrip(Kind::Unix, Engine::Auto, &list);
    assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn fifo_is_not_a_regular_file() {
    let files = Files::new();
    let fifo = files.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_rejected(&[Element::file(&fifo, ..)], ErrorKind::NotARegularFile, 0);
}

#[test]
fn write_only_handle_is_refused() {
    let files = Files::new();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(files.path("w"))
        .unwrap();
    assert_rejected(&[Element::handle(f, ..)], ErrorKind::PermissionDenied, 0);
}

#[test]
fn not_connected_even_for_an_empty_list() {
    // A TCP socket that was never connected.
    for front in util::FRONTS {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let err = util::send_via(front, &sock, &[], &SendOptions::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
        assert_eq!(err.element(), None);
        // A UDP socket without a default remote, with a missing file in the list: not
        // connected comes first.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let list = [Element::file("/no/such", ..)];
        let err = util::send_via(front, &udp, &list, &SendOptions::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotConnected);
    }
}

#[test]
fn not_a_socket() {
    // Blocking only: a tokio socket cannot be made from a file.
    let f = std::fs::File::open("Cargo.toml").unwrap();
    let err = sendpackets::send(&f, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedSocket);
}

#[test]
fn peer_shutdown_mid_send_reports_exactly_what_arrived() {
    // Unix stream: the receiver reads 1 MiB, shuts its read side (the sender's next write
    // fails with EPIPE), then drains what was already queued. Every byte the kernel accepted is
    // in that queue, so progress equals what the receiver got.
    let files = Files::new();
    let f = files.make("f.bin", 16 << 20, 2);
    let list = [
        Element::memory(vec![9u8; 100_000]),
        Element::file(&f, ..),
        Element::memory("end"),
    ];
    for (front, engine) in fronts_and_engines() {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(util::PATIENCE)).unwrap();
        let reader = std::thread::spawn(move || {
            let mut b = b;
            let mut got = vec![0u8; 1 << 20];
            b.read_exact(&mut got)?;
            b.shutdown(std::net::Shutdown::Read)?;
            b.read_to_end(&mut got)?;
            Ok::<_, std::io::Error>(got)
        });
        let opts = SendOptions::new().engine(engine);
        let err = util::send_via(front, &a, &list, &opts).unwrap_err();
        drop(a);
        let got = reader.join().unwrap().unwrap();
        assert_eq!(err.kind(), ErrorKind::Socket, "{front:?} {engine:?}: {err}");
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        let p = err.progress();
        assert_eq!(p.bytes_sent, got.len() as u64, "{front:?} {engine:?}");
        assert!(got[..] == util::model(&list).unwrap()[..got.len()]);
        // Progress points into the file element.
        assert_eq!(p.elements_completed, 1);
        assert_eq!(p.offset_in_element, p.bytes_sent - 100_000);
        assert_eq!(err.element(), Some(1));
        // What is left, sent after what arrived, makes the whole.
        let rest = util::model(&err.progress().remaining(&list)).unwrap();
        assert_eq!(got.len() + rest.len(), util::model(&list).unwrap().len());
    }
}

#[test]
fn peer_reset_mid_send_over_tcp() {
    // TCP discards what was in flight when the peer resets, so progress is at least what
    // arrived, and what arrived is a prefix of the model.
    let files = Files::new();
    let f = files.make("f.bin", 32 << 20, 3);
    let list = [Element::memory("h"), Element::file(&f, ..)];
    for (front, engine) in fronts_and_engines() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut server = server;
            let mut got = vec![0u8; 256 * 1024];
            server.read_exact(&mut got).map(|_| got) // then dropped: unread data → RST
        });
        let opts = SendOptions::new().engine(engine);
        let err = util::send_via(front, &client, &list, &opts).unwrap_err();
        let got = reader.join().unwrap().unwrap();
        assert_eq!(err.kind(), ErrorKind::Socket, "{front:?} {engine:?}: {err}");
        assert!(
            matches!(err.raw_os_error(), Some(libc::ECONNRESET | libc::EPIPE)),
            "{err}"
        );
        assert!(err.progress().bytes_sent >= got.len() as u64);
        assert!(got[..] == util::model(&list).unwrap()[..got.len()]);
    }
}

#[test]
fn file_truncated_during_send_is_an_error_not_a_hang() {
    let files = Files::new();
    for (front, engine) in fronts_and_engines() {
        let path = files.make("shrinking.bin", 64 << 20, 4);
        let list = vec![
            Element::memory("head"),
            Element::file(&path, ..),
            Element::memory("tail"),
        ];
        let truncate_to = 16u64 << 20;
        let p2 = path.clone();
        let (sender, handle) = util::stream_pair_with(Kind::Tcp4, move |mut end| {
            let mut got = vec![0u8; 1 << 20];
            end.read_exact(&mut got)?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p2)?
                .set_len(truncate_to)?;
            end.read_to_end(&mut got)?;
            Ok(got)
        });
        let list2 = list.clone();
        let (err, sender) = util::within_patience(move || {
            let opts = SendOptions::new().engine(engine);
            let r = util::send_via(front, &sender, &list2, &opts);
            (r.unwrap_err(), sender)
        });
        drop(sender);
        let got = handle.join().unwrap().unwrap();
        assert_eq!(
            err.kind(),
            ErrorKind::FileTruncated,
            "{front:?} {engine:?}: {err}"
        );
        assert_eq!(err.element(), Some(1));
        assert_eq!(err.path(), Some(path.as_path()));
        // Every accepted byte arrives (the socket is healthy); nothing past the new end.
        assert_eq!(err.progress().bytes_sent, got.len() as u64);
        assert!(got.len() as u64 <= 4 + truncate_to);
    }
}

/// Every engine through every front end.
fn fronts_and_engines() -> impl Iterator<Item = (util::Front, sendpackets::Engine)> {
    util::FRONTS
        .into_iter()
        .flat_map(|f| util::ENGINES.into_iter().map(move |e| (f, e)))
}

#[test]
fn blocking_socket_send_timeout_is_timed_out_with_progress() {
    // Blocking only: SO_SNDTIMEO expires while nobody reads; the error says how far it got.
    let (a, b) = UnixStream::pair().unwrap();
    a.set_write_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let list = [Element::memory(vec![1u8; 64 << 20])];
    let err = util::within_patience(move || sendpackets::send(&a, &list).unwrap_err());
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let sent = err.progress().bytes_sent;
    assert!(sent > 0 && sent < 64 << 20);
    b.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let _ = (&b).read_to_end(&mut got);
    assert_eq!(
        got.len() as u64,
        sent,
        "progress is exactly what was queued"
    );
}

#[test]
fn short_lists_with_explicit_ranges_fail_exactly_like_long_ones() {
    // Short lists of known length take the express path (read all, then one send) and skip
    // the checks; when it fails they must give the same errors, with 0 bytes received.
    let files = Files::new();
    let ok = files.make("ok.bin", 1024, 1);
    let dir = files.dir.path().to_path_buf();
    assert_rejected(
        &[
            Element::memory("h"),
            Element::file(files.path("missing.bin"), 0..10),
        ],
        ErrorKind::FileNotFound,
        1,
    );
    assert_rejected(
        &[Element::file(files.path("no/such/dir.bin"), 0..10)],
        ErrorKind::DirectoryNotFound,
        0,
    );
    assert_rejected(&[Element::file("", 0..1)], ErrorKind::EmptyPath, 0);
    // Empty ranges and devices are checked too, though a read would not fail.
    assert_rejected(
        &[
            Element::memory("hdr"),
            Element::file(files.path("missing.bin"), 5..5),
        ],
        ErrorKind::FileNotFound,
        1,
    );
    assert_rejected(
        &[
            Element::memory("h"),
            Element::file(&ok, sendpackets::FileRange::new(2000, Some(0))),
        ],
        ErrorKind::RangeOutOfBounds,
        1,
    );
    assert_rejected(
        &[Element::file("/dev/zero", 0..10)],
        ErrorKind::NotARegularFile,
        0,
    );
    let zero = std::fs::File::open("/dev/zero").unwrap();
    assert_rejected(
        &[Element::memory("h"), Element::handle(zero, 0..10)],
        ErrorKind::NotARegularFile,
        1,
    );
    assert_rejected(&[Element::file(&dir, 0..1)], ErrorKind::IsADirectory, 0);
    assert_rejected(
        &[Element::memory("x"), Element::file(&ok, 5..10_005)],
        ErrorKind::RangeOutOfBounds,
        1,
    );
    assert_rejected(
        &[Element::file(&ok, 1000..1025), Element::memory("t")],
        ErrorKind::RangeOutOfBounds,
        0,
    );
    let wo = std::fs::OpenOptions::new().write(true).open(&ok).unwrap();
    assert_rejected(
        &[Element::memory("x"), Element::handle(wo, 0..5)],
        ErrorKind::PermissionDenied,
        1,
    );
    let fifo = files.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_rejected(&[Element::file(&fifo, 0..1)], ErrorKind::NotARegularFile, 0);
    // Not connected: the send fails, the checks name the cause.
    for front in util::FRONTS {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let list = [Element::memory("x"), Element::file(&ok, 0..10)];
        let err = util::send_via(front, &udp, &list, &SendOptions::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
        let unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let err = util::send_via(front, &unix, &list, &SendOptions::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
    }
    let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let err = sendpackets::send(&tcp, &[Element::memory("x")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    let f = std::fs::File::open(&ok).unwrap();
    let err = sendpackets::send(&f, &[Element::memory("x")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedSocket);
}
