//! Every system call the crate makes, and nothing else.
//!
//! # The contract
//!
//! - Each wrapper is named after the call it makes, takes `BorrowedFd` (or a path) and returns
//!   `io::Result` with the call's own `errno`; nothing here retries, caches or decides. `EINTR`
//!   and `EAGAIN` reach the caller, which owns the state machine.
//! - A borrowed descriptor is never closed or replaced; the only call that replaces a socket,
//!   [`replace_with_fresh_socket`], takes `&mut OwnedFd`: its caller must own it.
//! - What a socket is ([`SocketFacts`]) and what a datagram socket may send
//!   ([`DatagramLimits`]) are asked here, once, and handed up as plain records; callers cache
//!   them (a `Connection` does, for its whole life).
//! - rustix first; libc only for what rustix lacks (`sendmmsg` with `UDP_SEGMENT`, the GSO and
//!   path-MTU socket options, `dup3`, `getrlimit`). Every `unsafe` block says why it is sound.
//! - The crate is Linux-only (it does not compile elsewhere). POSIX calls live in this file, the
//!   Linux-only ones (`sendfile`, `TCP_CORK`, `sendmmsg`, UDP GSO, `fstatfs` magic numbers,
//!   `dup3`) in `linux.rs`, page-aligned buffers in `buffer.rs`: the only files where `unsafe`
//!   is allowed.

#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::net::{AddressFamily, SendAncillaryBuffer, SendFlags, SocketType, ipproto};

pub(crate) mod buffer;
mod linux;

pub(crate) use linux::{
    on_pseudo_fs, replace_with_fresh_socket, sendfile, sendmmsg, set_tcp_cork, udp_gso_max_segment,
};

/// The largest iovec one call takes (`IOV_MAX`).
pub(crate) const IOV_MAX: usize = 1024;

/// The kind of socket a send goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// A byte stream (TCP, Unix stream).
    Stream,
    /// Message boundaries (UDP, Unix datagram, Unix seqpacket).
    Datagram,
}

/// The transport protocol under a socket, where it matters to the planner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    /// Unix sockets, and anything else.
    Other,
}

/// What a socket is: asked once, true for the life of a connected socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketFacts {
    pub(crate) kind: SocketKind,
    pub(crate) domain: AddressFamily,
    pub(crate) protocol: Protocol,
    /// The peer is an IPv4 address reached through an IPv6 socket (`::ffff:a.b.c.d`): IPv4
    /// datagram limits apply.
    pub(crate) v4_mapped: bool,
}

/// What a socket's type already says (tokio's socket types know it), sparing the calls that
/// would ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KindHint {
    pub(crate) kind: SocketKind,
    /// An IP socket (then TCP for streams, UDP for datagrams).
    pub(crate) ip: bool,
}

/// What a connected datagram socket may send, asked once per socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DatagramLimits {
    /// The largest datagram one message may carry.
    pub(crate) max_datagram: u64,
    /// UDP generic segmentation offload: `Some(largest segment that fits the path MTU whole)`
    /// where the kernel takes `UDP_SEGMENT` and the path MTU is known.
    pub(crate) gso_segment: Option<u64>,
}

/// The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IPv4 header).
pub(crate) const UDP_V4_MAX: u64 = 65_507;
/// The largest UDP payload over IPv6 without jumbograms: 65,535 − 8.
pub(crate) const UDP_V6_MAX: u64 = 65_527;
/// What a Unix datagram socket keeps of its send buffer for bookkeeping (`sk_sndbuf - 32` is
/// the largest message, `net/unix/af_unix.c`).
const UNIX_DGRAM_OVERHEAD: u64 = 32;

