//! `sendpackets demo`: a self-contained, self-checking run on loopback.
//!
//! 1. Generates data in a [`tempfile::TempDir`] (removed on every exit path): eight "pages" of
//!    1.5 kB to 2 MB and one bulk file (`--size` MiB, 256 by default). While generating, it
//!    computes the SHA-256 of every byte each transfer should deliver, from the generated data
//!    itself, not from the files.
//! 2. Sends HTTP-like responses (header + file or file range + chunk trailer, one `send_with`
//!    per response, on one connection) and a burst of UDP datagrams (a sequence header + a file
//!    range each, ended by end-of-packet).
//! 3. Sends the bulk file between a header and a trailer, with `sendpackets` and with a plain
//!    read/write loop, [`ROUNDS`] rounds each, interleaved, alternating which goes first. It
//!    reports the median throughput with its min-max and the sending thread's CPU time per GB
//!    (`getrusage(RUSAGE_THREAD)`), which is far steadier than the throughput on a busy machine.
//!    A single timing carries no claim; the text says when the ranges overlap, and points to
//!    the benchmark for figures to rely on.
//! 4. The receivers hash exactly what arrived (datagrams with their lengths, so boundaries
//!    count) and the demo compares each digest, of every round, with the expected one.
//!
//! The bulk receiver's buffer and the loop's read buffer start on a page boundary: on some CPUs
//! a copy into a buffer a few bytes past a boundary runs several times slower, which would
//! measure placement instead of the two ways of sending.
//!
//! Test hook: with `SENDPACKETS_DEMO_CORRUPT=1` in the environment the bulk receiver flips one
//! received byte before hashing, so the check must fail (exit code 6). Tests use it to prove
//! the verification is real.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sendpackets::{Element, FileRange, KernelCalls, SendOptions, TransmitFlags};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::DemoArgs;
use crate::exit::{Code, Failure};
use crate::output;

/// The environment variable of the corruption test hook.
pub(crate) const CORRUPT_ENV: &str = "SENDPACKETS_DEMO_CORRUPT";

const PAGE_SIZES: [usize; 8] = [
    1_500, 12_000, 48_000, 200_000, 900_000, 3_000, 64_000, 2_000_000,
];
const RESPONSES: usize = 300;
const DATAGRAMS: u32 = 512;
const DATAGRAM_PAYLOAD: u64 = 1_400;
const BURST: u32 = 64;
const LOOP_BUFFER: usize = 64 * 1024;
/// Timed bulk transfers per contender. Five is the least that gives a median with a spread.
const ROUNDS: usize = 5;
/// Buffers the copies land in start at this boundary (the page size).
const PAGE: usize = 4096;
/// Nothing in the demo may wait longer than this for the other side.
const STALL: Duration = Duration::from_secs(20);

/// Runs the demo and returns its exit code.
pub(crate) fn run(args: &DemoArgs) -> Code {
    let chatty = !args.output.quiet && !args.output.json && output::stderr_is_terminal();
    match demo(args.size, chatty) {
        Ok(outcome) => {
            let all_ok = outcome.rows.iter().all(Row::verified);
            if args.output.json {
                output::print_json(&outcome_json(&outcome, all_ok));
            } else {
                print_table(&outcome, args.size, all_ok);
            }
            if all_ok {
                Code::Ok
            } else {
                if !args.output.json {
                    eprintln!(
                        "sendpackets: verification failed: received bytes differ from the \
                         expected bytes (see the table)"
                    );
                }
                Code::Verify
            }
        }
        Err(f) => {
            output::report_failure(&f, args.output.json);
            f.code
        }
    }
}

/// One transfer of the demo and its check.
#[derive(Debug)]
struct Row {
    name: String,
    bytes: u64,
    /// The time of a single transfer, or the median of the rounds.
    elapsed: Duration,
    paths: String,
    calls: Value,
    expected: String,
    /// The digest received (for repeated transfers: the first that differs, else the common
    /// one).
    received: String,
    /// Datagram count check: (expected, received).
    datagrams: Option<(u64, u64)>,
    /// The timed rounds of a repeated transfer (empty for a single one).
    rounds: Vec<Round>,
}

