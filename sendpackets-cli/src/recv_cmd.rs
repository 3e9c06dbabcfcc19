//! `sendpackets recv`: accept one connection (or read datagrams), count, hash, optionally save.
//!
//! The rules it keeps (the `--help` text and README say the same):
//! - Datagrams arrive whole: on Unix datagram sockets the length of the next datagram is peeked
//!   first (`MSG_PEEK | MSG_TRUNC`) and the buffer grows to fit; UDP payloads fit in 64 KiB. A
//!   datagram the kernel truncated anyway is an error, never written short.
//! - `--out` is written through a temporary file in the same directory, renamed into place only
//!   on success (see [`OutFile`]).
//! - A Unix socket path is removed on every exit, SIGINT and SIGTERM included (see
//!   [`crate::cleanup`]); a stale socket file is replaced, nothing else at the path is touched.
//! - `--expect-bytes` / `--expect-sha256` turn a short, long or different receive into exit 6.
//! - `udp://` locks to the first peer; datagrams from other addresses are counted as ignored.

use std::fs::{self, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::net::RecvFlags;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cleanup::{self, OnSignal};
use crate::cli::RecvArgs;
use crate::exit::{Code, Failure};
use crate::output;
use crate::target::{Addr, Endpoint, Kind};

/// Default end of a datagram receive: this long without a datagram.
const DATAGRAM_IDLE: Duration = Duration::from_secs(2);

/// The receive buffer asked for on datagram sockets, so bursts are not dropped.
const DATAGRAM_RCVBUF: usize = 4 << 20;

/// The first datagram buffer. Every UDP payload fits: at most 65,507 bytes over IPv4 and
/// 65,527 over IPv6 (65,535 minus the headers). Unix datagrams can be larger (up to the
/// sender's `SO_SNDBUF` - 32 bytes: 212,960 with the default 212,992), so for them the buffer
/// grows to the peeked length of each datagram.
const DATAGRAM_BUFFER: usize = 64 << 10;

/// The read buffer of stream receives, and the write buffer of `--out`.
const STREAM_BUFFER: usize = 1 << 20;

/// Links followed when `--force` resolves a symbolic link `--out` (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

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
                    "ignored_datagrams": r.ignored,
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
                let ignored = match r.ignored {
                    Some(n) if n > 0 => format!(
                        "\nignored {n} datagram{} from other peers",
                        if n == 1 { "" } else { "s" }
                    ),
                    _ => String::new(),
                };
                let text = format!(
                    "received {} bytes ({}){datagrams}{peer} in {}\nsha256 {}{ignored}",
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
    /// Datagrams from other peers than the first (UDP only).
    ignored: Option<u64>,
    sha256: String,
    elapsed: Duration,
}

/// Where received bytes go.
enum Sink {
    /// Counted and hashed only.
    Discard,
    /// `--out -`.
    Stdout(BufWriter<io::Stdout>),
    /// `--out FILE`, a regular file (new or replaced).
    File(OutFile),
    /// `--out FILE --force` where FILE is a FIFO, a device or a socket: written in place,
    /// since such a file cannot be replaced by renaming (and must not be: `/dev/null`).
    InPlace(BufWriter<fs::File>),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout(w) => w.write_all(data),
            Sink::File(f) => f.temp.write_all(data),
            Sink::InPlace(w) => w.write_all(data),
        }
    }
}

/// `--out FILE` while the receive runs: a temporary file beside the destination.
///
/// It is created in the destination's directory (so the final rename cannot cross file
/// systems), with the destination's permissions when it replaces one, else `0666` less the
/// umask, as a new file would get. [`OutFile::commit`] syncs it and renames it over the
/// destination; without a commit (any failure, or a signal) it is removed and the destination
/// is left as it was. With `--force` and a symbolic link as FILE, the link's final target is
/// the destination, so the link stays.
struct OutFile {
    temp: BufWriter<tempfile::NamedTempFile>,
    /// The path the temporary file is renamed to.
    dest: PathBuf,
    /// Replace an existing destination (`--force`); else refuse one that appeared meanwhile.
    replace: bool,
    /// FILE as given, for messages.
    shown: String,
    /// Removes the temporary file if a signal ends the process.
    on_signal: OnSignal,
}

