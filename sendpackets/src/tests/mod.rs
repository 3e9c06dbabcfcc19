//! Fault injection into the executor: short writes, `EINTR`, `EAGAIN`, a refused `sendfile`,
//! read errors. Each fault is injected into real calls on a real socket pair, and the receiver
//! checks the exact bytes; then a property test runs random lists under random faults against
//! a simple model.

use std::io::{self, IoSlice, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;

use proptest::prelude::*;

use crate::blocking::send_using;

/// The model of the integration tests (`tests/util/model.rs`), one definition for both.
#[path = "../../tests/util/model.rs"]
mod shared;
use crate::sys::Message;
use crate::transfer::{Kernel, SysKernel};
use crate::{Element, Engine, ErrorKind, SendError, SendOptions, SendReport};

/// What the fault kernel does to calls.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// Cap every send (sendmsg, sendfile) at this many bytes: short writes.
    short: Option<usize>,
    /// Cap every pread at this many bytes: short reads.
    short_read: Option<usize>,
    /// Every `n`th call fails with EINTR before reaching the kernel.
    eintr_every: Option<u32>,
    /// Every `n`th send fails with EAGAIN before reaching the kernel.
    eagain_every: Option<u32>,
    /// sendfile fails with this errno (nothing sent).
    sendfile_errno: Option<i32>,
    /// pread fails with this errno after this many successful reads.
    pread_fails_after: Option<(u32, i32)>,
    /// A `sendmmsg` whose first message uses UDP GSO fails with this errno.
    gso_errno: Option<i32>,
    /// Every `sendmmsg` sends only its first message (a partial batch).
    partial_batch: bool,
}

#[derive(Debug, Default)]
struct FaultKernel {
    faults: Faults,
    calls: u32,
    sends: u32,
    reads: u32,
    injected: u32,
    /// The last call was a fault: the next one reaches the kernel (a fault never repeats
    /// forever, as in life: after EAGAIN and a wake-up, the retry gets through).
    just_injected: bool,
}

impl FaultKernel {
    fn new(faults: Faults) -> Self {
        FaultKernel {
            faults,
            ..Default::default()
        }
    }

    fn before_send(&mut self) -> io::Result<()> {
        self.calls += 1;
        self.sends += 1;
        assert!(self.calls < 2_000_000, "the send makes no progress");
        if std::mem::take(&mut self.just_injected) {
            return Ok(());
        }
        if self.faults.eintr_every.is_some_and(|n| self.calls % n == 0) {
            return Err(self.inject(libc::EINTR));
        }
        if self
            .faults
            .eagain_every
            .is_some_and(|n| self.sends % n == 0)
        {
            return Err(self.inject(libc::EAGAIN));
        }
        Ok(())
    }

    fn inject(&mut self, errno: i32) -> io::Error {
        self.injected += 1;
        self.just_injected = true;
        io::Error::from_raw_os_error(errno)
    }
}

