//! The completion-style API (`send_packets_async`), checked against the behaviour of .NET's
//! `Socket.SendPacketsAsync`: synchronous completion without a callback, pending completion
//! with exactly one callback, reuse of one arguments object, and which errors come from the
//! start call and which arrive as the result.

#![cfg(feature = "tokio")]

mod util;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sendpackets::tokio::{SendPacketsArgs, Started, send_packets_async};
use sendpackets::{Element, ErrorKind};
use util::{Files, Front};

/// A tokio Unix stream for the sender and a std one for the receiver.
fn unix_pair() -> (Arc<tokio::net::UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_read_timeout(Some(util::PATIENCE)).unwrap();
    (Arc::new(tokio::net::UnixStream::from_std(a).unwrap()), b)
}

/// Arguments whose callback counts its calls and hands the object over a channel.
fn counted_args(
    calls: &Arc<AtomicUsize>,
) -> (
    SendPacketsArgs<&'static str>,
    std::sync::mpsc::Receiver<SendPacketsArgs<&'static str>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let calls = Arc::clone(calls);
    let tx = std::sync::Mutex::new(tx);
    let args = SendPacketsArgs::new("token", move |args| {
        calls.fetch_add(1, Ordering::SeqCst);
        let _ = tx.lock().unwrap().send(args);
    });
    (args, rx)
}

#[test]
fn small_send_completes_synchronously_without_a_callback() {
    for front in [Front::CurrentThread, Front::MultiThread] {
        util::front::block_on(front, async {
            let (a, mut b) = unix_pair();
            let calls = Arc::new(AtomicUsize::new(0));
            let (mut args, _rx) = counted_args(&calls);
            args.elements = vec![Element::memory("hello")];
            let Ok(Started::Completed(args)) = send_packets_async(&a, args) else {
                panic!("{front:?}: a small send into an empty socket completes at once");
            };
            assert_eq!(args.bytes_transferred(), 5);
            assert!(args.error().is_none());
            assert_eq!(args.user_token, "token");
            let mut got = [0u8; 5];
            b.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(calls.load(Ordering::SeqCst), 0, "no callback");
        });
    }
}