impl Row {
    fn verified(&self) -> bool {
        self.expected == self.received
            && self.datagrams.is_none_or(|(e, r)| e == r)
            && self.rounds.iter().all(|r| r.received == self.expected)
    }

    /// A row for the repeated bulk transfers of one contender.
    fn of_rounds(
        name: &str,
        expected: &str,
        paths: String,
        calls: Value,
        rounds: Vec<Round>,
    ) -> Row {
        let received = rounds
            .iter()
            .map(|r| r.received.clone())
            .find(|r| r != expected)
            .unwrap_or_else(|| expected.to_string());
        let mut times: Vec<f64> = rounds.iter().map(|r| r.elapsed.as_secs_f64()).collect();
        Row {
            name: format!("{name} (x{})", rounds.len()),
            bytes: rounds.first().map_or(0, |r| r.bytes),
            elapsed: Duration::from_secs_f64(Spread::of(&mut times).median),
            paths,
            calls,
            expected: expected.to_string(),
            received,
            datagrams: None,
            rounds,
        }
    }
}

/// One timed bulk transfer of the comparison.
#[derive(Debug, Clone)]
struct Round {
    /// Bytes the receiver got.
    bytes: u64,
    /// From the first byte handed over to the last byte received.
    elapsed: Duration,
    /// CPU time of the sending thread, user + system.
    sender_cpu: Duration,
    /// SHA-256 of what the receiver got.
    received: String,
}

impl Round {
    fn bytes_per_sec(&self) -> f64 {
        output::bytes_per_sec(self.bytes, self.elapsed)
    }

    /// Sender CPU seconds per 10^9 bytes.
    fn cpu_per_gb(&self) -> f64 {
        self.sender_cpu.as_secs_f64() * 1e9 / (self.bytes.max(1) as f64)
    }
}

/// Median, min and max of a few figures.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// Sorts `v` and takes its median (the mean of the middle two for an even count).
    fn of(v: &mut [f64]) -> Spread {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// The two ways of sending the bulk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Sendpackets,
    ReadWriteLoop,
}

impl Contender {
    fn key(self) -> &'static str {
        match self {
            Contender::Sendpackets => "sendpackets",
            Contender::ReadWriteLoop => "read_write_loop",
        }
    }
}

/// The interleaved bulk comparison.
#[derive(Debug)]
struct Comparison {
    /// Which contender went first in each round.
    order: Vec<Contender>,
    sendpackets: Vec<Round>,
    read_write_loop: Vec<Round>,
}

/// What the demo did.
#[derive(Debug)]
struct Outcome {
    rows: Vec<Row>,
    comparison: Comparison,
}

