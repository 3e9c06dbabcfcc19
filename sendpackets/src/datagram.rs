//! Datagram boundaries: which segments form each datagram, and whether each fits the socket.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::net::AddressFamily;

use crate::error::{ErrorKind, SendError};
use crate::resolve::Resolved;
use crate::sys::SocketInfo;

/// The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IPv4 header).
pub(crate) const UDP_V4_MAX: u64 = 65_507;
/// The largest UDP payload over IPv6 without jumbograms: 65,535 − 8.
pub(crate) const UDP_V6_MAX: u64 = 65_527;

/// The largest datagram `sock` can send in one message.
pub(crate) fn max_datagram(sock: BorrowedFd<'_>, info: &SocketInfo) -> u64 {
    if info.is_udp {
        return if info.domain == AddressFamily::INET6 && !info.v4_mapped {
            UDP_V6_MAX
        } else {
            UDP_V4_MAX
        };
    }
    // Unix datagram and seqpacket sockets refuse messages over the send buffer less a little
    // bookkeeping (`sk_sndbuf - 32` in the kernel).
    match rustix::net::sockopt::socket_send_buffer_size(sock) {
        Ok(n) => (n as u64).saturating_sub(32),
        Err(_) => UDP_V4_MAX,
    }
}

/// Checks that every datagram of the list fits `max`; nothing is sent otherwise.
///
/// A datagram is the segments up to and including one marked end of packet; the segments after
/// the last marker form a final datagram.
pub(crate) fn check_sizes(res: &Resolved, max: u64) -> Result<(), SendError> {
    let mut size = 0u64;
    let mut first = None;
    for seg in &res.segments {
        first.get_or_insert(seg.element);
        size += seg.len;
        if size > max {
            return Err(SendError::new(ErrorKind::MessageTooLarge)
                .element_index(seg.element)
                .with_detail(too_large(
                    first.unwrap_or(seg.element),
                    seg.element,
                    size,
                    max,
                ))
                .with_source(io::Error::from_raw_os_error(libc::EMSGSIZE)));
        }
        if seg.end_of_packet {
            size = 0;
            first = None;
        }
    }
    Ok(())
}

fn too_large(first: usize, last: usize, size: u64, max: u64) -> String {
    if first == last {
        format!("datagram of element {first} reaches {size} bytes, the socket sends at most {max}")
    } else {
        format!(
            "datagram of elements {first}..={last} reaches {size} bytes, the socket sends at most {max}"
        )
    }
}
