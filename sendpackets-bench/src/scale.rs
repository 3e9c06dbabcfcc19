//! Workload 7 (issue 12): 100 → 1,000 → 10,000 concurrent async connections over the veth path,
//! each one response of a header + 64 KiB file range + trailer through
//! `sendpackets::tokio::send_with`, every byte verified by the receiver.
//!
//! The receivers run in a child process inside the namespace (`ip netns exec`, this same
//! program with the hidden `scale-receiver` command): 10,000 connections need 10,000
//! descriptors on each side, and the hard limit of one process here is 20,000 — both sides in
//! one process would not fit. The child checks each connection's bytes against the file (the
//! connection's index travels in its header) and reports its totals on standard output; its CPU
//! time is added to the run's.

use std::io::{self, BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sendpackets::{Element, Engine, FileHandle, SendOptions};

use crate::buf::AlignedBuf;
use crate::fixture::Fixture;
use crate::measure::{Clock, Contender, Kind, Outcome, interleave, pid_cpu_seconds, pid_peak_rss};
use crate::netpath::Path;
use crate::table::{CallsPer, Metric, Spec};
use crate::{Config, Section};

/// File bytes per response.
pub(crate) const BODY: u64 = 64 << 10;
/// The in-flight memory workload: connections and file bytes per response (issue 12: "1,000
/// concurrent 8 MiB sends under 300 MB peak RSS on every path").
pub(crate) const INFLIGHT_CONNS: usize = 1_000;
pub(crate) const INFLIGHT_BODY: u64 = 8 << 20;
/// Its goal: peak RSS of the sending process.
pub(crate) const INFLIGHT_PEAK_GOAL: u64 = 300 << 20;
/// Header bytes per response: `conn=NNNNNNNNNN` then `H` up to this length.
pub(crate) const HEAD: usize = 200;
/// Trailer bytes per response (`T`).
pub(crate) const TAIL: usize = 50;
/// The connection counts, smallest first (the target compares the last with the first).
pub(crate) const LEVELS: [usize; 3] = [100, 1_000, 10_000];
/// Connections made at once while setting up a round.
const CONNECT_WAVE: usize = 256;
/// A round (set-up excluded) is given up after this long; the child ends itself after
/// [`CHILD_DEADLINE`].
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);
const CHILD_DEADLINE: Duration = Duration::from_secs(300);
/// The receiver's listen backlog (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 16_384;

/// Response `i`'s header: its index, then `H`.
fn header(i: usize) -> Vec<u8> {
    let mut h = format!("conn={i:010} ").into_bytes();
    h.resize(HEAD, b'H');
    h
}

/// The file offset of connection `i`'s range of `body` bytes (page-aligned, inside the file).
fn body_offset(i: usize, body: u64, file_len: u64) -> u64 {
    ((i as u64 * body) % (file_len - body + 1)) & !4095
}