fn demo(size_mib: u64, chatty: bool) -> Result<Outcome, Failure> {
    let dir = tempfile::Builder::new()
        .prefix("sendpackets-demo-")
        .tempdir()
        .map_err(|e| internal("creating a temporary directory", &e))?;
    let say = |s: &str| {
        if chatty {
            eprintln!("{s}");
        }
    };
    say(&format!(
        "generating {size_mib} MiB of data in {}",
        dir.path().display()
    ));
    let pages = make_pages(dir.path())?;
    let bulk = make_bulk(dir.path(), size_mib)?;

    say("sending HTTP-like responses");
    let http = http_responses(&pages)?;
    say("sending a UDP datagram burst");
    let udp = datagram_burst(&pages[7])?;

    // One receive buffer for every timed bulk transfer, touched now (see buffering_receiver),
    // with room to start it on a page boundary.
    let total = bulk.header.len() + bulk.trailer.len() + (size_mib << 20) as usize;
    let mut buf = vec![0xa5u8; total + (64 << 10) + PAGE];
    let mut comparison = Comparison {
        order: Vec::with_capacity(ROUNDS),
        sendpackets: Vec::with_capacity(ROUNDS),
        read_write_loop: Vec::with_capacity(ROUNDS),
    };
    let mut sp_calls = KernelCalls::default();
    let mut loop_calls = LoopCalls::default();
    for round in 0..ROUNDS {
        let first = if round % 2 == 0 {
            Contender::Sendpackets
        } else {
            Contender::ReadWriteLoop
        };
        comparison.order.push(first);
        let second = match first {
            Contender::Sendpackets => Contender::ReadWriteLoop,
            Contender::ReadWriteLoop => Contender::Sendpackets,
        };
        for who in [first, second] {
            say(&format!(
                "round {} of {ROUNDS}: the bulk file with {}",
                round + 1,
                match who {
                    Contender::Sendpackets => "sendpackets",
                    Contender::ReadWriteLoop => "a plain read/write loop",
                }
            ));
            match who {
                Contender::Sendpackets => {
                    let t = bulk_file(&bulk, buf)?;
                    buf = t.buf;
                    sp_calls = t.calls;
                    comparison.sendpackets.push(t.round);
                }
                Contender::ReadWriteLoop => {
                    let t = read_write_loop(&bulk, buf)?;
                    buf = t.buf;
                    loop_calls = t.calls;
                    comparison.read_write_loop.push(t.round);
                }
            }
        }
    }
    drop(buf);
    let rows = vec![
        http,
        Row::of_rounds(
            "bulk file + header/trailer",
            &bulk.expected,
            paths(&sp_calls, false),
            output::calls_json(&sp_calls),
            comparison.sendpackets.clone(),
        ),
        udp,
        Row::of_rounds(
            "read/write loop, same bulk",
            &bulk.expected,
            format!("read {}, write {}", loop_calls.reads, loop_calls.writes),
            json!({ "read": loop_calls.reads, "write": loop_calls.writes }),
            comparison.read_write_loop.clone(),
        ),
    ];
    drop(dir);
    Ok(Outcome { rows, comparison })
}

/// CPU time (user + system) the calling thread has used so far.
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for writes of one `rusage`, which is all getrusage writes;
    // RUSAGE_THREAD is a valid `who` on Linux.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: the struct was zeroed (valid for these plain integers) and filled by getrusage.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The part of `buf` that starts at its first page boundary.
fn page_aligned(buf: &mut [u8]) -> &mut [u8] {
    let skip = buf.as_ptr().align_offset(PAGE).min(buf.len());
    &mut buf[skip..]
}

/// A generated file and what it contains.
struct Page {
    path: PathBuf,
    data: Vec<u8>,
}

/// The bulk file and the SHA-256 of header + file + trailer, computed while generating.
struct Bulk {
    path: PathBuf,
    header: Vec<u8>,
    trailer: Vec<u8>,
    expected: String,
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn make_pages(dir: &Path) -> Result<Vec<Page>, Failure> {
    PAGE_SIZES
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let data = random_bytes(0x5eed + i as u64, len);
            let path = dir.join(format!("page{i}.html"));
            std::fs::write(&path, &data).map_err(|e| internal("writing a page", &e))?;
            Ok(Page { path, data })
        })
        .collect()
}

fn make_bulk(dir: &Path, size_mib: u64) -> Result<Bulk, Failure> {
    const CHUNK: usize = 1 << 20;
    let block = random_bytes(0xb01d, CHUNK);
    let len = size_mib << 20;
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    let trailer = b"\r\n-- end of bulk --\r\n".to_vec();
    let path = dir.join("bulk.bin");
    let mut file = io::BufWriter::new(
        File::create(&path).map_err(|e| internal("creating the bulk file", &e))?,
    );
    let mut expected = Sha256::new();
    expected.update(&header);
    for i in 0..size_mib {
        // Each MiB is the random block rotated differently, so misplaced chunks are caught.
        let r = (i as usize).wrapping_mul(7_919) % CHUNK;
        for part in [&block[r..], &block[..r]] {
            expected.update(part);
            file.write_all(part)
                .map_err(|e| internal("writing the bulk file", &e))?;
        }
    }
    file.flush()
        .map_err(|e| internal("writing the bulk file", &e))?;
    // Write the pages back now, so disk writeback does not slow down the first timed transfer.
    file.get_ref()
        .sync_all()
        .map_err(|e| internal("writing the bulk file", &e))?;
    expected.update(&trailer);
    Ok(Bulk {
        path,
        header,
        trailer,
        expected: output::hex(&expected.finalize()),
    })
}