pub(crate) fn from_rustix(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The errors of [`socket_facts`].
#[derive(Debug)]
pub(crate) enum FactsError {
    /// `getpeername` said `ENOTCONN`: no peer, or no default remote.
    NotConnected(io::Error),
    /// Not a socket, or not a stream or datagram socket.
    Unsupported(io::Error),
}

/// `getpeername(2)`, then `getsockopt(SO_TYPE, SO_PROTOCOL)` unless `hint` says: what the
/// socket is. The peer's address family comes with `getpeername`, so `SO_DOMAIN` is asked only
/// when the kernel reports none.
pub(crate) fn socket_facts(
    sock: BorrowedFd<'_>,
    hint: Option<KindHint>,
) -> Result<SocketFacts, FactsError> {
    use rustix::net::sockopt;
    let unsupported = |e: rustix::io::Errno| FactsError::Unsupported(from_rustix(e));
    let addr = rustix::net::getpeername(sock).map_err(|e| {
        if e == rustix::io::Errno::NOTCONN {
            FactsError::NotConnected(from_rustix(e))
        } else {
            FactsError::Unsupported(from_rustix(e))
        }
    })?;
    let family = addr
        .as_ref()
        .map(|a| a.address_family())
        .filter(|f| *f != AddressFamily::UNSPEC);
    let v4_mapped = addr.is_some_and(|a| {
        matches!(std::net::SocketAddr::try_from(a),
            Ok(std::net::SocketAddr::V6(v6)) if v6.ip().to_ipv4_mapped().is_some())
    });
    if let (Some(hint), Some(domain)) = (hint, family) {
        let protocol = match (hint.ip, hint.kind) {
            (false, _) => Protocol::Other,
            (true, SocketKind::Stream) => Protocol::Tcp,
            (true, SocketKind::Datagram) => Protocol::Udp,
        };
        return Ok(SocketFacts {
            kind: hint.kind,
            domain,
            protocol,
            v4_mapped,
        });
    }
    let ty = sockopt::socket_type(sock).map_err(unsupported)?;
    let kind = if ty == SocketType::STREAM {
        SocketKind::Stream
    } else if ty == SocketType::DGRAM || ty == SocketType::SEQPACKET {
        SocketKind::Datagram
    } else {
        return Err(FactsError::Unsupported(io::Error::from_raw_os_error(
            libc::EPROTOTYPE,
        )));
    };
    let domain = match family {
        Some(f) => f,
        None => sockopt::socket_domain(sock).map_err(unsupported)?,
    };
    let inet = domain == AddressFamily::INET || domain == AddressFamily::INET6;
    let proto = if inet {
        sockopt::socket_protocol(sock).map_err(unsupported)?
    } else {
        None
    };
    let protocol = match proto {
        Some(p) if inet && kind == SocketKind::Stream && p == ipproto::TCP => Protocol::Tcp,
        Some(p) if inet && ty == SocketType::DGRAM && p == ipproto::UDP => Protocol::Udp,
        _ => Protocol::Other,
    };
    Ok(SocketFacts {
        kind,
        domain,
        protocol,
        v4_mapped,
    })
}

/// `getsockopt(SO_TYPE)` alone: stream or datagram (one call, for a report after the send).
pub(crate) fn socket_kind(sock: BorrowedFd<'_>) -> io::Result<SocketKind> {
    let ty = rustix::net::sockopt::socket_type(sock).map_err(from_rustix)?;
    Ok(if ty == SocketType::STREAM {
        SocketKind::Stream
    } else {
        SocketKind::Datagram
    })
}

/// The datagram limits of a connected datagram socket: the largest datagram (protocol limits
/// for UDP; the send buffer for Unix sockets, `SO_SNDBUF`) and UDP GSO (`UDP_SEGMENT` and the
/// path MTU, `IP_MTU`/`IPV6_MTU`). Two or three `getsockopt` calls.
pub(crate) fn datagram_limits(sock: BorrowedFd<'_>, facts: &SocketFacts) -> DatagramLimits {
    if facts.protocol == Protocol::Udp {
        let ipv6 = facts.domain == AddressFamily::INET6 && !facts.v4_mapped;
        return DatagramLimits {
            max_datagram: if ipv6 { UDP_V6_MAX } else { UDP_V4_MAX },
            gso_segment: udp_gso_max_segment(sock, facts.domain == AddressFamily::INET6),
        };
    }
    let max_datagram = match rustix::net::sockopt::socket_send_buffer_size(sock) {
        Ok(n) => (n as u64).saturating_sub(UNIX_DGRAM_OVERHEAD),
        Err(_) => UDP_V4_MAX,
    };
    DatagramLimits {
        max_datagram,
        gso_segment: None,
    }
}

/// `fcntl(F_GETFL)`: whether `O_NONBLOCK` is set.
pub(crate) fn is_nonblocking(sock: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(sock).map_err(from_rustix)?;
    Ok(flags.contains(OFlags::NONBLOCK))
}

/// `getsockopt(SO_SNDTIMEO)`: the socket's send timeout, `None` when unset.
pub(crate) fn send_timeout(sock: BorrowedFd<'_>) -> io::Result<Option<Duration>> {
    rustix::net::sockopt::socket_timeout(sock, rustix::net::sockopt::Timeout::Send)
        .map_err(from_rustix)
}

/// `sendmsg(2)` with an iovec, `MSG_NOSIGNAL` (a closed peer is an `EPIPE` error, never a
/// `SIGPIPE`), and `MSG_MORE` when `more` is set; one buffer goes with `send(2)`, which skips
/// the message header (the express path's one call per response).
pub(crate) fn sendmsg(sock: BorrowedFd<'_>, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    let mut flags = SendFlags::NOSIGNAL;
    if more {
        flags |= SendFlags::MORE;
    }
    if let [one] = bufs {
        return rustix::net::send(sock, one, flags).map_err(from_rustix);
    }
    rustix::net::sendmsg(sock, bufs, &mut SendAncillaryBuffer::default(), flags)
        .map_err(from_rustix)
}

/// One message of a [`sendmmsg`] batch: its buffers, and with `segment`, UDP generic
/// segmentation offload: the kernel cuts the bytes into datagrams of `segment` bytes (the last
/// may be shorter).
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) iov: &'a [IoSlice<'a>],
    pub(crate) segment: Option<u16>,
}

