//! The random-list soak: every front end, socket kind and peer behaviour, byte-exact against
//! the model, with resumes from what a failed or dropped send left.

use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sendpackets::{Element, ErrorKind, Progress};

use crate::checks::{Model, check_observed, expect_exact, expect_prefix, model_of};
use crate::fronts::{Attempt, FILE_IOS, Failure, How, Outcome, VIAS, Via, send_through};
use crate::harness::{CaseLog, Rng, Stats};
use crate::lists::{Pool, datagram_list, stream_list};
use crate::peers::{
    DgramPeer, SOCKS, Sock, StreamPeer, dgram_pair, receive_dgrams, receive_stream, stream_pair,
    udp_receive_room,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Reads everything.
    ReadAll,
    /// Resets the connection after K bytes (datagrams: closes after K datagrams).
    Reset,
    /// Stops reading for a while, then drains.
    Stall,
    /// Reads nothing until the send future was dropped midway (async fronts), then drains.
    Cancel,
}

const PEERS: [Peer; 4] = [Peer::ReadAll, Peer::Reset, Peer::Stall, Peer::Cancel];

/// Every (front end, socket kind, peer) combination, in an order shuffled by the seed: case
/// `i` takes combination `i % len`, so any run of that many cases covers them all.
pub(crate) fn combinations() -> Vec<(Via, Sock, Peer)> {
    let mut all = Vec::new();
    for &via in VIAS {
        for sock in SOCKS {
            for peer in PEERS {
                let async_future = matches!(
                    via,
                    Via::CurrentThread | Via::MultiThread | Via::AsyncConnection
                );
                if peer == Peer::Cancel && !async_future {
                    continue;
                }
                all.push((via, sock, peer));
            }
        }
    }
    let mut rng = Rng::for_case("combinations", 0);
    for i in (1..all.len()).rev() {
        let j = rng.upto(i as u64) as usize;
        all.swap(i, j);
    }
    all
}

/// One random case: what is sent, how, to whom.
struct Plan {
    pub(crate) how: How,
    pub(crate) sock: Sock,
    pub(crate) peer: Peer,
    pub(crate) small: bool,
    pub(crate) stall: Duration,
    /// Reset after this many bytes (streams) or datagrams.
    pub(crate) reset_after: u64,
    /// After a cancel, resume on the same connection (else on a fresh one).
    pub(crate) resume_same: bool,
    /// How the resume is sent.
    pub(crate) resume: How,
}

pub(crate) fn random_case(index: u64, pool: &Pool, log: &CaseLog, stats: &mut Stats) {
    let combos = combinations();
    let (via, sock, peer) = combos[(index % combos.len() as u64) as usize];
    let mut rng = Rng::for_case("soak_random_lists", index);
    let mut g = if sock.datagram() {
        let room = match sock {
            Sock::UnixDgram => u64::MAX, // the sender waits for room
            _ => udp_receive_room(),
        };
        datagram_list(&mut rng, pool, sock.datagram_limit(), room)
    } else {
        stream_list(&mut rng, pool)
    };
    if !sock.datagram() && matches!(peer, Peer::Reset | Peer::Cancel) && rng.chance(70) {
        // Mostly more than the socket buffers hold, so the peer's reset or the cancel
        // lands midway.
        g.add_bulk(&mut rng, pool);
    }
    let m = model_of(&g.list);
    let mut how = How::random(&mut rng, via);
    if rng.chance(12) {
        let min = if m.bytes.len() > 256 << 10 { 4096 } else { 1 };
        how.send_size = Some(rng.between(min, 65_536) as usize);
    }
    if peer == Peer::ReadAll && !sock.datagram() && rng.chance(20) {
        how.disconnect = true;
    }
    if peer == Peer::Cancel {
        how.cancel = Some(rng.duration_ms(0, 30));
        how.observe = true;
    }
    let resume_via = rng.pick(VIAS);
    let plan = Plan {
        how,
        sock,
        peer,
        small: !sock.datagram()
            && match peer {
                Peer::Cancel => true,
                Peer::Reset => rng.chance(50),
                _ => rng.chance(25),
            },
        stall: rng.duration_ms(1, 60),
        reset_after: if sock.datagram() {
            rng.skewed(m.datagrams(&g.list).len() as u64)
        } else {
            rng.skewed(m.bytes.len() as u64)
        },
        resume_same: rng.chance(50),
        resume: How::random(&mut rng, resume_via),
    };
    log.set(format!(
        "{:?} {:?} peer {:?} (stall {:?}, reset after {}, resume {} via {}){}; send via {}; list of {} bytes: {}",
        via,
        sock,
        peer,
        plan.stall,
        plan.reset_after,
        if plan.resume_same {
            "on the same connection"
        } else {
            "on a fresh connection"
        },
        plan.resume.describe(),
        if plan.small { ", small socket buffers" } else { "" },
        plan.how.describe(),
        m.bytes.len(),
        g.describe()
    ));
    stats.bump(format!("front:{via:?}"));
    stats.bump(format!("socket:{sock:?}"));
    stats.bump(format!("peer:{peer:?}"));
    let outcome = if sock.datagram() {
        datagram_case(&plan, &g.list, &m, log, stats)
    } else {
        stream_case(&plan, &g.list, &m, log, stats)
    };
    stats.bump(format!("outcome:{outcome}"));
}