/// What a stream receiver got.
struct Got {
    bytes: u64,
    sha256: String,
    /// When the last byte arrived (before any hashing done after the transfer).
    done: Instant,
}

/// A connected TCP pair on loopback: (client, server side).
fn tcp_pair() -> Result<(TcpStream, TcpStream), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| connect_failure(&e))?;
    let addr = listener.local_addr().map_err(|e| connect_failure(&e))?;
    let client = TcpStream::connect_timeout(&addr, STALL).map_err(|e| connect_failure(&e))?;
    let (server, _) = listener.accept().map_err(|e| connect_failure(&e))?;
    server
        .set_read_timeout(Some(STALL))
        .map_err(|e| connect_failure(&e))?;
    Ok((client, server))
}

/// Receives a stream to its end, hashing as it goes.
fn hashing_receiver(mut stream: TcpStream) -> JoinHandle<io::Result<Got>> {
    std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Got {
            bytes,
            sha256: output::hex(&hasher.finalize()),
            done: Instant::now(),
        })
    })
}

/// Receives a stream into `buf` (so the timing measures the transfer, not the hashing), then
/// hashes what arrived. Honours the corruption test hook. Gives `buf` back for the next run.
///
/// `buf` is allocated and touched once by the caller, so neither timed transfer pays for page
/// faults the other does not.
fn buffering_receiver(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
) -> JoinHandle<io::Result<(Got, Vec<u8>)>> {
    std::thread::spawn(move || {
        let window = page_aligned(&mut buf);
        let mut len = 0;
        let mut bytes = 0u64;
        let mut hasher = Sha256::new();
        loop {
            if len == window.len() {
                // More than expected arrived: hash what is buffered and keep going.
                hasher.update(&window[..len]);
                len = 0;
            }
            match stream.read(&mut window[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let done = Instant::now();
        if std::env::var_os(CORRUPT_ENV).is_some_and(|v| v == "1") && len > 0 {
            window[len / 2] ^= 0x01;
        }
        hasher.update(&window[..len]);
        let got = Got {
            bytes,
            sha256: output::hex(&hasher.finalize()),
            done,
        };
        Ok((got, buf))
    })
}

fn join<T>(h: JoinHandle<io::Result<T>>, what: &str) -> Result<T, Failure> {
    match h.join() {
        Ok(r) => r.map_err(|e| {
            Failure::new(
                Code::Transfer,
                "receive",
                format!("{what}: receiving failed: {}", output::io_message(&e)),
            )
        }),
        Err(_) => Err(Failure::new(
            Code::Internal,
            "panic",
            format!("{what}: the receiver thread panicked"),
        )),
    }
}

fn http_responses(pages: &[Page]) -> Result<Row, Failure> {
    let (client, server) = tcp_pair()?;
    let receiver = hashing_receiver(server);
    let mut expected = Sha256::new();
    let mut calls = KernelCalls::default();
    let start = Instant::now();
    for i in 0..RESPONSES {
        let page = &pages[i % pages.len()];
        let len = page.data.len() as u64;
        let (elements, bytes) = match i % 3 {
            0 => {
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n"
                );
                (
                    vec![
                        Element::memory(header.clone()),
                        Element::file(&page.path, ..),
                    ],
                    vec![header.into_bytes(), page.data.clone()],
                )
            }
            1 => {
                let offset = (i as u64 * 997) % (len / 2);
                let count = (1 + (i as u64 * 7_919) % 65_536).min(len - offset);
                let end = offset + count - 1;
                let header = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {offset}-{end}/{len}\r\n\
                     Content-Length: {count}\r\n\r\n"
                );
                let body = page.data[offset as usize..=end as usize].to_vec();
                (
                    vec![
                        Element::memory(header.clone()),
                        Element::file(&page.path, FileRange::new(offset, Some(count))),
                    ],
                    vec![header.into_bytes(), body],
                )
            }
            _ => {
                let header = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
                let size_line = format!("{len:x}\r\n");
                let trailer = "\r\n0\r\n\r\n";
                (
                    vec![
                        Element::memory(header.clone()),
                        Element::memory(size_line.clone()),
                        Element::file(&page.path, ..),
                        Element::memory(trailer).end_of_packet(),
                    ],
                    vec![
                        header.into_bytes(),
                        size_line.into_bytes(),
                        page.data.clone(),
                        trailer.as_bytes().to_vec(),
                    ],
                )
            }
        };
        for b in &bytes {
            expected.update(b);
        }
        let report = sendpackets::send_with(&client, &elements, &SendOptions::new())
            .map_err(|e| send_failure("http responses", &e))?;
        add_calls(&mut calls, &report.calls);
    }
    drop(client);
    let got = join(receiver, "http responses")?;
    let elapsed = got.done.duration_since(start);
    Ok(Row {
        name: format!("http responses ({RESPONSES})"),
        bytes: got.bytes,
        elapsed,
        paths: paths(&calls, false),
        calls: output::calls_json(&calls),
        expected: output::hex(&expected.finalize()),
        received: got.sha256,
        datagrams: None,
        rounds: Vec::new(),
    })
}

/// A timed bulk transfer, the calls it made, and the receive buffer for the next one.
struct Timed<C> {
    round: Round,
    calls: C,
    buf: Vec<u8>,
}

/// The calls of the read/write loop.
#[derive(Debug, Clone, Copy, Default)]
struct LoopCalls {
    reads: u64,
    writes: u64,
}

/// One timed bulk transfer with `sendpackets`: header + file + trailer, one `send_with`.
fn bulk_file(bulk: &Bulk, buf: Vec<u8>) -> Result<Timed<KernelCalls>, Failure> {
    let (client, server) = tcp_pair()?;
    let receiver = buffering_receiver(server, buf);
    let list = [
        Element::memory(bulk.header.clone()),
        Element::file(&bulk.path, ..),
        Element::memory(bulk.trailer.clone()),
    ];
    let cpu = thread_cpu();
    let start = Instant::now();
    let report = sendpackets::send_with(
        &client,
        &list,
        &SendOptions::new().flags(TransmitFlags::DISCONNECT),
    )
    .map_err(|e| send_failure("bulk file", &e))?;
    let sender_cpu = thread_cpu().saturating_sub(cpu);
    drop(client);
    let (got, buf) = join(receiver, "bulk file")?;
    let round = Round {
        bytes: got.bytes,
        elapsed: got.done.duration_since(start),
        sender_cpu,
        received: got.sha256,
    };
    Ok(Timed {
        round,
        calls: report.calls,
        buf,
    })
}

/// The same bulk transfer with a plain loop: read 64 KiB from the file, write it to the socket.
fn read_write_loop(bulk: &Bulk, buf: Vec<u8>) -> Result<Timed<LoopCalls>, Failure> {
    let (mut client, server) = tcp_pair()?;
    let receiver = buffering_receiver(server, buf);
    let mut reads = 0u64;
    let mut writes = 0u64;
    let mut chunk = vec![0u8; LOOP_BUFFER + PAGE];
    let chunk = &mut page_aligned(&mut chunk)[..LOOP_BUFFER];
    let cpu = thread_cpu();
    let start = Instant::now();
    let mut run = || -> io::Result<()> {
        let mut file = File::open(&bulk.path)?;
        client.write_all(&bulk.header)?;
        writes += 1;
        loop {
            let n = file.read(chunk)?;
            reads += 1;
            if n == 0 {
                break;
            }
            client.write_all(&chunk[..n])?;
            writes += 1;
        }
        client.write_all(&bulk.trailer)?;
        writes += 1;
        client.shutdown(Shutdown::Write)
    };
    run().map_err(|e| {
        Failure::new(
            Code::Transfer,
            "read_write_loop",
            format!("read/write loop: {}", output::io_message(&e)),
        )
    })?;
    let sender_cpu = thread_cpu().saturating_sub(cpu);
    drop(client);
    let (got, buf) = join(receiver, "read/write loop")?;
    let round = Round {
        bytes: got.bytes,
        elapsed: got.done.duration_since(start),
        sender_cpu,
        received: got.sha256,
    };
    Ok(Timed {
        round,
        calls: LoopCalls { reads, writes },
        buf,
    })
}

fn datagram_burst(page: &Page) -> Result<Row, Failure> {
    let receiver_sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| connect_failure(&e))?;
    // Loopback UDP drops only when the receive buffer is full: ask for a big one, and send in
    // bursts the receiver acknowledges (below), so the count check is fair.
    let _ = socket2::SockRef::from(&receiver_sock).set_recv_buffer_size(4 << 20);
    receiver_sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| connect_failure(&e))?;
    let addr: SocketAddr = receiver_sock
        .local_addr()
        .map_err(|e| connect_failure(&e))?;
    let sender = UdpSocket::bind("127.0.0.1:0").map_err(|e| connect_failure(&e))?;
    sender.connect(addr).map_err(|e| connect_failure(&e))?;

    let arrived = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&arrived);
    let receiver = std::thread::spawn(move || -> io::Result<Got> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 65_536];
        let mut bytes = 0u64;
        while counter.load(Ordering::Acquire) < u64::from(DATAGRAMS) {
            match receiver_sock.recv(&mut buf) {
                Ok(n) => {
                    hasher.update((n as u32).to_be_bytes());
                    hasher.update(&buf[..n]);
                    bytes += n as u64;
                    counter.fetch_add(1, Ordering::Release);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Idle for the read timeout: whatever was lost stays lost.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Got {
            bytes,
            sha256: output::hex(&hasher.finalize()),
            done: Instant::now(),
        })
    });

    let mut expected = Sha256::new();
    let mut calls = KernelCalls::default();
    let start = Instant::now();
    for burst in 0..DATAGRAMS / BURST {
        let mut list = Vec::with_capacity(2 * BURST as usize);
        for seq in burst * BURST..(burst + 1) * BURST {
            let mut head = seq.to_be_bytes().to_vec();
            head.extend_from_slice(b"SPDG");
            let offset = u64::from(seq) * DATAGRAM_PAYLOAD;
            let body = &page.data[offset as usize..(offset + DATAGRAM_PAYLOAD) as usize];
            expected.update(((head.len() + body.len()) as u32).to_be_bytes());
            expected.update(&head);
            expected.update(body);
            list.push(Element::memory(head));
            list.push(
                Element::file(&page.path, FileRange::new(offset, Some(DATAGRAM_PAYLOAD)))
                    .end_of_packet(),
            );
        }
        let report = sendpackets::send_with(&sender, &list, &SendOptions::new())
            .map_err(|e| send_failure("udp burst", &e))?;
        add_calls(&mut calls, &report.calls);
        // Wait (bounded) until the receiver has this burst before sending the next one.
        let want = u64::from((burst + 1) * BURST);
        let deadline = Instant::now() + Duration::from_secs(2);
        while arrived.load(Ordering::Acquire) < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let got = join(receiver, "udp burst")?;
    let elapsed = start.elapsed();
    let received = arrived.load(Ordering::Acquire);
    Ok(Row {
        name: format!("udp burst ({DATAGRAMS} datagrams)"),
        bytes: got.bytes,
        elapsed,
        paths: paths(&calls, true),
        calls: output::calls_json(&calls),
        expected: output::hex(&expected.finalize()),
        received: got.sha256,
        datagrams: Some((u64::from(DATAGRAMS), received)),
        rounds: Vec::new(),
    })
}

