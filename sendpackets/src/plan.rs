//! The planner: from a position in the list of segments, what the next kernel call sends.
//!
//! Pure logic, no I/O. Shaped after nginx's sendfile chain: neighbouring memory segments and
//! small file ranges (read into a bounded scratch buffer) go out together in one vectored
//! write; large file ranges go out with `sendfile`, one capped call at a time.

/// One segment as the planner sees it: its length, whether its bytes come from a file, and
/// whether it ends a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanSeg {
    pub(crate) len: u64,
    pub(crate) kind: SegKind,
    pub(crate) end_of_packet: bool,
}

/// Where a segment's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegKind {
    /// Memory: written straight from its buffer.
    Memory,
    /// A file range; `zero_copy` is false once the kernel refused `sendfile` for the file.
    File { zero_copy: bool },
}

/// A position: segment index and bytes already sent of that segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cursor {
    pub(crate) seg: usize,
    pub(crate) off: u64,
}

/// The bounds every batch respects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// File segments at least this long go out with `sendfile`; shorter ones are copied.
    /// `u64::MAX` copies every file range (the portable engine).
    pub(crate) copy_threshold: u64,
    /// The most file bytes one gather copies into memory.
    pub(crate) scratch_cap: usize,
    /// The most buffers in one vectored write.
    pub(crate) max_iov: usize,
    /// The most bytes one kernel call sends (stream sockets).
    pub(crate) max_call: u64,
    /// Datagram socket: a gather is exactly one datagram (up to and including the next
    /// end-of-packet segment), never cut, never sent with `sendfile`.
    pub(crate) datagram: bool,
    /// Stream socket: end a gather after an end-of-packet segment (so a corked socket can be
    /// pushed there).
    pub(crate) stop_at_eop: bool,
    /// Memory segments shorter than this are copied into the scratch buffer next to their
    /// neighbours, so that a run of small buffers is one iovec entry, not one each.
    pub(crate) small_copy: u64,
}

/// What the planner needs to know of the socket (plain facts, asked by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketShape {
    /// Message boundaries (UDP, Unix datagram, seqpacket).
    pub(crate) datagram: bool,
    /// A TCP stream: corking applies.
    pub(crate) tcp: bool,
    /// Datagram sockets: the largest datagram.
    pub(crate) max_datagram: u64,
    /// UDP sockets with generic segmentation offload: the largest segment that fits the path
    /// MTU whole.
    pub(crate) gso_segment: Option<u64>,
}

/// What sends on one socket learned at run time, kept with the socket's state (a `Connection`
/// keeps it for its life; a free function's send learns afresh), so that a refusal costs one
/// failed call per socket, not one per send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Learned {
    /// The route refused UDP generic segmentation offload (`EIO`, `EINVAL`, `EMSGSIZE` on a
    /// GSO message that sent nothing).
    pub(crate) gso_refused: bool,
    /// The kernel has no `sendfile` (`ENOSYS`).
    pub(crate) sendfile_missing: bool,
}

impl Learned {
    /// Both lessons: what either knew.
    pub(crate) fn merge(self, other: Learned) -> Learned {
        Learned {
            gso_refused: self.gso_refused || other.gso_refused,
            sendfile_missing: self.sendfile_missing || other.sendfile_missing,
        }
    }

    /// The socket's shape as these lessons leave it.
    pub(crate) fn shape(self, mut shape: SocketShape) -> SocketShape {
        if self.gso_refused {
            shape.gso_segment = None;
        }
        shape
    }

    /// What may be wanted once these lessons are learned.
    pub(crate) fn wanted(self, mut wanted: Wanted) -> Wanted {
        if self.sendfile_missing {
            wanted.sendfile_ok = false;
        }
        wanted
    }
}

/// What the caller asked for, as the planner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) engine: crate::options::Engine,
    /// File bytes are read on another thread: no `sendfile`, which would read the disk on the
    /// sending thread.
    pub(crate) offload: bool,
    pub(crate) send_size: Option<std::num::NonZeroUsize>,
    /// `sendfile` may be tried (false once the socket's sends learned it is missing).
    pub(crate) sendfile_ok: bool,
    /// Someone watches the send's progress, or a deadline is set: every call is bounded
    /// ([`PACED_MAX_CALL`](crate::tuning::PACED_MAX_CALL)), so they act between calls.
    pub(crate) paced: bool,
}