/// A peer that resets at once may be gone before the send starts: the socket is then no
/// longer connected, which the send reports first (thrown at start by the completion API),
/// with nothing sent.
fn gone_before_start(plan: &Plan, f: &Failure) -> bool {
    let gone = plan.peer == Peer::Reset && f.kind == ErrorKind::NotConnected;
    if gone {
        assert_eq!(f.progress, Progress::default(), "{}", f.text);
        assert_eq!(f.element, None, "{}", f.text);
    }
    gone
}

/// A list with an element out of range (the first at `bad`) fails its checks with nothing
/// sent; or the send was cancelled before its checks were done (file checks run on the
/// blocking pool with `FileIo::Offload`), and then the resumed send fails them.
fn check_bad_list(plan: &Plan, a: &Attempt, resumed: Option<&Attempt>, bad: usize) {
    let range_error = |f: &Failure| {
        assert_eq!(f.progress, Progress::default(), "nothing sent: {}", f.text);
        if !gone_before_start(plan, f) {
            assert_eq!(f.kind, ErrorKind::RangeOutOfBounds, "{}", f.text);
            assert_eq!(f.element, Some(bad), "{}", f.text);
            assert!(
                !f.thrown,
                "a range error is the operation's result, not thrown"
            );
        }
    };
    match (&a.outcome, resumed) {
        (Outcome::Failed(f), _) => range_error(f),
        (Outcome::Cancelled(p, _), resumed) => {
            assert_eq!(p.bytes_sent, 0, "element {bad} is out of range, yet {p:?}");
            if let Some(r) = resumed {
                match &r.outcome {
                    Outcome::Failed(f) => range_error(f),
                    other => panic!("element {bad} is out of range, yet the resume: {other:?}"),
                }
            }
        }
        (other, _) => panic!("element {bad} is out of range, yet: {other:?}"),
    }
}

/// Sends `list` to a fresh peer that reads everything; returns the attempt and the bytes.
pub(crate) fn send_to_fresh_stream(sock: Sock, how: &How, list: &[Element]) -> (Attempt, Vec<u8>) {
    let (fd, end) = stream_pair(sock, false);
    let reader = thread::spawn(move || receive_stream(end, StreamPeer::ReadAll));
    let a = send_through(how, fd.as_fd(), list, None);
    drop(fd);
    let got = reader
        .join()
        .expect("receiver thread")
        .expect("receiver read");
    (a, got)
}

/// Resumes `rest` (what a failed or cancelled send left) on a fresh connection: it must carry
/// exactly the model's bytes from `from` on.
fn resume_fresh_stream(plan: &Plan, rest: &[Element], from: u64, m: &Model, log: &CaseLog) {
    log.note(&format!(
        "resuming {} elements from byte {from} on a fresh connection",
        rest.len()
    ));
    let (a, got) = send_to_fresh_stream(plan.sock, &plan.resume, rest);
    let want = &m.bytes[from as usize..];
    match &a.outcome {
        Outcome::Sent(r) => assert_eq!(r.bytes_sent, want.len() as u64, "resumed send's bytes"),
        other => panic!("the resumed send failed: {other:?}"),
    }
    check_observed(&a, rest.len(), "resumed send");
    expect_exact(&got, want, m, "prefix sent + resumed send vs the model");
}

