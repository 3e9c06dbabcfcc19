//! Time limits on every front end (`SendOptions::timeout`, `stall_timeout`, and a
//! non-blocking socket's own `SO_SNDTIMEO`), and the blocking API refusing a tokio socket.

mod util;

use std::time::Duration;

use sendpackets::{Element, ErrorKind, SendOptions};
#[cfg(feature = "tokio")]
use util::Front;
use util::Kind;

/// More than any socket buffer holds.
const BIG: usize = 32 << 20;

/// A stream pair whose receiver reads nothing until released, then drains to the end.
struct Stalled {
    release: std::sync::mpsc::Sender<()>,
    reader: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
}

impl Stalled {
    fn bytes(self) -> Vec<u8> {
        let _ = self.release.send(());
        self.reader.join().unwrap().unwrap()
    }
}

fn stalled_pair(kind: Kind) -> (util::Sender, Stalled) {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (s, reader) = util::stream_pair_with(kind, move |end| {
        let _ = gate.recv_timeout(util::PATIENCE);
        match end {
            util::ReceiverEnd::Tcp(s) => util::read_all(s),
            util::ReceiverEnd::Unix(s) => util::read_all(s),
        }
    });
    (s, Stalled { release, reader })
}

#[test]
fn stall_timeout_ends_a_stalled_send_with_exact_progress_on_every_front() {
    let list = [Element::memory("head"), Element::memory(vec![5u8; BIG])];
    for front in util::FRONTS {
        for kind in [Kind::Tcp4, Kind::Unix] {
            let (sender, receiver) = stalled_pair(kind);
            // The blocking fronts see the socket's own mode: make it non-blocking so that the
            // limit bounds every wait exactly.
            socket2::SockRef::from(&sender)
                .set_nonblocking(true)
                .unwrap();
            let opts = SendOptions::new().stall_timeout(Duration::from_millis(100));
            let progress = sendpackets::ProgressHandle::new();
            let err = util::within_patience({
                let list = list.clone();
                let progress = progress.clone();
                move || {
                    let r = util::send_observed_via(front, &sender, &list, &opts, Some(&progress));
                    drop(sender);
                    r
                }
            })
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "{front:?} {kind:?}: {err}");
            let p = err.progress();
            assert!(p.bytes_sent > 0 && p.bytes_sent < (BIG + 4) as u64);
            assert_eq!(progress.get(), p, "{front:?} {kind:?}");
            // Exactly what the kernel accepted reached the peer.
            let got = receiver.bytes();
            assert_eq!(got.len() as u64, p.bytes_sent, "{front:?} {kind:?}");
            assert_eq!(&got[..4], b"head");
        }
    }
}

#[test]
fn total_timeout_ends_a_send_that_runs_too_long_on_every_front() {
    let list = [Element::memory(vec![1u8; BIG])];
    for front in util::FRONTS {
        let (sender, receiver) = stalled_pair(Kind::Unix);
        socket2::SockRef::from(&sender)
            .set_nonblocking(true)
            .unwrap();
        let opts = SendOptions::new().timeout(Duration::from_millis(100));
        let err = util::within_patience({
            let list = list.clone();
            move || {
                let r = util::send_via(front, &sender, &list, &opts);
                drop(sender);
                r
            }
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{front:?}: {err}");
        assert_eq!(receiver.bytes().len() as u64, err.progress().bytes_sent);
    }
}

#[test]
fn a_non_blocking_socket_honours_its_own_send_timeout() {
    // Issue 11, item 3: SO_SNDTIMEO on a non-blocking socket waited forever in the blocking
    // API (poll had no timeout), while the same socket in blocking mode timed out.
    for nonblocking in [false, true] {
        let (sender, receiver) = stalled_pair(Kind::Unix);
        let util::Sender::Unix(s) = &sender else {
            unreachable!()
        };
        s.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s.set_nonblocking(nonblocking).unwrap();
        let err = util::within_patience(move || {
            let r = sendpackets::send(&sender, &[Element::memory(vec![2u8; BIG])]);
            drop(sender);
            r
        })
        .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::TimedOut,
            "non-blocking {nonblocking}"
        );
        assert_eq!(receiver.bytes().len() as u64, err.progress().bytes_sent);
    }
}

#[cfg(feature = "tokio")]
#[test]
fn the_blocking_api_refuses_a_tokio_socket_inside_a_runtime() {
    // Issue 10, item 2: the blocking API took a tokio TcpStream (it is AsFd) and then blocked
    // a runtime thread when the socket filled. Now it fails before the first byte.
    let rt = util::front::runtime(Front::CurrentThread);
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let err = sendpackets::send(&client, &[Element::memory("x")]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Misuse);
        assert!(err.to_string().contains("sendpackets::tokio"), "{err}");
        assert_eq!(err.progress().bytes_sent, 0);
        let err = sendpackets::Connection::new(&client)
            .unwrap()
            .send(&[Element::memory("x")])
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Misuse);
        // The async API is the way: it works, and nothing else was sent before.
        sendpackets::tokio::send(&client, &[Element::memory("ok")])
            .await
            .unwrap();
        drop(client);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"ok");
    });
}
