//! The permanent seeded soak (issue 11): random lists through every front end, socket kind and
//! peer behaviour, checked byte for byte against a model of what the list must put on the wire,
//! with byte-exact resumes from `remaining()`; and files that change under a running send.
//!
//! Bounded by the wall clock: about 60 s for the whole file by default, longer with
//! `SENDPACKETS_SOAK_SECS=<seconds>`. The seed comes from `SENDPACKETS_SOAK_SEED` or the clock;
//! every failure names the seed, the test, the case and its parameters, and the command that
//! replays that case alone (`SENDPACKETS_SOAK_CASE=<index>`). A test goes on after a failing
//! case and reports up to 5 of them (`SENDPACKETS_SOAK_MAX_FAILURES=<n>`). A case that hangs
//! aborts the process after printing the same. With `-- --nocapture`, each test prints what it
//! covered (front ends, sockets, peers, outcomes, resumes, changes to files).
//!
//! ```sh
//! cargo test -p sendpackets --test soak                                  # about a minute
//! SENDPACKETS_SOAK_SECS=1800 cargo test -p sendpackets --test soak -- --nocapture
//! SENDPACKETS_SOAK_SEED=123 SENDPACKETS_SOAK_CASE=45 cargo test -p sendpackets --test soak soak_random_lists
//! ```
//!
//! A replayed case has the same list, front end, socket, peer and options; what depends on
//! timing (where a reset or a cancel lands) may differ.
//!
//! The tests of this file run one at a time (they count this process's descriptors, and two of
//! them lower its descriptor limit).

mod util;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sendpackets::{
    Element, Engine, ErrorKind, FileHandle, FileIo, FileRange, Payload, Progress, ProgressHandle,
    SendError, SendOptions, SendReport, TransmitFlags,
};
use socket2::{Domain, SockRef, Socket, Type};
use util::ReceiverEnd;

// ---------------------------------------------------------------------------------------------
// Configuration, seeds, replay, hang watch
// ---------------------------------------------------------------------------------------------

/// The whole file's default running time, in seconds.
const DEFAULT_SECS: f64 = 60.0;
/// Shares of the running time: the random lists, then the churn tests.
const SHARE_RANDOM: f64 = 0.60;
const SHARE_CHURN_DURING: f64 = 0.24;
const SHARE_CHURN_BETWEEN: f64 = 0.08;
/// A case still running after this is a hang: the process aborts, printing the case.
const HANG: Duration = Duration::from_secs(150);
/// No receiving socket waits longer than this for one read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// No send or callback is waited for longer than this.
const PATIENCE: Duration = util::PATIENCE;
/// `SO_SNDBUF` / `SO_RCVBUF` of "small buffer" sockets (the kernel doubles it).
const SMALL_BUFFER: usize = 16 << 10;

struct Config {
    seed: u64,
    secs: f64,
    only_case: Option<u64>,
    max_failures: usize,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let seed = match var("SENDPACKETS_SOAK_SEED") {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_SEED={v}: not a u64")),
            None => {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                mix(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)) % 1_000_000_000
            }
        };
        let secs = var("SENDPACKETS_SOAK_SECS").map_or(DEFAULT_SECS, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_SECS={v}: not a number"))
        });
        let only_case = var("SENDPACKETS_SOAK_CASE").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_CASE={v}: not a case index"))
        });
        let max_failures = var("SENDPACKETS_SOAK_MAX_FAILURES").map_or(MAX_FAILURES, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_MAX_FAILURES={v}: not a number"))
        });
        Config {
            seed,
            secs,
            only_case,
            max_failures,
        }
    })
}

/// The tests of this file run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn replay_hint(test: &str, index: u64) -> String {
    format!(
        "SENDPACKETS_SOAK_SEED={} SENDPACKETS_SOAK_CASE={index} cargo test -p sendpackets --test soak {test}",
        config().seed
    )
}

/// What a running case says about itself: its parameters, then notes as it goes.
#[derive(Clone, Default)]
struct CaseLog(Arc<Mutex<String>>);

impl CaseLog {
    fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    fn note(&self, text: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str("\n    ");
        s.push_str(text);
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The case running now, watched by a thread that aborts the process when one hangs.
type Armed = Option<(Instant, String, CaseLog)>;

fn watched() -> &'static Mutex<Armed> {
    static ARMED: Mutex<Armed> = Mutex::new(None);
    static WATCHER: Once = Once::new();
    WATCHER.call_once(|| {
        thread::spawn(|| {
            loop {
                thread::sleep(Duration::from_secs(1));
                let armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((since, head, log)) = &*armed {
                    if since.elapsed() > HANG {
                        // Straight to the process's stderr: the test harness's capture would
                        // be lost with the abort.
                        let _ = writeln!(
                            io::stderr(),
                            "\nsoak: HANG: {head} still running after {HANG:?}\n  case: {}",
                            log.text()
                        );
                        std::process::abort();
                    }
                }
            }
        });
    });
    &ARMED
}

/// How many failing cases a test collects before it stops (`SENDPACKETS_SOAK_MAX_FAILURES`).
const MAX_FAILURES: usize = 5;

/// Runs the cases of one test: index 0, 1, ... until its share of the running time is spent
/// (at least `min_cases`), or only the case `SENDPACKETS_SOAK_CASE`. A failing case is
/// reported with the seed, its parameters and the command that replays it, and the run goes
/// on (up to `Config::max_failures`); `Err` holds every report.
fn soak_loop(
    test: &str,
    share: f64,
    min_cases: u64,
    mut case: impl FnMut(u64, &CaseLog),
) -> Result<(), String> {
    let cfg = config();
    let budget = Duration::from_secs_f64(cfg.secs * share);
    eprintln!(
        "{test}: seed {} (replay: SENDPACKETS_SOAK_SEED={}), budget {budget:?}",
        cfg.seed, cfg.seed
    );
    let start = Instant::now();
    let indices = match cfg.only_case {
        Some(c) => c..c + 1,
        None => 0..u64::MAX,
    };
    let (mut ran, mut failures) = (0, Vec::new());
    for index in indices {
        let spent = index >= min_cases && start.elapsed() >= budget;
        if (cfg.only_case.is_none() && spent) || failures.len() >= cfg.max_failures {
            break;
        }
        let log = CaseLog::default();
        let head = format!("{test}: seed {} case {index}", cfg.seed);
        *watched().lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), head.clone(), log.clone()));
        let open_before = util::test_files_open();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(index, &log)));
        *watched().lock().unwrap_or_else(|e| e.into_inner()) = None;
        ran += 1;
        // Every case closes what it opened: once it returned, no descriptor names a test file
        // but those open before it (a test's shared pool of handles); its own handles are
        // dropped, and receiver threads open no files. Bounded: 5 s.
        let r = r.and_then(|()| {
            let opened = || {
                let mut now = util::test_files_open();
                now.retain(|d| !open_before.contains(d));
                now
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut open = opened();
            while !open.is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
                open = opened();
            }
            if open.is_empty() {
                Ok(())
            } else {
                Err(Box::new(format!(
                    "the case left files open:\n  {}",
                    open.join("\n  ")
                )) as Box<dyn std::any::Any + Send>)
            }
        });
        if let Err(payload) = r {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(panic without a message)");
            let report = format!(
                "soak failure: {head}\n  replay: {}\n  case: {}\n  failure: {msg}",
                replay_hint(test, index),
                log.text()
            );
            eprintln!("\n{report}\n");
            failures.push(report);
        }
    }
    eprintln!(
        "{test}: {ran} cases in {:.1?}, {} failed",
        start.elapsed(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {ran} cases failed (seed {}):\n\n{}\n",
            failures.len(),
            cfg.seed,
            failures.join("\n\n")
        ))
    }
}

fn verdict(result: Result<(), String>, fds_before: usize) {
    if let Err(report) = result {
        panic!("{report}");
    }
    // A case's receiver threads may still be closing their ends for a moment after the case
    // returns: wait for them (bounded, 5 s) before counting; a leak stays a leak.
    let deadline = Instant::now() + Duration::from_secs(5);
    while util::open_fds() > fds_before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let now = util::open_fds();
    if now != fds_before {
        let listing: Vec<String> = fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.filter_map(|e| {
                    let e = e.ok()?;
                    Some(format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        fs::read_link(e.path()).ok()?.display()
                    ))
                })
                .collect()
            })
            .unwrap_or_default();
        let threads = fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        panic!(
            "every descriptor the sends opened was closed (seed {}): {now} open, {fds_before} \
             expected; {threads} threads; open now:\n  {}",
            config().seed,
            listing.join("\n  ")
        );
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator (splitmix64): one per case, from the run's seed, the test
/// and the case index, so a case replays alone.
struct Rng(u64);

impl Rng {
    fn for_case(test: &str, index: u64) -> Rng {
        let name = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(mix(config().seed ^ mix(name ^ mix(index.wrapping_add(1)))))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// 0..n (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// 0..=n.
    fn upto(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            self.next()
        } else {
            self.below(n + 1)
        }
    }

