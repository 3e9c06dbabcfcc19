//! `sendpackets demo`: a self-contained, self-checking run on loopback.
//!
//! 1. Generates data in a [`tempfile::TempDir`] (removed on every exit path): eight "pages" of
//!    1.5 kB to 2 MB and one bulk file (`--size` MiB, 256 by default). While generating, it
//!    computes the SHA-256 of every byte each transfer should deliver, from the generated data
//!    itself, not from the files.
//! 2. Sends HTTP-like responses (header + file or file range + chunk trailer, one `send_with`
//!    per response, on one connection), the bulk file between a header and a trailer, and a
//!    burst of UDP datagrams (a sequence header + a file range each, ended by end-of-packet).
//! 3. The receivers hash exactly what arrived (datagrams with their lengths, so boundaries
//!    count) and the demo compares each digest with the expected one.
//! 4. Sends the bulk file again with a plain read/write loop, for comparison.
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
/// Nothing in the demo may wait longer than this for the other side.
const STALL: Duration = Duration::from_secs(20);

/// Runs the demo and returns its exit code.
pub(crate) fn run(args: &DemoArgs) -> Code {
    let chatty = !args.output.quiet && !args.output.json && output::stderr_is_terminal();
    match demo(args.size, chatty) {
        Ok(rows) => {
            let all_ok = rows.iter().all(|r| r.verified());
            if args.output.json {
                output::print_json(&rows_json(&rows, all_ok));
            } else {
                print_table(&rows, args.size, all_ok);
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
    elapsed: Duration,
    paths: String,
    calls: Value,
    expected: String,
    received: String,
    /// Datagram count check: (expected, received).
    datagrams: Option<(u64, u64)>,
}

impl Row {
    fn verified(&self) -> bool {
        self.expected == self.received && self.datagrams.is_none_or(|(e, r)| e == r)
    }
}

fn demo(size_mib: u64, chatty: bool) -> Result<Vec<Row>, Failure> {
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
    let mut rows = vec![http_responses(&pages)?];
    // One receive buffer for both timed bulk transfers, touched now (see buffering_receiver).
    let total = bulk.header.len() + bulk.trailer.len() + (size_mib << 20) as usize;
    let buf = vec![0xa5u8; total + (64 << 10)];
    say("sending the bulk file");
    let (row, buf) = bulk_file(&bulk, buf)?;
    rows.push(row);
    say("sending a UDP datagram burst");
    rows.push(datagram_burst(&pages[7])?);
    say("sending the bulk file with a plain read/write loop");
    let (row, buf) = read_write_loop(&bulk, buf)?;
    rows.push(row);
    drop(buf);
    drop(dir);
    Ok(rows)
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
        let mut len = 0;
        let mut bytes = 0u64;
        let mut hasher = Sha256::new();
        loop {
            if len == buf.len() {
                // More than expected arrived: hash what is buffered and keep going.
                hasher.update(&buf[..len]);
                len = 0;
            }
            match stream.read(&mut buf[len..]) {
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
            buf[len / 2] ^= 0x01;
        }
        hasher.update(&buf[..len]);
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
    })
}

fn bulk_file(bulk: &Bulk, buf: Vec<u8>) -> Result<(Row, Vec<u8>), Failure> {
    let (client, server) = tcp_pair()?;
    let receiver = buffering_receiver(server, buf);
    let list = [
        Element::memory(bulk.header.clone()),
        Element::file(&bulk.path, ..),
        Element::memory(bulk.trailer.clone()),
    ];
    let start = Instant::now();
    let report = sendpackets::send_with(
        &client,
        &list,
        &SendOptions::new().flags(TransmitFlags::DISCONNECT),
    )
    .map_err(|e| send_failure("bulk file", &e))?;
    drop(client);
    let (got, buf) = join(receiver, "bulk file")?;
    let elapsed = got.done.duration_since(start);
    let row = Row {
        name: "bulk file + header/trailer".into(),
        bytes: got.bytes,
        elapsed,
        paths: paths(&report.calls, false),
        calls: output::calls_json(&report.calls),
        expected: bulk.expected.clone(),
        received: got.sha256,
        datagrams: None,
    };
    Ok((row, buf))
}

fn read_write_loop(bulk: &Bulk, buf: Vec<u8>) -> Result<(Row, Vec<u8>), Failure> {
    let (mut client, server) = tcp_pair()?;
    let receiver = buffering_receiver(server, buf);
    let mut reads = 0u64;
    let mut writes = 0u64;
    let start = Instant::now();
    let mut run = || -> io::Result<()> {
        let mut file = File::open(&bulk.path)?;
        let mut buf = vec![0u8; LOOP_BUFFER];
        client.write_all(&bulk.header)?;
        writes += 1;
        loop {
            let n = file.read(&mut buf)?;
            reads += 1;
            if n == 0 {
                break;
            }
            client.write_all(&buf[..n])?;
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
    drop(client);
    let (got, buf) = join(receiver, "read/write loop")?;
    let elapsed = got.done.duration_since(start);
    let row = Row {
        name: "read/write loop (same bulk)".into(),
        bytes: got.bytes,
        elapsed,
        paths: format!("read {reads}, write {writes}"),
        calls: json!({ "read": reads, "write": writes }),
        expected: bulk.expected.clone(),
        received: got.sha256,
        datagrams: None,
    };
    Ok((row, buf))
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

fn print_table(rows: &[Row], size_mib: u64, all_ok: bool) {
    println!(
        "sendpackets demo: {RESPONSES} HTTP-like responses, a {size_mib} MiB file, \
         {DATAGRAMS} UDP datagrams over loopback\n"
    );
    println!(
        "  {:<30} {:>11} {:>9} {:>11}  {:<8} kernel calls",
        "transfer", "bytes", "time", "throughput", "sha256"
    );
    for r in rows {
        let check = match (r.verified(), r.datagrams) {
            (true, _) => "ok".to_string(),
            (false, Some((e, g))) if e != g => format!("LOST {}", e - g.min(e)),
            (false, _) => "MISMATCH".to_string(),
        };
        println!(
            "  {:<30} {:>11} {:>9} {:>11}  {:<8} {}",
            r.name,
            output::bytes(r.bytes),
            output::duration(r.elapsed),
            output::rate(r.bytes, r.elapsed),
            check,
            r.paths
        );
    }
    if let (Some(bulk), Some(plain)) = (rows.get(1), rows.get(3)) {
        let ratio = plain.elapsed.as_secs_f64() / bulk.elapsed.as_secs_f64().max(1e-9);
        println!(
            "\nbulk file: sendpackets {}, plain read/write loop {} (speedup {ratio:.2}x).",
            output::duration(bulk.elapsed),
            output::duration(plain.elapsed)
        );
    }
    if all_ok {
        println!(
            "every byte verified: the SHA-256 of what each receiver got equals the SHA-256 of \
             the generated data."
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

fn rows_json(rows: &[Row], all_ok: bool) -> Value {
    json!({
        "ok": all_ok,
        "exit_code": if all_ok { Code::Ok } else { Code::Verify } as u8,
        "transfers": rows.iter().map(|r| json!({
            "name": r.name,
            "bytes": r.bytes,
            "seconds": r.elapsed.as_secs_f64(),
            "bytes_per_sec": output::bytes_per_sec(r.bytes, r.elapsed),
            "calls": r.calls,
            "expected_sha256": r.expected,
            "received_sha256": r.received,
            "datagrams_expected": r.datagrams.map(|d| d.0),
            "datagrams_received": r.datagrams.map(|d| d.1),
            "verified": r.verified(),
        })).collect::<Vec<_>>(),
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
