//! Every system call the crate makes, in one place.
//!
//! Wrappers are named after the call, take `impl AsFd`, and return `io::Result` (rustix turns
//! `-1` into an error in one place; the few libc calls here do the same through [`cvt`]).
//! Portable POSIX calls come first; the Linux-only ones (`sendfile`, `TCP_CORK`, `fstatfs`
//! magic numbers, `dup3`) are gated on `target_os = "linux"`.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::net::{AddressFamily, SendAncillaryBuffer, SendFlags, SocketType, ipproto};

/// The kind of socket a send goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// A byte stream (TCP, Unix stream).
    Stream,
    /// Message boundaries (UDP, Unix datagram, Unix seqpacket).
    Datagram,
}

/// What the send needs to know about its socket, read once before the first byte.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketInfo {
    pub(crate) kind: SocketKind,
    pub(crate) domain: AddressFamily,
    pub(crate) is_tcp: bool,
    pub(crate) is_udp: bool,
    /// The peer is an IP address of this host's loopback.
    pub(crate) loopback: bool,
    /// The peer is an IPv4 address reached through an IPv6 socket.
    pub(crate) v4_mapped: bool,
    /// Datagram sockets: the largest datagram (filled in by the checks).
    pub(crate) max_datagram: u64,
    /// UDP sockets: the kernel takes `UDP_SEGMENT` (filled in by the checks).
    pub(crate) udp_gso: bool,
    /// UDP GSO: the largest datagram that fits the path MTU whole (filled in by the checks);
    /// larger datagrams are sent one per message (the kernel fragments them).
    pub(crate) gso_max_segment: u64,
}

fn from_rustix(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Turns a libc return value of `-1` into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// What `getpeername` tells about the peer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Peer {
    /// The peer's address family, when the kernel reports one.
    pub(crate) family: Option<AddressFamily>,
    /// An IP peer on this host's loopback (127.0.0.0/8, ::1, or IPv4-mapped loopback).
    pub(crate) loopback: bool,
    /// An IPv4 peer reached through an IPv6 socket (`::ffff:a.b.c.d`): IPv4 limits apply.
    pub(crate) v4_mapped: bool,
}

