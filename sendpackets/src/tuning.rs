//! Every constant of the library, with the figure or the fact it comes from, and what the kernel
//! was found to support.
//!
//! The measured constants come from `sendpackets-bench` (see BENCHMARKS.md, which says which
//! figure decided each one); each rule here is the same on every path (loopback, a real network
//! link) and on every front end.

/// The page size every copy buffer is aligned to (see `buffer.rs`).
pub(crate) const PAGE: usize = 4096;

/// File ranges shorter than this are read (`pread`) and coalesced with neighbouring buffers into
/// one vectored write; longer ones go out with `sendfile`.
///
/// Measured (200 B header + S file bytes + 50 B trailer, one message per operation): one
/// `pread` + one `writev` is 2.5x the per-element loop at 1 KiB and 1.5x at 16 KiB, while
/// corked `sendfile` wins at 256 KiB.
///
/// Request/response (`sendpackets-bench rr`, 64 connections, server CPU µs per response of the
/// C limit server, same runs, bbr; BENCHMARKS.md): at 16 KiB a copy from memory costs less than
/// `MSG_MORE` + `sendfile` (loopback 11.4 vs 12.5, veth 14.0 vs 16.3); from 64 KiB `sendfile`
/// costs less (64 KiB 23.6 vs 19.4 and 29.3 vs 26.8, 256 KiB over veth 115.0 vs 64.8, 1 MiB
/// 322.1 vs 146.8 and 391.2 vs 316.6). The crossing is at the same size on both paths, so it
/// is one rule, not a per-route one. (At 16 KiB a *corked* `sendfile` is what costs 3x a copy
/// under bbr: see `plan::policy`.)
pub(crate) const COPY_THRESHOLD: u64 = 64 * 1024;

/// Memory elements shorter than this are copied next to their neighbours in the scratch
/// buffer, so that headers, small file ranges and trailers go out as one contiguous buffer (one
/// iovec entry) rather than one entry each: the kernel's per-entry cost is higher than a short
/// copy.
pub(crate) const SMALL_COPY: u64 = 512;

/// The most bytes a gather copies before it takes no more small memory segments.
pub(crate) const SMALL_COPY_GATHER: u64 = 256 * 1024;

/// The most bytes one gather of the `Auto` and `ZeroCopy` engines copies into memory (small
/// file ranges and buffers next to them; large ranges go out with `sendfile`, uncopied).
pub(crate) const SCRATCH_CAP: usize = 256 * 1024;

/// The read/write chunk where every file byte is copied: the portable engine, `FileIo::Offload`,
/// and a kernel without `sendfile`.
///
/// This bounds memory per in-flight send where it matters most: 1,000 concurrent 8 MiB async
/// sends (each with an in-process reader draining into 64 KiB) peaked at 77 MiB RSS with
/// `sendfile`, 323 MiB with 256 KiB chunks, and 1.1 GB with the 1 MiB chunk used before;
/// 128 KiB keeps them near 210 MiB, under the 300 MB target (`sendpackets-bench inflight`). A
/// read/write loop measured 1.85 GB/s with 64 KiB chunks and 2.60 with 1 MiB on loopback TCP
/// (page-aligned buffers, `limits/README.md`).
pub(crate) const COPY_CHUNK: usize = 128 * 1024;

/// The largest buffer a thread keeps for its next send once a send returns (the express
/// buffer, and the scratch buffer of the last gather): reusing it spares fresh pages (faults,
/// zeroing) per send, and 200 idle threads keep at most 2 × 64 KiB each.
pub(crate) const THREAD_KEEP: usize = 64 * 1024;

/// The most bytes Linux moves in one `sendfile` or `write` call.
pub(crate) const MAX_SENDFILE: u64 = 0x7fff_f000;

/// The most bytes one call hands to the kernel when someone watches the send (a progress
/// handle) or a deadline is set: one `sendfile` into a fast local socket was seen to move
/// 2 GiB in one call, so a progress bar showed 8 bytes for 23 s and a timeout could not act.
/// 4 MiB is 40 ms at 100 MB/s (the bar, the ETA and the deadline act many times a second), and
/// one more call per 4 MiB costs nothing measurable against moving them.
pub(crate) const PACED_MAX_CALL: u64 = 4 << 20;

/// The most datagrams one `sendmmsg` burst prepares (each burst is read into the scratch
/// buffer first, at most [`BURST_BYTES`] unless one datagram is larger).
pub(crate) const BURST_DATAGRAMS: usize = 1024;

/// The most bytes one datagram burst reads into memory.
pub(crate) const BURST_BYTES: usize = 1024 * 1024;

/// The most datagrams one UDP GSO message carries (the kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels, 128 on newer ones).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// Lists of at most this many bytes (and [`EXPRESS_ELEMENTS`] elements) are read whole into
/// one buffer and sent with one call, before any check (see `express`): on loopback one `pread`
/// and one `send` per 1 KiB message is 2.5x a call per element.
pub(crate) const EXPRESS_MAX: u64 = 64 * 1024;

/// The most elements of an express send.
pub(crate) const EXPRESS_ELEMENTS: usize = 64;

/// The largest pseudo file (procfs, sysfs) read into memory at the start of a send.
pub(crate) const MAX_PSEUDO_FILE: usize = 16 << 20;

/// The first read of a pseudo file (doubled until the file ends).
pub(crate) const PSEUDO_FIRST_READ: usize = 64 * 1024;

/// Path files kept open between the checks and the send: a quarter of the soft descriptor
/// limit, at least [`OPEN_BUDGET_MIN`] and at most [`OPEN_BUDGET_MAX`]; the rest are reopened
/// (and re-checked) when the send reaches them, so that a list may name more files than the
/// process may open at once.
pub(crate) const OPEN_BUDGET_SHARE: u64 = 4;
/// See [`OPEN_BUDGET_SHARE`].
pub(crate) const OPEN_BUDGET_MIN: u64 = 4;
/// See [`OPEN_BUDGET_SHARE`].
pub(crate) const OPEN_BUDGET_MAX: u64 = 1024;

/// How many kernel calls `send_packets_async` makes on the caller's thread before it hands the
/// rest to a task (as .NET completes a send synchronously when it can).
#[cfg(feature = "tokio")]
pub(crate) const COMPLETION_SYNC_STEPS: usize = 64;
