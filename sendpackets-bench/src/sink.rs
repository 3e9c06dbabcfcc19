//! Connections and the receivers that drain them, as threads of this process, over loopback or
//! into the bench's network namespace (the receiver thread joins it).
//!
//! A stream receiver reads into one reused 1 MiB buffer (page-aligned, `--buf-offset`) and
//! discards, as the C harness's does; the datagram receiver counts what arrives and stops after
//! an idle timeout.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every blocking socket call of the bench gives up after this long.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(60);

use crate::buf::AlignedBuf;
use crate::netpath::Path;

/// A stream transport.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport<'a> {
    /// TCP over a path (127.0.0.1, or the veth pair to the namespace's address).
    Tcp(Path<'a>),
    /// A connected Unix stream socket pair.
    Unix,
}

impl Transport<'_> {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp(Path::Loopback) => "TCP loopback",
            Transport::Tcp(Path::Veth(_)) => "TCP over veth",
            Transport::Unix => "Unix stream",
        }
    }
}

/// One end of a loopback stream connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Ends the sending direction, so the receiver sees end of stream.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    fn set_timeouts(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))
            }
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

/// A listener on the path's receiver address (made inside its namespace), with a backlog of
/// `backlog` connections.
pub(crate) fn listen(path: Path<'_>, backlog: i32) -> io::Result<TcpListener> {
    let ip = path.receiver_ip();
    path.run_in(move || {
        let l = TcpListener::bind(SocketAddr::new(ip, 0))?;
        // SAFETY: `l` is a bound, listening socket; listen again only changes its backlog.
        if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(l)
    })
}

/// A TCP connection to `addr` from the path's sender address.
pub(crate) fn connect_from(path: Path<'_>, addr: SocketAddr) -> io::Result<TcpStream> {
    debug_assert_eq!(addr.ip(), path.receiver_ip());
    if addr.ip() != path.receiver_ip() {
        return Err(io::Error::other(
            "refusing to send to an address outside the path",
        ));
    }
    TcpStream::connect(addr)
}

/// A connected pair: (sender, receiver). Over TCP the receiver's end is in the path's namespace.
pub(crate) fn connect(t: Transport<'_>) -> io::Result<(Stream, Stream)> {
    let (a, b) = match t {
        Transport::Tcp(path) => {
            let listener = listen(path, 16)?;
            let a = connect_from(path, listener.local_addr()?)?;
            let (b, _) = listener.accept()?;
            (Stream::Tcp(a), Stream::Tcp(b))
        }
        Transport::Unix => {
            let (a, b) = UnixStream::pair()?;
            (Stream::Unix(a), Stream::Unix(b))
        }
    };
    a.set_timeouts()?;
    b.set_timeouts()?;
    Ok((a, b))
}

/// The receiver's buffer: 1 MiB, as the C harness's.
pub(crate) const SINK_BUF: usize = 1 << 20;

/// What a stream receiver read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Drained {
    pub(crate) bytes: u64,
    /// The longest pause between two reads that returned data, seconds (a stall).
    pub(crate) max_gap: f64,
}