/// `preadv(2)`: reads at `offset` into several buffers, without moving the file's cursor.
pub(crate) fn preadv(
    file: BorrowedFd<'_>,
    bufs: &mut [std::io::IoSliceMut<'_>],
    offset: u64,
) -> io::Result<usize> {
    rustix::io::preadv(file, bufs, offset).map_err(from_rustix)
}

/// `pread(2)`: reads at `offset` without moving the file's cursor.
pub(crate) fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    rustix::io::pread(file, buf, offset).map_err(from_rustix)
}

/// `posix_fadvise(POSIX_FADV_WILLNEED)`: start reading `len` bytes of `file` at `offset` into
/// the page cache, without waiting for them. A hint: errors are the caller's to ignore.
pub(crate) fn will_need(file: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::WillNeed,
    )
    .map_err(from_rustix)
}

/// What `poll_writable` saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Writable, or an error is pending (the next send reports it).
    Writable,
    /// The timeout passed first.
    TimedOut,
}

/// `poll(2)` for `POLLOUT`, waiting at most `timeout` (forever with `None`).
pub(crate) fn poll_writable(sock: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<Ready> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let ts = left.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        let mut fds = [PollFd::new(&sock, PollFlags::OUT)];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(Ready::TimedOut),
            Ok(_) => return Ok(Ready::Writable),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(from_rustix(e)),
        }
    }
}

/// `shutdown(SHUT_RDWR)`.
pub(crate) fn shutdown_both(sock: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::shutdown(sock, rustix::net::Shutdown::Both).map_err(from_rustix)
}

/// What `fstat(2)` says about a file the send reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) regular: bool,
    pub(crate) directory: bool,
    pub(crate) len: u64,
    /// The file's identity and version: device, inode, and the modification and change times
    /// with nanoseconds. A file deleted and re-created (even on a reused inode number), renamed
    /// over, truncated or written to differs in at least one of them.
    pub(crate) id: FileVersion,
    /// No blocks allocated: sparse, empty, or a pseudo file whose size may lie.
    pub(crate) no_blocks: bool,
}

/// See [`FileStat::id`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileVersion {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) len: u64,
    pub(crate) mtime_ns: i128,
    pub(crate) ctime_ns: i128,
}

/// `fstat(2)`.
pub(crate) fn fstat(file: BorrowedFd<'_>) -> io::Result<FileStat> {
    let st = rustix::fs::fstat(file).map_err(from_rustix)?;
    Ok(file_stat(&st))
}

/// `stat(2)` of a path (following symlinks).
pub(crate) fn stat_path(path: &Path) -> io::Result<FileStat> {
    let st = rustix::fs::stat(path).map_err(from_rustix)?;
    Ok(file_stat(&st))
}

fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    let ty = FileType::from_raw_mode(st.st_mode as _);
    let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    #[allow(clippy::unnecessary_cast)]
    let id = FileVersion {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        len: st.st_size as u64,
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
    };
    FileStat {
        regular: ty == FileType::RegularFile,
        directory: ty == FileType::Directory,
        len: st.st_size as u64,
        id,
        no_blocks: st.st_blocks == 0,
    }
}

/// `open(2)` for reading: close-on-exec, no controlling terminal, and non-blocking so that
/// opening a FIFO never waits for a writer (it is then refused as not a regular file).
pub(crate) fn open_read(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(from_rustix)
}

/// Opens `path` for reading strictly beneath the directory `dir` (`openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): an absolute path, `..` above `dir`, or a symlink
/// leading outside fails with `EXDEV`, whatever renames race the lookup. Retried a few times on
/// `EAGAIN` (the kernel's answer when a rename raced the lookup). `O_PATH` with `path_only`
/// (for `fstat` alone).
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &Path,
    path_only: bool,
) -> io::Result<OwnedFd> {
    const TRIES: usize = 4;
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let flags = if path_only {
        OFlags::PATH | OFlags::CLOEXEC
    } else {
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK
    };
    let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_MAGICLINKS;
    let mut last = rustix::io::Errno::AGAIN;
    for _ in 0..TRIES {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) => last = rustix::io::Errno::AGAIN,
            r => return r.map_err(from_rustix),
        }
    }
    Err(from_rustix(last))
}

/// Whether an open descriptor may be read (`fcntl(F_GETFL)` access mode).
pub(crate) fn readable(file: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(file).map_err(from_rustix)?;
    Ok(!flags.contains(OFlags::WRONLY) && !flags.contains(OFlags::PATH))
}

/// The soft limit on open descriptors (`getrlimit(RLIMIT_NOFILE)`).
pub(crate) fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if r == 0 { lim.rlim_cur } else { 1024 }
}

/// Whether an error says the process (or system) ran out of descriptors.
pub(crate) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