/// What one round sends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    /// Connections made for the round (each sends one response).
    pub(crate) conns: usize,
    /// How many of them send at once: the round sends in waves of this many, each wave's
    /// tasks spawned together, the next wave once they all returned.
    pub(crate) concurrency: usize,
    /// File bytes per response.
    pub(crate) body: u64,
    pub(crate) engine: Engine,
}

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    let path = match cfg.veth {
        Some(v) => Path::Veth(v),
        None => Path::Loopback,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale: cannot build the runtime: {e}");
            return Vec::new();
        }
    };
    let rt = &rt;
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for n in LEVELS {
        let name = format!("{} concurrent", crate::fmt_thousands(n as u64));
        let load = Load {
            conns: LEVELS[LEVELS.len() - 1],
            concurrency: n,
            body: BODY,
            engine: Engine::Auto,
        };
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            round(rt, path, fx, load, clock)
        }));
    }
    let key = crate::section_key("scale", Some(path.name()));
    let series = interleave(&key, cfg.plan, &mut cs);
    let mut notes = vec![
        format!(
            "Every run: {} connections, each one `sendpackets::tokio::send_with` \
             (Engine::Auto) of a {HEAD} B header (its index inside) + a {} range of the {} file \
             + a {TAIL} B trailer, then end of stream, on a 2-worker runtime. \"N concurrent\": \
             the tasks are spawned N at a time (a wave), the next wave once the previous \
             wave's sends returned — so every level moves the same bytes, and at 10,000 all of \
             them are in flight at once. Connections are made (and accepted) before the clock \
             starts; timed until the receiver has verified the last byte of the last \
             connection.",
            crate::fmt_thousands(LEVELS[LEVELS.len() - 1] as u64),
            crate::size_name(BODY),
            crate::size_name(fx.big_len)
        ),
        "The receivers are a child process in the namespace (`ip netns exec`, a current-thread \
         tokio runtime, one shared read buffer): each connection's bytes are compared with the \
         file (header, range, trailer). CPU s/GB counts both processes. Peak RSS is the \
         sending process's (VmHWM, reset before the round); the child's is shown apart."
            .into(),
    ];
    if path.name() == "loopback" {
        notes.push("No veth path on this machine: run over loopback instead.".into());
    }
    let mut per = crate::table::Table::new(&[
        "sending at once",
        "aggregate",
        "responses/s",
        "÷ 100 concurrent",
        "CPU s/GB",
        "sender peak RSS",
        "peak RSS per concurrent send",
        "RSS growth per concurrent send",
        "receiver peak RSS",
    ]);
    let base = series
        .first()
        .and_then(|s| crate::table::throughput(s, Metric::Bytes));
    for (s, n) in series.iter().zip(LEVELS) {
        let tp = crate::table::throughput(s, Metric::Bytes);
        let items = crate::table::throughput(s, Metric::Items("resp"));
        let peak = s.max_of(|x| x.peak_rss);
        let growth = s.max_of(|x| x.rss_growth);
        let child = s.max_of(|x| x.outcome.extra_peak_rss);
        let kib = |b: u64| format!("{:.1} KiB", b as f64 / n as f64 / 1024.0);
        per.row(vec![
            s.name.clone(),
            tp.map_or("–".into(), |v| crate::table::fmt_rate(v, Metric::Bytes)),
            items.map_or("–".into(), crate::table::fmt_si),
            tp.zip(base)
                .map_or("–".into(), |(a, b)| crate::table::fmt_ratio(a / b)),
            crate::table::cpu_per_gb(s).map_or("–".into(), |c| format!("{c:.3}")),
            peak.map_or("–".into(), crate::table::fmt_mib),
            peak.map_or("–".into(), kib),
            growth.map_or("–".into(), kib),
            child.map_or("–".into(), crate::table::fmt_mib),
        ]);
    }
    notes.push(per.render());
    vec![Section {
        key,
        group: "scale".into(),
        path: Some(path.name()),
        title: format!(
            "Scale: 100 → 1,000 → 10,000 concurrent async connections over {}, header + {} \
             range + trailer each",
            path.name(),
            crate::size_name(BODY)
        ),
        notes,
        spec: Spec {
            metric: Metric::Bytes,
            calls_per: CallsPer::Item,
            datagrams: false,
        },
        series,
    }]
}

