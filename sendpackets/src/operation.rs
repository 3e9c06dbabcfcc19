//! The parts of a send shared by every front end: the checks before the first byte, and what
//! happens after the last one.

use std::io;
use std::os::fd::BorrowedFd;

use crate::datagram;
use crate::error::{ErrorKind, SendError};
use crate::options::{SendOptions, TransmitFlags};
use crate::report::SendReport;
use crate::resolve::Resolved;
use crate::sys::{self, SocketInfo, SocketKind};
use crate::transfer::Transfer;

// The checks run in the order the reference gives: connected first (even for an empty list:
// `check_socket`), then every file and range (`resolve`), then datagram sizes (`begin`).
// Nothing is sent by any of them.

/// The first check: the socket is connected, and of a kind we can send on.
pub(crate) fn check_socket(sock: BorrowedFd<'_>) -> Result<SocketInfo, SendError> {
    check_socket_shaped(sock, None)
}

/// [`check_socket`], with what the socket's type already says (datagram, IP) sparing the calls
/// that would ask.
pub(crate) fn check_socket_shaped(
    sock: BorrowedFd<'_>,
    shape: Option<(bool, bool)>,
) -> Result<SocketInfo, SendError> {
    let peer = sys::getpeername(sock).map_err(|e| {
        let kind = match e.raw_os_error() {
            Some(libc::ENOTCONN) => ErrorKind::NotConnected,
            _ => ErrorKind::UnsupportedSocket,
        };
        SendError::new(kind).with_source(e)
    })?;
    let family = peer
        .family
        .filter(|f| *f != rustix::net::AddressFamily::UNSPEC);
    if let (Some((datagram, ip)), Some(domain)) = (shape, family) {
        return Ok(SocketInfo {
            kind: if datagram {
                SocketKind::Datagram
            } else {
                SocketKind::Stream
            },
            domain,
            is_tcp: ip && !datagram,
            is_udp: ip && datagram,
            loopback: peer.loopback,
            v4_mapped: peer.v4_mapped,
            max_datagram: 0,
            udp_gso: false,
            gso_max_segment: 0,
        });
    }
    sys::socket_info(sock, peer)
        .map_err(|e| SendError::new(ErrorKind::UnsupportedSocket).with_source(e))
}

/// The last check (datagram sizes), after the list was resolved; then the transfer.
pub(crate) fn begin(
    sock: BorrowedFd<'_>,
    info: SocketInfo,
    resolved: Resolved,
    options: &SendOptions,
) -> Result<Transfer, SendError> {
    let mut info = info;
    if info.kind == SocketKind::Datagram {
        info.max_datagram = datagram::max_datagram(sock, &info);
        datagram::check_sizes(&resolved, info.max_datagram)?;
        if info.is_udp && sys::udp_gso_supported(sock) {
            // A GSO segment must fit the path MTU whole (IPv6 header + UDP: 48 bytes, which
            // also covers IPv4's 28).
            let ipv6 = info.domain == rustix::net::AddressFamily::INET6;
            if let Some(mtu) = sys::path_mtu(sock, ipv6) {
                info.udp_gso = true;
                info.gso_max_segment = mtu.saturating_sub(if ipv6 { 48 } else { 28 });
            }
        }
    }
    Ok(Transfer::new(resolved, info, options))
}

/// After the last byte: the `DISCONNECT` and `REUSE_SOCKET` flags.
pub(crate) fn finish(
    sock: BorrowedFd<'_>,
    transfer: &Transfer,
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    let flags = options.flags;
    if flags.contains(TransmitFlags::DISCONNECT) {
        let disconnect = sys::shutdown_both(sock).and_then(|()| {
            if flags.contains(TransmitFlags::REUSE_SOCKET) {
                sys::replace_with_fresh_socket(sock)
            } else {
                Ok(())
            }
        });
        // A peer that already closed leaves nothing to shut down: that is not a failure.
        match disconnect {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
            Err(e) => return Err(disconnect_error(transfer, e)),
        }
    }
    Ok(transfer.report())
}

fn disconnect_error(transfer: &Transfer, e: io::Error) -> SendError {
    SendError::new(ErrorKind::Socket)
        .with_detail("disconnect after the last byte failed".into())
        .with_source(e)
        .with_progress(transfer.progress())
}
