//! Datagram sockets: elements up to and including an end-of-packet mark form one datagram.
//! The receiver checks the exact number of datagrams and each one's bytes.

mod util;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sendpackets::{Element, ErrorKind, SendOptions};
use util::Files;

#[derive(Clone, Copy, Debug)]
enum Dgram {
    Udp4,
    Udp6,
    Unix,
}

const KINDS: [Dgram; 3] = [Dgram::Udp4, Dgram::Udp6, Dgram::Unix];

enum Pair {
    Udp(UdpSocket, UdpSocket),
    Unix(UnixDatagram, UnixDatagram),
}

impl Pair {
    fn new(kind: Dgram) -> Pair {
        match kind {
            Dgram::Udp4 | Dgram::Udp6 => {
                let addr = if matches!(kind, Dgram::Udp4) {
                    "127.0.0.1:0"
                } else {
                    "[::1]:0"
                };
                let rx = UdpSocket::bind(addr).unwrap();
                big_receive_buffer(&rx);
                let tx = UdpSocket::bind(addr).unwrap();
                tx.connect(rx.local_addr().unwrap()).unwrap();
                Pair::Udp(tx, rx)
            }
            Dgram::Unix => {
                let (tx, rx) = UnixDatagram::pair().unwrap();
                Pair::Unix(tx, rx)
            }
        }
    }

    fn sender(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Pair::Udp(tx, _) => tx.as_fd(),
            Pair::Unix(tx, _) => tx.as_fd(),
        }
    }

    /// A thread receiving datagrams while the test sends: `expected` of them, then any surplus
    /// arriving within 50 ms; or what came until none did for 2 s.
    fn start_receiver(&self, expected: usize) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
        let rx = match self {
            Pair::Udp(_, rx) => Pair::Udp(
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                rx.try_clone().unwrap(),
            ),
            Pair::Unix(_, rx) => {
                Pair::Unix(UnixDatagram::unbound().unwrap(), rx.try_clone().unwrap())
            }
        };
        std::thread::spawn(move || {
            let mut got = rx.received_within(Duration::from_secs(2), expected);
            got.extend(rx.received_within(Duration::from_millis(50), usize::MAX));
            got
        })
    }

    /// Every datagram waiting at the receiver (the sends finished before this is called).
    fn received(&self) -> Vec<Vec<u8>> {
        self.received_within(Duration::from_millis(100), usize::MAX)
    }

    /// Up to `count` datagrams, stopping early when none came for `idle`.
    fn received_within(&self, idle: Duration, count: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 17];
        for _ in 0..count.min(100_000) {
            let r = match self {
                Pair::Udp(_, rx) => {
                    rx.set_read_timeout(Some(idle)).unwrap();
                    rx.recv(&mut buf)
                }
                Pair::Unix(_, rx) => {
                    rx.set_read_timeout(Some(idle)).unwrap();
                    rx.recv(&mut buf)
                }
            };
            match r {
                Ok(n) => out.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        out
    }
}