impl OutFile {
    /// Opens the temporary file for `path`, or `path` itself when it exists and is not a
    /// regular file (with `force`); an existing `path` is refused without `force`.
    fn create(path: &Path, force: bool) -> Result<Sink, Failure> {
        let shown = path.display().to_string();
        let failed = |e: &io::Error| {
            Failure::new(
                Code::Input,
                "out_open",
                format!("--out {shown}: {}", output::io_message(e)),
            )
        };
        let exists = fs::symlink_metadata(path).is_ok();
        if exists && !force {
            return Err(out_exists(&shown));
        }
        let dest = if force {
            resolve_links(path).map_err(|e| failed(&e))?
        } else {
            path.to_path_buf()
        };
        let name = dest.file_name().ok_or_else(|| {
            Failure::new(
                Code::Input,
                "out_open",
                format!("--out {shown}: not a file name"),
            )
        })?;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let current = match fs::metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(Failure::new(
                    Code::Input,
                    "out_open",
                    format!("--out {shown}: is a directory"),
                ));
            }
            Ok(m) if !m.is_file() => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&dest)
                    .map_err(|e| failed(&e))?;
                return Ok(Sink::InPlace(BufWriter::with_capacity(STREAM_BUFFER, file)));
            }
            Ok(m) => Some(m.permissions()),
            Err(_) => None,
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| failed(&e))?;
        let on_signal = OnSignal::new(temp.path(), false);
        if let Some(p) = current {
            temp.as_file().set_permissions(p).map_err(|e| failed(&e))?;
        }
        Ok(Sink::File(OutFile {
            temp: BufWriter::with_capacity(STREAM_BUFFER, temp),
            dest,
            replace: force,
            shown,
            on_signal,
        }))
    }

    /// Flushes and syncs the temporary file and renames it over the destination.
    fn commit(self, bytes: u64) -> Result<(), Failure> {
        let OutFile {
            temp,
            dest,
            replace,
            shown,
            on_signal,
        } = self;
        let temp = temp
            .into_inner()
            .map_err(|e| write_failure(e.error(), bytes))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| write_failure(&e, bytes))?;
        let placed = on_signal.disarm(|| {
            if replace {
                temp.persist(&dest)
            } else {
                temp.persist_noclobber(&dest)
            }
        });
        match placed {
            Ok(_) => Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                Err(out_exists(&shown)
                    .note("it appeared while recv ran; what arrived was not kept"))
            }
            Err(e) => Err(write_failure(&e.error, bytes)),
        }
    }
}

/// Follows `path` while it is a symbolic link; the result is where the bytes really go.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

fn out_exists(shown: &str) -> Failure {
    Failure::new(
        Code::Input,
        "out_exists",
        format!("--out {shown}: the file exists"),
    )
    .note("pass --force to replace it, or choose another file")
}

/// What the socket part of a receive found, before the checks.
struct Took {
    listen: String,
    peer: Option<String>,
    datagrams: Option<u64>,
    ignored: Option<u64>,
    /// When the connection was accepted or the first datagram arrived.
    start: Instant,
}

impl Took {
    fn stream(listen: String, peer: Option<String>, start: Instant) -> Took {
        Took {
            listen,
            peer,
            datagrams: None,
            ignored: None,
            start,
        }
    }
}

/// Counts, hashes and forwards what arrives, and enforces `--expect-bytes` as it goes.
struct Tally {
    sink: Sink,
    hasher: Sha256,
    bytes: u64,
    expect_bytes: Option<u64>,
}

