//! `sendpackets recv`: accept one connection (or read datagrams), count, hash, optionally save.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::RecvArgs;
use crate::exit::{Code, Failure};
use crate::output;
use crate::target::{Addr, Endpoint, Kind};

/// Default end of a datagram receive: this long without a datagram.
const DATAGRAM_IDLE: Duration = Duration::from_secs(2);

/// The receive buffer asked for on datagram sockets, so bursts are not dropped.
const DATAGRAM_RCVBUF: usize = 4 << 20;

/// Runs the command and returns its exit code.
pub(crate) fn run(args: &RecvArgs) -> Code {
    let to_stdout = args.out.as_deref() == Some(Path::new("-"));
    match recv(args) {
        Ok(r) => {
            if args.output.json {
                output::print_json(&json!({
                    "ok": true,
                    "listen": r.listen,
                    "peer": r.peer,
                    "bytes": r.bytes,
                    "datagrams": r.datagrams,
                    "sha256": r.sha256,
                    "seconds": r.elapsed.as_secs_f64(),
                    "out": args.out.as_ref().map(|p| p.display().to_string()),
                }));
            } else {
                let datagrams = r
                    .datagrams
                    .map(|d| format!(" in {d} datagrams"))
                    .unwrap_or_default();
                let peer = r.peer.map(|p| format!(" from {p}")).unwrap_or_default();
                let text = format!(
                    "received {} bytes ({}){datagrams}{peer} in {}\nsha256 {}",
                    r.bytes,
                    output::bytes(r.bytes),
                    output::duration(r.elapsed),
                    r.sha256
                );
                if to_stdout {
                    eprintln!("{text}");
                } else {
                    println!("{text}");
                }
            }
            Code::Ok
        }
        Err(f) => {
            output::report_failure(&f, args.output.json);
            f.code
        }
    }
}

/// What arrived.
struct Received {
    listen: String,
    peer: Option<String>,
    bytes: u64,
    datagrams: Option<u64>,
    sha256: String,
    elapsed: Duration,
}

/// Counts, hashes and forwards what arrives.
struct Tally {
    sink: Box<dyn Write>,
    hasher: Sha256,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.sink.write_all(data)
    }
}

/// Removes a Unix socket path this command created, on every exit path.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn recv(args: &RecvArgs) -> Result<Received, Failure> {
    let sink = open_sink(args.out.as_deref(), args.force)?;
    let mut tally = Tally {
        sink,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let ep = &args.listen;
    let bind_failure = |e: io::Error| {
        let mut f = Failure::new(
            Code::Connect,
            "bind",
            format!("cannot listen on {ep}: {}", output::io_message(&e)),
        );
        if e.kind() == io::ErrorKind::AddrInUse {
            f = f.note(match ep.kind {
                Kind::Unix | Kind::UnixGram => {
                    "the socket path exists: remove it if nothing uses it, or pick another path"
                }
                _ => "another program uses this port: pick another (0 picks a free one)",
            });
        }
        f
    };
    let announce = |addr: String| {
        if !args.output.quiet {
            eprintln!("listening on {addr}");
        }
    };
    let (peer, datagrams, listen, start) = match (&ep.kind, &ep.addr) {
        (Kind::Tcp, _) => {
            let addr = *resolve(ep)?.first().ok_or_else(|| no_address(ep))?;
            let listener = TcpListener::bind(addr).map_err(bind_failure)?;
            let local = listener.local_addr().map_err(bind_failure)?;
            let listen = format!("tcp://{local}");
            announce(listen.clone());
            let (stream, peer) = accept(
                args.wait,
                |b| listener.set_nonblocking(b),
                || listener.accept(),
            )?;
            let start = Instant::now();
            read_stream(stream, args.idle_timeout, &mut tally)?;
            (Some(peer.to_string()), None, listen, start)
        }
        (Kind::Unix, Addr::Path(path)) => {
            let listener = UnixListener::bind(path).map_err(bind_failure)?;
            let _guard = RemoveOnDrop(path.clone());
            announce(ep.to_string());
            let (stream, _) = accept(
                args.wait,
                |b| listener.set_nonblocking(b),
                || listener.accept(),
            )?;
            let start = Instant::now();
            read_stream(stream, args.idle_timeout, &mut tally)?;
            (None, None, ep.to_string(), start)
        }
        (Kind::Udp, _) => {
            let addr = *resolve(ep)?.first().ok_or_else(|| no_address(ep))?;
            let sock = UdpSocket::bind(addr).map_err(bind_failure)?;
            // Best effort: a smaller buffer only makes drops of large bursts more likely.
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(DATAGRAM_RCVBUF);
            let listen = format!("udp://{}", sock.local_addr().map_err(bind_failure)?);
            announce(listen.clone());
            let mut peer = None;
            let (count, start) = read_datagrams(
                args,
                &mut tally,
                |t| sock.set_read_timeout(t),
                |buf| {
                    let (n, from) = sock.recv_from(buf)?;
                    peer.get_or_insert(from.to_string());
                    Ok(n)
                },
            )?;
            (peer, Some(count), listen, start)
        }
        (Kind::UnixGram, Addr::Path(path)) => {
            let sock = UnixDatagram::bind(path).map_err(bind_failure)?;
            let _guard = RemoveOnDrop(path.clone());
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(DATAGRAM_RCVBUF);
            announce(ep.to_string());
            let (count, start) = read_datagrams(
                args,
                &mut tally,
                |t| sock.set_read_timeout(t),
                |buf| sock.recv(buf),
            )?;
            (None, Some(count), ep.to_string(), start)
        }
        _ => {
            return Err(Failure::new(
                Code::Usage,
                "bad_listen",
                "bad LISTEN address",
            ));
        }
    };
    let elapsed = start.elapsed();
    tally
        .sink
        .flush()
        .map_err(|e| write_failure(&e, tally.bytes))?;
    Ok(Received {
        listen,
        peer,
        bytes: tally.bytes,
        datagrams,
        sha256: output::hex(&tally.hasher.finalize()),
        elapsed,
    })
}