impl Kernel for FaultKernel {
    fn sendmsg(
        &mut self,
        sock: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> io::Result<usize> {
        self.before_send()?;
        match self.faults.short {
            Some(cap) => {
                // Keep only the first `cap` bytes of the iovec.
                let mut left = cap;
                let mut cut: Vec<IoSlice<'_>> = Vec::new();
                for b in bufs {
                    if left == 0 {
                        break;
                    }
                    let n = b.len().min(left);
                    cut.push(IoSlice::new(&b[..n]));
                    left -= n;
                }
                SysKernel.sendmsg(sock, &cut, more)
            }
            None => SysKernel.sendmsg(sock, bufs, more),
        }
    }

    fn sendfile(
        &mut self,
        sock: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        self.before_send()?;
        if let Some(errno) = self.faults.sendfile_errno {
            return Err(self.inject(errno));
        }
        let len = self.faults.short.map_or(len, |cap| len.min(cap));
        SysKernel.sendfile(sock, file, offset, len)
    }

    fn pread(&mut self, file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.calls += 1;
        self.reads += 1;
        if let Some((after, errno)) = self.faults.pread_fails_after {
            if self.reads > after {
                return Err(self.inject(errno));
            }
        }
        if std::mem::take(&mut self.just_injected) {
            // fall through to the real call
        } else if self.faults.eintr_every.is_some_and(|n| self.calls % n == 0) {
            return Err(self.inject(libc::EINTR));
        }
        let n = self
            .faults
            .short_read
            .map_or(buf.len(), |cap| buf.len().min(cap));
        SysKernel.pread(file, &mut buf[..n], offset)
    }

    fn preadv(
        &mut self,
        file: BorrowedFd<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        self.calls += 1;
        self.reads += 1;
        if let Some((after, errno)) = self.faults.pread_fails_after {
            if self.reads > after {
                return Err(self.inject(errno));
            }
        }
        if std::mem::take(&mut self.just_injected) {
            // fall through to the real call
        } else if self.faults.eintr_every.is_some_and(|n| self.calls % n == 0) {
            return Err(self.inject(libc::EINTR));
        }
        match self.faults.short_read {
            // A short read: only the first `cap` bytes of the first buffer.
            Some(cap) => {
                let first = &mut bufs[0];
                let n = first.len().min(cap);
                SysKernel.pread(file, &mut first[..n], offset)
            }
            None => SysKernel.preadv(file, bufs, offset),
        }
    }

    fn set_cork(&mut self, sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
        SysKernel.set_cork(sock, on)
    }

    fn sendmmsg(&mut self, sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize> {
        self.before_send()?;
        if let Some(errno) = self.faults.gso_errno {
            if msgs.first().is_some_and(|m| m.segment.is_some()) {
                return Err(self.inject(errno));
            }
        }
        // A "short write" of a batch: the kernel took only the first message.
        let msgs = if self.faults.partial_batch {
            &msgs[..1]
        } else {
            msgs
        };
        SysKernel.sendmmsg(sock, msgs)
    }
}

/// Sends over a non-blocking Unix stream through `kernel`; returns the result and the bytes the
/// receiver got.
fn run(
    kernel: &mut FaultKernel,
    list: &[Element],
    opts: &SendOptions,
) -> (Result<SendReport, SendError>, Vec<u8>) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let mut got = Vec::new();
        b.read_to_end(&mut got).map(|_| got)
    });
    let r = send_using(kernel, &a, list, opts);
    drop(a);
    (r, reader.join().unwrap().unwrap())
}