    /// lo..=hi.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.upto(hi.saturating_sub(lo))
    }

    /// 0..=max, small values as likely as large ones on a log scale.
    fn skewed(&mut self, max: u64) -> u64 {
        let bits = 64 - u64::from(max.leading_zeros());
        let b = self.upto(bits);
        let cap = if b >= 64 { u64::MAX } else { (1u64 << b) - 1 };
        self.upto(cap.min(max))
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn duration_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}

/// Counts of what the soak did, printed at the end of each test.
#[derive(Default)]
struct Stats(BTreeMap<String, u64>);

impl Stats {
    fn bump(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    fn print(&self, test: &str) {
        let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let (group, rest) = k.split_once(':').unwrap_or(("", k));
            groups.entry(group).or_default().push(format!("{rest} {v}"));
        }
        for (group, items) in groups {
            eprintln!("{test}: {group}: {}", items.join(", "));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets and peers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    Tcp4,
    Tcp6,
    Unix,
    Udp4,
    Udp6,
    UnixDgram,
}

const SOCKS: [Sock; 6] = [
    Sock::Tcp4,
    Sock::Tcp6,
    Sock::Unix,
    Sock::Udp4,
    Sock::Udp6,
    Sock::UnixDgram,
];

const STREAM_SOCKS: [Sock; 3] = [Sock::Tcp4, Sock::Tcp6, Sock::Unix];

impl Sock {
    fn datagram(self) -> bool {
        matches!(self, Sock::Udp4 | Sock::Udp6 | Sock::UnixDgram)
    }

    /// The largest datagram a list for this socket holds (below what the socket takes).
    fn datagram_limit(self) -> u64 {
        match self {
            Sock::Udp4 => 65_507,
            Sock::Udp6 => 65_527,
            _ => 100_000,
        }
    }
}

/// A connected stream pair: the sender's descriptor and the receiving end. `small`: small
/// socket buffers, so the sender waits for the peer often (and can be held up on purpose).
fn stream_pair(kind: Sock, small: bool) -> (OwnedFd, ReceiverEnd) {
    match kind {
        Sock::Tcp4 | Sock::Tcp6 => {
            let (domain, addr): (Domain, SocketAddr) = if kind == Sock::Tcp4 {
                (Domain::IPV4, "127.0.0.1:0".parse().unwrap())
            } else {
                (Domain::IPV6, "[::1]:0".parse().unwrap())
            };
            let listener = Socket::new(domain, Type::STREAM, None).expect("socket");
            if small {
                listener.set_recv_buffer_size(SMALL_BUFFER).unwrap();
            }
            listener.bind(&addr.into()).expect("bind loopback");
            listener.listen(4).unwrap();
            let client = Socket::new(domain, Type::STREAM, None).expect("socket");
            if small {
                client.set_send_buffer_size(SMALL_BUFFER).unwrap();
            }
            client
                .connect(&listener.local_addr().unwrap())
                .expect("connect");
            let (server, _) = listener.accept().expect("accept");
            let server = TcpStream::from(server);
            server.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            (client.into(), ReceiverEnd::Tcp(server))
        }
        Sock::Unix => {
            let (a, b) = UnixStream::pair().expect("socketpair");
            if small {
                SockRef::from(&a)
                    .set_send_buffer_size(SMALL_BUFFER)
                    .unwrap();
            }
            b.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            (a.into(), ReceiverEnd::Unix(b))
        }
        _ => unreachable!("not a stream socket"),
    }
}

/// What the receiving end of a stream does.
enum StreamPeer {
    /// Reads everything until end of stream.
    ReadAll,
    /// Reads `k` bytes, then closes with data unread (TCP: with a reset).
    ResetAfter(u64),
    /// Reads nothing for a while, then slowly, then everything.
    StallThenDrain(Duration),
    /// Reads nothing until told (or until the sender side is gone), then everything.
    WaitForGo(mpsc::Receiver<usize>),
    /// Reads everything, 16 KiB a millisecond.
    Slow,
}

fn receive_stream(mut end: ReceiverEnd, peer: StreamPeer) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    match peer {
        StreamPeer::ReadAll => {}
        StreamPeer::ResetAfter(k) => {
            let mut buf = vec![0u8; 64 << 10];
            while (got.len() as u64) < k {
                let want = (k - got.len() as u64).min(buf.len() as u64) as usize;
                let n = end.read(&mut buf[..want])?;
                if n == 0 {
                    return Ok(got);
                }
                got.extend_from_slice(&buf[..n]);
            }
            if let ReceiverEnd::Tcp(s) = &end {
                SockRef::from(s).set_linger(Some(Duration::ZERO))?;
            }
            return Ok(got); // `end` closes with data unread
        }
        StreamPeer::StallThenDrain(pause) => {
            thread::sleep(pause);
            let mut buf = [0u8; 3000];
            for _ in 0..6 {
                let n = end.read(&mut buf)?;
                if n == 0 {
                    return Ok(got);
                }
                got.extend_from_slice(&buf[..n]);
                thread::sleep(Duration::from_millis(1));
            }
        }
        StreamPeer::WaitForGo(go) => {
            let _ = go.recv_timeout(PATIENCE);
        }
        StreamPeer::Slow => {
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let n = end.read(&mut buf)?;
                if n == 0 {
                    return Ok(got);
                }
                got.extend_from_slice(&buf[..n]);
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    end.read_to_end(&mut got)?;
    Ok(got)
}

/// The receiving end of a datagram pair.
enum DgramEnd {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DgramEnd {
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        match self {
            DgramEnd::Udp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.recv(buf)
            }
            DgramEnd::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.recv(buf)
            }
        }
    }
}

fn dgram_pair(kind: Sock) -> (OwnedFd, DgramEnd) {
    match kind {
        Sock::Udp4 | Sock::Udp6 => {
            let addr = if kind == Sock::Udp4 {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let rx = UdpSocket::bind(addr).expect("bind loopback");
            big_receive_buffer(&rx);
            let tx = UdpSocket::bind(addr).expect("bind loopback");
            tx.connect(rx.local_addr().unwrap()).expect("connect");
            (tx.into(), DgramEnd::Udp(rx))
        }
        Sock::UnixDgram => {
            let (tx, rx) = UnixDatagram::pair().expect("socketpair");
            (tx.into(), DgramEnd::Unix(rx))
        }
        _ => unreachable!("not a datagram socket"),
    }
}

/// A receive buffer that holds every datagram of a case even before the receiver reads:
/// loopback UDP drops what does not fit, and the cases count datagrams exactly.
fn big_receive_buffer(rx: &UdpSocket) {
    let size: libc::c_int = 64 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` is a valid int for the duration of the call, and its length is given.
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

/// How many bytes of datagrams (with their overhead) a list for UDP may hold: half of what
/// the receiver's buffer takes (`SO_RCVBUFFORCE` needs privileges; without them the buffer is
/// `net.core.rmem_max`), so a receiver that stalls loses nothing.
fn udp_receive_room() -> u64 {
    static ROOM: OnceLock<u64> = OnceLock::new();
    *ROOM.get_or_init(|| {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        big_receive_buffer(&rx);
        SockRef::from(&rx).recv_buffer_size().unwrap_or(200_000) as u64 / 2
    })
}

/// What the receiving end of a datagram pair does.
enum DgramPeer {
    /// Reads this many datagrams (then any surplus arriving soon after).
    Count(usize),
    /// Reads this many datagrams, then closes.
    ResetAfter(usize),
    /// Reads nothing for a while, then this many datagrams.
    StallThenCount(Duration, usize),
    /// Reads nothing until told how many datagrams to read.
    WaitForGo(mpsc::Receiver<usize>),
}

fn receive_dgrams(end: DgramEnd, peer: DgramPeer) -> Vec<Vec<u8>> {
    let (count, reset) = match peer {
        DgramPeer::Count(n) => (n, false),
        DgramPeer::ResetAfter(n) => (n, true),
        DgramPeer::StallThenCount(pause, n) => {
            thread::sleep(pause);
            (n, false)
        }
        DgramPeer::WaitForGo(go) => (go.recv_timeout(PATIENCE).unwrap_or(usize::MAX), false),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    // Bounded: a lost datagram ends the wait after 5 s of silence (and fails the case).
    while out.len() < count.min(100_000) {
        match end.recv(&mut buf, Duration::from_secs(5)) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => return out,
        }
    }
    if reset {
        return out; // `end` closes
    }
    for _ in 0..10_000 {
        match end.recv(&mut buf, Duration::from_millis(20)) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Front ends
// ---------------------------------------------------------------------------------------------

/// Where a send runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `sendpackets::send_with`, observed or not (`SendOptions::observe`).
    Blocking,
    /// A `sendpackets::Connection` made for the send.
    Connection,
    /// `sendpackets::tokio` on a current-thread runtime.
    CurrentThread,
    /// `sendpackets::tokio` on a multi-thread runtime (two workers).
    MultiThread,
    /// `sendpackets::tokio::send_packets_async` (the completion API), on either runtime.
    Completion,
    /// A `sendpackets::tokio::Connection` made for the send, on a multi-thread runtime.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    AsyncConnection,
}

#[cfg(feature = "tokio")]
const VIAS: &[Via] = &[
    Via::Blocking,
    Via::Connection,
    Via::CurrentThread,
    Via::MultiThread,
    Via::Completion,
    Via::AsyncConnection,
];
/// Without the `tokio` feature, the blocking front ends only.
#[cfg(not(feature = "tokio"))]
const VIAS: &[Via] = &[Via::Blocking, Via::Connection];

const ENGINES: [Engine; 3] = [Engine::Auto, Engine::ZeroCopy, Engine::Portable];
const FILE_IOS: [FileIo; 3] = [FileIo::Inline, FileIo::Readahead, FileIo::Offload];

/// How one send is made.
#[derive(Clone, Debug)]
struct How {
    via: Via,
    /// The completion API's runtime: multi-thread (else current-thread).
    multi: bool,
    /// The options, as chosen (the library's `SendOptions` keeps its fields to itself).
    engine: Engine,
    file_io: FileIo,
    send_size: Option<usize>,
    disconnect: bool,
    /// Observed: `SendOptions::observe` with a progress handle.
    observe: bool,
    /// Async fronts: drop the send future after this long.
    cancel: Option<Duration>,
}

impl How {
    fn random(rng: &mut Rng, via: Via) -> How {
        How {
            via,
            multi: rng.chance(50),
            engine: rng.pick(&ENGINES),
            file_io: rng.pick(&FILE_IOS),
            send_size: None,
            disconnect: false,
            observe: rng.chance(50),
            cancel: None,
        }
    }

    /// The options of the send.
    fn opts(&self) -> SendOptions {
        let mut o = SendOptions::new().engine(self.engine).file_io(self.file_io);
        if let Some(n) = self.send_size {
            o = o.send_size(n);
        }
        if self.disconnect {
            o = o.flags(TransmitFlags::DISCONNECT);
        }
        o
    }

    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.via);
        if self.via == Via::Completion {
            s += if self.multi {
                " (multi-thread)"
            } else {
                " (current-thread)"
            };
        }
        s += &format!(" {:?} {:?}", self.engine, self.file_io);
        if let Some(n) = self.send_size {
            s += &format!(" send_size {n}");
        }
        if self.disconnect {
            s += " DISCONNECT";
        }
        if self.observe {
            s += " observed";
        }
        if let Some(d) = self.cancel {
            s += &format!(" cancel after {d:?}");
        }
        s
    }
}

/// Where an observer finds the progress handle of a running send (the completion API makes
/// its own).
#[derive(Clone, Default)]
struct Watch(Arc<Mutex<Option<ProgressHandle>>>);

impl Watch {
    fn offer(&self, h: &ProgressHandle) {
        *self.0.lock().unwrap() = Some(h.clone());
    }

    fn get(&self) -> Option<Progress> {
        self.0.lock().unwrap().as_ref().map(ProgressHandle::get)
    }
}

/// A failed send, as the soak checks it.
struct Failure {
    kind: ErrorKind,
    element: Option<usize>,
    progress: Progress,
    text: String,
    /// The completion API reported it from the start call.
    thrown: bool,
    /// `err.remaining(&list)`.
    rest: Vec<Element>,
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} at element {:?}{} ({:?}; {} elements remain): {}",
            self.kind,
            self.element,
            if self.thrown { ", thrown at start" } else { "" },
            self.progress,
            self.rest.len(),
            self.text
        )
    }
}

impl Failure {
    fn new(e: &SendError, list: &[Element], thrown: bool) -> Failure {
        Failure {
            kind: e.kind(),
            element: e.element(),
            progress: e.progress(),
            text: e.to_string(),
            thrown,
            rest: e.progress().remaining(list),
        }
    }
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum Outcome {
    Sent(SendReport),
    Failed(Failure),
    /// The send future was dropped midway: its progress handle then, and
    /// `progress.remaining(&list)`.
    Cancelled(Progress, Vec<Element>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Sent(r) => write!(
                f,
                "sent {} bytes, {} datagrams, {:?}",
                r.bytes_sent, r.datagrams, r.calls
            ),
            Outcome::Failed(e) => write!(f, "failed: {e:?}"),
            Outcome::Cancelled(p, rest) => {
                write!(f, "cancelled at {p:?} ({} elements remain)", rest.len())
            }
        }
    }
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Sent(_) => "sent".into(),
            Outcome::Failed(f) => format!("{:?}", f.kind),
            Outcome::Cancelled(..) => "cancelled".into(),
        }
    }
}

struct Attempt {
    outcome: Outcome,
    /// The progress handle at the end, if the send had one.
    observed: Option<Progress>,
}

impl Attempt {
    fn finished(
        r: Result<SendReport, SendError>,
        list: &[Element],
        h: Option<&ProgressHandle>,
    ) -> Attempt {
        Attempt {
            outcome: match r {
                Ok(report) => Outcome::Sent(report),
                Err(e) => Outcome::Failed(Failure::new(&e, list, false)),
            },
            observed: h.map(ProgressHandle::get),
        }
    }
}

/// Sends `list` over `sock` as `how` says, leaving the socket's blocking mode as it was. A
/// `watch` is given the progress handle before the first byte.
fn send_through(
    how: &How,
    sock: BorrowedFd<'_>,
    list: &[Element],
    watch: Option<&Watch>,
) -> Attempt {
    let handle = (how.observe || watch.is_some() || how.cancel.is_some()).then(ProgressHandle::new);
    if let (Some(w), Some(h)) = (watch, &handle) {
        w.offer(h);
    }
    let opts = &how.opts();
    match how.via {
        Via::Blocking => {
            let r = match &handle {
                Some(h) => sendpackets::send_with(sock, list, &opts.clone().observe(h)),
                None => sendpackets::send_with(sock, list, opts),
            };
            Attempt::finished(r, list, handle.as_ref())
        }
        Via::Connection => {
            let mut conn = match sendpackets::Connection::new(sock) {
                Ok(c) => c,
                Err(e) => return Attempt::finished(Err(e), list, handle.as_ref()),
            };
            conn.set_options(match &handle {
                Some(h) => opts.clone().observe(h),
                None => opts.clone(),
            });
            let r = conn.send(list);
            Attempt::finished(r, list, handle.as_ref())
        }
        #[cfg(feature = "tokio")]
        Via::CurrentThread | Via::MultiThread | Via::AsyncConnection => {
            asynch::send_future(how, sock, list, handle.as_ref())
        }
        #[cfg(feature = "tokio")]
        Via::Completion => asynch::send_completion(how, sock, list, watch),
        #[cfg(not(feature = "tokio"))]
        _ => unreachable!("{:?} needs the tokio feature", how.via),
    }
}

/// The tokio front ends: a send future (dropped midway when the case says so) and the
/// completion API.
#[cfg(feature = "tokio")]
mod asynch {
    use super::*;
    use crate::util::front::TokioSocket;
    use sendpackets::tokio::{AsyncSocket, SendPacketsArgs, Started, send_packets_async};
    use std::sync::atomic::AtomicUsize;

    fn nonblocking(sock: BorrowedFd<'_>) -> bool {
        rustix::fs::fcntl_getfl(sock)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    }

    /// `sendpackets::tokio::send_with`, observed or not, on the runtime `how.via` names.
    pub(super) fn send_future(
        how: &How,
        sock: BorrowedFd<'_>,
        list: &[Element],
        handle: Option<&ProgressHandle>,
    ) -> Attempt {
        let opts = &how.opts();
        let flavour = if how.via == Via::CurrentThread {
            util::Front::CurrentThread
        } else {
            util::Front::MultiThread
        };
        let was_nonblocking = nonblocking(sock);
        let rt = util::front::runtime(flavour);
        let connection = how.via == Via::AsyncConnection;
        let r = rt.block_on(async {
            let s = TokioSocket::from_fd(sock);
            let send = async {
                if connection {
                    s.send_connection(list, opts, handle).await
                } else {
                    s.send(list, opts, handle).await
                }
            };
            tokio::time::timeout(how.cancel.unwrap_or(PATIENCE), send).await
        });
        drop(rt);
        SockRef::from(&sock)
            .set_nonblocking(was_nonblocking)
            .unwrap();
        match r {
            Ok(r) => Attempt::finished(r, list, handle),
            Err(_) if how.cancel.is_some() => {
                // The future is gone: the handle says what the kernel accepted.
                let p = handle.expect("a cancelled send is observed").get();
                Attempt {
                    outcome: Outcome::Cancelled(p, p.remaining(list)),
                    observed: Some(p),
                }
            }
            Err(_) => panic!("an async send did not finish within {PATIENCE:?}"),
        }
    }

    /// `sendpackets::tokio::send_packets_async` on the runtime `how.multi` names.
    pub(super) fn send_completion(
        how: &How,
        sock: BorrowedFd<'_>,
        list: &[Element],
        watch: Option<&Watch>,
    ) -> Attempt {
        let opts = &how.opts();
        let flavour = if how.multi {
            util::Front::MultiThread
        } else {
            util::Front::CurrentThread
        };
        let was_nonblocking = nonblocking(sock);
        let rt = util::front::runtime(flavour);
        let calls = Arc::new(AtomicUsize::new(0));
        let (attempt, pending) = rt.block_on(async {
            match TokioSocket::from_fd(sock) {
                TokioSocket::Tcp(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::Unix(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::Udp(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::UnixDgram(s) => {
                    complete_on(Arc::new(s), list, opts, watch, &calls).await
                }
            }
        });
        drop(rt);
        SockRef::from(&sock)
            .set_nonblocking(was_nonblocking)
            .unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            usize::from(pending),
            "the completion callback runs exactly once for a pending operation, never for \
             one completed during the call (pending: {pending})"
        );
        attempt
    }

    const TOKEN: u64 = 0x50a6;

    /// One operation of the completion API; returns the attempt and whether it went pending.
    pub(super) async fn complete_on<S: AsyncSocket + Send + Sync + 'static>(
        socket: Arc<S>,
        list: &[Element],
        opts: &SendOptions,
        watch: Option<&Watch>,
        calls: &Arc<AtomicUsize>,
    ) -> (Attempt, bool) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let counter = Arc::clone(calls);
        let mut args = SendPacketsArgs::new(TOKEN, move |args: SendPacketsArgs<u64>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = tx.lock().unwrap().send(args);
        });
        args.elements = list.to_vec();
        args.options = opts.clone();
        let handle = args.progress();
        if let Some(w) = watch {
            w.offer(&handle);
        }
        let finished = |args: &SendPacketsArgs<u64>| {
            assert_eq!(args.user_token, TOKEN, "the user token comes back");
            let result = args.result().expect("a finished operation has its result");
            let outcome = match result {
                Ok(r) => Outcome::Sent(*r),
                Err(e) => Outcome::Failed(Failure::new(e, list, false)),
            };
            let sent = match &outcome {
                Outcome::Sent(r) => r.bytes_sent,
                Outcome::Failed(f) => f.progress.bytes_sent,
                Outcome::Cancelled(..) => unreachable!(),
            };
            assert_eq!(args.bytes_transferred(), sent, "bytes_transferred");
            Attempt {
                outcome,
                observed: Some(args.progress().get()),
            }
        };
        match send_packets_async(&socket, args) {
            Err(e) => {
                assert_eq!(e.args.user_token, TOKEN, "the arguments come back");
                let attempt = Attempt {
                    outcome: Outcome::Failed(Failure::new(&e.error, list, true)),
                    observed: Some(handle.get()),
                };
                (attempt, false)
            }
            Ok(Started::Completed(args)) => (finished(&args), false),
            Ok(Started::Pending(progress)) => {
                let args = tokio::task::spawn_blocking(move || rx.recv_timeout(PATIENCE))
                    .await
                    .expect("waiting for the callback")
                    .expect("the completion callback came");
                let attempt = finished(&args);
                assert_eq!(
                    Some(progress.get()),
                    attempt.observed,
                    "the pending operation's handle and its arguments' agree"
                );
                (attempt, true)
            }
        }
    }

    /// A tokio send of `list` on the runtime `via` names, the descriptors squeezed to `free`
    /// once the runtime and the socket exist.
    pub(super) fn send_squeezed(
        via: Via,
        sock: BorrowedFd<'_>,
        list: &[Element],
        opts: &SendOptions,
        free: usize,
    ) -> Result<SendReport, SendError> {
        let flavour = if via == Via::CurrentThread {
            util::Front::CurrentThread
        } else {
            util::Front::MultiThread
        };
        let rt = util::front::runtime(flavour);
        let r = rt.block_on(async {
            let s = TokioSocket::from_fd(sock);
            let _squeeze = Squeeze::leave(free);
            s.send(list, opts, None).await
        });
        drop(rt);
        SockRef::from(&sock).set_nonblocking(false).unwrap();
        r
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// What a list must put on the wire, element by element, computed the simple way (reading each
/// file whole).
struct Model {
    /// Each element's bytes; `None` for an element whose range lies outside its file.
    parts: Vec<Option<Bytes>>,
    /// The first such element: the send must fail there with nothing sent.
    first_bad: Option<usize>,
    /// Each element's length (0 for bad ones).
    lens: Vec<u64>,
    /// Every byte, in order (of the good elements).
    bytes: Vec<u8>,
}

fn model_of(list: &[Element]) -> Model {
    let mut by_path: HashMap<PathBuf, Bytes> = HashMap::new();
    let mut by_fd: HashMap<RawFd, Bytes> = HashMap::new();
    let parts: Vec<Option<Bytes>> = list
        .iter()
        .map(|e| match &e.payload {
            Payload::Memory(b) => Some(b.clone()),
            Payload::Path { path, range } => {
                let data = by_path
                    .entry(path.clone())
                    .or_insert_with(|| {
                        Bytes::from(fs::read(path).expect("the model reads the file"))
                    })
                    .clone();
                slice(data, *range)
            }
            Payload::Handle { file, range } => {
                let data = by_fd
                    .entry(file.as_fd().as_raw_fd())
                    .or_insert_with(|| read_whole(file.as_fd()))
                    .clone();
                slice(data, *range)
            }
            _ => unreachable!("no other payloads"),
        })
        .collect();
    let first_bad = parts.iter().position(Option::is_none);
    let lens = parts
        .iter()
        .map(|p| p.as_ref().map_or(0, |b| b.len() as u64))
        .collect();
    let bytes = parts
        .iter()
        .flatten()
        .flat_map(|b| b.iter().copied())
        .collect();
    Model {
        parts,
        first_bad,
        lens,
        bytes,
    }
}

fn read_whole(fd: BorrowedFd<'_>) -> Bytes {
    let f = File::from(fd.try_clone_to_owned().expect("dup"));
    let len = f.metadata().expect("fstat").len();
    let mut data = vec![0u8; len as usize];
    f.read_exact_at(&mut data, 0)
        .expect("the model reads the handle");
    Bytes::from(data)
}

fn slice(data: Bytes, r: FileRange) -> Option<Bytes> {
    let len = data.len() as u64;
    if r.offset > len {
        return None;
    }
    let end = match r.len {
        None => len,
        Some(l) => r.offset.checked_add(l).filter(|&e| e <= len)?,
    };
    Some(data.slice(r.offset as usize..end as usize))
}

impl Model {
    /// The datagrams of the list on a datagram socket: elements up to an end-of-packet mark
    /// form one; a mark with no bytes since the last one is an empty datagram; elements after
    /// the last mark form a final one if they hold bytes.
    fn datagrams(&self, list: &[Element]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for (e, part) in list.iter().zip(&self.parts) {
            let bytes = part.as_deref().unwrap_or_default();
            if !bytes.is_empty() || e.end_of_packet {
                cur.get_or_insert_with(Vec::new).extend_from_slice(bytes);
            }
            if e.end_of_packet {
                out.push(cur.take().unwrap_or_default());
            }
        }
        if let Some(c) = cur.filter(|c| !c.is_empty()) {
            out.push(c);
        }
        out
    }

    /// The element holding byte `at` of the stream.
    fn element_at(&self, at: u64) -> usize {
        let mut end = 0;
        for (i, &l) in self.lens.iter().enumerate() {
            end += l;
            if at < end {
                return i;
            }
        }
        self.lens.len()
    }

    /// Asserts that `p` is self-consistent for this list: the bytes of the completed elements
    /// plus the offset into the next are the bytes sent.
    fn check_progress(&self, p: &Progress, what: &str) {
        assert!(
            p.elements_completed <= self.lens.len(),
            "{what}: progress {p:?} past the end of a list of {}",
            self.lens.len()
        );
        let before: u64 = self.lens[..p.elements_completed].iter().sum();
        assert_eq!(
            before + p.offset_in_element,
            p.bytes_sent,
            "{what}: progress {p:?}: completed elements hold {before} bytes"
        );
        if let Some(&l) = self.lens.get(p.elements_completed) {
            assert!(
                p.offset_in_element <= l,
                "{what}: progress {p:?}: offset past the element's {l} bytes"
            );
        }
    }
}

/// Asserts `got == want`, naming the first difference and the element it falls in.
fn expect_exact(got: &[u8], want: &[u8], m: &Model, what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        let at = at.unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: received {} bytes, expected {}; first difference at byte {at} (element {})",
            got.len(),
            want.len(),
            m.element_at(at as u64)
        );
    }
}

/// Asserts that `got` is a prefix of the model's bytes.
fn expect_prefix(got: &[u8], m: &Model, what: &str) {
    assert!(
        got.len() <= m.bytes.len(),
        "{what}: received {} bytes, more than the model's {}",
        got.len(),
        m.bytes.len()
    );
    expect_exact(got, &m.bytes[..got.len()], m, what);
}

/// After a send with a progress handle: the handle agrees with the result.
fn check_observed(a: &Attempt, list_len: usize, what: &str) {
    let Some(o) = a.observed else { return };
    match &a.outcome {
        Outcome::Sent(r) => {
            assert_eq!(
                o.bytes_sent, r.bytes_sent,
                "{what}: handle {o:?} after {r:?}"
            );
            assert_eq!(
                o.elements_completed, list_len,
                "{what}: handle {o:?} after a complete send of {list_len} elements"
            );
        }
        Outcome::Failed(f) => assert_eq!(o, f.progress, "{what}: handle after {}", f.text),
        Outcome::Cancelled(p, _) => assert_eq!(o, *p),
    }
}

// ---------------------------------------------------------------------------------------------
// Random lists
// ---------------------------------------------------------------------------------------------

/// Files (and open handles to them) the random lists draw from; never changed.
struct Pool {
    _dir: util::Files,
    files: Vec<PoolFile>,
    /// Random bytes memory elements are sliced from.
    blob: Bytes,
}

struct PoolFile {
    name: String,
    path: PathBuf,
    len: u64,
    /// One shared handle, used by many elements.
    shared: FileHandle,
    /// A second descriptor of the same file.
    arc: Arc<File>,
}

impl Pool {
    fn new() -> Pool {
        let dir = util::Files::new();
        let mut rng = Rng::for_case("pool", 0);
        let sizes: [usize; 12] = [
            0, 0, 1, 100, 4095, 4096, 65_535, 65_536, 70_001, 300_000, 1_100_000, 3_000_000,
        ];
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let name = format!("pool{i}-{len}.bin");
                let path = dir.make(&name, len, rng.below(256) as u8);
                PoolFile {
                    name,
                    len: len as u64,
                    shared: FileHandle::new(File::open(&path).unwrap()),
                    arc: Arc::new(File::open(&path).unwrap()),
                    path,
                }
            })
            .collect();
        let blob: Vec<u8> = (0..(4 << 20) / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        Pool {
            _dir: dir,
            files,
            blob: Bytes::from(blob),
        }
    }

    fn memory(&self, rng: &mut Rng, n: u64) -> Bytes {
        let n = n.min(self.blob.len() as u64) as usize;
        let start = rng.upto((self.blob.len() - n) as u64) as usize;
        self.blob.slice(start..start + n)
    }
}

/// A generated list, with a description of each element.
#[derive(Default)]
struct Gen {
    list: Vec<Element>,
    desc: Vec<String>,
    /// A note on the whole list (its shape).
    shape: String,
}

impl Gen {
    fn push(&mut self, e: Element, d: String) {
        self.list.push(e);
        self.desc.push(d);
    }

    fn describe(&self) -> String {
        let mut s = format!("{} elements{}: ", self.list.len(), self.shape);
        const SHOWN: usize = 40;
        for (i, (d, e)) in self.desc.iter().zip(&self.list).enumerate().take(SHOWN) {
            let eop = if e.end_of_packet { "+eop" } else { "" };
            s += &format!("[{i}] {d}{eop}; ");
        }
        if self.list.len() > SHOWN {
            s += &format!("... ({} more)", self.list.len() - SHOWN);
        }
        s
    }

    /// Puts a large element (a big file range or buffer) at a random place.
    fn add_bulk(&mut self, rng: &mut Rng, pool: &Pool) {
        let (e, d) = if rng.chance(40) {
            let n = rng.between(300_000, 2_000_000);
            (
                Element::memory(pool.memory(rng, n)),
                format!("bulk mem({n})"),
            )
        } else {
            let big: Vec<&PoolFile> = pool.files.iter().filter(|f| f.len > 1 << 20).collect();
            let f = big[rng.below(big.len() as u64) as usize];
            let o = rng.below(f.len / 2);
            let (e, how) = file_element(rng, f, FileRange::from(o..));
            (e, format!("bulk {how}({}, {o}..)", f.name))
        };
        let at = rng.upto(self.list.len() as u64) as usize;
        self.list.insert(at, e);
        self.desc.insert(at, d);
    }

    /// Puts 1 or 2 elements whose range lies outside their file at random places.
    fn spoil(&mut self, rng: &mut Rng, pool: &Pool) {
        for _ in 0..rng.between(1, 2) {
            let f = &pool.files[rng.below(pool.files.len() as u64) as usize];
            let (range, rd) = bad_range(rng, f.len);
            let (e, how) = file_element(rng, f, range);
            let at = rng.upto(self.list.len() as u64) as usize;
            self.list.insert(at, e);
            self.desc
                .insert(at, format!("OUT OF RANGE {how}({}, {rd})", f.name));
        }
    }
}

/// An element of `f` with `range`, by path or by one of its two handles.
fn file_element(rng: &mut Rng, f: &PoolFile, range: FileRange) -> (Element, &'static str) {
    match rng.below(3) {
        0 => (Element::file(&f.path, range), "path"),
        1 => (Element::shared_handle(f.shared.clone(), range), "handle"),
        _ => (Element::handle(Arc::clone(&f.arc), range), "arc-handle"),
    }
}

/// A range inside a file of `len` bytes, at most `room` bytes long, in one of the spellings a
/// caller uses; returns it, its description and its length.
fn good_range(rng: &mut Rng, len: u64, room: u64) -> (FileRange, String, u64) {
    // An offset from which the rest of the file fits the room.
    let suffix_start = len - rng.skewed(len.min(room));
    let o = rng.upto(len);
    let c = rng.skewed((len - o).min(room));
    match rng.below(8) {
        0 if len <= room => (FileRange::from(..), "..".into(), len),
        1 => (
            FileRange::from(suffix_start..),
            format!("{suffix_start}.."),
            len - suffix_start,
        ),
        2 => (
            FileRange::from_dotnet_count_or_to_end(suffix_start, 0),
            format!("({suffix_start}, count 0 = to the end)"),
            len - suffix_start,
        ),
        3 => (FileRange::from(o..o), format!("{o}..{o}"), 0),
        4 if c > 0 => (
            FileRange::from_dotnet_count_or_to_end(o, c),
            format!("({o}, count {c})"),
            c,
        ),
        5 if c > 0 => (
            FileRange::from(o..=o + c - 1),
            format!("{o}..={}", o + c - 1),
            c,
        ),
        _ => (FileRange::from(o..o + c), format!("{o}..{}", o + c), c),
    }
}

/// A range that does not lie inside a file of `len` bytes.
fn bad_range(rng: &mut Rng, len: u64) -> (FileRange, String) {
    let o = rng.upto(len);
    match rng.below(5) {
        0 => {
            let past = len + 1 + rng.below(1000);
            (FileRange::from(past..), format!("{past}.."))
        }
        1 => {
            let c = len - o + 1 + rng.below(100);
            (
                FileRange::from_dotnet_count_or_to_end(o, c),
                format!("({o}, count {c})"),
            )
        }
        2 => (
            FileRange::from_dotnet_count_or_to_end(len + 1, 0),
            format!("({}, count 0)", len + 1),
        ),
        3 => {
            let start = u64::MAX - rng.below(10);
            let c = 1 + rng.below(10);
            (
                FileRange::new(start, Some(c)),
                format!("({start}, count {c})"),
            )
        }
        _ => {
            let c = u64::MAX - o / 2;
            (FileRange::new(o, Some(c)), format!("({o}, count {c})"))
        }
    }
}

/// A memory element of at most `room` bytes.
fn memory_element(rng: &mut Rng, pool: &Pool, room: u64) -> (Element, String, u64) {
    match rng.below(12) {
        0 => (Element::memory(Bytes::new()), "mem(empty)".into(), 0),
        1 => {
            let n = rng.between(1, 64);
            let b = pool.memory(rng, n);
            let off = rng.upto(b.len() as u64) as usize;
            let e = Element::memory_range(b, off, 0).unwrap();
            (e, format!("mem_range(offset {off}, count 0)"), 0)
        }
        2 => {
            let n = rng.between(1, 5000).min(room);
            let extra = rng.below(100);
            let b = pool.memory(rng, n + extra);
            let off = rng.upto(b.len() as u64 - n) as usize;
            let e = Element::memory_range(b.to_vec(), off, n as usize).unwrap();
            (e, format!("mem_range(Vec, offset {off}, count {n})"), n)
        }
        3 => {
            let s = format!("<{}>", rng.next());
            let n = s.len() as u64;
            (Element::memory(s), format!("mem(String {n})"), n)
        }
        4..=7 => {
            let n = rng.upto(511).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
        8..=10 => {
            let n = rng.between(512, 70_000).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
        _ => {
            let n = rng.between(70_000, 1_500_000).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
    }
}

/// A list for a stream socket.
fn stream_list(rng: &mut Rng, pool: &Pool) -> Gen {
    let mut g = Gen::default();
    let max_total: u64 = if rng.chance(15) { 8 << 20 } else { 1 << 20 };
    let many = rng.chance(4);
    let n = if many {
        g.shape = " (many tiny elements)".into();
        rng.between(1025, 1300)
    } else {
        rng.skewed(24)
    };
    let mut total = 0u64;
    for _ in 0..n {
        let room = max_total.saturating_sub(total);
        let (e, d, len) = if many && rng.chance(90) {
            let n = rng.upto(8);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        } else if rng.chance(45) && !many {
            memory_element(rng, pool, room)
        } else {
            let f = &pool.files[rng.below(pool.files.len() as u64) as usize];
            let room = if many { room.min(16) } else { room };
            let (range, rd, len) = good_range(rng, f.len, room);
            let (e, how) = file_element(rng, f, range);
            (e, format!("{how}({}, {rd})", f.name), len)
        };
        total += len;
        let e = if rng.chance(15) { e.end_of_packet() } else { e };
        g.push(e, d);
    }
    if n > 0 && rng.chance(7) {
        g.spoil(rng, pool);
    }
    g
}

/// An element of exactly `n` bytes (memory or a file range).
fn exact_element(rng: &mut Rng, pool: &Pool, n: u64) -> (Element, String) {
    if rng.chance(40) {
        if n == 0 && rng.chance(50) {
            return (Element::memory(""), "mem(empty)".into());
        }
        return (Element::memory(pool.memory(rng, n)), format!("mem({n})"));
    }
    let fitting: Vec<&PoolFile> = pool.files.iter().filter(|f| f.len >= n).collect();
    let f = fitting[rng.below(fitting.len() as u64) as usize];
    let o = rng.upto(f.len - n);
    let (range, rd) = match rng.below(4) {
        0 if o + n == f.len => (FileRange::from(o..), format!("{o}..")),
        1 if o + n == f.len => (
            FileRange::from_dotnet_count_or_to_end(o, 0),
            format!("({o}, count 0 = to the end)"),
        ),
        2 if n > 0 => (
            FileRange::from_dotnet_count_or_to_end(o, n),
            format!("({o}, count {n})"),
        ),
        _ => (FileRange::from(o..o + n), format!("{o}..{}", o + n)),
    };
    let (e, how) = file_element(rng, f, range);
    (e, format!("{how}({}, {rd})", f.name))
}

/// A list for a datagram socket: datagrams up to `limit` bytes, built from several elements,
/// end-of-packet marks between them, sometimes empty ones and trailing elements.
fn datagram_list(rng: &mut Rng, pool: &Pool, limit: u64, room: u64) -> Gen {
    let mut g = Gen::default();
    // What a datagram costs in the receiver's buffer, roughly: its bytes and its overhead.
    let cost = |size: u64| size + 2048;
    let mut spent = 0;
    if rng.chance(10) {
        // Runs of equal-size datagrams (the shape sent in bursts, on UDP with GSO), a shorter
        // and a longer one breaking the run.
        let size = rng.pick(&[200u64, 1000, 1200, 1400, 8000]);
        let count = rng.between(20, 300).min(room / cost(size * 2)).max(1);
        g.shape = format!(" ({count} datagrams of {size} bytes, some other sizes)");
        for i in 0..count {
            let size = match rng.below(40) {
                0 => rng.upto(size),
                1 => rng.between(size, (size * 2).min(limit)),
                _ => size,
            };
            let h = format!("{i:031}:").into_bytes();
            let h = &h[..32.min(size as usize)];
            let hn = h.len() as u64;
            g.push(Element::memory(h.to_vec()), format!("mem({hn})"));
            let (e, d) = exact_element(rng, pool, size - hn);
            g.push(e.end_of_packet(), d);
        }
    } else {
        let count = rng.skewed(40);
        for _ in 0..count {
            let size = match rng.below(20) {
                0..=1 => 0,
                2..=12 => rng.between(1, 1500),
                13..=18 => rng.between(1500, 16_000),
                _ => rng.between(16_000, limit),
            }
            .min(limit);
            spent += cost(size);
            if spent > room {
                break;
            }
            let parts = rng.between(1, 4);
            let mut filled = 0;
            for p in 0..parts {
                let want = if p + 1 == parts {
                    size - filled
                } else {
                    rng.upto(size - filled)
                };
                filled += want;
                let (e, d) = exact_element(rng, pool, want);
                let e = if p + 1 == parts { e.end_of_packet() } else { e };
                g.push(e, d);
            }
        }
        if rng.chance(30) {
            let mut tail = rng.upto(limit.min(20_000).min(room.saturating_sub(spent + cost(0))));
            for _ in 0..rng.between(1, 3) {
                let n = rng.upto(tail);
                tail -= n;
                let (e, d) = exact_element(rng, pool, n);
                g.push(e, format!("{d} (after the last mark)"));
            }
        }
    }
    if rng.chance(7) {
        g.spoil(rng, pool);
    }
    g
}

// ---------------------------------------------------------------------------------------------
// The random-list soak
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
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
fn combinations() -> Vec<(Via, Sock, Peer)> {
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
    how: How,
    sock: Sock,
    peer: Peer,
    small: bool,
    stall: Duration,
    /// Reset after this many bytes (streams) or datagrams.
    reset_after: u64,
    /// After a cancel, resume on the same connection (else on a fresh one).
    resume_same: bool,
    /// How the resume is sent.
    resume: How,
}

fn random_case(index: u64, pool: &Pool, log: &CaseLog, stats: &mut Stats) {
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
fn send_to_fresh_stream(sock: Sock, how: &How, list: &[Element]) -> (Attempt, Vec<u8>) {
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
fn warm_up(pool: &Pool) {
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

#[test]
fn soak_random_lists() {
    let _serial = serial();
    let pool = Pool::new();
    warm_up(&pool);
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let combos = combinations().len() as u64;
    let result = soak_loop(
        "soak_random_lists",
        SHARE_RANDOM,
        combos.min(20),
        |index, log| random_case(index, &pool, log, &mut stats),
    );
    stats.print("soak_random_lists");
    eprintln!("soak_random_lists: {combos} combinations of front end, socket and peer");
    verdict(result, fds_before);
}

// ---------------------------------------------------------------------------------------------
// File churn
// ---------------------------------------------------------------------------------------------

/// A change to a file.
#[derive(Clone, Copy, Debug)]
enum Churn {
    /// Cut to this length.
    Truncate(u64),
    /// Append this many bytes.
    Grow(u64),
    /// A new file with other bytes renamed over it.
    RenameOver { len: u64, seed: u8 },
    /// Deleted, then created again with other bytes.
    Recreate { len: u64, seed: u8 },
}

impl Churn {
    fn random(rng: &mut Rng, len: u64, seed: u8) -> Churn {
        let other = seed ^ 0x5a;
        let new_len = if rng.chance(50) {
            len
        } else {
            rng.between(16, len.max(16) * 2)
        };
        match rng.below(4) {
            0 => Churn::Truncate(rng.below(len)),
            1 => Churn::Grow(rng.between(1, 50_000)),
            2 => Churn::RenameOver {
                len: new_len,
                seed: other,
            },
            _ => Churn::Recreate {
                len: new_len,
                seed: other,
            },
        }
    }

    fn replaces(self) -> bool {
        matches!(self, Churn::RenameOver { .. } | Churn::Recreate { .. })
    }

    fn apply(self, path: &Path) -> io::Result<()> {
        match self {
            Churn::Truncate(len) => OpenOptions::new().write(true).open(path)?.set_len(len),
            Churn::Grow(n) => OpenOptions::new()
                .append(true)
                .open(path)?
                .write_all(&util::pattern(n as usize, 0xee)),
            Churn::RenameOver { len, seed } => {
                let tmp = path.with_extension("new");
                fs::write(&tmp, util::pattern(len as usize, seed))?;
                fs::rename(&tmp, path)
            }
            Churn::Recreate { len, seed } => {
                fs::remove_file(path)?;
                fs::write(path, util::pattern(len as usize, seed))
            }
        }
    }
}

/// The soft descriptor limit during the churn test: low enough that a send of ~200 files keeps
/// only some of them open between its checks and their use (the library keeps a share of the
/// limit) and reopens the rest by path.
const CHURN_NOFILE: u64 = 256;

/// Lowers the soft `RLIMIT_NOFILE` until dropped.
struct LowLimit(libc::rlimit);

impl LowLimit {
    fn to(soft: u64) -> LowLimit {
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is valid for writes.
        let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) };
        assert_eq!(r, 0);
        let low = libc::rlimit {
            rlim_cur: soft.min(saved.rlim_cur),
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `low` is a valid rlimit.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
        assert_eq!(r, 0);
        LowLimit(saved)
    }
}

impl Drop for LowLimit {
    fn drop(&mut self) {
        // SAFETY: the limit read before.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
    }
}

/// How many descriptors of this process have `path` open.
fn opened(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|p| p == path)
                .count()
        })
        .unwrap_or(0)
}

/// A directory of files for one churn case, some with an open handle too.
struct ChurnFiles {
    _dir: util::Files,
    paths: Vec<PathBuf>,
    lens: Vec<u64>,
    seeds: Vec<u8>,
    handles: Vec<Option<Arc<File>>>,
}

impl ChurnFiles {
    fn new(rng: &mut Rng, n: u64, handle_percent: u64) -> ChurnFiles {
        let dir = util::Files::new();
        let (mut paths, mut lens, mut seeds, mut handles) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let len = if rng.chance(10) {
                rng.between(65_536, 300_000)
            } else {
                rng.between(16, 40_000)
            };
            let seed = (i % 200) as u8 + 1;
            let path = dir.make(&format!("f{i:04}.bin"), len as usize, seed);
            let handle = rng
                .chance(handle_percent)
                .then(|| Arc::new(File::open(&path).unwrap()));
            paths.push(path);
            lens.push(len);
            seeds.push(seed);
            handles.push(handle);
        }
        ChurnFiles {
            _dir: dir,
            paths,
            lens,
            seeds,
            handles,
        }
    }

    /// A list naming every file in order (by path, some by handle as well), each element
    /// described; `owner[e]` is the file element `e` reads.
    fn list(&self, rng: &mut Rng, list: &mut Vec<Element>, owner: &mut Vec<Option<usize>>) {
        for (i, path) in self.paths.iter().enumerate() {
            if rng.chance(50) {
                list.push(Element::memory(format!("<{i}>")));
                owner.push(None);
            }
            let len = self.lens[i];
            let o = rng.upto(len);
            let range = match rng.below(10) {
                0..=4 => FileRange::from(..),
                5..=6 => FileRange::from_dotnet_count_or_to_end(o, 0),
                _ => FileRange::from(o..o + rng.upto(len - o)),
            };
            list.push(Element::file(path, range));
            owner.push(Some(i));
            if let Some(h) = &self.handles[i] {
                let o = rng.upto(len);
                list.push(Element::handle(Arc::clone(h), o..));
                owner.push(Some(i));
            }
        }
    }
}

/// Picks 1 to 3 distinct files to change; with many files, mostly in the second half (past
/// what a send keeps open under `CHURN_NOFILE`: reopened by path during the send).
fn pick_victims(rng: &mut Rng, files: &ChurnFiles) -> Vec<(usize, Churn)> {
    let n = files.paths.len() as u64;
    let mut victims: Vec<(usize, Churn)> = Vec::new();
    for _ in 0..rng.between(1, 3) {
        let i = if n > 100 && rng.chance(70) {
            rng.between(n / 2, n - 1)
        } else {
            rng.below(n)
        } as usize;
        if victims.iter().all(|(v, _)| *v != i) {
            victims.push((i, Churn::random(rng, files.lens[i], files.seeds[i])));
        }
    }
    victims
}

/// 2 MiB of memory at the head of a churn list: with small socket buffers and a peer that does
/// not read yet, the send is held inside it, after its checks and before any file is used.
fn stall_bytes() -> Bytes {
    static STALL: OnceLock<Bytes> = OnceLock::new();
    STALL
        .get_or_init(|| Bytes::from(util::pattern(2 << 20, 77)))
        .clone()
}

fn churn_during_case(index: u64, log: &CaseLog, stats: &mut Stats) {
    let test = "churn_during_sends";
    let mut rng = Rng::for_case(test, index);
    let many = rng.chance(50);
    let n = if many {
        rng.between(150, 220)
    } else {
        rng.between(2, 10)
    };
    let files = ChurnFiles::new(&mut rng, n, if many { 5 } else { 30 });
    let sock = rng.pick(&STREAM_SOCKS);
    let via = rng.pick(VIAS);
    let mut how = How::random(&mut rng, via);
    how.observe = true;
    // Held: the files change while the send is held in a first element of 2 MiB, after its
    // checks and before any file is read. Anywhere: at a random moment of a send to a slow
    // reader.
    let anywhere = rng.chance(35);
    let (mut list, mut owner) = if anywhere {
        (vec![], vec![])
    } else {
        (vec![Element::memory(stall_bytes())], vec![None])
    };
    files.list(&mut rng, &mut list, &mut owner);
    let mut victims = pick_victims(&mut rng, &files);
    // A page that `sendfile` handed to the socket is read when it goes out: cutting the file
    // then may zero the tail of that page on the wire (the documented hazard). So at a random
    // moment, files are cut only when no `sendfile` can be in flight.
    let async_front = !matches!(via, Via::Blocking | Via::Connection);
    let no_late_reads =
        how.engine == Engine::Portable || (async_front && how.file_io == FileIo::Offload);
    if anywhere && !no_late_reads {
        for (i, c) in &mut victims {
            if let Churn::Truncate(_) = c {
                *c = Churn::Recreate {
                    len: files.lens[*i],
                    seed: files.seeds[*i] ^ 0x5a,
                };
            }
        }
    }
    let delay = rng.duration_ms(0, 40);
    let m = model_of(&list);
    log.set(format!(
        "{n} files, {} elements, {} bytes, over {sock:?} via {}; changed {}: {}",
        list.len(),
        m.bytes.len(),
        how.describe(),
        if anywhere {
            format!("{delay:?} after the first bytes, the peer reading slowly")
        } else {
            "while the send is held after its checks".to_string()
        },
        victims
            .iter()
            .map(|(i, c)| format!(
                "file {i} ({} B, {} handle): {c:?}",
                files.lens[*i],
                if files.handles[*i].is_some() {
                    "with"
                } else {
                    "no"
                }
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));

    let (fd, end) = stream_pair(sock, true);
    // The churn thread watches the peer's receive queue: bytes there mean the checks are
    // behind the send (a blocking send may sit in one kernel call, publishing nothing).
    let peek = match &end {
        ReceiverEnd::Tcp(s) => s.as_fd().try_clone_to_owned(),
        ReceiverEnd::Unix(s) => s.as_fd().try_clone_to_owned(),
    }
    .expect("dup");
    let (go, go_rx) = mpsc::channel();
    let peer = if anywhere {
        StreamPeer::Slow
    } else {
        StreamPeer::WaitForGo(go_rx)
    };
    let reader = thread::spawn(move || receive_stream(end, peer));
    let watch = Watch::default();
    let done = Arc::new(AtomicBool::new(false));
    let churner = {
        let watch = watch.clone();
        let done = Arc::clone(&done);
        let targets: Vec<(PathBuf, Churn, bool)> = victims
            .iter()
            .map(|(i, c)| (files.paths[*i].clone(), *c, files.handles[*i].is_some()))
            .collect();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let queued = || rustix::io::ioctl_fionread(&peek).unwrap_or(0);
            let started = || queued() > 0 || watch.get().is_some_and(|p| p.bytes_sent > 0);
            while !started() && !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            // Held: give a send that is not blocked in a kernel call time to fill the buffers
            // and wait (so the published progress is the progress at the change).
            thread::sleep(if anywhere {
                delay
            } else {
                Duration::from_millis(5)
            });
            // Which of them the send holds open (beside the case's own handles).
            let kept: Vec<bool> = targets
                .iter()
                .map(|(path, _, handle)| opened(path) > usize::from(*handle))
                .collect();
            for (path, c, _) in &targets {
                c.apply(path).expect("changing a file");
            }
            let at = (queued(), watch.get(), kept);
            let _ = go.send(0);
            at
        })
    };
    let a = send_through(&how, fd.as_fd(), &list, Some(&watch));
    done.store(true, Ordering::SeqCst);
    drop(fd);
    let (queued, at, kept) = churner.join().expect("churn thread");
    let place = |file: usize| {
        let v = victims.iter().position(|(v, _)| *v == file);
        match v.map(|v| kept[v]) {
            Some(true) => "kept open",
            Some(false) => "reopened",
            None => "unchanged",
        }
    };
    let got = reader
        .join()
        .expect("receiver thread")
        .expect("receiver read");
    log.note(&format!(
        "when the files changed: {queued} bytes waiting at the peer, progress {at:?}, \
         held open by the send: {kept:?}"
    ));
    log.note(&format!("send: {:?}", a.outcome));
    let at = at.unwrap_or_default();
    assert!(
        anywhere || queued > 0 && queued < 1 << 20 && at.elements_completed == 0,
        "the files changed while the send was held in its first element \
         ({queued} bytes at the peer, progress {at:?})"
    );
    check_observed(&a, list.len(), "send");
    let op_name = |c: &Churn| {
        let op = format!("{c:?}");
        op.split([' ', '(']).next().unwrap_or_default().to_string()
    };
    for (i, c) in &victims {
        stats.bump(format!("change:{} of a {} file", op_name(c), place(*i)));
    }
    // The kind of element `e`: a file kept open or reopened, by path or handle, how changed.
    let class = |e: usize| match owner.get(e).copied().flatten() {
        None => "no file".to_string(),
        Some(file) => {
            let by = match &list[e].payload {
                Payload::Path { .. } => "by path",
                _ => "by handle",
            };
            let change = victims.iter().find(|(v, _)| *v == file);
            let op = change.map_or("unchanged".to_string(), |(_, c)| op_name(c));
            format!("a {} file {by} ({op})", place(file))
        }
    };
    // What element `e` reads, and what happened to that file.
    let element = |e: usize| match owner.get(e).copied().flatten() {
        None => format!("element {e} (memory)"),
        Some(file) => {
            let change = victims.iter().find(|(v, _)| *v == file);
            let by = match &list[e].payload {
                Payload::Path { .. } => "by path",
                _ => "by handle",
            };
            match change {
                Some((_, c)) => format!("element {e} (file {file} {by}, {}, {c:?})", place(file)),
                None => format!("element {e} (file {file} {by}, unchanged)"),
            }
        }
    };
    match &a.outcome {
        Outcome::Sent(r) => {
            // Never new bytes silently: a complete send carries the files as they were checked.
            if got != m.bytes {
                let at = got.iter().zip(&m.bytes).position(|(a, b)| a != b);
                let at = at.unwrap_or(got.len().min(m.bytes.len()));
                let e = m.element_at(at as u64);
                stats.bump(format!("outcome:NEW BYTES on the wire from {}", class(e)));
                panic!(
                    "new bytes on the wire, and the send reported success ({} of {} bytes \
                     received): first difference at byte {at}, in {}",
                    got.len(),
                    m.bytes.len(),
                    element(e)
                );
            }
            assert_eq!(r.bytes_sent, m.bytes.len() as u64);
            stats.bump("outcome:sent the bytes as checked");
        }
        Outcome::Failed(f) => {
            let e = f.element.unwrap_or(usize::MAX);
            stats.bump(format!("outcome:{:?} at {}", f.kind, class(e)));
            assert!(
                matches!(f.kind, ErrorKind::FileChanged | ErrorKind::FileTruncated),
                "a changed file gives FileChanged or FileTruncated, not: {}",
                f.text
            );
            let file = owner
                .get(e)
                .copied()
                .flatten()
                .unwrap_or_else(|| panic!("{} is not a file: {}", element(e), f.text));
            let (_, churn) = victims
                .iter()
                .find(|(v, _)| *v == file)
                .unwrap_or_else(|| panic!("{} was not changed: {}", element(e), f.text));
            if f.kind == ErrorKind::FileTruncated {
                assert!(
                    matches!(churn, Churn::Truncate(_)) || churn.replaces(),
                    "FileTruncated for {}: {}",
                    element(e),
                    f.text
                );
            }
            m.check_progress(&f.progress, "error progress");
            assert_eq!(
                f.progress.bytes_sent,
                got.len() as u64,
                "the error's progress is what the peer received"
            );
            if got[..] != m.bytes[..got.len()] {
                let at = got.iter().zip(&m.bytes).position(|(a, b)| a != b);
                let e = m.element_at(at.unwrap_or_default() as u64);
                stats.bump(format!("outcome:NEW BYTES on the wire from {}", class(e)));
                panic!(
                    "new bytes on the wire before the error ({}): first difference at byte \
                     {at:?}, in {}",
                    f.text,
                    element(e)
                );
            }
        }
        Outcome::Cancelled(..) => unreachable!("no cancel here"),
    }
    stats.bump(format!("front:{:?}", how.via));
    stats.bump(format!(
        "when:{}",
        if anywhere {
            "anywhere"
        } else {
            "held after the checks"
        }
    ));
}

/// Files truncated, grown, renamed over, deleted and re-created while a send is held after its
/// checks, or at a random moment: files the send keeps open and files past its open budget
/// (~200 files under a descriptor limit of 256, reopened by path). Never new bytes on the wire:
/// either the bytes as checked, or `FileChanged` / `FileTruncated` with exact progress.
#[test]
fn churn_during_sends() {
    let _serial = serial();
    let _ = stall_bytes();
    let _limit = LowLimit::to(CHURN_NOFILE);
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let result = soak_loop("churn_during_sends", SHARE_CHURN_DURING, 8, |index, log| {
        churn_during_case(index, log, &mut stats)
    });
    stats.print("churn_during_sends");
    verdict(result, fds_before);
}

fn churn_between_case(index: u64, log: &CaseLog, stats: &mut Stats) {
    let mut rng = Rng::for_case("churn_between_sends", index);
    let n = if rng.chance(30) {
        rng.between(150, 220)
    } else {
        rng.between(2, 8)
    };
    let files = ChurnFiles::new(&mut rng, n, 30);
    let mut list = Vec::new();
    let mut owner = Vec::new();
    files.list(&mut rng, &mut list, &mut owner);
    let victims = pick_victims(&mut rng, &files);
    let sock = rng.pick(&STREAM_SOCKS);
    let (via1, via2) = (rng.pick(VIAS), rng.pick(VIAS));
    let first = How::random(&mut rng, via1);
    let second = How::random(&mut rng, via2);
    log.set(format!(
        "{n} files, {} elements over {sock:?}; first send via {}, then {victims:?}, then via {}",
        list.len(),
        first.describe(),
        second.describe()
    ));
    let m = model_of(&list);
    let (a, got) = send_to_fresh_stream(sock, &first, &list);
    assert!(
        matches!(a.outcome, Outcome::Sent(_)),
        "first send: {:?}",
        a.outcome
    );
    expect_exact(&got, &m.bytes, &m, "first send");
    for (i, c) in &victims {
        c.apply(&files.paths[*i]).expect("changing a file");
    }
    // The next send sees the files as they are now: paths name the new files, handles keep
    // the old ones (shorter if truncated).
    let m = model_of(&list);
    let (a, got) = send_to_fresh_stream(sock, &second, &list);
    log.note(&format!("second send: {:?}", a.outcome));
    check_observed(&a, list.len(), "second send");
    match (&a.outcome, m.first_bad) {
        (Outcome::Sent(r), None) => {
            expect_exact(&got, &m.bytes, &m, "second send");
            assert_eq!(r.bytes_sent, m.bytes.len() as u64);
        }
        (Outcome::Failed(f), Some(bad)) => {
            assert_eq!(f.kind, ErrorKind::RangeOutOfBounds, "{}", f.text);
            assert_eq!(f.element, Some(bad), "{}", f.text);
            assert_eq!(f.progress.bytes_sent, 0, "{}", f.text);
            assert!(got.is_empty());
        }
        (other, bad) => panic!("second send: {other:?}, expected a range error at {bad:?}"),
    }
    stats.bump(format!("outcome:{}", a.outcome.label()));
}

/// Files changed between two sends of the same list: the second send sends them as they are
/// then, or fails its checks with nothing sent.
#[test]
fn churn_between_sends() {
    let _serial = serial();
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let result = soak_loop(
        "churn_between_sends",
        SHARE_CHURN_BETWEEN,
        4,
        |index, log| churn_between_case(index, log, &mut stats),
    );
    stats.print("churn_between_sends");
    verdict(result, fds_before);
}

/// Leaves this process exactly `free` descriptors until dropped: lowers `RLIMIT_NOFILE` and
/// fills every other free slot below it.
struct Squeeze {
    saved: libc::rlimit,
    _fillers: Vec<OwnedFd>,
    _null: File,
}

impl Squeeze {
    fn leave(free: usize) -> Squeeze {
        let null = File::open("/dev/null").unwrap();
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is valid for writes.
        let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) };
        assert_eq!(r, 0);
        let highest = fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let low = libc::rlimit {
            rlim_cur: highest + 1 + free as u64 + 8,
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `low` is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let mut fillers = Vec::new();
        for _ in 0..100_000 {
            match rustix::io::fcntl_dupfd_cloexec(&null, 0) {
                Ok(fd) => fillers.push(fd),
                Err(rustix::io::Errno::MFILE) => break,
                Err(e) => panic!("dup: {e}"),
            }
        }
        assert!(fillers.len() >= free, "{} fillers", fillers.len());
        fillers.truncate(fillers.len() - free);
        Squeeze {
            saved,
            _fillers: fillers,
            _null: null,
        }
    }
}

impl Drop for Squeeze {
    fn drop(&mut self) {
        // SAFETY: `saved` is the limit read before.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
    }
}

/// A send of 200 files (more than the open budget) with 2 free descriptors: the send must
/// close its other files and retry rather than fail (issue 11, item 2); if it does fail, its
/// progress must still be exact.
#[test]
fn descriptor_shortage_mid_send() {
    let _serial = serial();
    let files = util::Files::new();
    let list: Vec<Element> = (0..200)
        .flat_map(|i| {
            let path = files.make(&format!("f{i:03}.bin"), 20_000, i as u8);
            [Element::memory(format!("#{i}:")), Element::file(path, ..)]
        })
        .collect();
    let m = model_of(&list);
    let fds_before = util::open_fds();
    let mut failures = Vec::new();
    for (via, engine) in [
        (Via::Blocking, Engine::Auto),
        (Via::Connection, Engine::Portable),
        (Via::CurrentThread, Engine::Auto),
        (Via::MultiThread, Engine::ZeroCopy),
    ]
    .into_iter()
    .filter(|(via, _)| VIAS.contains(via))
    {
        let opts = SendOptions::new().engine(engine);
        let (fd, end) = stream_pair(Sock::Unix, false);
        let reader = thread::spawn(move || receive_stream(end, StreamPeer::ReadAll));
        let sock = fd.as_fd();
        let r = match via {
            Via::Blocking => {
                let _squeeze = Squeeze::leave(2);
                sendpackets::send_with(sock, &list, &opts)
            }
            Via::Connection => {
                let mut conn = sendpackets::Connection::new(sock).unwrap();
                conn.set_options(opts.clone());
                let _squeeze = Squeeze::leave(2);
                conn.send(&list)
            }
            #[cfg(feature = "tokio")]
            _ => asynch::send_squeezed(via, sock, &list, &opts, 2),
            #[cfg(not(feature = "tokio"))]
            _ => unreachable!(),
        };
        drop(fd);
        let got = reader
            .join()
            .expect("receiver thread")
            .expect("receiver read");
        match r {
            Ok(report) => {
                expect_exact(&got, &m.bytes, &m, &format!("{via:?} {engine:?}"));
                assert_eq!(report.bytes_sent, m.bytes.len() as u64);
            }
            Err(e) => {
                // Whatever the verdict, the progress is exact.
                assert_eq!(e.progress().bytes_sent, got.len() as u64, "{via:?}: {e}");
                expect_prefix(&got, &m, &format!("{via:?}"));
                m.check_progress(&e.progress(), &format!("{via:?}"));
                failures.push(format!("{via:?} {engine:?}: {e}"));
            }
        }
    }
    assert_eq!(util::open_fds(), fds_before, "every descriptor was closed");
    assert!(
        failures.is_empty(),
        "with 2 free descriptors, 200 files: the send failed instead of closing its other \
         files and retrying:\n  {}",
        failures.join("\n  ")
    );
}