impl Tally {
    fn add(&mut self, data: &[u8]) -> Result<(), Failure> {
        let total = self.bytes + data.len() as u64;
        if let Some(n) = self.expect_bytes.filter(|&n| total > n) {
            return Err(Failure::new(
                Code::Verify,
                "long",
                format!("more than {n} bytes arrived (--expect-bytes {n})"),
            )
            .note(format!("{total} bytes had arrived when recv stopped")));
        }
        self.hasher.update(data);
        self.bytes = total;
        self.sink
            .write_all(data)
            .map_err(|e| write_failure(&e, self.bytes))
    }
}

/// Removes a Unix socket path this command bound, on every exit path and on SIGINT/SIGTERM.
fn remove_socket_later(path: &Path) -> OnSignal {
    OnSignal::new(path, true)
}

fn recv(args: &RecvArgs) -> Result<Received, Failure> {
    let ep = &args.listen;
    let socket_path = match (&ep.kind, &ep.addr) {
        (Kind::Unix | Kind::UnixGram, Addr::Path(p)) => Some(p.as_path()),
        _ => None,
    };
    let out_file = args.out.as_deref().filter(|p| *p != Path::new("-"));
    if socket_path.is_some() || out_file.is_some() {
        cleanup::install().map_err(|e| {
            Failure::new(
                Code::Internal,
                "signals",
                format!("cannot set up SIGINT/SIGTERM handling: {e}"),
            )
        })?;
    }
    let sink = match (&args.out, out_file) {
        (_, Some(path)) => OutFile::create(path, args.force)?,
        (Some(_), None) => Sink::Stdout(BufWriter::with_capacity(STREAM_BUFFER, io::stdout())),
        (None, _) => Sink::Discard,
    };
    let mut tally = Tally {
        sink,
        hasher: Sha256::new(),
        bytes: 0,
        expect_bytes: args.expect_bytes,
    };
    let bind_failure = |e: io::Error| {
        let mut f = Failure::new(
            Code::Connect,
            "bind",
            format!("cannot listen on {ep}: {}", output::io_message(&e)),
        );
        if e.kind() == io::ErrorKind::AddrInUse {
            f = f.note(match ep.kind {
                Kind::Unix | Kind::UnixGram => {
                    "another program uses this socket path: pick another"
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
    let took = match (&ep.kind, &ep.addr) {
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
            Took::stream(listen, Some(peer.to_string()), start)
        }
        (Kind::Unix, Addr::Path(path)) => {
            make_way_for_socket(ep, path)?;
            let listener = UnixListener::bind(path).map_err(bind_failure)?;
            let _guard = remove_socket_later(path);
            announce(ep.to_string());
            let (stream, _) = accept(
                args.wait,
                |b| listener.set_nonblocking(b),
                || listener.accept(),
            )?;
            let start = Instant::now();
            read_stream(stream, args.idle_timeout, &mut tally)?;
            Took::stream(ep.to_string(), None, start)
        }
        (Kind::Udp, _) => {
            let addr = *resolve(ep)?.first().ok_or_else(|| no_address(ep))?;
            let sock = UdpSocket::bind(addr).map_err(bind_failure)?;
            // Best effort: a smaller buffer only makes drops of large bursts more likely.
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(DATAGRAM_RCVBUF);
            let listen = format!("udp://{}", sock.local_addr().map_err(bind_failure)?);
            announce(listen.clone());
            let got = read_datagrams(
                args,
                &mut tally,
                |t| sock.set_read_timeout(t),
                |buf| recv_udp(&sock, buf),
            )?;
            Took {
                listen,
                peer: got.peer.map(|p| p.to_string()),
                datagrams: Some(got.count),
                ignored: Some(got.ignored),
                start: got.start,
            }
        }
        (Kind::UnixGram, Addr::Path(path)) => {
            make_way_for_socket(ep, path)?;
            let sock = UnixDatagram::bind(path).map_err(bind_failure)?;
            let _guard = remove_socket_later(path);
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(DATAGRAM_RCVBUF);
            announce(ep.to_string());
            let got = read_datagrams(
                args,
                &mut tally,
                |t| sock.set_read_timeout(t),
                |buf| recv_unix_datagram(&sock, buf),
            )?;
            Took {
                listen: ep.to_string(),
                peer: None,
                datagrams: Some(got.count),
                ignored: None,
                start: got.start,
            }
        }
        _ => {
            return Err(Failure::new(
                Code::Usage,
                "bad_listen",
                "bad LISTEN address",
            ));
        }
    };
    let elapsed = took.start.elapsed();
    let sha256 = output::hex(&tally.hasher.finalize());
    check_expected(args, tally.bytes, &sha256)?;
    match tally.sink {
        Sink::Discard => {}
        Sink::Stdout(mut w) => w.flush().map_err(|e| write_failure(&e, tally.bytes))?,
        Sink::InPlace(mut w) => w.flush().map_err(|e| write_failure(&e, tally.bytes))?,
        Sink::File(f) => f.commit(tally.bytes)?,
    }
    Ok(Received {
        listen: took.listen,
        peer: took.peer,
        bytes: tally.bytes,
        datagrams: took.datagrams,
        ignored: took.ignored,
        sha256,
        elapsed,
    })
}

/// `--expect-bytes` (too few; too many fails as soon as it happens) and `--expect-sha256`.
fn check_expected(args: &RecvArgs, bytes: u64, sha256: &str) -> Result<(), Failure> {
    let kept = if args.out.is_some() {
        "; --out was left as it was"
    } else {
        ""
    };
    if let Some(n) = args.expect_bytes.filter(|&n| bytes < n) {
        return Err(Failure::new(
            Code::Verify,
            "short",
            format!("received {bytes} bytes, expected {n} (--expect-bytes): fewer arrived"),
        )
        .note(format!("sha256 of what arrived: {sha256}{kept}")));
    }
    if let Some(want) = args.expect_sha256.as_deref().filter(|w| *w != sha256) {
        return Err(Failure::new(
            Code::Verify,
            "sha256_mismatch",
            format!("the sha256 of what arrived is {sha256}, expected {want} (--expect-sha256)"),
        )
        .note(format!("{bytes} bytes were received{kept}")));
    }
    Ok(())
}

/// Clears the way to bind a Unix socket at `path`: nothing there is fine; a socket nothing
/// listens on (a connection attempt is refused) is removed; a live socket, or anything that is
/// not a socket, is an error and stays untouched.
fn make_way_for_socket(ep: &Endpoint, path: &Path) -> Result<(), Failure> {
    let cannot = |why: String| {
        Failure::new(
            Code::Connect,
            "bind",
            format!("cannot listen on {ep}: {why}"),
        )
    };
    let seen = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot(output::io_message(&e))),
    };
    if !seen.file_type().is_socket() {
        return Err(
            cannot(format!("{} exists and is not a socket", path.display()))
                .note("choose another path for the socket"),
        );
    }
    match probe_socket(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // Remove it only if it is still the socket file looked at above.
            let now = fs::symlink_metadata(path);
            if now.is_ok_and(|m| (m.dev(), m.ino()) == (seen.dev(), seen.ino())) {
                fs::remove_file(path).map_err(|e| {
                    cannot(format!(
                        "removing the stale socket file failed: {}",
                        output::io_message(&e)
                    ))
                })?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => Err(cannot(format!(
            "{} is in use: a datagram socket is bound to it",
            path.display()
        ))
        .note("stop that program or pick another path")),
        Err(e) => Err(cannot(format!(
            "{} exists and cannot be checked: {}",
            path.display(),
            output::io_message(&e)
        ))),
        Ok(()) => Err(cannot(format!(
            "{} is in use: a program is listening on it",
            path.display()
        ))
        .note("stop that program or pick another path")),
    }
}

/// Tries to reach whatever listens at a Unix socket path, without blocking.
///
/// A stream connect reaches stream sockets; a datagram socket answers `EPROTOTYPE`, a socket
/// file without a socket `ECONNREFUSED`. A full accept queue (`EAGAIN`) counts as in use.
fn probe_socket(path: &Path) -> io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    match sock.connect(&socket2::SockAddr::unix(path)?) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

fn resolve(ep: &Endpoint) -> Result<Vec<SocketAddr>, Failure> {
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
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => tally.add(&buf[..n])?,
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

impl StreamTimeouts for UnixStream {
    fn set_idle(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(t)
    }
}

/// One datagram taken from a socket.
#[derive(Debug)]
struct Datagram {
    /// Bytes placed in the buffer.
    len: usize,
    /// Its real length (`MSG_TRUNC`): more than `len` means it was truncated.
    full_len: usize,
    /// The sender, where the socket kind tells (UDP).
    from: Option<SocketAddr>,
}

/// Receives one UDP datagram into `buf` (64 KiB holds any UDP payload).
fn recv_udp(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    let (len, full_len, from) = rustix::net::recvfrom(sock, buf, RecvFlags::TRUNC)?;
    Ok(Datagram {
        len,
        full_len,
        from: from.and_then(|a| SocketAddr::try_from(a).ok()),
    })
}

/// Receives one Unix datagram whole: peeks at its length first and grows `buf` to fit.
fn recv_unix_datagram(sock: &UnixDatagram, buf: &mut Vec<u8>) -> io::Result<Datagram> {
    let mut probe = [0u8; 1];
    let (_, next) = rustix::net::recv(sock, &mut probe[..], RecvFlags::PEEK | RecvFlags::TRUNC)?;
    if next > buf.len() {
        buf.resize(next, 0);
    }
    let (len, full_len) = rustix::net::recv(sock, &mut buf[..], RecvFlags::TRUNC)?;
    Ok(Datagram {
        len,
        full_len,
        from: None,
    })
}

/// What a datagram receive took.
struct Datagrams {
    /// Datagrams accepted (from the first peer).
    count: u64,
    /// Datagrams from other peers, not counted, hashed or written.
    ignored: u64,
    /// The first peer, when the socket kind names senders.
    peer: Option<SocketAddr>,
    /// When the first datagram arrived.
    start: Instant,
}

/// Reads datagrams until `--datagrams N` arrived or none came from the first peer for the idle
/// timeout.
fn read_datagrams(
    args: &RecvArgs,
    tally: &mut Tally,
    set_timeout: impl Fn(Option<Duration>) -> io::Result<()>,
    mut recv: impl FnMut(&mut Vec<u8>) -> io::Result<Datagram>,
) -> Result<Datagrams, Failure> {
    let idle = args.idle_timeout.unwrap_or(DATAGRAM_IDLE);
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    let mut got = Datagrams {
        count: 0,
        ignored: 0,
        peer: None,
        start: Instant::now(),
    };
    // Before the first datagram: --wait (or no limit); after it: the idle timeout since the last
    // datagram from the first peer, however many strangers send meanwhile.
    let mut deadline = args.wait.map(|w| Instant::now() + w);
    while args.datagrams.is_none_or(|max| got.count < max) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let timed_out = match left {
            Some(t) if t.is_zero() => true,
            _ => {
                set_timeout(left).map_err(|e| read_failure(&e, tally.bytes))?;
                false
            }
        };
        let result = if timed_out {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        } else {
            recv(&mut buf)
        };
        match result {
            Ok(d) => {
                match (got.peer, d.from) {
                    (Some(first), Some(from)) if first != from => {
                        got.ignored += 1;
                        continue;
                    }
                    (None, from) if got.count == 0 => got.peer = from,
                    _ => {}
                }
                if d.full_len > d.len {
                    return Err(Failure::new(
                        Code::Transfer,
                        "truncated_datagram",
                        format!(
                            "datagram {} arrived truncated: {} of its {} bytes",
                            got.count + 1,
                            d.len,
                            d.full_len
                        ),
                    )
                    .note(format!("{} bytes were received before it", tally.bytes)));
                }
                if got.count == 0 {
                    got.start = Instant::now();
                }
                got.count += 1;
                deadline = Some(Instant::now() + idle);
                tally.add(&buf[..d.len])?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) && got.count > 0 => break,
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
    Ok(got)
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
    Failure::new(Code::Transfer, kind, message)
        .note(format!("{bytes} bytes were received before the error"))
}

fn write_failure(e: &io::Error, bytes: u64) -> Failure {
    Failure::new(
        Code::Transfer,
        "write_out",
        format!("writing the output failed: {}", output::io_message(e)),
    )
    .note(format!("{bytes} bytes were received"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RecvArgs {
        let mut argv = vec!["sendpackets", "recv", "udp://0"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Recv(a) => a,
            _ => unreachable!("parsed a recv command line"),
        }
    }

    fn tally() -> Tally {
        Tally {
            sink: Sink::Discard,
            hasher: Sha256::new(),
            bytes: 0,
            expect_bytes: None,
        }
    }

    /// One datagram a fake socket hands out.
    struct Scripted {
        data: &'static [u8],
        full_len: usize,
        from: Option<SocketAddr>,
    }

    fn dgram(data: &'static [u8], full_len: usize, from: Option<SocketAddr>) -> Scripted {
        Scripted {
            data,
            full_len,
            from,
        }
    }

    /// A fake socket: hands out `script` in order, then times out.
    fn scripted(script: Vec<Scripted>) -> impl FnMut(&mut Vec<u8>) -> io::Result<Datagram> {
        let mut script = script.into_iter();
        move |buf| match script.next() {
            Some(d) => {
                buf[..d.data.len()].copy_from_slice(d.data);
                Ok(Datagram {
                    len: d.data.len(),
                    full_len: d.full_len,
                    from: d.from,
                })
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    #[test]
    fn a_truncated_datagram_is_an_error() {
        let a = args(&[]);
        let mut t = tally();
        let recv = scripted(vec![dgram(b"whole", 5, None), dgram(b"cut", 70_000, None)]);
        let err = read_datagrams(&a, &mut t, |_| Ok(()), recv)
            .err()
            .expect("truncation must fail");
        assert_eq!(err.code, Code::Transfer);
        assert_eq!(&*err.kind, "truncated_datagram");
        assert!(
            err.message.contains("3 of its 70000 bytes"),
            "{}",
            err.message
        );
        assert_eq!(t.bytes, 5, "the truncated datagram was not counted");
    }

    #[test]
    fn datagrams_lock_to_the_first_peer() {
        let a = args(&["--datagrams", "2"]);
        let mut t = tally();
        let first: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let recv = scripted(vec![
            dgram(b"one", 3, Some(first)),
            dgram(b"xx", 2, Some(other)),
            dgram(b"two", 3, Some(first)),
            dgram(b"late", 4, Some(first)),
        ]);
        let got = read_datagrams(&a, &mut t, |_| Ok(()), recv).unwrap();
        assert_eq!(got.count, 2);
        assert_eq!(got.ignored, 1);
        assert_eq!(got.peer, Some(first));
        assert_eq!(t.bytes, 6);
    }

    #[test]
    fn expect_bytes_stops_at_the_first_extra_byte() {
        let a = args(&[]);
        let mut t = tally();
        t.expect_bytes = Some(4);
        let recv = scripted(vec![dgram(b"abc", 3, None), dgram(b"de", 2, None)]);
        let err = read_datagrams(&a, &mut t, |_| Ok(()), recv)
            .err()
            .expect("too many bytes must fail");
        assert_eq!(err.code, Code::Verify);
        assert_eq!(&*err.kind, "long");
        assert_eq!(t.bytes, 3);
    }
}