fn stream_case(
    plan: &Plan,
    list: &[Element],
    m: &Model,
    log: &CaseLog,
    stats: &mut Stats,
) -> String {
    let (fd, end) = stream_pair(plan.sock, plan.small);
    let (go, go_rx) = mpsc::channel();
    let peer = match plan.peer {
        Peer::ReadAll => StreamPeer::ReadAll,
        Peer::Reset => StreamPeer::ResetAfter(plan.reset_after),
        Peer::Stall => StreamPeer::StallThenDrain(plan.stall),
        Peer::Cancel => StreamPeer::WaitForGo(go_rx),
    };
    let reader = thread::spawn(move || receive_stream(end, peer));
    let a = send_through(&plan.how, fd.as_fd(), list, None);
    log.note(&format!("send: {:?}", a.outcome));
    check_observed(&a, list.len(), "send");
    // After a cancel, the rest on the same connection while the peer drains.
    let mut resumed = None;
    if let (Outcome::Cancelled(_, rest), true) = (&a.outcome, plan.resume_same) {
        let _ = go.send(usize::MAX);
        let r = send_through(&plan.resume, fd.as_fd(), rest, None);
        log.note(&format!("resumed on the same connection: {:?}", r.outcome));
        check_observed(&r, rest.len(), "resumed send");
        resumed = Some(r);
    }
    let _ = go.send(usize::MAX);
    drop(fd);
    let got = reader
        .join()
        .expect("receiver thread")
        .expect("receiver read");
    let total = m.bytes.len() as u64;

    if let Some(bad) = m.first_bad {
        assert!(got.is_empty(), "the peer got {} bytes", got.len());
        check_bad_list(plan, &a, resumed.as_ref(), bad);
        return a.outcome.label();
    }
    match &a.outcome {
        Outcome::Sent(r) => {
            assert_eq!(r.bytes_sent, total, "bytes_sent of a complete send");
            assert_eq!(r.elements, list.len());
            assert_eq!(r.datagrams, 0);
            if plan.peer == Peer::Reset {
                expect_prefix(&got, m, "reset peer");
            } else {
                expect_exact(&got, &m.bytes, m, "complete send");
            }
        }
        Outcome::Failed(f) => {
            assert_eq!(
                plan.peer,
                Peer::Reset,
                "only a reset peer fails a send: {}",
                f.text
            );
            if !gone_before_start(plan, f) {
                assert_eq!(f.kind, ErrorKind::Socket, "{}", f.text);
                assert!(!f.thrown);
            }
            let p = f.progress;
            m.check_progress(&p, "error progress");
            assert!(
                p.bytes_sent >= got.len() as u64,
                "progress {p:?} below the {} bytes received",
                got.len()
            );
            assert!(p.bytes_sent <= total);
            expect_prefix(&got, m, "reset peer");
            stats.bump("resume:after a reset");
            resume_fresh_stream(plan, &f.rest, p.bytes_sent, m, log);
        }
        Outcome::Cancelled(p, rest) => {
            m.check_progress(p, "progress of the dropped send");
            assert!(p.bytes_sent <= total);
            match &resumed {
                Some(r) => {
                    stats.bump("resume:after a cancel, same connection");
                    match &r.outcome {
                        Outcome::Sent(rep) => assert_eq!(rep.bytes_sent, total - p.bytes_sent),
                        other => panic!("the resumed send failed: {other:?}"),
                    }
                    expect_exact(&got, &m.bytes, m, "dropped send + resume, same connection");
                }
                None => {
                    stats.bump("resume:after a cancel, fresh connection");
                    expect_exact(
                        &got,
                        &m.bytes[..p.bytes_sent as usize],
                        m,
                        "what the dropped send's progress says went out",
                    );
                    resume_fresh_stream(plan, rest, p.bytes_sent, m, log);
                }
            }
        }
    }
    a.outcome.label()
}

/// Asserts that the datagrams received are the ones expected, naming the first difference.
fn same_datagrams(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} datagrams received, {} expected; first difference at datagram {:?} \
             (sizes there: got {:?}, expected {:?})",
            got.len(),
            want.len(),
            at,
            at.and_then(|i| got.get(i)).map(Vec::len),
            at.and_then(|i| want.get(i)).map(Vec::len),
        );
    }
}