#[test]
fn one_object_sends_an_ignored_zero_count_buffer_then_four_bytes() {
    // .NET's BufferZeroCount_Ignored, then reuse of the same SocketAsyncEventArgs.
    util::front::block_on(Front::CurrentThread, async {
        let (a, mut b) = unix_pair();
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut args, _rx) = counted_args(&calls);
        args.elements = vec![Element::memory_range(vec![1u8, 2, 3, 4], 2, 0).unwrap()];
        let Ok(Started::Completed(mut args)) = send_packets_async(&a, args) else {
            panic!("completes at once")
        };
        assert_eq!(args.bytes_transferred(), 0);
        args.elements = vec![Element::memory(vec![1u8, 2, 3, 4])];
        let Ok(Started::Completed(args)) = send_packets_async(&a, args) else {
            panic!("completes at once")
        };
        assert_eq!(args.bytes_transferred(), 4);
        drop(args);
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn large_send_to_a_slow_reader_goes_pending_and_calls_back_once() {
    let files = Files::new();
    let f = files.make("big.bin", 64 << 20, 7);
    for front in [Front::CurrentThread, Front::MultiThread] {
        let rt = util::front::runtime(front);
        let (a, b) = rt.block_on(async { unix_pair() });
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut args, rx) = counted_args(&calls);
        args.elements = vec![Element::memory("head"), Element::file(&f, ..)];
        let list = args.elements.clone();
        // The reader starts late and reads in small pieces.
        let reader = std::thread::spawn(move || {
            let mut b = b;
            std::thread::sleep(Duration::from_millis(100));
            let mut got = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match b.read(&mut buf)? {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            Ok::<_, std::io::Error>(got)
        });
        let started = rt.block_on(async { send_packets_async(&a, args) });
        let Ok(Started::Pending(progress)) = started else {
            panic!("{front:?}: 64 MiB cannot complete synchronously")
        };
        // The runtime must run for the pending send to progress: wait on it there.
        let args = rt.block_on(async {
            tokio::task::spawn_blocking(move || rx.recv_timeout(util::PATIENCE))
                .await
                .unwrap()
                .expect("the callback came")
        });
        assert_eq!(args.bytes_transferred(), 4 + (64 << 20), "{front:?}");
        assert!(args.error().is_none());
        assert_eq!(progress.get().bytes_sent, args.bytes_transferred());
        drop(args);
        drop(a);
        drop(rt);
        let got = reader.join().unwrap().unwrap();
        assert!(got == util::model(&list).unwrap(), "{front:?}: exact bytes");
        // Exactly one callback, even after the runtime shut down.
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{front:?}");
    }
}

#[test]
fn errors_dotnet_throws_come_from_the_start_call() {
    let files = Files::new();
    let ok = files.make("ok.bin", 100, 1);
    util::front::block_on(Front::CurrentThread, async {
        let cases = [
            (
                vec![Element::file(files.path("missing.bin"), ..)],
                ErrorKind::FileNotFound,
            ),
            (
                vec![Element::file(files.path("no/dir/x"), ..)],
                ErrorKind::DirectoryNotFound,
            ),
            (
                vec![Element::memory("x"), Element::file("", ..)],
                ErrorKind::EmptyPath,
            ),
        ];
        for (list, kind) in cases {
            let (a, _b) = unix_pair();
            let calls = Arc::new(AtomicUsize::new(0));
            let (mut args, _rx) = counted_args(&calls);
            args.elements = list;
            let err = send_packets_async(&a, args).expect_err("thrown at start");
            assert_eq!(err.error.kind(), kind);
            assert_eq!(err.args.user_token, "token", "the object comes back");
            assert_eq!(calls.load(Ordering::SeqCst), 0);
        }
        // Not connected: a UDP socket with no default remote.
        let udp = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut args, _rx) = counted_args(&calls);
        args.elements = vec![Element::file(&ok, ..)];
        let err = send_packets_async(&udp, args).expect_err("thrown at start");
        assert_eq!(err.error.kind(), ErrorKind::NotConnected);
    });
}

#[test]
fn range_past_end_and_peer_reset_arrive_as_the_result() {
    let files = Files::new();
    let f = files.make("f.bin", 1024, 2);
    util::front::block_on(Front::MultiThread, async {
        // Range past the end: the operation's result, nothing sent, no callback.
        let (a, _b) = unix_pair();
        let calls = Arc::new(AtomicUsize::new(0));
        let (mut args, _rx) = counted_args(&calls);
        args.elements = vec![Element::memory("x"), Element::file(&f, 5..10_005)];
        let Ok(Started::Completed(args)) = send_packets_async(&a, args) else {
            panic!("a range error is the result")
        };
        assert_eq!(args.error().unwrap().kind(), ErrorKind::RangeOutOfBounds);
        assert_eq!(args.error().unwrap().element(), Some(1));
        assert_eq!(args.bytes_transferred(), 0);

        // Peer reset mid-send: the result, through the callback.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let client = Arc::new(tokio::net::TcpStream::from_std(client).unwrap());
        let (mut args, rx) = counted_args(&calls);
        args.elements = vec![Element::memory(vec![5u8; 32 << 20])];
        let started = send_packets_async(&client, args).expect("starts");
        assert!(matches!(started, Started::Pending(_)));
        let mut server = server;
        let mut first = vec![0u8; 64 * 1024];
        server.read_exact(&mut first).unwrap();
        drop(server); // unread data: reset
        let args = tokio::task::spawn_blocking(move || rx.recv_timeout(util::PATIENCE))
            .await
            .unwrap()
            .expect("the callback came");
        let err = args.error().expect("the reset is the result");
        assert_eq!(err.kind(), ErrorKind::Socket, "{err}");
        assert!(args.bytes_transferred() >= 64 * 1024);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_pending_operation_calls_back_once_when_the_runtime_shuts_down() {
    // Issue 11, item 7: the callback was never called if the runtime shut down while the
    // operation was pending ("exactly once" promised).
    let calls = Arc::new(AtomicUsize::new(0));
    let (args, rx) = counted_args(&calls);
    let rt = util::front::runtime(Front::MultiThread);
    let (a, _b) = rt.block_on(async { unix_pair() }); // nobody reads `_b`
    let mut args = args;
    args.elements = vec![Element::memory(vec![3u8; 64 << 20])];
    let started = rt.block_on(async { send_packets_async(&a, args) });
    let Ok(Started::Pending(progress)) = started else {
        panic!("a 64 MiB send to a peer that does not read goes pending")
    };
    drop(rt); // shuts the runtime down with the operation pending
    let args = rx
        .recv_timeout(util::PATIENCE)
        .expect("the callback was called");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let err = args.error().expect("the operation failed");
    assert_eq!(err.kind(), ErrorKind::RuntimeShutDown);
    assert!(err.to_string().contains("runtime shut down"), "{err}");
    assert_eq!(err.progress(), progress.get());
    assert_eq!(args.bytes_transferred(), err.progress().bytes_sent);
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "called once"
    );
}

/// Outside a tokio runtime the call is refused with `Misuse` and the arguments back, never a
/// panic, before anything is checked or sent.
#[test]
fn outside_a_runtime_the_call_is_refused_not_a_panic() {
    let rt = util::front::runtime(Front::CurrentThread);
    let (a, mut b) = rt.block_on(async { unix_pair() });
    let calls = Arc::new(AtomicUsize::new(0));
    let (mut args, _rx) = counted_args(&calls);
    args.elements = vec![Element::memory("never sent")];
    // Not inside `block_on`: no runtime is current on this thread.
    let err = match send_packets_async(&a, args) {
        Err(e) => e,
        Ok(_) => panic!("started outside a runtime"),
    };
    assert_eq!(err.error.kind(), ErrorKind::Misuse);
    assert_eq!(err.args.elements.len(), 1, "the arguments come back");
    drop(a);
    drop(rt);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "nothing was sent");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no callback");
}
