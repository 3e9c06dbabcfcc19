//! Measured constants of the planner, and what the kernel was found to support.
//!
//! The constants come from `sendpackets bench` and the raw-kernel harness on a 2-core machine
//! (see BENCHMARKS.md): each says which side of it a path was measured faster.

use std::sync::atomic::{AtomicBool, Ordering};

/// File ranges shorter than this are read (`pread`) and coalesced with neighbouring buffers into
/// one vectored write; longer ones go out with `sendfile`.
///
/// Measured on loopback TCP (200 B header + S file bytes + 50 B trailer): one `pread` + one
/// `writev` is 2.5x the per-element loop at 1 KiB and 1.5x at 16 KiB, while corked `sendfile`
/// wins at 256 KiB.
pub(crate) const COPY_THRESHOLD: u64 = 64 * 1024;

/// Memory elements shorter than this are copied next to their neighbours in the scratch
/// buffer, so that headers, small file ranges and trailers go out as one contiguous buffer (one
/// iovec entry) rather than one entry each: the kernel's per-entry cost is higher than a short
/// copy.
pub(crate) const SMALL_COPY: u64 = 512;

/// The most file bytes one gather copies into memory (the scratch buffer of one send never
/// grows past this, whatever the list holds).
pub(crate) const SCRATCH_CAP: usize = 256 * 1024;

/// On a TCP connection to this host's loopback, file ranges of at least this many bytes are
/// read and written in [`PORTABLE_BUFFER`] chunks instead of sent with `sendfile`.
///
/// Why: over loopback nothing leaves the machine, so zero-copy saves no copy: the receiver
/// copies every byte anyway, and that copy is the bottleneck. `sendfile` hands it the page
/// cache's 4 KiB pages one by one (each a fragment of a socket buffer), while `write` fills
/// large contiguous fragments, which the receiver copies faster. Measured here (TCP loopback,
/// median of 4, `examples/bulk_paths.rs`): 256 KiB ranges, `sendfile` 3.26 GB/s vs copy
/// 2.52; 1 MiB, 2.74 vs 3.18; 4 MiB, 2.55 vs 3.70 (CPU 0.55 vs 0.36 s/GB); 256 MiB, 2.61
/// vs 3.34 (0.52 vs 0.46 s/GB). From 1 MiB up the copy is faster *and* cheaper per byte, so
/// zero-copy is kept only where it can pay: remote peers, Unix sockets (where `sendfile`
/// costs less CPU per byte, though it is slower), and ranges below this size.
pub(crate) const LOOPBACK_COPY_MIN: u64 = 1024 * 1024;

/// The portable engine's buffer: on loopback a 1 MiB read/write loop was measured 1.5x a 64 KiB
/// one.
pub(crate) const PORTABLE_BUFFER: usize = 1024 * 1024;

/// The most bytes Linux moves in one `sendfile` or `write` call.
pub(crate) const MAX_SENDFILE: u64 = 0x7fff_f000;

static SENDFILE_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether `sendfile` may be tried (false once it returned `ENOSYS`).
pub(crate) fn sendfile_available() -> bool {
    cfg!(target_os = "linux") && !SENDFILE_MISSING.load(Ordering::Relaxed)
}

/// Remembers that the kernel has no `sendfile`, for every later send of the process.
pub(crate) fn disable_sendfile() {
    SENDFILE_MISSING.store(true, Ordering::Relaxed);
}

/// The most datagrams one `sendmmsg` burst prepares (each burst is read into the scratch
/// buffer first, at most [`BURST_BYTES`] unless one datagram is larger).
pub(crate) const BURST_DATAGRAMS: usize = 1024;

/// The most bytes one datagram burst reads into memory.
pub(crate) const BURST_BYTES: usize = 1024 * 1024;

/// The most datagrams one UDP GSO message carries (the kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels, 128 on newer ones).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// Lists of at most this many bytes (and [`EXPRESS_ELEMENTS`] elements) are read whole into
/// one buffer and sent with one call, before any check (see `express`).
pub(crate) const EXPRESS_MAX: u64 = 64 * 1024;

/// The most elements of an express send.
pub(crate) const EXPRESS_ELEMENTS: usize = 64;