#[cfg(test)]
thread_local! {
    /// Unit tests: treat loopback peers as remote, to exercise what remote peers get.
    pub(crate) static LOOPBACK_IS_REMOTE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `getpeername(2)`: `Err(ENOTCONN)` when the socket has no peer or default remote.
pub(crate) fn getpeername(sock: impl AsFd) -> io::Result<Peer> {
    let addr = rustix::net::getpeername(sock).map_err(from_rustix)?;
    let Some(addr) = addr else {
        return Ok(Peer::default());
    };
    let family = Some(addr.address_family());
    #[cfg(test)]
    if LOOPBACK_IS_REMOTE.with(std::cell::Cell::get) {
        return Ok(Peer {
            family,
            ..Peer::default()
        });
    }
    let (loopback, v4_mapped) = match std::net::SocketAddr::try_from(addr) {
        Ok(std::net::SocketAddr::V4(a)) => (a.ip().is_loopback(), false),
        Ok(std::net::SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
            Some(v4) => (v4.is_loopback(), true),
            None => (a.ip().is_loopback(), false),
        },
        Err(_) => (false, false),
    };
    Ok(Peer {
        family,
        loopback,
        v4_mapped,
    })
}

/// `getsockopt(SO_TYPE, SO_PROTOCOL)`, and `SO_DOMAIN` unless the peer's family is known:
/// two or three calls, the fewest that tell a TCP, UDP or Unix socket apart. Whether the socket
/// is non-blocking is asked only when a call says `EAGAIN` ([`is_nonblocking`]).
pub(crate) fn socket_info(sock: BorrowedFd<'_>, peer: Peer) -> io::Result<SocketInfo> {
    use rustix::net::sockopt;
    let ty = sockopt::socket_type(sock).map_err(from_rustix)?;
    let kind = if ty == SocketType::STREAM {
        SocketKind::Stream
    } else if ty == SocketType::DGRAM || ty == SocketType::SEQPACKET {
        SocketKind::Datagram
    } else {
        return Err(io::Error::from_raw_os_error(libc::EPROTOTYPE));
    };
    let domain = match peer.family {
        Some(f) if f != AddressFamily::UNSPEC => f,
        _ => sockopt::socket_domain(sock).map_err(from_rustix)?,
    };
    let inet = domain == AddressFamily::INET || domain == AddressFamily::INET6;
    let proto = if inet {
        sockopt::socket_protocol(sock).map_err(from_rustix)?
    } else {
        None
    };
    Ok(SocketInfo {
        kind,
        domain,
        is_tcp: inet && kind == SocketKind::Stream && proto == Some(ipproto::TCP),
        is_udp: inet && ty == SocketType::DGRAM && proto == Some(ipproto::UDP),
        loopback: peer.loopback,
        v4_mapped: peer.v4_mapped,
        max_datagram: 0,
        udp_gso: false,
        gso_max_segment: 0,
    })
}

/// `getsockopt(SO_TYPE)` alone: stream or datagram.
pub(crate) fn socket_kind(sock: BorrowedFd<'_>) -> io::Result<SocketKind> {
    let ty = rustix::net::sockopt::socket_type(sock).map_err(from_rustix)?;
    Ok(if ty == SocketType::STREAM {
        SocketKind::Stream
    } else {
        SocketKind::Datagram
    })
}

/// `fcntl(F_GETFL)`: whether `O_NONBLOCK` is set.
pub(crate) fn is_nonblocking(sock: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(sock).map_err(from_rustix)?;
    Ok(flags.contains(OFlags::NONBLOCK))
}

/// `sendmsg(2)` with an iovec, `MSG_NOSIGNAL` (a closed peer is an `EPIPE` error, never a
/// `SIGPIPE`), and `MSG_MORE` when `more` is set.
pub(crate) fn sendmsg(sock: BorrowedFd<'_>, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    let mut flags = SendFlags::NOSIGNAL;
    if more {
        flags |= SendFlags::MORE;
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

/// Room for one `cmsghdr` carrying a `u16`, aligned for it.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

/// `sendmmsg(2)` with `MSG_NOSIGNAL`: sends `msgs` in one call, each message one datagram (or
/// several, with `segment`). Returns how many messages were sent; a failure after the first
/// message is reported by the next call.
#[cfg(target_os = "linux")]
pub(crate) fn sendmmsg(sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize> {
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
    let (space, len) = unsafe { (libc::CMSG_SPACE(2), libc::CMSG_LEN(2)) };
    debug_assert!(space as usize <= std::mem::size_of::<SegmentCmsg>());
    let mut cmsgs = vec![SegmentCmsg([0; 32]); msgs.len()];
    // SAFETY: an all-zero `mmsghdr` is a valid empty header (null pointers, zero lengths).
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; msgs.len()];
    for ((m, h), c) in msgs.iter().zip(&mut hdrs).zip(&mut cmsgs) {
        // `IoSlice` is ABI compatible with `iovec` on Unix; the kernel only reads through it.
        h.msg_hdr.msg_iov = m.iov.as_ptr() as *mut libc::iovec;
        h.msg_hdr.msg_iovlen = m.iov.len() as _;
        if let Some(segment) = m.segment {
            h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = space as _;
            // SAFETY: `msg_control` points to `space` writable, aligned bytes, enough for one
            // header and a u16 (checked above), so CMSG_FIRSTHDR is non-null and in bounds,
            // and CMSG_DATA points to 2 bytes inside the same buffer.
            unsafe {
                let cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*cm).cmsg_level = libc::SOL_UDP;
                (*cm).cmsg_type = libc::UDP_SEGMENT;
                (*cm).cmsg_len = len as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), segment);
            }
        }
    }
    // SAFETY: `hdrs` holds `msgs.len()` initialised headers whose iovecs and control buffers
    // (borrowed from `msgs` and `cmsgs`) outlive the call; the kernel writes only `msg_len`.
    let r = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as _,
            libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn sendmmsg(_sock: BorrowedFd<'_>, _msgs: &[Message<'_>]) -> io::Result<usize> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Whether the kernel takes `UDP_SEGMENT` on this socket (Linux 4.18+): reading the option
/// succeeds where it exists.
#[cfg(target_os = "linux")]
pub(crate) fn udp_gso_supported(sock: BorrowedFd<'_>) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes and describe an int-sized buffer.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    r == 0
}

