//! The Linux-only system calls (see the contract in `sys/mod.rs`).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::OFlags;

use super::{Message, from_rustix};

/// IPv6 header + UDP header: a GSO segment must fit the path MTU less these (which also covers
/// IPv4's 20 + 8).
const UDP_V6_OVERHEAD: u64 = 48;
const UDP_V4_OVERHEAD: u64 = 28;

/// Room for one `cmsghdr` carrying a `u16`, aligned for it.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

/// `sendmmsg(2)` with `MSG_NOSIGNAL`: sends `msgs` in one call, each message one datagram (or
/// several, with `segment`). Returns how many messages were sent; a failure after the first
/// message is reported by the next call.
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

/// `getsockopt` of an `int` option; `None` when the kernel refuses it.
fn getsockopt_int(sock: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes and describe an int-sized buffer.
    let r =
        unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    (r == 0).then_some(v)
}

/// UDP GSO on a connected UDP socket: where the kernel takes `UDP_SEGMENT` (Linux 4.18+:
/// reading the option succeeds) and knows the path MTU (`IP_MTU` / `IPV6_MTU`), the largest
/// datagram that fits the path MTU whole.
pub(crate) fn udp_gso_max_segment(sock: BorrowedFd<'_>, ipv6: bool) -> Option<u64> {
    getsockopt_int(sock, libc::SOL_UDP, libc::UDP_SEGMENT)?;
    let (level, name, overhead) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU, UDP_V6_OVERHEAD)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU, UDP_V4_OVERHEAD)
    };
    let mtu = getsockopt_int(sock, level, name).filter(|&m| m > 0)?;
    Some((mtu as u64).saturating_sub(overhead))
}

/// `sendfile(2)` from `offset` of `file` (the file's cursor is not used or moved).
///
/// Unlike `sendmsg` it cannot take `MSG_NOSIGNAL`: sending to a closed peer raises `SIGPIPE`
/// unless the process ignores it (Rust programs do by default).
pub(crate) fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off = offset;
    rustix::fs::sendfile(sock, file, Some(&mut off), len).map_err(from_rustix)
}

/// `setsockopt(TCP_CORK)`.
pub(crate) fn set_tcp_cork(sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    rustix::net::sockopt::set_tcp_cork(sock, on).map_err(from_rustix)
}

/// Replaces the socket `sock` owns, in place, by a fresh unconnected socket of the same domain,
/// type and protocol: `socket(2)` then `dup3(2)` onto the same descriptor number. Takes
/// `&mut OwnedFd`: only the owner of a descriptor may replace what it refers to.
pub(crate) fn replace_with_fresh_socket(sock: &mut OwnedFd) -> io::Result<()> {
    use rustix::net::sockopt;
    let ty = sockopt::socket_type(&*sock).map_err(from_rustix)?;
    let domain = sockopt::socket_domain(&*sock).map_err(from_rustix)?;
    let proto = sockopt::socket_protocol(&*sock).map_err(from_rustix)?;
    let flags = rustix::fs::fcntl_getfl(&*sock).map_err(from_rustix)?;
    let mut sflags = rustix::net::SocketFlags::CLOEXEC;
    if flags.contains(OFlags::NONBLOCK) {
        sflags |= rustix::net::SocketFlags::NONBLOCK;
    }
    let fresh = rustix::net::socket_with(domain, ty, sflags, proto).map_err(from_rustix)?;
    // SAFETY: both descriptors are open for the whole call; `fresh` is owned here and `sock`
    // is owned by our caller, who lent it mutably, so no one else holds it. dup3 atomically
    // closes the old socket behind `sock`'s number and makes that number refer to the fresh
    // socket, so `sock` stays a valid owned descriptor.
    let r = unsafe { libc::dup3(fresh.as_raw_fd(), sock.as_raw_fd(), libc::O_CLOEXEC) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the file lives on a pseudo file system (procfs, sysfs, …) whose sizes are made up:
/// `fstatfs(2)` magic numbers.
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
