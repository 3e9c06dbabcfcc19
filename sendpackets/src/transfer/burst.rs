//! Writing a burst of datagrams: many per `sendmmsg`, equal-size runs as one UDP GSO message.

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

use crate::error::ErrorKind;
use crate::sys::{self, Message};
use crate::tuning;

use super::{Kernel, Step, Stop, Transfer};

impl Transfer {
    /// Sends prepared datagrams: one `sendmsg` each in the portable engine; otherwise many per
    /// `sendmmsg`, runs of equal-size UDP datagrams as one GSO message each.
    pub(super) fn write_datagrams(
        &mut self,
        k: &mut impl Kernel,
        sock: BorrowedFd<'_>,
    ) -> Result<Step, Stop> {
        let pending = self.pending.as_ref().expect("a pending gather");
        let msgs = &pending.msgs[pending.next..];
        // (datagrams, bytes, iov range, segment size) of each kernel message.
        let mut groups: Vec<(usize, u64, usize, usize, Option<u16>)> = Vec::new();
        let mut iov: Vec<IoSlice<'_>> = Vec::new();
        let mut i = 0;
        while i < msgs.len() {
            let size = msgs[i].bytes;
            let mut j = i + 1;
            let mut total = size;
            let iov_start = iov.len();
            let mut parts = msgs[i].last - msgs[i].first;
            if self.gso && size > 0 && size <= self.socket.gso_max_segment {
                while j < msgs.len()
                    && j - i < tuning::GSO_MAX_SEGMENTS
                    && msgs[j].bytes <= size
                    && msgs[j].bytes > 0
                    && total + msgs[j].bytes <= self.socket.max_datagram
                    && parts + (msgs[j].last - msgs[j].first) <= sys::IOV_MAX
                {
                    total += msgs[j].bytes;
                    parts += msgs[j].last - msgs[j].first;
                    j += 1;
                    if msgs[j - 1].bytes < size {
                        break; // only the last datagram of a GSO message may be shorter
                    }
                }
            }
            for m in &msgs[i..j] {
                self.push_iov(&pending.parts[m.first..m.last], 0, &mut iov);
            }
            let segment = (j - i > 1).then_some(size as u16);
            groups.push((j - i, total, iov_start, iov.len(), segment));
            i = j;
            if !self.burst {
                break;
            }
        }
        let r = if self.burst {
            let messages: Vec<Message<'_>> = groups
                .iter()
                .map(|&(_, _, a, b, segment)| Message {
                    iov: &iov[a..b],
                    segment,
                })
                .collect();
            k.sendmmsg(sock, &messages)
        } else {
            let (_, total, a, b, _) = groups[0];
            match k.sendmsg(sock, &iov[a..b], false) {
                Ok(n) if n as u64 == total => Ok(1),
                Ok(_) => {
                    // A datagram goes out whole or not at all; anything else is a surprise.
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "datagram sent short",
                    ))
                }
                Err(e) => Err(e),
            }
        };
        drop(iov);
        self.calls.gather_writes += 1;
        match r {
            Ok(sent) => {
                let mut count = 0;
                for &(n, bytes, _, _, segment) in &groups[..sent.min(groups.len())] {
                    count += n;
                    self.bytes_sent += bytes;
                    self.calls.udp_gso_messages += u64::from(segment.is_some());
                }
                if count == 0 {
                    return Ok(Step::Progressed);
                }
                self.datagrams += count as u64;
                let pending = self.pending.as_mut().expect("a pending gather");
                pending.next += count;
                let end = pending.msgs[pending.next - 1].end;
                if pending.next == pending.msgs.len() {
                    self.finish_pending();
                }
                self.move_to(end);
                Ok(Step::Progressed)
            }
            Err(e)
                if self.gso
                    && groups.first().is_some_and(|g| g.4.is_some())
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE)
                    ) =>
            {
                // The first message was a GSO one and nothing was sent: this route refuses
                // segmentation (a device without checksum offload, a segment over the path
                // MTU). This send goes on one datagram per message.
                self.gso = false;
                Ok(Step::Progressed)
            }
            Err(e) if e.kind() == io::ErrorKind::WriteZero => {
                Err(self.fail(ErrorKind::Socket, None, Some(e)))
            }
            Err(e) => self.socket_error(sock, e),
        }
    }
}