fn add_calls(sum: &mut KernelCalls, c: &KernelCalls) {
    sum.gather_writes += c.gather_writes;
    sum.sendfile += c.sendfile;
    sum.file_reads += c.file_reads;
    sum.fallback_files += c.fallback_files;
    sum.cork_toggles += c.cork_toggles;
    sum.waits += c.waits;
    sum.udp_gso_messages += c.udp_gso_messages;
}

/// The kernel paths a send used, for people: `sendfile 64, sendmsg 2, cork 2` (on a datagram
/// socket a vectored write is a `sendmmsg` burst).
fn paths(c: &KernelCalls, datagrams: bool) -> String {
    let writes = if datagrams { "sendmmsg" } else { "sendmsg" };
    let parts: Vec<String> = [
        ("sendfile", c.sendfile),
        (writes, c.gather_writes),
        ("gso", c.udp_gso_messages),
        ("pread", c.file_reads),
        ("cork", c.cork_toggles),
        ("fallback", c.fallback_files),
        ("poll", c.waits),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, n)| format!("{name} {n}"))
    .collect();
    parts.join(", ")
}

/// The throughput and sender CPU figures of one contender's rounds.
fn spreads(rounds: &[Round]) -> (Spread, Spread) {
    let mut rates: Vec<f64> = rounds.iter().map(Round::bytes_per_sec).collect();
    let mut cpu: Vec<f64> = rounds.iter().map(Round::cpu_per_gb).collect();
    (Spread::of(&mut rates), Spread::of(&mut cpu))
}