/// How a whole send goes out: decided once, before the first byte, from the socket, the
/// options and the segments. The same rules on every path (loopback or a real link) and every
/// front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) limits: Limits,
    /// Cork the TCP socket while the send runs (pushed at end-of-packet marks).
    pub(crate) cork: bool,
    /// Uncorked TCP: a gather that ends right before a range going out with `sendfile` is
    /// sent with `MSG_MORE` (see [`more_follows`]).
    pub(crate) more: bool,
    /// Datagrams go out in bursts (`sendmmsg`), not one per call.
    pub(crate) burst: bool,
    /// UDP GSO: the largest segment of one GSO message, when used.
    pub(crate) gso_segment: Option<u64>,
    /// Datagram sockets: the largest datagram (and GSO message).
    pub(crate) max_datagram: u64,
}

/// Decides the [`Policy`] of a send.
pub(crate) fn policy(socket: SocketShape, wanted: Wanted, segs: &[PlanSeg]) -> Policy {
    use crate::options::Engine;
    use crate::tuning;
    let copy_threshold = match wanted.engine {
        Engine::Portable => u64::MAX,
        _ if wanted.offload || !wanted.sendfile_ok => u64::MAX,
        Engine::ZeroCopy => 0,
        _ => tuning::COPY_THRESHOLD,
    };
    let most = if wanted.paced {
        tuning::PACED_MAX_CALL
    } else {
        tuning::MAX_SENDFILE
    };
    let max_call = wanted
        .send_size
        .map_or(most, |n| (n.get() as u64).min(most));
    let copies_everything = copy_threshold == u64::MAX;
    let mut limits = Limits {
        copy_threshold,
        scratch_cap: if copies_everything {
            tuning::COPY_CHUNK
        } else {
            tuning::SCRATCH_CAP
        },
        max_iov: crate::sys::IOV_MAX,
        max_call,
        datagram: socket.datagram,
        stop_at_eop: false,
        small_copy: tuning::SMALL_COPY,
    };
    // A TCP socket is corked only where bytes follow a range that goes out with sendfile (a
    // trailer, the next message of a list): the end of each sendfile call pushes, and only a
    // cork keeps the range's tail for what follows. Bytes before a range go out with MSG_MORE
    // instead (a response: header + file). Under bbr (paced inside TCP when the qdisc is not
    // fq) a corked response arms the pacing timer once per 16 KiB response and 2.2 times per
    // 256 KiB one, MSG_MORE 0.01-0.05 times; server CPU per response over veth, corked vs
    // MSG_MORE, same run: 16 KiB 53.4 vs 16.3 µs, 64 KiB 53.1 vs 26.8, 256 KiB 161.1 vs 64.8
    // (loopback 256 KiB 112.4 vs 78.4). Under reno both cost the same (256 KiB loopback 47.6 vs
    // 48.3). BENCHMARKS.md, `rr`. Header + 1 GiB + trailer keeps its cork (bulk rows).
    let first_sendfile = segs.iter().position(|s| uses_sendfile(s, &limits));
    let cork = socket.tcp
        && first_sendfile.is_some_and(|i| {
            segs[i + 1..]
                .iter()
                .any(|s| s.len > 0 && !uses_sendfile(s, &limits))
        });
    let more = socket.tcp && first_sendfile.is_some() && !cork;
    limits.stop_at_eop = cork;
    let portable = wanted.engine == Engine::Portable;
    Policy {
        limits,
        cork,
        more,
        burst: socket.datagram && !portable,
        gso_segment: socket.gso_segment.filter(|_| !portable),
        max_datagram: socket.max_datagram,
    }
}

/// The bytes one kernel call (or, for a gather, one series of calls) sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Everything from `start` to `end` in one vectored write: memory as is, file bytes copied
    /// (`copied` of them). `bytes` may be 0 when only empty segments lie between them.
    Gather {
        start: Cursor,
        end: Cursor,
        bytes: u64,
        copied: u64,
        /// Too many buffers for one iovec (datagrams only): copy memory too.
        coalesce: bool,
    },
    /// `len` bytes of file segment `seg` from `offset` with `sendfile`.
    Sendfile { seg: usize, offset: u64, len: u64 },
}

/// Whether a segment goes out with `sendfile` under these limits.
pub(crate) fn uses_sendfile(seg: &PlanSeg, lim: &Limits) -> bool {
    matches!(seg.kind, SegKind::File { zero_copy: true })
        && !lim.datagram
        && seg.len > 0
        && seg.len >= lim.copy_threshold
}