struct Fixture {
    _dir: tempfile::TempDir,
    small: std::path::PathBuf,
    large: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let large = dir.path().join("large");
    std::fs::write(&small, (0..3000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(
        &large,
        (0..600_000u32).map(|i| (i / 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        small,
        large,
    }
}

fn mixed_list(f: &Fixture) -> Vec<Element> {
    vec![
        Element::memory("header"),
        Element::file(&f.small, 10..2000),
        Element::memory(vec![5u8; 70_000]),
        Element::file(&f.large, ..),
        Element::memory("mid").end_of_packet(),
        Element::file(&f.large, 1000..200_000),
        Element::file(&f.small, ..),
        Element::memory("trailer"),
    ]
}

const ALL_ENGINES: [Engine; 3] = [Engine::Auto, Engine::ZeroCopy, Engine::Portable];

#[test]
fn short_writes_eintr_and_eagain_lose_nothing() {
    let f = fixture();
    let list = mixed_list(&f);
    let expected = shared::model(&list).unwrap();
    let plans = [
        Faults {
            short: Some(1),
            ..Default::default()
        },
        Faults {
            short: Some(4093),
            short_read: Some(100),
            ..Default::default()
        },
        Faults {
            eintr_every: Some(2),
            ..Default::default()
        },
        Faults {
            eagain_every: Some(3),
            short: Some(50_000),
            ..Default::default()
        },
    ];
    for faults in plans {
        for engine in ALL_ENGINES {
            let mut k = FaultKernel::new(faults.clone());
            let opts = SendOptions::new().engine(engine);
            let (r, got) = run(&mut k, &list, &opts);
            let report = r.unwrap_or_else(|e| panic!("{faults:?} {engine:?}: {e}"));
            assert!(got == expected, "{faults:?} {engine:?}");
            assert_eq!(report.bytes_sent, expected.len() as u64);
            if faults.eagain_every.is_some() || faults.eintr_every.is_some() {
                assert!(k.injected > 0, "the fault was really injected");
            }
            if faults.eagain_every.is_some() {
                assert!(report.calls.waits > 0);
            }
        }
    }
}

#[test]
fn refused_sendfile_falls_back_to_reading() {
    let f = fixture();
    let list = mixed_list(&f);
    let expected = shared::model(&list).unwrap();
    for errno in [libc::EINVAL, libc::EOPNOTSUPP] {
        let mut k = FaultKernel::new(Faults {
            sendfile_errno: Some(errno),
            ..Default::default()
        });
        let opts = SendOptions::new().engine(Engine::ZeroCopy);
        let (r, got) = run(&mut k, &list, &opts);
        let report = r.unwrap();
        assert!(got == expected);
        assert_eq!(report.calls.sendfile, 0);
        assert_eq!(report.calls.fallback_files, 2, "both files fell back once");
        assert!(report.calls.file_reads > 0);
    }
}

#[test]
fn read_error_names_the_element_and_keeps_progress() {
    let f = fixture();
    let list = mixed_list(&f);
    let mut k = FaultKernel::new(Faults {
        pread_fails_after: Some((3, libc::EIO)),
        ..Default::default()
    });
    let (r, got) = run(&mut k, &list, &SendOptions::new().engine(Engine::Portable));
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileRead);
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(err.progress().bytes_sent, got.len() as u64);
    let e = err.element().unwrap();
    assert!(list[e].path().is_some(), "the failing element is a file");
    assert!(got[..] == shared::model(&list).unwrap()[..got.len()]);
}

fn arb_list(f: &Fixture) -> impl Strategy<Value = Vec<Element>> + use<> {
    let small = f.small.clone();
    let large = f.large.clone();
    let element = prop_oneof![
        (0usize..3000).prop_map(|n| Element::memory(vec![(n % 251) as u8; n])),
        (0u64..3000, 0u64..3000).prop_map(move |(a, b)| {
            let (lo, hi) = (a.min(b), a.max(b));
            Element::file(small.clone(), lo..hi)
        }),
        (0u64..600_000, 0u64..300_000).prop_map(move |(off, len)| {
            let len = len.min(600_000 - off);
            Element::file(large.clone(), off..off + len)
        }),
    ];
    (proptest::collection::vec((element, any::<bool>()), 0..40)).prop_map(|v| {
        v.into_iter()
            .map(|(e, eop)| if eop { e.end_of_packet() } else { e })
            .collect()
    })
}

/// Random lists (memory, small and large file ranges, end-of-packet marks), random engine,
/// send size, short writes, EINTR and EAGAIN: the receiver always gets exactly the model.
#[test]
fn random_lists_under_random_faults_match_the_model() {
    use proptest::test_runner::{Config, TestRunner};
    let f = fixture();
    let strategy = (
        arb_list(&f),
        prop_oneof![
            Just(Engine::Auto),
            Just(Engine::ZeroCopy),
            Just(Engine::Portable)
        ],
        prop_oneof![Just(0usize), 1usize..100_000],
        proptest::option::of(1usize..70_000),
        proptest::option::of(2u32..5),
        proptest::option::of(2u32..5),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    runner
        .run(
            &strategy,
            |(list, engine, send_size, short, eintr, eagain)| {
                let expected = shared::model(&list).unwrap();
                let mut k = FaultKernel::new(Faults {
                    short,
                    eintr_every: eintr,
                    eagain_every: eagain,
                    ..Default::default()
                });
                let opts = SendOptions::new().engine(engine).send_size(send_size);
                let (r, got) = run(&mut k, &list, &opts);
                let report = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(report.bytes_sent, expected.len() as u64);
                prop_assert!(got == expected);
                Ok(())
            },
        )
        .unwrap();
}

/// Sends over a non-blocking datagram socket (`udp`: loopback UDP, else a Unix datagram pair)
/// through `kernel`; returns the result and the datagrams received (read concurrently).
fn run_datagrams(
    kernel: &mut FaultKernel,
    list: &[Element],
    opts: &SendOptions,
    udp: bool,
) -> (Result<SendReport, SendError>, Vec<Vec<u8>>) {
    use std::os::fd::{AsFd, OwnedFd};
    let (tx, rx): (OwnedFd, OwnedFd) = if udp {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (tx.into(), rx.into())
    } else {
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
        (tx.into(), rx.into())
    };
    rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 8 << 20).unwrap();
    let expected = shared::model_datagrams(list).unwrap().len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 17];
        let timeout = Some(std::time::Duration::from_secs(2));
        rustix::net::sockopt::set_socket_timeout(&rx, rustix::net::sockopt::Timeout::Recv, timeout)
            .unwrap();
        while got.len() < expected {
            match rustix::net::recv(&rx, &mut buf, rustix::net::RecvFlags::empty()) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        got
    });
    rustix::io::ioctl_fionbio(&tx, true).unwrap();
    let r = send_using(kernel, tx.as_fd(), list, opts);
    drop(tx);
    (r, reader.join().unwrap())
}

fn arb_datagrams(f: &Fixture) -> impl Strategy<Value = Vec<Element>> + use<> {
    let small = f.small.clone();
    let element = prop_oneof![
        (0usize..700).prop_map(|n| Element::memory(vec![(n % 251) as u8; n])),
        (0u64..3000, 0u64..1200).prop_map(move |(a, n)| {
            let a = a.min(3000 - n.min(3000));
            Element::file(small.clone(), a..(a + n).min(3000))
        }),
    ];
    // Mostly marked, so that runs of datagrams form; sizes stay well under 64 KiB.
    proptest::collection::vec((element, proptest::bool::weighted(0.7)), 0..120).prop_map(|v| {
        v.into_iter()
            .map(|(e, eop)| if eop { e.end_of_packet() } else { e })
            .collect()
    })
}

/// Random datagram lists under partial `sendmmsg` batches, EINTR and EAGAIN, over UDP (GSO
/// runs) and Unix datagram sockets: every datagram arrives whole, in order, exactly once.
#[test]
fn random_datagrams_under_random_faults_match_the_model() {
    use proptest::test_runner::{Config, TestRunner};
    let f = fixture();
    let strategy = (
        arb_datagrams(&f),
        prop_oneof![Just(Engine::Auto), Just(Engine::Portable)],
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(2u32..5),
        proptest::option::of(2u32..5),
    );
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    runner
        .run(
            &strategy,
            |(list, engine, udp, partial_batch, eintr, eagain)| {
                let expected = shared::model_datagrams(&list).unwrap();
                let mut k = FaultKernel::new(Faults {
                    partial_batch,
                    eintr_every: eintr,
                    eagain_every: eagain,
                    ..Default::default()
                });
                let opts = SendOptions::new().engine(engine);
                let (r, got) = run_datagrams(&mut k, &list, &opts, udp);
                let report = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(report.datagrams, expected.len() as u64);
                prop_assert_eq!(got, expected);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn refused_gso_falls_back_to_one_datagram_per_message() {
    let f = fixture();
    let list: Vec<Element> = (0..200u64)
        .map(|i| Element::file(&f.small, i..i + 1000).end_of_packet())
        .collect();
    for errno in [libc::EIO, libc::EINVAL, libc::EMSGSIZE] {
        let mut k = FaultKernel::new(Faults {
            gso_errno: Some(errno),
            ..Default::default()
        });
        let (r, got) = run_datagrams(&mut k, &list, &SendOptions::new(), true);
        let report = r.unwrap();
        assert_eq!(got, shared::model_datagrams(&list).unwrap());
        assert_eq!(report.calls.udp_gso_messages, 0);
        assert!(
            report.calls.gather_writes < 200,
            "still batched by sendmmsg"
        );
    }
}

#[test]
fn a_burst_walking_a_file_reads_it_with_one_call() {
    let f = fixture();
    // 200 datagrams: a header and the next 1,000 bytes of the large file each.
    let list: Vec<Element> = (0..200u64)
        .flat_map(|i| {
            [
                Element::memory(format!("{i:08}")),
                Element::file(&f.large, i * 1000..(i + 1) * 1000).end_of_packet(),
            ]
        })
        .collect();
    for udp in [true, false] {
        let mut k = FaultKernel::new(Faults::default());
        let (r, got) = run_datagrams(&mut k, &list, &SendOptions::new(), udp);
        let report = r.unwrap();
        assert_eq!(got, shared::model_datagrams(&list).unwrap());
        assert_eq!(report.calls.file_reads, 1, "one preadv for the burst");
    }
}

#[test]
fn a_read_failure_mid_burst_sends_the_datagrams_before_it() {
    let f = fixture();
    // Datagrams alternate between two files, so every datagram needs its own read.
    let list: Vec<Element> = (0..40u64)
        .map(|i| {
            let path = if i % 2 == 0 { &f.small } else { &f.large };
            Element::file(path, i * 10..i * 10 + 500).end_of_packet()
        })
        .collect();
    let mut k = FaultKernel::new(Faults {
        pread_fails_after: Some((5, libc::EIO)),
        ..Default::default()
    });
    let (r, got) = run_datagrams(&mut k, &list, &SendOptions::new(), false);
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileRead);
    assert_eq!(err.element(), Some(5));
    assert_eq!(err.progress().datagrams_sent, 5);
    assert_eq!(err.progress().elements_completed, 5);
    assert_eq!(err.progress().bytes_sent, 5 * 500);
    assert_eq!(got, shared::model_datagrams(&list).unwrap()[..5].to_vec());
}

#[test]
fn tcp_is_corked_and_uncorked() {
    // Header + large file + trailer are corked (the same rule on loopback as on a real link),
    // and the socket is left uncorked at the end, on success and on failure.
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut server = server;
        let mut got = Vec::new();
        server.read_to_end(&mut got).map(|_| got)
    });
    let list = [
        Element::memory("H"),
        Element::file(&f.large, ..),
        Element::memory("T"),
    ];
    let report = crate::send(&client, &list).unwrap();
    assert!(report.calls.sendfile > 0);
    assert!(report.calls.cork_toggles >= 2 && report.calls.cork_toggles % 2 == 0);
    assert!(!shared::cork_on(&client), "left uncorked");
    // A failure midway (a file that vanished at its reopen is not possible here; a missing
    // later path fails the checks): corking never starts before the checks pass.
    let err = crate::send(
        &client,
        &[Element::memory("x"), Element::file("/no/such", ..)],
    );
    assert!(err.is_err());
    assert!(!shared::cork_on(&client));
    drop(client);
    let got = reader.join().unwrap().unwrap();
    assert!(got == shared::model(&list).unwrap());
}

/// The real kernel, recording the `MSG_MORE` flag of every `sendmsg` and every cork toggle.
#[derive(Debug, Default)]
struct MoreKernel {
    more: Vec<bool>,
    corks: Vec<bool>,
}

impl Kernel for MoreKernel {
    fn sendmsg(
        &mut self,
        sock: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> io::Result<usize> {
        self.more.push(more);
        SysKernel.sendmsg(sock, bufs, more)
    }
    fn sendfile(
        &mut self,
        sock: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        SysKernel.sendfile(sock, file, offset, len)
    }
    fn pread(&mut self, file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        SysKernel.pread(file, buf, offset)
    }
    fn preadv(
        &mut self,
        file: BorrowedFd<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        SysKernel.preadv(file, bufs, offset)
    }
    fn set_cork(&mut self, sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
        self.corks.push(on);
        SysKernel.set_cork(sock, on)
    }
    fn sendmmsg(&mut self, sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize> {
        SysKernel.sendmmsg(sock, msgs)
    }
}

#[test]
fn a_header_before_a_sendfile_range_goes_with_msg_more_and_no_cork() {
    // A response (header + file range): the header leaves with MSG_MORE and the socket is never
    // corked; under bbr a cork costs a pacing timer per response (BENCHMARKS.md, `rr`). With a
    // trailer after the range the socket is corked as before (the end of a sendfile call
    // pushes; only a cork keeps the range's tail for the trailer).
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut server = server;
        let mut got = Vec::new();
        server.read_to_end(&mut got).map(|_| got)
    });
    let response = [
        Element::memory(vec![b'h'; 240]),
        Element::file(&f.large, ..),
    ];
    let mut k = MoreKernel::default();
    let report = send_using(&mut k, &client, &response, &SendOptions::new()).unwrap();
    assert!(report.calls.sendfile > 0);
    assert_eq!(report.calls.cork_toggles, 0);
    assert!(k.corks.is_empty());
    assert_eq!(k.more, [true], "the header, with MSG_MORE");
    assert!(!shared::cork_on(&client));