/// Memory per in-flight send: [`INFLIGHT_CONNS`] concurrent async sends of an
/// [`INFLIGHT_BODY`] range each, per engine, on every path; the figure is the sending process's
/// peak RSS (goal [`INFLIGHT_PEAK_GOAL`]) beside rate and CPU per byte.
pub(crate) fn inflight(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    let conns = if cfg.quick { 200 } else { INFLIGHT_CONNS };
    let body = INFLIGHT_BODY.min(fx.big_len / 2);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("inflight: cannot build the runtime: {e}");
            return Vec::new();
        }
    };
    let rt = &rt;
    let mut out = Vec::new();
    for path in cfg.paths() {
        let mut cs: Vec<Contender<'_>> = Vec::new();
        for (name, engine) in crate::baseline::ENGINES {
            let load = Load {
                conns,
                concurrency: conns,
                body,
                engine,
            };
            cs.push(Contender::new(
                name.replace("sendpackets", "sendpackets::tokio"),
                Kind::Ours,
                move |clock| round(rt, path, fx, load, clock),
            ));
        }
        let key = crate::section_key("inflight", Some(path.name()));
        // At most three rounds: 8 GB a run; the figure that matters, peak RSS, is steady.
        let plan = crate::measure::Plan {
            reps: cfg.plan.reps.min(3),
            ..cfg.plan
        };
        let series = interleave(&key, plan, &mut cs);
        let mut t = crate::table::Table::new(&[
            "engine",
            "sender peak RSS",
            "RSS growth",
            "growth per in-flight send",
            "goal: peak",
            "met",
        ]);
        for s in &series {
            let peak = s.max_of(|x| x.peak_rss);
            let growth = s.max_of(|x| x.rss_growth);
            t.row(vec![
                s.name.clone(),
                peak.map_or("–".into(), crate::table::fmt_mib),
                growth.map_or("–".into(), crate::table::fmt_mib),
                growth.map_or("–".into(), |g| {
                    format!("{:.1} KiB", g as f64 / conns as f64 / 1024.0)
                }),
                format!("< {}", crate::table::fmt_mib(INFLIGHT_PEAK_GOAL)),
                peak.map_or("–".into(), |p| {
                    if p < INFLIGHT_PEAK_GOAL {
                        "yes".into()
                    } else {
                        "**no**".into()
                    }
                }),
            ]);
        }
        out.push(Section {
            key,
            group: "inflight".into(),
            path: Some(path.name()),
            title: format!(
                "In-flight memory: {} concurrent async sends of header + {} range + trailer, per \
                 engine, over {}",
                crate::fmt_thousands(conns as u64),
                crate::size_name(body),
                path.name()
            ),
            notes: vec![
                "Same rig as the scale workload (receiver child process, every byte verified). \
                 The figure that matters is the sending process's peak RSS: memory per \
                 in-flight send is what a copy path costs beside its rate."
                    .into(),
                t.render(),
            ],
            spec: Spec {
                metric: Metric::Bytes,
                calls_per: CallsPer::Item,
                datagrams: false,
            },
            series,
        });
    }
    out
}

/// The receiver child of one round, killed if still running when dropped.
#[derive(Debug)]
struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: BufReader<ChildStdout>,
}

impl Receiver {
    fn start(path: Path<'_>, fx: &Fixture, n: usize, body: u64) -> io::Result<Receiver> {
        let exe = std::env::current_exe()?;
        let mut cmd = match path {
            Path::Veth(v) => v.command(&exe),
            Path::Loopback => std::process::Command::new(&exe),
        };
        cmd.arg("--buf-offset")
            .arg(crate::buf::offset().to_string())
            .arg("scale-receiver")
            .arg("--addr")
            .arg(path.receiver_ip().to_string())
            .arg("--conns")
            .arg(n.to_string())
            .arg("--body")
            .arg(body.to_string())
            .arg("--file")
            .arg(&fx.big)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        Ok(Receiver {
            child,
            stdin,
            lines: BufReader::new(stdout),
        })
    }