fn datagram_case(
    plan: &Plan,
    list: &[Element],
    m: &Model,
    log: &CaseLog,
    stats: &mut Stats,
) -> String {
    let want = if m.first_bad.is_some() {
        Vec::new()
    } else {
        m.datagrams(list)
    };
    let (fd, end) = dgram_pair(plan.sock);
    let (go, go_rx) = mpsc::channel();
    let peer = match plan.peer {
        Peer::ReadAll => DgramPeer::Count(want.len()),
        Peer::Reset => DgramPeer::ResetAfter(plan.reset_after as usize),
        Peer::Stall => DgramPeer::StallThenCount(plan.stall, want.len()),
        Peer::Cancel => DgramPeer::WaitForGo(go_rx),
    };
    let reader = thread::spawn(move || receive_dgrams(end, peer));
    let a = send_through(&plan.how, fd.as_fd(), list, None);
    log.note(&format!("send: {:?}", a.outcome));
    check_observed(&a, list.len(), "send");
    let mut resumed = None;
    match &a.outcome {
        Outcome::Cancelled(_, rest) if plan.resume_same => {
            let _ = go.send(want.len());
            let r = send_through(&plan.resume, fd.as_fd(), rest, None);
            log.note(&format!("resumed on the same socket: {:?}", r.outcome));
            check_observed(&r, rest.len(), "resumed send");
            resumed = Some(r);
        }
        Outcome::Cancelled(p, _) => {
            let _ = go.send(p.datagrams_sent as usize);
        }
        _ => {
            let _ = go.send(want.len());
        }
    }
    let got = reader.join().expect("receiver thread");
    drop(fd);
    let bytes_of = |d: &[Vec<u8>]| d.iter().map(|d| d.len() as u64).sum::<u64>();
    let total = bytes_of(&want);

    if let Some(bad) = m.first_bad {
        assert!(got.is_empty(), "the peer got {} datagrams", got.len());
        check_bad_list(plan, &a, resumed.as_ref(), bad);
        return a.outcome.label();
    }
    let check_datagram_progress = |p: &Progress, what: &str| {
        m.check_progress(p, what);
        let n = p.datagrams_sent as usize;
        assert!(
            n <= want.len(),
            "{what}: {p:?}: more datagrams than the list has"
        );
        assert_eq!(
            p.bytes_sent,
            bytes_of(&want[..n]),
            "{what}: {p:?}: bytes of whole datagrams"
        );
    };
    match &a.outcome {
        Outcome::Sent(r) => {
            assert_eq!(r.bytes_sent, total, "bytes_sent of a complete send");
            assert_eq!(
                r.datagrams,
                want.len() as u64,
                "datagrams of a complete send"
            );
            if plan.peer == Peer::Reset {
                same_datagrams(&got, &want[..got.len().min(want.len())], "reset peer");
            } else {
                same_datagrams(&got, &want, "complete send");
            }
        }
        Outcome::Failed(f) => {
            assert_eq!(
                plan.peer,
                Peer::Reset,
                "only a closed peer fails a send: {}",
                f.text
            );
            if !gone_before_start(plan, f) {
                assert_eq!(f.kind, ErrorKind::Socket, "{}", f.text);
                assert!(!f.thrown);
            }
            check_datagram_progress(&f.progress, "error progress");
            let n = f.progress.datagrams_sent as usize;
            assert!(n >= got.len(), "{n} datagrams sent, {} received", got.len());
            same_datagrams(&got, &want[..got.len()], "closed peer");
            stats.bump("resume:after a closed peer");
            resume_fresh_datagrams(plan, &f.rest, &want[n..], log);
        }
        Outcome::Cancelled(p, rest) => {
            check_datagram_progress(p, "progress of the dropped send");
            let n = p.datagrams_sent as usize;
            match &resumed {
                Some(r) => {
                    stats.bump("resume:after a cancel, same connection");
                    match &r.outcome {
                        Outcome::Sent(rep) => {
                            assert_eq!(rep.datagrams, (want.len() - n) as u64)
                        }
                        other => panic!("the resumed send failed: {other:?}"),
                    }
                    same_datagrams(&got, &want, "dropped send + resume, same socket");
                }
                None => {
                    stats.bump("resume:after a cancel, fresh connection");
                    same_datagrams(
                        &got,
                        &want[..n],
                        "what the dropped send's progress says went out",
                    );
                    resume_fresh_datagrams(plan, rest, &want[n..], log);
                }
            }
        }
    }
    a.outcome.label()
}

fn resume_fresh_datagrams(plan: &Plan, rest: &[Element], want: &[Vec<u8>], log: &CaseLog) {
    log.note(&format!(
        "resuming {} elements ({} datagrams) on a fresh socket",
        rest.len(),
        want.len()
    ));
    let (fd, end) = dgram_pair(plan.sock);
    let n = want.len();
    let reader = thread::spawn(move || receive_dgrams(end, DgramPeer::Count(n)));
    let a = send_through(&plan.resume, fd.as_fd(), rest, None);
    let got = reader.join().expect("receiver thread");
    drop(fd);
    match &a.outcome {
        Outcome::Sent(r) => assert_eq!(r.datagrams, n as u64, "resumed datagrams"),
        other => panic!("the resumed send failed: {other:?}"),
    }
    check_observed(&a, rest.len(), "resumed send");
    same_datagrams(&got, want, "datagrams sent + resumed vs the model");
}

/// One send through every front end, so that lazily made statics and thread-locals exist
/// before descriptors are counted.
pub(crate) fn warm_up(pool: &Pool) {
    let list = [
        Element::memory("warm"),
        Element::file(&pool.files[9].path, ..),
    ];
    for &via in VIAS {
        for file_io in FILE_IOS {
            let mut how = How::random(&mut Rng::for_case("warm", 0), via);
            how.file_io = file_io;
            let (a, _) = send_to_fresh_stream(Sock::Unix, &how, &list);
            assert!(
                matches!(a.outcome, Outcome::Sent(_)),
                "warm-up: {:?}",
                a.outcome
            );
        }
    }
}