/// Starts a thread (inside `path`'s namespace) that reads `rx` to end of stream into a reused
/// 1 MiB buffer, placed by `--buf-offset`, and returns the byte count.
pub(crate) fn drain(path: Path<'_>, mut rx: Stream) -> io::Result<JoinHandle<io::Result<Drained>>> {
    path.spawn("sink", move || {
        let mut buf = AlignedBuf::new(SINK_BUF);
        let mut d = Drained::default();
        let mut last: Option<Instant> = None;
        loop {
            match rx.read(&mut buf) {
                Ok(0) => return Ok(d),
                Ok(n) => {
                    d.bytes += n as u64;
                    let now = Instant::now();
                    if let Some(l) = last {
                        d.max_gap = d.max_gap.max(now.duration_since(l).as_secs_f64());
                    }
                    last = Some(now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })
}

/// Waits for a drain thread and checks it got `expected` bytes.
pub(crate) fn finish_drain(
    h: JoinHandle<io::Result<Drained>>,
    expected: u64,
) -> io::Result<Drained> {
    let got = h
        .join()
        .map_err(|_| io::Error::other("sink thread panicked"))??;
    if got.bytes != expected {
        return Err(io::Error::other(format!(
            "receiver got {} bytes, {expected} were sent",
            got.bytes
        )));
    }
    Ok(got)
}

/// What the datagram receiver counted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Arrivals {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    /// Datagrams whose size was not the expected one.
    pub(crate) wrong_size: u64,
    pub(crate) last: Option<Instant>,
}

/// A UDP receiver thread on the path's receiver address (inside its namespace) with a large
/// receive buffer.
#[derive(Debug)]
pub(crate) struct UdpSink {
    pub(crate) addr: SocketAddr,
    sender_ip: std::net::IpAddr,
    /// The receive buffer the kernel granted (as `SO_RCVBUF` reports it).
    pub(crate) rcvbuf: usize,
    done: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<Arrivals>>,
}

/// How long the datagram receiver waits for more after the sender finished.
pub(crate) const UDP_IDLE: Duration = Duration::from_millis(200);

impl UdpSink {
    /// Binds and starts the receiver; `expect` is the datagram size it checks.
    pub(crate) fn start(path: Path<'_>, rcvbuf: usize, expect: usize) -> io::Result<UdpSink> {
        let ip = path.receiver_ip();
        let sock = path.run_in(move || UdpSocket::bind(SocketAddr::new(ip, 0)))?;
        let granted = set_rcvbuf(sock.as_fd(), rcvbuf)?;
        sock.set_read_timeout(Some(UDP_IDLE))?;
        let addr = sock.local_addr()?;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = path.spawn("udp-sink", move || {
            let mut buf = AlignedBuf::new(65536);
            let mut a = Arrivals::default();
            let deadline = Instant::now() + IO_TIMEOUT;
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        a.datagrams += 1;
                        a.bytes += n as u64;
                        a.wrong_size += u64::from(n != expect);
                        a.last = Some(Instant::now());
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if flag.load(Ordering::Acquire) || Instant::now() > deadline {
                            return Ok(a);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() > deadline {
                    return Ok(a);
                }
            }
        })?;
        Ok(UdpSink {
            addr,
            sender_ip: path.sender_ip(),
            rcvbuf: granted,
            done,
            handle,
        })
    }

    /// A UDP socket connected to this receiver, with a send timeout.
    pub(crate) fn connected_sender(&self) -> io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddr::new(self.sender_ip, 0))?;
        s.connect(self.addr)?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(s)
    }

    /// Tells the receiver the sender is done and waits for it to go idle.
    pub(crate) fn finish(self) -> io::Result<Arrivals> {
        self.done.store(true, Ordering::Release);
        self.handle
            .join()
            .map_err(|_| io::Error::other("udp sink thread panicked"))?
    }
}

/// Sets the receive buffer, past `rmem_max` when allowed (`SO_RCVBUFFORCE` needs
/// CAP_NET_ADMIN), and returns what the kernel reports.
fn set_rcvbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `v` is a live c_int and `len` its size; the fd is a valid socket.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                len,
            )
        };
        if rc == 0 {
            break;
        }
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: `got` and `got_len` are live, writable and sized for a c_int option.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut got_len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// One measured run over a fresh stream connection: connect and start the receiver (not
/// timed), start the clock, `send`, end the stream, wait until the receiver has read all
/// `expected` bytes (timed, as the C harness times it).
pub(crate) fn stream_run(
    t: Transport<'_>,
    clock: &mut crate::measure::Clock,
    expected: u64,
    send: impl FnOnce(&Stream) -> io::Result<()>,
) -> io::Result<Drained> {
    let (tx, rx) = connect(t)?;
    let path = match t {
        Transport::Tcp(p) => p,
        Transport::Unix => Path::Loopback,
    };
    let h = drain(path, rx)?;
    clock.start();
    let sent = send(&tx);
    let _ = tx.shutdown_write();
    drop(tx);
    let drained = finish_drain(h, expected);
    sent?;
    drained
}