    /// The next line, which must start with `word`; the rest of it.
    fn expect(&mut self, word: &str) -> io::Result<String> {
        let mut line = String::new();
        if self.lines.read_line(&mut line)? == 0 {
            return Err(io::Error::other(format!(
                "the receiver ended before saying `{word}`"
            )));
        }
        let rest = line
            .trim()
            .strip_prefix(word)
            .ok_or_else(|| io::Error::other(format!("receiver: {}", line.trim())))?;
        Ok(rest.trim().to_string())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the child exit and reaps it (killed after a few seconds).
    fn finish(mut self) -> io::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(io::Error::other("the receiver did not exit"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a `key=value` number of a receiver line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn round(
    rt: &tokio::runtime::Runtime,
    path: Path<'_>,
    fx: &Fixture,
    load: Load,
    clock: &mut Clock,
) -> io::Result<Outcome> {
    let n = load.conns;
    let mut rx = Receiver::start(path, fx, n, load.body)?;
    let addr: SocketAddr = rx
        .expect("listening")?
        .parse()
        .map_err(|e| io::Error::other(format!("receiver address: {e}")))?;
    if addr.ip() != path.receiver_ip() {
        return Err(io::Error::other("the receiver listens outside the path"));
    }
    let socks = rt.block_on(connect_all(addr, n))?;
    rx.expect("accepted")?;
    let per = (HEAD + TAIL) as u64 + load.body;
    let total = per * n as u64;
    let handle = fx.handle.clone();
    let file_len = fx.big_len;
    let child_cpu0 = pid_cpu_seconds(rx.pid()).unwrap_or(0.0);
    clock.start();
    let sent = rt.block_on(send_all(socks, handle, file_len, load));
    let done = rx.expect("done");
    clock.stop_wall();
    let child_cpu = pid_cpu_seconds(rx.pid()).unwrap_or(0.0) - child_cpu0;
    let child_peak = pid_peak_rss(rx.pid());
    let done = done?;
    let _ = rx.finish();
    let bytes_sent = sent?;
    let got = field(&done, "bytes").unwrap_or(0);
    let ok = field(&done, "ok").unwrap_or(0);
    let bad = field(&done, "bad").unwrap_or(u64::MAX);
    if bytes_sent != total || got != total || ok != n as u64 || bad != 0 {
        return Err(io::Error::other(format!(
            "sent {bytes_sent} of {total} bytes; the receiver verified {ok} of {n} connections, \
             {got} bytes, {bad} bad"
        )));
    }
    Ok(Outcome {
        bytes: total,
        items: n as u64,
        extra_cpu: child_cpu.max(0.0),
        extra_peak_rss: child_peak,
        ..Outcome::default()
    })
}

/// `n` connections to `addr`, made [`CONNECT_WAVE`] at a time.
async fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<tokio::net::TcpStream>> {
    let mut out = Vec::with_capacity(n);
    let work = async {
        while out.len() < n {
            let k = CONNECT_WAVE.min(n - out.len());
            let wave: Vec<_> = (0..k)
                .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
                .collect();
            for w in wave {
                out.push(w.await.map_err(io::Error::other)??);
            }
        }
        Ok::<_, io::Error>(())
    };
    tokio::time::timeout(ROUND_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
    Ok(out)
}

/// Every response at once; the bytes sendpackets reported.
async fn send_all(
    socks: Vec<tokio::net::TcpStream>,
    handle: FileHandle,
    file_len: u64,
    load: Load,
) -> io::Result<u64> {
    let body = load.body;
    let wave = load.concurrency.max(1);
    let mut socks = socks.into_iter().enumerate().peekable();
    let work = async {
        let mut sum = 0;
        while socks.peek().is_some() {
            let tasks: Vec<_> = socks
                .by_ref()
                .take(wave)
                .map(|(i, s)| spawn_one(i, s, handle.clone(), body, file_len, load.engine))
                .collect();
            for t in tasks {
                sum += t.await.map_err(io::Error::other)??;
            }
        }
        Ok::<_, io::Error>(sum)
    };
    tokio::time::timeout(ROUND_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "sending timed out"))?
}

/// One connection's response, then end of stream, as a task.
fn spawn_one(
    i: usize,
    s: tokio::net::TcpStream,
    handle: FileHandle,
    body: u64,
    file_len: u64,
    engine: Engine,
) -> tokio::task::JoinHandle<io::Result<u64>> {
    static TRAILER: [u8; TAIL] = [b'T'; TAIL];
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let off = body_offset(i, body, file_len);
        let list = [
            Element::memory(header(i)),
            Element::shared_handle(handle, off..off + body),
            Element::memory(&TRAILER[..]),
        ];
        let opts = SendOptions::new().engine(engine);
        let r = sendpackets::tokio::send_with(&s, &list, &opts)
            .await
            .map_err(|e| io::Error::other(format!("sendpackets: {e}")))?;
        let mut s = s;
        s.shutdown().await?;
        Ok::<_, io::Error>(r.bytes_sent)
    })
}

/// What the hidden `scale-receiver` command is given.
#[derive(Clone, Debug)]
pub(crate) struct ReceiverArgs {
    pub(crate) addr: std::net::IpAddr,
    pub(crate) conns: usize,
    /// File bytes per response.
    pub(crate) body: u64,
    pub(crate) file: std::path::PathBuf,
}

/// The receiver child: listens on `addr` (inside the namespace it was started in), prints
/// `listening ADDR`, accepts `conns` connections, prints `accepted N`, reads and verifies every
/// connection to end of stream, prints `done bytes=B ok=N bad=N`, and exits when its standard
/// input closes (so the parent can read its CPU time first). Returns the exit status.
pub(crate) fn receiver_main(a: &ReceiverArgs) -> i32 {
    match receiver(a) {
        Ok(()) => 0,
        Err(e) => {
            println!("error {e}");
            let _ = io::stdout().flush();
            1
        }
    }
}

fn receiver(a: &ReceiverArgs) -> io::Result<()> {
    crate::raise_nofile();
    let f = std::fs::File::open(&a.file)?;
    let file_len = f.metadata()?.len();
    // The file mapped once and populated before any connection: the check of each read is a
    // memory compare, not a `pread` (whose cost would grow with the number of small reads).
    let file = Arc::new(Mapped::new(&f, file_len)?);
    let listener = std::net::TcpListener::bind(SocketAddr::new(a.addr, 0))?;
    // SAFETY: `listener` is a listening socket; listen again only changes its backlog.
    if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    println!("listening {}", listener.local_addr()?);
    io::stdout().flush()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let conns = a.conns;
    let body = a.body;
    if body == 0 || body > file_len {
        return Err(io::Error::other("--body must be 1..=file length"));
    }
    let (bytes, ok, bad) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let deadline = tokio::time::Instant::now() + CHILD_DEADLINE;
        let mut accepted = Vec::with_capacity(conns);
        while accepted.len() < conns {
            let (s, _) = tokio::time::timeout_at(deadline, listener.accept())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "accept timed out"))??;
            accepted.push(s);
        }
        drop(listener);
        println!("accepted {conns}");
        io::stdout().flush()?;
        let tasks: Vec<_> = accepted
            .into_iter()
            .map(|s| {
                let file = file.clone();
                tokio::spawn(async move { verify(s, &file, file_len, body).await })
            })
            .collect();
        let (mut bytes, mut ok, mut bad) = (0u64, 0u64, 0u64);
        for t in tasks {
            match tokio::time::timeout_at(deadline, t).await {
                Ok(Ok(Ok(v))) => {
                    bytes += v.bytes;
                    if v.good {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
                _ => bad += 1,
            }
        }
        Ok::<_, io::Error>((bytes, ok, bad))
    })?;
    println!("done bytes={bytes} ok={ok} bad={bad}");
    io::stdout().flush()?;
    // Wait for the parent to close standard input (bounded by the deadline of a read).
    let mut sink = String::new();
    let _ = io::stdin().read_line(&mut sink);
    Ok(())
}