    let with_trailer = [
        Element::memory("H"),
        Element::file(&f.large, ..),
        Element::memory("T"),
    ];
    let mut k = MoreKernel::default();
    let report = send_using(&mut k, &client, &with_trailer, &SendOptions::new()).unwrap();
    assert!(report.calls.sendfile > 0);
    assert_eq!(k.corks.first(), Some(&true));
    assert_eq!(k.corks.last(), Some(&false));
    assert!(k.more.iter().all(|m| !m), "corked: no MSG_MORE");
    drop(client);
    let got = reader.join().unwrap().unwrap();
    let mut want = shared::model(&response).unwrap();
    want.extend(shared::model(&with_trailer).unwrap());
    assert!(got == want);
}

#[cfg(feature = "tokio")]
#[test]
fn dropping_a_corked_async_send_uncorks() {
    // The send corks; nobody reads, so it is still running when dropped.
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let big: Vec<Element> = (0..64)
        .flat_map(|_| [Element::memory("h"), Element::file(&f.large, ..)])
        .collect();
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let progress = crate::ProgressHandle::new();
    let client = rt.block_on(async {
        client.set_nonblocking(true).unwrap();
        let c = ::tokio::net::TcpStream::from_std(client).unwrap();
        let opts = SendOptions::new().observe(&progress);
        {
            let send = crate::tokio::send_with(&c, &big, &opts);
            let mut send = std::pin::pin!(send);
            let r = ::tokio::time::timeout(std::time::Duration::from_millis(200), &mut send).await;
            assert!(r.is_err(), "still running");
            let fd = std::os::fd::AsFd::as_fd(&c);
            assert!(
                rustix::net::sockopt::tcp_cork(fd).unwrap(),
                "corked while running"
            );
        } // the send future is dropped here
        c.into_std().unwrap()
    });
    assert!(progress.get().bytes_sent > 0);
    assert!(
        !shared::cork_on(&client),
        "the dropped send uncorked the socket"
    );
}

/// A route that refuses UDP GSO is learned once per socket: a `Connection`'s state keeps it, so
/// its next send pays no failed `sendmmsg`.
#[test]
fn a_refused_gso_is_remembered_by_the_socket_state() {
    use crate::operation::{Known, SocketState};
    use std::os::fd::AsFd;
    let f = fixture();
    let list: Vec<Element> = (0..50u64)
        .map(|i| Element::file(&f.small, i..i + 1000).end_of_packet())
        .collect();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 8 << 20).unwrap();
    let state = SocketState::probe(tx.as_fd(), None).unwrap();
    if state.datagram.and_then(|d| d.gso_segment).is_none() {
        eprintln!("skipped: this kernel offers no UDP GSO on loopback");
        return;
    }
    let mut known = Known::State(state);
    let mut refused = Vec::new();
    for _ in 0..2 {
        let mut k = FaultKernel::new(Faults {
            gso_errno: Some(libc::EIO),
            ..Default::default()
        });
        let r = crate::blocking::run(&mut k, tx.as_fd(), &mut known, &list, &SendOptions::new());
        assert_eq!(r.unwrap().datagrams, 50);
        refused.push(k.injected);
    }
    assert_eq!(
        refused,
        [1, 0],
        "one refused GSO message, on the first send only"
    );
    let Known::State(s) = known else {
        unreachable!()
    };
    assert!(s.learned.gso_refused);
}