fn print_table(outcome: &Outcome, size_mib: u64, all_ok: bool) {
    let rows = &outcome.rows;
    println!(
        "sendpackets demo: {RESPONSES} HTTP-like responses, {DATAGRAMS} UDP datagrams, and a \
         {size_mib} MiB file sent {ROUNDS} times each way, over loopback\n"
    );
    println!(
        "  {:<34} {:>11}  {:<8} kernel calls (last round)",
        "transfer", "bytes", "sha256"
    );
    for r in rows {
        let check = match (r.verified(), r.datagrams) {
            (true, _) if r.rounds.is_empty() => "ok".to_string(),
            (true, _) => format!("ok {0}/{0}", r.rounds.len()),
            (false, Some((e, g))) if e != g => format!("LOST {}", e - g.min(e)),
            (false, _) => "MISMATCH".to_string(),
        };
        println!(
            "  {:<34} {:>11}  {:<8} {}",
            r.name,
            output::bytes(r.bytes),
            check,
            r.paths
        );
    }
    let cmp = &outcome.comparison;
    let (sp_rate, sp_cpu) = spreads(&cmp.sendpackets);
    let (rw_rate, rw_cpu) = spreads(&cmp.read_write_loop);
    let rate = |v: f64| format!("{:.2}", v / 1e9);
    println!(
        "\nbulk file, {ROUNDS} rounds each, interleaved, alternating which goes first; \
         median (min-max):"
    );
    println!(
        "  {:<18} {:>26}   {:>30}",
        "", "throughput GB/s", "sender CPU s per GB"
    );
    for (name, r, c) in [
        ("sendpackets", sp_rate, sp_cpu),
        ("read/write loop", rw_rate, rw_cpu),
    ] {
        println!(
            "  {:<18} {:>26}   {:>30}",
            name,
            format!("{} ({}-{})", rate(r.median), rate(r.min), rate(r.max)),
            format!("{:.3} ({:.3}-{:.3})", c.median, c.min, c.max),
        );
    }
    if rw_cpu.median > 0.0 {
        println!(
            "sendpackets used {:.2}x the sending CPU per byte of the loop (medians).",
            sp_cpu.median / rw_cpu.median
        );
    }
    let wins = cmp
        .sendpackets
        .iter()
        .zip(&cmp.read_write_loop)
        .filter(|(sp, rw)| sp.bytes_per_sec() > rw.bytes_per_sec())
        .count();
    let verdict = if sp_rate.overlaps(&rw_rate) {
        "the ranges overlap, so this run does not settle which is faster"
    } else if sp_rate.min > rw_rate.max {
        "the ranges do not overlap"
    } else {
        "the ranges do not overlap: the loop was faster here"
    };
    println!(
        "Throughput: sendpackets was ahead in {wins} of {} rounds; {verdict}.",
        cmp.sendpackets.len()
    );
    println!(
        "A few rounds on one machine are no benchmark: for figures to rely on, run\n\
         'cargo run --release -p sendpackets-bench' (interleaved, many rounds, CPU per byte)."
    );
    if all_ok {
        println!(
            "every byte verified: the SHA-256 of what each receiver got, in every round, equals \
             the SHA-256 of the generated data."
        );
    } else {
        for r in rows.iter().filter(|r| !r.verified()) {
            println!(
                "{}: expected sha256 {}, received {}",
                r.name, r.expected, r.received
            );
        }
    }
}

