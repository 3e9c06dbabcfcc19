//! The peer side: connected socket pairs of every kind, and what the receiving end does
//! (reads all, resets, stalls, waits to be told, reads slowly).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use crate::harness::{PATIENCE, READ_TIMEOUT, SMALL_BUFFER};
use crate::util::ReceiverEnd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sock {
    Tcp4,
    Tcp6,
    Unix,
    Udp4,
    Udp6,
    UnixDgram,
}

pub(crate) const SOCKS: [Sock; 6] = [
    Sock::Tcp4,
    Sock::Tcp6,
    Sock::Unix,
    Sock::Udp4,
    Sock::Udp6,
    Sock::UnixDgram,
];

pub(crate) const STREAM_SOCKS: [Sock; 3] = [Sock::Tcp4, Sock::Tcp6, Sock::Unix];

impl Sock {
    pub(crate) fn datagram(self) -> bool {
        matches!(self, Sock::Udp4 | Sock::Udp6 | Sock::UnixDgram)
    }

    /// The largest datagram a list for this socket holds (below what the socket takes).
    pub(crate) fn datagram_limit(self) -> u64 {
        match self {
            Sock::Udp4 => 65_507,
            Sock::Udp6 => 65_527,
            _ => 100_000,
        }
    }
}

/// A connected stream pair: the sender's descriptor and the receiving end. `small`: small
/// socket buffers, so the sender waits for the peer often (and can be held up on purpose).
pub(crate) fn stream_pair(kind: Sock, small: bool) -> (OwnedFd, ReceiverEnd) {
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
pub(crate) enum StreamPeer {
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

pub(crate) fn receive_stream(mut end: ReceiverEnd, peer: StreamPeer) -> io::Result<Vec<u8>> {
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
pub(crate) enum DgramEnd {
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

pub(crate) fn dgram_pair(kind: Sock) -> (OwnedFd, DgramEnd) {
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
pub(crate) fn udp_receive_room() -> u64 {
    static ROOM: OnceLock<u64> = OnceLock::new();
    *ROOM.get_or_init(|| {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        big_receive_buffer(&rx);
        SockRef::from(&rx).recv_buffer_size().unwrap_or(200_000) as u64 / 2
    })
}

/// What the receiving end of a datagram pair does.
pub(crate) enum DgramPeer {
    /// Reads this many datagrams (then any surplus arriving soon after).
    Count(usize),
    /// Reads this many datagrams, then closes.
    ResetAfter(usize),
    /// Reads nothing for a while, then this many datagrams.
    StallThenCount(Duration, usize),
    /// Reads nothing until told how many datagrams to read.
    WaitForGo(mpsc::Receiver<usize>),
}

pub(crate) fn receive_dgrams(end: DgramEnd, peer: DgramPeer) -> Vec<Vec<u8>> {
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