/// A read-only, populated shared mapping of a whole file.
#[derive(Debug)]
struct Mapped {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and lives until drop; shared reads from threads are fine.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn new(f: &std::fs::File, len: u64) -> io::Result<Mapped> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if len == 0 {
            return Err(io::Error::other("empty file"));
        }
        // SAFETY: a fresh read-only shared mapping of an open file; no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                std::os::fd::AsRawFd::as_raw_fd(f),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap"))?;
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped readable for as long as `self` lives; the file is the
        // bench's own and is not truncated while the receiver runs.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One connection's verification.
#[derive(Clone, Copy, Debug)]
struct Verified {
    bytes: u64,
    good: bool,
}

thread_local! {
    /// The receiver's read buffer (one per thread, not per connection: 10,000 connections
    /// share it), placed by `--buf-offset`.
    static BUF: std::cell::RefCell<AlignedBuf> =
        std::cell::RefCell::new(AlignedBuf::new(256 << 10));
}

/// Reads a connection to end of stream, checking header, range and trailer.
async fn verify(
    s: tokio::net::TcpStream,
    file: &Mapped,
    file_len: u64,
    body: u64,
) -> io::Result<Verified> {
    let content = file.bytes();
    let per = (HEAD + TAIL) as u64 + body;
    let mut pos = 0u64;
    let mut index: Option<usize> = None;
    let mut head = Vec::with_capacity(HEAD);
    let mut good = true;
    loop {
        s.readable().await?;
        let r = BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let n = match s.try_read(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            let got = &buf[..n];
            let end = pos + n as u64;
            let part = |lo: u64, hi: u64| -> &[u8] {
                let (lo, hi) = (lo.max(pos), hi.min(end));
                if hi > lo {
                    &got[(lo - pos) as usize..(hi - pos) as usize]
                } else {
                    &[]
                }
            };
            head.extend_from_slice(part(0, HEAD as u64));
            good &= part(HEAD as u64 + body, per).iter().all(|&b| b == b'T');
            good &= end <= per;
            if index.is_none() && head.len() == HEAD {
                index = parse_header(&head);
                good &= index.is_some();
            }
            // The range part of this read, compared with the file.
            let lo = pos.max(HEAD as u64);
            let hi = (pos + n as u64).min(HEAD as u64 + body);
            if hi > lo {
                match index {
                    Some(i) => {
                        let len = (hi - lo) as usize;
                        let off = (body_offset(i, body, file_len) + (lo - HEAD as u64)) as usize;
                        let from = (lo - pos) as usize;
                        good &= content.get(off..off + len) == Some(&got[from..from + len]);
                    }
                    None => good = false,
                }
            }
            Ok(n)
        });
        match r {
            Ok(0) => break,
            Ok(n) => pos += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Verified {
        bytes: pos,
        good: good && pos == per,
    })
}

/// The index of a header `conn=NNNNNNNNNN HHH…`, if it is one.
fn parse_header(h: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(h.get(5..15)?).ok()?;
    let i = s.parse().ok()?;
    (h.starts_with(b"conn=") && h[15] == b' ' && h[16..].iter().all(|&b| b == b'H')).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for i in [0usize, 7, 9_999, 1_234_567] {
            let h = header(i);
            assert_eq!(h.len(), HEAD);
            assert_eq!(parse_header(&h), Some(i));
        }
        let mut h = header(3);
        h[100] = b'x';
        assert_eq!(parse_header(&h), None);
    }

    #[test]
    fn offsets_fit() {
        let len = 64 << 20;
        for i in 0..20_000 {
            for body in [BODY, INFLIGHT_BODY] {
                let o = body_offset(i, body, len);
                assert_eq!(o % 4096, 0);
                assert!(o + body <= len);
            }
        }
    }

    #[test]
    fn fields_parse() {
        let l = "bytes=123 ok=4 bad=0";
        assert_eq!(field(l, "bytes"), Some(123));
        assert_eq!(field(l, "bad"), Some(0));
        assert_eq!(field(l, "nope"), None);
    }
}