/// A receive buffer that holds every datagram of a test even before the receiver reads
/// (`SO_RCVBUFFORCE` where permitted, else as much as `SO_RCVBUF` gives): loopback UDP drops
/// what does not fit, and these tests count datagrams exactly.
fn big_receive_buffer(rx: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` is a valid int for the duration of the call.
        let r = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
}

fn assert_datagrams(list: &[Element]) {
    let expected = util::model_datagrams(list).unwrap();
    // Every front end; on the async ones, file reads offloaded too.
    let runs = util::FRONTS
        .into_iter()
        .map(|f| (f, sendpackets::FileIo::Inline))
        .chain(
            util::front::RUNTIMES
                .iter()
                .map(|&f| (f, sendpackets::FileIo::Offload)),
        );
    for (front, kind, file_io) in runs.flat_map(|(f, io)| KINDS.map(move |k| (f, k, io))) {
        let pair = Pair::new(kind);
        let receiver = pair.start_receiver(expected.len());
        let opts = SendOptions::new().file_io(file_io);
        let report = util::send_via(front, pair.sender(), list, &opts)
            .unwrap_or_else(|e| panic!("{front:?} {kind:?} {file_io:?}: {e}"));
        let got = receiver.join().unwrap();
        assert_eq!(
            got.len(),
            expected.len(),
            "{front:?} {kind:?}: datagram count"
        );
        assert!(got == expected, "{front:?} {kind:?}: datagram contents");
        assert_eq!(report.datagrams, expected.len() as u64);
        assert_eq!(
            report.bytes_sent,
            expected.iter().map(|d| d.len() as u64).sum::<u64>()
        );
    }
}

#[test]
fn one_datagram_from_many_elements() {
    let files = Files::new();
    let f = files.make("f.bin", 5000, 1);
    assert_datagrams(&[
        Element::memory("hdr:"),
        Element::file(&f, 10..1200),
        Element::memory(":mid:"),
        Element::file(&f, 4000..),
        Element::memory(":end").end_of_packet(),
    ]);
}

#[test]
fn many_datagrams_and_trailing_elements_without_a_marker() {
    let files = Files::new();
    let f = files.make("f.bin", 100_000, 2);
    let mut list: Vec<Element> = (0..50u64)
        .flat_map(|i| {
            [
                Element::memory(format!("#{i}")),
                Element::file(&f, i * 1000..i * 1000 + 1200).end_of_packet(),
            ]
        })
        .collect();
    list.push(Element::memory("tail-a"));
    list.push(Element::file(&f, 0..10));
    assert_datagrams(&list);
}

#[test]
fn datagram_of_only_file_bytes() {
    let files = Files::new();
    let f = files.make("f.bin", 60_000, 3);
    assert_datagrams(&[
        Element::file(&f, ..).end_of_packet(),
        Element::file(&f, 100..200),
    ]);
}

#[test]
fn empty_marker_sends_an_empty_datagram() {
    // Defined behaviour: an end-of-packet mark with no bytes since the previous one sends an
    // empty datagram; empty elements without a mark send nothing.
    assert_datagrams(&[
        Element::memory("a").end_of_packet(),
        Element::memory("").end_of_packet(),
        Element::memory("b").end_of_packet(),
        Element::memory(""),
    ]);
}

#[test]
fn too_large_sends_nothing() {
    let files = Files::new();
    let big = files.make("big.bin", 70_000, 4);
    for (front, (kind, limit)) in util::FRONTS
        .into_iter()
        .flat_map(|f| [(Dgram::Udp4, 65_507u64), (Dgram::Udp6, 65_527)].map(|k| (f, k)))
    {
        let opts = SendOptions::new();
        // Exactly the limit fits; one byte more does not.
        let pair = Pair::new(kind);
        let ok = [
            Element::memory("x").end_of_packet(),
            Element::file(&big, 0..limit).end_of_packet(),
        ];
        util::send_via(front, pair.sender(), &ok, &opts).unwrap();
        assert_eq!(pair.received().len(), 2);
        let list = [
            Element::memory("first").end_of_packet(),
            Element::memory("h"),
            Element::file(&big, 0..limit),
            Element::memory("t").end_of_packet(),
        ];
        let err = util::send_via(front, pair.sender(), &list, &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{front:?} {kind:?}");
        assert_eq!(err.element(), Some(2));
        // The file element that overflowed it is named with its path (issue 11, item 8).
        assert_eq!(err.path(), Some(big.as_path()), "{front:?} {kind:?}");
        assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
        assert!(err.to_string().contains(&limit.to_string()), "{err}");
        assert_eq!(err.progress().bytes_sent, 0);
        assert!(
            pair.received().is_empty(),
            "{kind:?}: nothing of the operation was sent"
        );
    }
    // Unix datagram: the limit is the send buffer.
    let pair = Pair::new(Dgram::Unix);
    let err = sendpackets::send(pair.sender(), &[Element::memory(vec![0u8; 8 << 20])]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert!(pair.received().is_empty());
}

#[test]
fn not_connected_datagram_sockets() {
    for front in util::FRONTS {
        let opts = SendOptions::new();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = util::send_via(front, &udp, &[Element::memory("x")], &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
        let unix = UnixDatagram::unbound().unwrap();
        let err = util::send_via(front, &unix, &[], &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{front:?}");
    }
}

#[test]
fn more_than_iov_max_elements_in_one_datagram() {
    let list: Vec<Element> = (0..3000)
        .map(|i| Element::memory(vec![(i % 256) as u8; 3]))
        .collect();
    assert_datagrams(&list);
}

#[test]
fn bursts_and_gso_runs_keep_every_boundary() {
    // 1,000 datagrams of 1,200 bytes (32-byte header + a file slice), the shape GSO batches,
    // broken by odd sizes, a shorter one, an empty one, and a memory-only one.
    let files = Files::new();
    let f = files.make("slices.bin", 2 << 20, 9);
    let mut list = Vec::new();
    for i in 0..1000u64 {
        let size = match i {
            100 => 700,  // a shorter datagram ends a GSO run
            101 => 1300, // a longer one starts a new run
            500 => 0,    // an empty datagram: an end-of-packet mark alone
            _ => 1168,
        };
        list.push(Element::memory(format!("{i:031}:")));
        if size > 0 {
            list.push(Element::file(&f, i * 1168..i * 1168 + size).end_of_packet());
        } else {
            list.pop();
            list.push(Element::memory(Vec::<u8>::new()).end_of_packet());
        }
    }
    list.push(Element::memory("tail without a mark"));
    assert_datagrams(&list);
    // Batched: far fewer kernel calls than datagrams; on UDP, runs went out as GSO messages.
    for kind in KINDS {
        let pair = Pair::new(kind);
        let receiver = pair.start_receiver(1001);
        let report = sendpackets::send(pair.sender(), &list).unwrap();
        assert_eq!(receiver.join().unwrap().len(), 1001);
        assert_eq!(report.datagrams, 1001);
        assert!(
            report.calls.gather_writes <= 20,
            "{kind:?}: {:?}",
            report.calls
        );
        if !matches!(kind, Dgram::Unix) {
            assert!(
                report.calls.udp_gso_messages >= 10,
                "{kind:?}: {:?}",
                report.calls
            );
        }
        // The portable engine: one sendmsg per datagram.
        let pair = Pair::new(kind);
        let receiver = pair.start_receiver(1001);
        let opts = SendOptions::new().engine(sendpackets::Engine::Portable);
        let report = sendpackets::send_with(pair.sender(), &list, &opts).unwrap();
        assert_eq!(receiver.join().unwrap().len(), 1001);
        assert_eq!(report.calls.gather_writes, 1001);
    }
}

#[test]
fn ipv4_mapped_peer_gets_the_ipv4_limit() {
    // An IPv6 socket connected to ::ffff:127.0.0.1 sends over IPv4: 65,507 bytes at most.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    big_receive_buffer(&rx);
    let tx = UdpSocket::bind("[::]:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    tx.connect(format!("[::ffff:127.0.0.1]:{port}")).unwrap();
    let pair = Pair::Udp(tx, rx);
    let too_big = [
        Element::memory("first").end_of_packet(),
        Element::memory(vec![1u8; 65_508]),
    ];
    let err = sendpackets::send(pair.sender(), &too_big).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    assert_eq!(err.element(), Some(1));
    assert!(
        pair.received().is_empty(),
        "checked before the first datagram"
    );
    let fits = [Element::memory(vec![2u8; 65_507])];
    sendpackets::send(pair.sender(), &fits).unwrap();
    assert_eq!(pair.received(), vec![vec![2u8; 65_507]]);
}