/// One contender's rounds as JSON.
fn rounds_json(rounds: &[Round], expected: &str) -> Value {
    let (rate, cpu) = spreads(rounds);
    json!({
        "bytes_per_sec": rounds.iter().map(Round::bytes_per_sec).collect::<Vec<_>>(),
        "bytes_per_sec_median": rate.median,
        "bytes_per_sec_min": rate.min,
        "bytes_per_sec_max": rate.max,
        "sender_cpu_seconds_per_gb": rounds.iter().map(Round::cpu_per_gb).collect::<Vec<_>>(),
        "sender_cpu_seconds_per_gb_median": cpu.median,
        "sender_cpu_seconds_per_gb_min": cpu.min,
        "sender_cpu_seconds_per_gb_max": cpu.max,
        "rounds_verified": rounds.iter().filter(|r| r.received == expected).count(),
    })
}

fn outcome_json(outcome: &Outcome, all_ok: bool) -> Value {
    let rows = &outcome.rows;
    let cmp = &outcome.comparison;
    let expected = rows.get(1).map(|r| r.expected.as_str()).unwrap_or_default();
    json!({
        "ok": all_ok,
        "exit_code": if all_ok { Code::Ok } else { Code::Verify } as u8,
        "transfers": rows.iter().map(|r| json!({
            "name": r.name,
            "bytes": r.bytes,
            "seconds": r.elapsed.as_secs_f64(),
            "rounds": r.rounds.len(),
            "calls": r.calls,
            "expected_sha256": r.expected,
            "received_sha256": r.received,
            "datagrams_expected": r.datagrams.map(|d| d.0),
            "datagrams_received": r.datagrams.map(|d| d.1),
            "verified": r.verified(),
        })).collect::<Vec<_>>(),
        "comparison": {
            "rounds": ROUNDS,
            "order": cmp.order.iter().map(|c| c.key()).collect::<Vec<_>>(),
            "sendpackets": rounds_json(&cmp.sendpackets, expected),
            "read_write_loop": rounds_json(&cmp.read_write_loop, expected),
            "note": "median of interleaved rounds; for figures to rely on, run \
                     'cargo run --release -p sendpackets-bench'",
        },
    })
}

fn internal(what: &str, e: &io::Error) -> Failure {
    Failure::new(
        Code::Internal,
        "setup",
        format!("{what}: {}", output::io_message(e)),
    )
}

fn connect_failure(e: &io::Error) -> Failure {
    Failure::new(
        Code::Connect,
        "loopback",
        format!("loopback socket setup failed: {}", output::io_message(e)),
    )
}

fn send_failure(what: &str, e: &sendpackets::SendError) -> Failure {
    let mut f = Failure::new(Code::Transfer, "send", format!("{what}: {e}"));
    f.bytes_sent = Some(e.progress().bytes_sent);
    f
}
