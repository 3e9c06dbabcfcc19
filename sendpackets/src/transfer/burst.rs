//! Writing a burst of datagrams: many per `sendmmsg`, equal-size runs as one UDP GSO message.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::BorrowedFd;

use crate::error::ErrorKind;
use crate::sys::{self, Message};
use crate::tuning;

use super::gather::Msg;
use super::{Kernel, Step, Stop, Transfer};

/// One kernel message of a burst: `datagrams` prepared datagrams, `bytes` in all, its buffers
/// `iov` of the burst's iovec, and with `segment` the GSO segment size (several datagrams).
#[derive(Clone, Debug)]
struct Group {
    datagrams: usize,
    bytes: u64,
    iov: Range<usize>,
    segment: Option<u16>,
}

impl Transfer {
    /// How many of `msgs` (from the first) one GSO message can carry: equal sizes (only the
    /// last may be shorter), at most the GSO limits, the datagram limit and `IOV_MAX` buffers.
    fn gso_run(&self, msgs: &[Msg]) -> usize {
        let size = msgs[0].bytes;
        let fits_segment = self.policy.gso_segment.is_some_and(|max| size <= max);
        if size == 0 || !fits_segment {
            return 1;
        }
        let (mut n, mut total) = (1, size);
        let mut parts = msgs[0].last - msgs[0].first;
        while let Some(next) = msgs.get(n) {
            let next_parts = next.last - next.first;
            if n == tuning::GSO_MAX_SEGMENTS
                || next.bytes > size
                || next.bytes == 0
                || total + next.bytes > self.policy.max_datagram
                || parts + next_parts > sys::IOV_MAX
            {
                break;
            }
            total += next.bytes;
            parts += next_parts;
            n += 1;
            if next.bytes < size {
                break; // only the last datagram of a GSO message may be shorter
            }
        }
        n
    }

    /// Groups the prepared datagrams into kernel messages (one only without bursts), filling
    /// `iov` with their buffers.
    fn group<'a>(
        &'a self,
        msgs: &[Msg],
        parts: &[super::gather::Part],
        iov: &mut Vec<IoSlice<'a>>,
    ) -> Vec<Group> {
        let mut groups = Vec::new();
        let mut i = 0;
        while i < msgs.len() {
            let n = self.gso_run(&msgs[i..]);
            let start = iov.len();
            for m in &msgs[i..i + n] {
                self.push_iov(&parts[m.first..m.last], 0, iov);
            }
            groups.push(Group {
                datagrams: n,
                bytes: msgs[i..i + n].iter().map(|m| m.bytes).sum(),
                iov: start..iov.len(),
                segment: (n > 1).then_some(msgs[i].bytes as u16),
            });
            i += n;
            if !self.policy.burst {
                break;
            }
        }
        groups
    }

    /// Sends prepared datagrams: one `sendmsg` each in the portable engine; otherwise many per
    /// `sendmmsg`, runs of equal-size UDP datagrams as one GSO message each.
    pub(super) fn write_datagrams(
        &mut self,
        k: &mut impl Kernel,
        sock: BorrowedFd<'_>,
    ) -> Result<Step, Stop> {
        let pending = self.pending.as_ref().expect("a pending gather");
        let mut iov: Vec<IoSlice<'_>> = Vec::new();
        let groups = self.group(&pending.msgs[pending.next..], &pending.parts, &mut iov);
        let r = if self.policy.burst {
            let messages: Vec<Message<'_>> = groups
                .iter()
                .map(|g| Message {
                    iov: &iov[g.iov.clone()],
                    segment: g.segment,
                })
                .collect();
            k.sendmmsg(sock, &messages)
        } else {
            let g = &groups[0];
            match k.sendmsg(sock, &iov[g.iov.clone()], false) {
                Ok(n) if n as u64 == g.bytes => Ok(1),
                // A datagram goes out whole or not at all; anything else is a surprise.
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "datagram sent short",
                )),
                Err(e) => Err(e),
            }
        };
        drop(iov);
        self.calls.gather_writes += 1;
        match r {
            Ok(sent) => Ok(self.datagrams_sent(&groups[..sent.min(groups.len())])),
            Err(e) if self.gso_refused(&groups, &e) => {
                // The first message was a GSO one and nothing was sent: this route refuses
                // segmentation (a device without checksum offload, a segment over the path
                // MTU). This send goes on one datagram per message.
                self.learn(crate::plan::Learned {
                    gso_refused: true,
                    ..Default::default()
                });
                Ok(Step::Progressed)
            }
            Err(e) if e.kind() == io::ErrorKind::WriteZero => {
                Err(self.fail(ErrorKind::Socket, None, Some(e)))
            }
            Err(e) => self.socket_error(sock, e),
        }
    }

    fn gso_refused(&self, groups: &[Group], e: &io::Error) -> bool {
        groups.first().is_some_and(|g| g.segment.is_some())
            && matches!(
                e.raw_os_error(),
                Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE)
            )
    }

    /// Counts the kernel messages `sent` and moves past their datagrams.
    fn datagrams_sent(&mut self, sent: &[Group]) -> Step {
        let mut count = 0;
        for g in sent {
            count += g.datagrams;
            self.bytes_sent += g.bytes;
            self.calls.udp_gso_messages += u64::from(g.segment.is_some());
        }
        if count == 0 {
            return Step::Progressed;
        }
        self.datagrams += count as u64;
        let pending = self.pending.as_mut().expect("a pending gather");
        pending.next += count;
        let end = pending.msgs[pending.next - 1].end;
        if pending.next == pending.msgs.len() {
            self.finish_pending();
        }
        self.move_to(end);
        Step::Progressed
    }
}