/// Whether a gather copies this segment's bytes into the scratch buffer (file ranges always;
/// memory when it is small). Copied neighbours share one iovec entry.
pub(crate) fn copies(seg: &PlanSeg, lim: &Limits) -> bool {
    match seg.kind {
        SegKind::File { .. } => true,
        SegKind::Memory => seg.len < lim.small_copy,
    }
}

/// The next batch from `at`, or `None` when everything was sent.
pub(crate) fn next_batch(segs: &[PlanSeg], at: Cursor, lim: &Limits) -> Option<Batch> {
    let first = segs.get(at.seg)?;
    if uses_sendfile(first, lim) && at.off < first.len {
        let len = (first.len - at.off).min(lim.max_call.max(1));
        return Some(Batch::Sendfile {
            seg: at.seg,
            offset: at.off,
            len,
        });
    }
    let max_call = if lim.datagram {
        u64::MAX
    } else {
        lim.max_call.max(1)
    };
    let scratch_cap = if lim.datagram {
        u64::MAX
    } else {
        (lim.scratch_cap as u64).max(1)
    };
    let (mut bytes, mut copied, mut iov) = (0u64, 0u64, 0usize);
    let mut end = at;
    let mut coalesce = false;
    let mut prev_copied = false;
    for (i, seg) in segs.iter().enumerate().skip(at.seg) {
        if uses_sendfile(seg, lim) {
            break;
        }
        let start_off = if i == at.seg { at.off } else { 0 };
        let avail = seg.len.saturating_sub(start_off);
        let copy = copies(seg, lim);
        let mut take = avail.min(max_call - bytes);
        if copy {
            // Small buffers stop at a smaller total: copying them all before the first byte
            // goes out would leave the socket idle (a big buffer for file ranges pays).
            let cap = match seg.kind {
                SegKind::Memory if !lim.datagram => {
                    scratch_cap.min(crate::tuning::SMALL_COPY_GATHER)
                }
                _ => scratch_cap,
            };
            take = take.min(cap.saturating_sub(copied));
        }
        if avail > 0 {
            if take == 0 {
                break;
            }
            // A copied part right after another copied part extends its iovec entry.
            if !(copy && prev_copied) {
                if iov == lim.max_iov {
                    if !lim.datagram {
                        break;
                    }
                    coalesce = true;
                }
                iov += 1;
            }
            prev_copied = copy;
            bytes += take;
            if copy {
                copied += take;
            }
        }
        if take < avail {
            end = Cursor {
                seg: i,
                off: start_off + take,
            };
            break;
        }
        end = Cursor { seg: i + 1, off: 0 };
        if seg.end_of_packet && (lim.datagram || lim.stop_at_eop) {
            break;
        }
    }
    Some(Batch::Gather {
        start: at,
        end,
        bytes,
        copied,
        coalesce,
    })
}

/// Whether a stream gather that ends at `end` goes out with `MSG_MORE`: the policy says so,
/// no end-of-packet mark ends it, and the next segment is a range that goes out with
/// `sendfile` (which then pushes header and range out together).
pub(crate) fn more_follows(segs: &[PlanSeg], end: Cursor, policy: &Policy) -> bool {
    policy.more
        && end.off == 0
        && end.seg > 0
        && !segs[end.seg - 1].end_of_packet
        && segs
            .get(end.seg)
            .is_some_and(|s| uses_sendfile(s, &policy.limits))
}