/// Opens `--out`: `-` is stdout; an existing file is refused without `force`.
fn open_sink(out: Option<&Path>, force: bool) -> Result<Box<dyn Write>, Failure> {
    let Some(path) = out else {
        return Ok(Box::new(io::sink()));
    };
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(1 << 20, io::stdout())));
    }
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let file: File = opts.open(path).map_err(|e| {
        let shown = path.display();
        if e.kind() == io::ErrorKind::AlreadyExists {
            Failure::new(
                Code::Input,
                "out_exists",
                format!("--out {shown}: the file exists"),
            )
            .note("pass --force to overwrite it, or choose another file")
        } else {
            Failure::new(
                Code::Input,
                "out_open",
                format!("--out {shown}: {}", output::io_message(&e)),
            )
        }
    })?;
    Ok(Box::new(BufWriter::with_capacity(1 << 20, file)))
}

fn resolve(ep: &Endpoint) -> Result<Vec<std::net::SocketAddr>, Failure> {
    ep.resolve().map_err(|e| {
        Failure::new(
            Code::Connect,
            "resolve",
            format!("cannot resolve {ep}: {}", output::io_message(&e)),
        )
    })
}

fn no_address(ep: &Endpoint) -> Failure {
    Failure::new(Code::Connect, "resolve", format!("{ep} has no address"))
}

/// Accepts one connection; with `wait`, polls a non-blocking listener until the deadline.
fn accept<S, A>(
    wait: Option<Duration>,
    set_nonblocking: impl Fn(bool) -> io::Result<()>,
    mut accept_once: impl FnMut() -> io::Result<(S, A)>,
) -> Result<(S, A), Failure> {
    let failed = |e: io::Error| {
        Failure::new(
            Code::Connect,
            "accept",
            format!("accepting a connection failed: {}", output::io_message(&e)),
        )
    };
    let deadline = wait.map(|w| Instant::now() + w);
    if deadline.is_some() {
        set_nonblocking(true).map_err(failed)?;
    }
    loop {
        match accept_once() {
            Ok(pair) => return Ok(pair),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match deadline {
                Some(d) if Instant::now() >= d => {
                    return Err(Failure::new(
                        Code::Connect,
                        "no_connection",
                        format!(
                            "no connection within {}",
                            output::duration(wait.unwrap_or_default())
                        ),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            },
            Err(e) => return Err(failed(e)),
        }
    }
}

fn read_stream(
    mut stream: impl Read + StreamTimeouts,
    idle: Option<Duration>,
    tally: &mut Tally,
) -> Result<(), Failure> {
    stream
        .set_idle(idle)
        .map_err(|e| read_failure(&e, tally.bytes))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => tally
                .add(&buf[..n])
                .map_err(|e| write_failure(&e, tally.bytes))?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failure(&e, tally.bytes)),
        }
    }
}

/// Read timeouts of the two stream kinds.
trait StreamTimeouts {
    fn set_idle(&self, t: Option<Duration>) -> io::Result<()>;
}

impl StreamTimeouts for std::net::TcpStream {
    fn set_idle(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(t)
    }
}

impl StreamTimeouts for std::os::unix::net::UnixStream {
    fn set_idle(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(t)
    }
}

/// Reads datagrams until `--datagrams N` arrived or none came for the idle timeout. Returns the
/// count and when the first one arrived.
fn read_datagrams(
    args: &RecvArgs,
    tally: &mut Tally,
    set_timeout: impl Fn(Option<Duration>) -> io::Result<()>,
    mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Result<(u64, Instant), Failure> {
    let idle = args.idle_timeout.unwrap_or(DATAGRAM_IDLE);
    let mut buf = vec![0u8; 1 << 17];
    let mut count = 0u64;
    let mut start = Instant::now();
    set_timeout(args.wait).map_err(|e| read_failure(&e, 0))?;
    while args.datagrams.is_none_or(|max| count < max) {
        match recv(&mut buf) {
            Ok(n) => {
                if count == 0 {
                    start = Instant::now();
                    set_timeout(Some(idle)).map_err(|e| read_failure(&e, 0))?;
                }
                count += 1;
                tally
                    .add(&buf[..n])
                    .map_err(|e| write_failure(&e, tally.bytes))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) && count > 0 => break,
            Err(e) if is_timeout(&e) => {
                return Err(Failure::new(
                    Code::Connect,
                    "no_data",
                    format!(
                        "no datagram arrived within {}",
                        output::duration(args.wait.unwrap_or_default())
                    ),
                ));
            }
            // A connected sender's ICMP errors can surface here; they end nothing.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(read_failure(&e, tally.bytes)),
        }
    }
    Ok((count, start))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn read_failure(e: &io::Error, bytes: u64) -> Failure {
    let (kind, message) = if is_timeout(e) {
        (
            "idle_timeout",
            "no data arrived within the idle timeout".to_string(),
        )
    } else {
        (
            "receive",
            format!("receive failed: {}", output::io_message(e)),
        )
    };
    let mut f = Failure::new(Code::Transfer, kind, message)
        .note(format!("{bytes} bytes were received before the error"));
    f.bytes_sent = None;
    f
}

fn write_failure(e: &io::Error, bytes: u64) -> Failure {
    Failure::new(
        Code::Transfer,
        "write_out",
        format!("writing the output failed: {}", output::io_message(e)),
    )
    .note(format!("{bytes} bytes were received"))
}