/// The path MTU of a connected UDP socket (`IP_MTU` / `IPV6_MTU`), if the kernel says.
#[cfg(target_os = "linux")]
pub(crate) fn path_mtu(sock: BorrowedFd<'_>, ipv6: bool) -> Option<u64> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes and describe an int-sized buffer.
    let r =
        unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    (r == 0 && v > 0).then_some(v as u64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn path_mtu(_sock: BorrowedFd<'_>, _ipv6: bool) -> Option<u64> {
    None
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn udp_gso_supported(_sock: BorrowedFd<'_>) -> bool {
    false
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

/// `sendfile(2)` from `offset` of `file` (the file's cursor is not used or moved).
///
/// Unlike `sendmsg` it cannot take `MSG_NOSIGNAL`: sending to a closed peer raises `SIGPIPE`
/// unless the process ignores it (Rust programs do by default).
#[cfg(target_os = "linux")]
pub(crate) fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off = offset;
    rustix::fs::sendfile(sock, file, Some(&mut off), len).map_err(from_rustix)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn sendfile(
    _sock: BorrowedFd<'_>,
    _file: BorrowedFd<'_>,
    _offset: u64,
    _len: usize,
) -> io::Result<usize> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// `setsockopt(TCP_CORK)`.
#[cfg(target_os = "linux")]
pub(crate) fn set_tcp_cork(sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    rustix::net::sockopt::set_tcp_cork(sock, on).map_err(from_rustix)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_tcp_cork(_sock: BorrowedFd<'_>, _on: bool) -> io::Result<()> {
    Ok(())
}

/// `poll(2)` for `POLLOUT` with no timeout. Returns once the socket is writable or has an error
/// pending (the next send reports it).
pub(crate) fn poll_writable(sock: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        let mut fds = [PollFd::new(&sock, PollFlags::OUT)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(from_rustix(e)),
        }
    }
}

/// `shutdown(SHUT_RDWR)`.
pub(crate) fn shutdown_both(sock: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::shutdown(sock, rustix::net::Shutdown::Both).map_err(from_rustix)
}

/// Replaces the socket behind `sock` in place by a fresh, unconnected socket of the same
/// domain, type and protocol: `socket(2)` then `dup3(2)` onto the same descriptor number.
#[cfg(target_os = "linux")]
pub(crate) fn replace_with_fresh_socket(sock: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::sockopt;
    let ty = sockopt::socket_type(sock).map_err(from_rustix)?;
    let domain = sockopt::socket_domain(sock).map_err(from_rustix)?;
    let proto = sockopt::socket_protocol(sock).map_err(from_rustix)?;
    let flags = rustix::fs::fcntl_getfl(sock).map_err(from_rustix)?;
    let mut sflags = rustix::net::SocketFlags::CLOEXEC;
    if flags.contains(OFlags::NONBLOCK) {
        sflags |= rustix::net::SocketFlags::NONBLOCK;
    }
    let fresh = rustix::net::socket_with(domain, ty, sflags, proto).map_err(from_rustix)?;
    // SAFETY: both descriptors are open for the whole call: `fresh` is owned here and `sock` is
    // borrowed from the caller. dup3 atomically closes the old socket behind `sock`'s number and
    // makes that number refer to the fresh socket; the caller's owner of that number stays valid.
    cvt(unsafe { libc::dup3(fresh.as_raw_fd(), sock.as_raw_fd(), libc::O_CLOEXEC) })?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn replace_with_fresh_socket(_sock: BorrowedFd<'_>) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// What `fstat(2)` says about a file the send reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) regular: bool,
    pub(crate) directory: bool,
    pub(crate) len: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// No blocks allocated: sparse, empty, or a pseudo file whose size may lie.
    pub(crate) no_blocks: bool,
}

/// `fstat(2)`.
pub(crate) fn fstat(file: BorrowedFd<'_>) -> io::Result<FileStat> {
    let st = rustix::fs::fstat(file).map_err(from_rustix)?;
    let ty = FileType::from_raw_mode(st.st_mode as _);
    Ok(FileStat {
        regular: ty == FileType::RegularFile,
        directory: ty == FileType::Directory,
        len: st.st_size as u64,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        no_blocks: st.st_blocks == 0,
    })
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

/// Whether an open descriptor may be read (`fcntl(F_GETFL)` access mode).
pub(crate) fn readable(file: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(file).map_err(from_rustix)?;
    Ok(!flags.contains(OFlags::WRONLY) && !flags.contains(OFlags::PATH))
}

/// Whether the file lives on a pseudo file system (procfs, sysfs, …) whose sizes are made up:
/// `fstatfs(2)` magic numbers.
#[cfg(target_os = "linux")]
pub(crate) fn on_pseudo_fs(file: BorrowedFd<'_>) -> io::Result<bool> {
    const PSEUDO: [i64; 7] = [
        0x9fa0,      // procfs
        0x6265_6572, // sysfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x7363_6673, // securityfs
    ];
    let st = rustix::fs::fstatfs(file).map_err(from_rustix)?;
    Ok(PSEUDO.contains(&(st.f_type as i64)))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn on_pseudo_fs(_file: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(false)
}

/// The largest iovec one call takes (`IOV_MAX`).
pub(crate) const IOV_MAX: usize = 1024;

/// The soft limit on open descriptors (`getrlimit(RLIMIT_NOFILE)`).
pub(crate) fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    match cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }) {
        Ok(_) => lim.rlim_cur,
        Err(_) => 1024,
    }
}