/// The cursor `n` bytes after `at` (empty segments on the way are passed over).
pub(crate) fn advance(segs: &[PlanSeg], mut at: Cursor, mut n: u64) -> Cursor {
    while let Some(seg) = segs.get(at.seg) {
        let avail = seg.len - at.off;
        if n < avail {
            at.off += n;
            break;
        }
        n -= avail;
        at = Cursor {
            seg: at.seg + 1,
            off: 0,
        };
        if n == 0 {
            break;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn mem(len: u64) -> PlanSeg {
        PlanSeg {
            len,
            kind: SegKind::Memory,
            end_of_packet: false,
        }
    }

    pub(crate) fn file(len: u64) -> PlanSeg {
        PlanSeg {
            len,
            kind: SegKind::File { zero_copy: true },
            end_of_packet: false,
        }
    }

    fn limits() -> Limits {
        Limits {
            copy_threshold: 64 * 1024,
            scratch_cap: 256 * 1024,
            max_iov: 1024,
            max_call: 0x7fff_f000,
            datagram: false,
            stop_at_eop: false,
            small_copy: 0,
        }
    }

    const START: Cursor = Cursor { seg: 0, off: 0 };

    #[test]
    fn header_small_file_trailer_is_one_gather() {
        let segs = [mem(200), file(1024), mem(50)];
        let b = next_batch(&segs, START, &limits()).unwrap();
        assert_eq!(
            b,
            Batch::Gather {
                start: START,
                end: Cursor { seg: 3, off: 0 },
                bytes: 1274,
                copied: 1024,
                coalesce: false
            }
        );
    }

    #[test]
    fn large_file_splits_around_sendfile() {
        let segs = [mem(200), file(1 << 20), mem(50)];
        let lim = limits();
        let b = next_batch(&segs, START, &lim).unwrap();
        assert!(matches!(
            b,
            Batch::Gather {
                end: Cursor { seg: 1, off: 0 },
                bytes: 200,
                ..
            }
        ));
        let b = next_batch(&segs, Cursor { seg: 1, off: 0 }, &lim).unwrap();
        assert_eq!(
            b,
            Batch::Sendfile {
                seg: 1,
                offset: 0,
                len: 1 << 20
            }
        );
    }

    #[test]
    fn send_size_caps_every_call() {
        let segs = [mem(100), file(1 << 20)];
        let lim = Limits {
            max_call: 30,
            ..limits()
        };
        let b = next_batch(&segs, START, &lim).unwrap();
        assert!(matches!(
            b,
            Batch::Gather {
                end: Cursor { seg: 0, off: 30 },
                bytes: 30,
                ..
            }
        ));
        let b = next_batch(&segs, Cursor { seg: 1, off: 5 }, &lim).unwrap();
        assert_eq!(
            b,
            Batch::Sendfile {
                seg: 1,
                offset: 5,
                len: 30
            }
        );
    }

    #[test]
    fn iov_cap_splits_gathers() {
        let segs = vec![mem(1); 2500];
        let lim = limits();
        let b = next_batch(&segs, START, &lim).unwrap();
        assert!(matches!(b, Batch::Gather { bytes: 1024, .. }));
    }

    #[test]
    fn datagram_gather_runs_to_end_of_packet() {
        let mut segs = vec![mem(10), file(100_000), mem(10), mem(5)];
        segs[2].end_of_packet = true;
        let lim = Limits {
            datagram: true,
            max_call: 4,
            scratch_cap: 8,
            ..limits()
        };
        let b = next_batch(&segs, START, &lim).unwrap();
        assert!(matches!(
            b,
            Batch::Gather {
                end: Cursor { seg: 3, off: 0 },
                bytes: 100_020,
                ..
            }
        ));
        let b = next_batch(&segs, Cursor { seg: 3, off: 0 }, &lim).unwrap();
        assert!(matches!(
            b,
            Batch::Gather {
                end: Cursor { seg: 4, off: 0 },
                bytes: 5,
                ..
            }
        ));
    }

    #[test]
    fn scratch_cap_bounds_copies() {
        let segs = vec![file(1000); 10];
        let lim = Limits {
            scratch_cap: 2500,
            ..limits()
        };
        let b = next_batch(&segs, START, &lim).unwrap();
        assert!(matches!(
            b,
            Batch::Gather {
                end: Cursor { seg: 2, off: 500 },
                copied: 2500,
                ..
            }
        ));
    }

    #[test]
    fn a_response_is_not_corked_its_header_goes_with_more() {
        let tcp = SocketShape {
            datagram: false,
            tcp: true,
            max_datagram: 0,
            gso_segment: None,
        };
        let wanted = Wanted {
            engine: crate::options::Engine::Auto,
            offload: false,
            send_size: None,
            sendfile_ok: true,
            paced: false,
        };
        let response = [mem(240), file(1 << 20)];
        let p = policy(tcp, wanted, &response);
        assert!(!p.cork && p.more);
        assert!(more_follows(&response, Cursor { seg: 1, off: 0 }, &p));
        assert!(!more_follows(&response, Cursor { seg: 2, off: 0 }, &p));
        let mut eop = response;
        eop[0].end_of_packet = true;
        assert!(!more_follows(&eop, Cursor { seg: 1, off: 0 }, &p));
        // A trailer after the range: corked, no MSG_MORE.
        let p = policy(tcp, wanted, &[mem(240), file(1 << 20), mem(50)]);
        assert!(p.cork && !p.more);
        // Nothing goes out with sendfile: neither.
        let p = policy(tcp, wanted, &[mem(240), file(1000)]);
        assert!(!p.cork && !p.more);
        // Not TCP: neither.
        let unix = SocketShape { tcp: false, ..tcp };
        let p = policy(unix, wanted, &response);
        assert!(!p.cork && !p.more);
    }

    #[test]
    fn advance_passes_empty_segments() {
        let segs = [mem(3), mem(0), mem(4)];
        assert_eq!(advance(&segs, START, 3), Cursor { seg: 1, off: 0 });
        assert_eq!(advance(&segs, START, 5), Cursor { seg: 2, off: 2 });
        assert_eq!(advance(&segs, START, 7), Cursor { seg: 3, off: 0 });
    }

    fn arb_seg() -> impl proptest::strategy::Strategy<Value = PlanSeg> {
        use proptest::prelude::*;
        (0u64..5000, 0u8..3, any::<bool>(), any::<bool>()).prop_map(|(len, k, zc, eop)| PlanSeg {
            len: if k == 2 { len * 100 } else { len },
            kind: if k == 0 {
                SegKind::Memory
            } else {
                SegKind::File { zero_copy: zc }
            },
            end_of_packet: eop,
        })
    }

    proptest::proptest! {
        /// Following the batches from the start covers every byte exactly once, in order, each
        /// batch within the limits, in a bounded number of steps.
        #[test]
        fn batches_cover_every_byte_once(
            segs in proptest::collection::vec(arb_seg(), 0..60),
            threshold in proptest::prop_oneof![proptest::strategy::Just(0u64), 1u64..200_000, proptest::strategy::Just(u64::MAX)],
            scratch in 1usize..100_000,
            max_iov in 1usize..8,
            max_call in 1u64..300_000,
            datagram: bool,
            stop_at_eop: bool,
            small_copy in proptest::prop_oneof![proptest::strategy::Just(0u64), 1u64..5000],
        ) {
            let lim = Limits { copy_threshold: threshold, scratch_cap: scratch, max_iov, max_call, datagram, stop_at_eop, small_copy };
            let total: u64 = segs.iter().map(|s| s.len).sum();
            let mut at = START;
            let mut sent = 0u64;
            let mut steps = 0u64;
            while let Some(b) = next_batch(&segs, at, &lim) {
                steps += 1;
                proptest::prop_assert!(steps <= total + segs.len() as u64 + 1, "no progress");
                match b {
                    Batch::Sendfile { seg, offset, len } => {
                        proptest::prop_assert_eq!(Cursor { seg, off: offset }, at);
                        proptest::prop_assert!(len > 0 && len <= max_call);
                        proptest::prop_assert!(uses_sendfile(&segs[seg], &lim));
                        proptest::prop_assert!(offset + len <= segs[seg].len);
                        at = advance(&segs, at, len);
                        sent += len;
                    }
                    Batch::Gather { start, end, bytes, copied, coalesce } => {
                        proptest::prop_assert_eq!(start, at);
                        proptest::prop_assert!(end > start);
                        proptest::prop_assert!(advance(&segs, start, bytes) <= end);
                        if !datagram {
                            proptest::prop_assert!(bytes <= max_call);
                            proptest::prop_assert!(copied <= scratch as u64);
                            proptest::prop_assert!(!coalesce);
                            // Iovec entries, counting a run of copied parts as one.
                            let mut entries = 0;
                            let mut prev = false;
                            let mut c = start;
                            while c < end {
                                let seg = &segs[c.seg];
                                let stop = if c.seg == end.seg { end.off } else { seg.len };
                                if stop > c.off {
                                    let copy = copies(seg, &lim);
                                    if !(copy && prev) {
                                        entries += 1;
                                    }
                                    prev = copy;
                                }
                                c = Cursor { seg: c.seg + 1, off: 0 };
                            }
                            proptest::prop_assert!(entries <= max_iov, "{} iovec entries", entries);
                        } else {
                            // A datagram ends at an end-of-packet segment or at the end.
                            let last = &segs[end.seg - 1];
                            proptest::prop_assert!(end.off == 0 && (last.end_of_packet || end.seg == segs.len()));
                        }
                        for s in &segs[start.seg..end.seg.min(segs.len())] {
                            proptest::prop_assert!(!uses_sendfile(s, &lim) || s.len == 0);
                        }
                        at = end;
                        sent += bytes;
                    }
                }
            }
            proptest::prop_assert_eq!(sent, total);
            proptest::prop_assert_eq!(at.seg, segs.len());
        }
    }
}
