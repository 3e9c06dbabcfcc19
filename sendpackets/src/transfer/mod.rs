//! The executor: a state machine that carries out the planner's batches one kernel call at a
//! time, so that a blocking loop and an async runtime can drive the same code.
//!
//! [`Transfer::step`] makes at most one call that sends bytes; it reports `WouldBlock` when the
//! socket is full, and never loses count of what the kernel accepted.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{ErrorKind, SendError};
use crate::options::{Engine, FileIo, SendOptions};
use crate::plan::{self, Batch, Cursor, Limits, PlanSeg, SegKind};
use crate::report::{KernelCalls, Progress, SendReport};
use crate::resolve::{Origin, Resolved, Source};
use crate::sys::{self, Message, SocketInfo, SocketKind};
use crate::tuning;

mod burst;
mod gather;

use gather::Pending;

/// The kernel calls the executor makes. The real one is [`SysKernel`]; tests wrap it to inject
/// short writes, `EINTR`, `EAGAIN` and errors.
pub(crate) trait Kernel {
    fn sendmsg(
        &mut self,
        sock: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> io::Result<usize>;
    fn sendfile(
        &mut self,
        sock: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize>;
    fn pread(&mut self, file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn preadv(
        &mut self,
        file: BorrowedFd<'_>,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> io::Result<usize>;
    fn set_cork(&mut self, sock: BorrowedFd<'_>, on: bool) -> io::Result<()>;
    fn sendmmsg(&mut self, sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize>;
}

/// The kernel as it is.
#[derive(Debug, Default)]
pub(crate) struct SysKernel;

impl Kernel for SysKernel {
    fn sendmsg(
        &mut self,
        sock: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> io::Result<usize> {
        sys::sendmsg(sock, bufs, more)
    }
    fn sendfile(
        &mut self,
        sock: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        sys::sendfile(sock, file, offset, len)
    }
    fn pread(&mut self, file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::pread(file, buf, offset)
    }
    fn preadv(
        &mut self,
        file: BorrowedFd<'_>,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        sys::preadv(file, bufs, offset)
    }
    fn set_cork(&mut self, sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
        sys::set_tcp_cork(sock, on)
    }
    fn sendmmsg(&mut self, sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize> {
        sys::sendmmsg(sock, msgs)
    }
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Something happened (bytes sent, a batch prepared, an interrupted call); step again.
    Progressed,
    /// Everything was sent.
    Done,
}

/// Why a step stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The socket is full: wait for it to become writable, then step again.
    WouldBlock,
    /// The send failed; the error carries the progress.
    Failed(SendError),
}

/// A send in progress.
#[derive(Debug)]
pub(crate) struct Transfer {
    res: Resolved,
    plan: Vec<PlanSeg>,
    limits: Limits,
    socket: SocketInfo,
    cursor: Cursor,
    bytes_sent: u64,
    datagrams: u64,
    calls: KernelCalls,
    scratch: Vec<u8>,
    pending: Option<Pending>,
    /// The vectors of the last finished gather, reused by the next one.
    spare: Pending,
    /// Datagram sockets: several datagrams per `sendmmsg` (not in the portable engine).
    burst: bool,
    /// UDP: datagrams of equal size go out as one GSO message.
    gso: bool,
    /// Files are read on another thread (`read_next`); `step` reads none.
    offload: bool,
    /// The part indices of one file read, reused (see `read_files`).
    run_buf: Vec<usize>,
    /// Whether the socket is non-blocking, once an `EAGAIN` made it matter.
    nonblocking: Option<bool>,
    cork_wanted: bool,
    corked: bool,
    open_paths: usize,
    open_budget: usize,
}

fn is_retry_zero_copy(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

thread_local! {
    /// The scratch buffer of the last finished send on this thread, for the next one: a fresh
    /// 256 KiB buffer per send would be fresh pages (faults, zeroing) every time.
    static SPARE_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn take_scratch() -> Vec<u8> {
    SPARE_SCRATCH
        .try_with(std::cell::Cell::take)
        .unwrap_or_default()
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // Keep buffers up to the portable engine's size; a huge datagram's buffer goes.
        if self.scratch.capacity() <= tuning::PORTABLE_BUFFER {
            let scratch = std::mem::take(&mut self.scratch);
            // `try_with`: a transfer dropped while its thread exits finds no spare slot.
            let _ = SPARE_SCRATCH.try_with(|spare| {
                let old = spare.take();
                spare.set(if old.capacity() > scratch.capacity() {
                    old
                } else {
                    scratch
                });
            });
        }
    }
}

impl Transfer {
    pub(crate) fn new(res: Resolved, socket: SocketInfo, options: &SendOptions) -> Self {
        let datagram = socket.kind == SocketKind::Datagram;
        let sendfile_ok = tuning::sendfile_available();
        // Offloaded reads copy every file range (a `sendfile` would read the disk on the
        // runtime thread).
        let offload = options.file_io == FileIo::Offload;
        let copy_threshold = match options.engine {
            Engine::Portable => u64::MAX,
            _ if offload => u64::MAX,
            _ if !sendfile_ok => u64::MAX,
            Engine::ZeroCopy => 0,
            Engine::Auto => tuning::COPY_THRESHOLD,
        };
        let max_call = options.send_size.map_or(tuning::MAX_SENDFILE, |n| {
            (n.get() as u64).min(tuning::MAX_SENDFILE)
        });
        // Bulk ranges to a loopback TCP peer are copied (see `LOOPBACK_COPY_MIN`).
        let loopback_bulk = options.engine == Engine::Auto && socket.is_tcp && socket.loopback;
        let mut bulk_copied = false;
        let plan: Vec<PlanSeg> = res
            .segments
            .iter()
            .map(|s| PlanSeg {
                len: s.len,
                kind: match s.source {
                    Source::Memory(_) => SegKind::Memory,
                    Source::File { .. } => {
                        let copy = loopback_bulk && s.len >= tuning::LOOPBACK_COPY_MIN;
                        bulk_copied |= copy;
                        SegKind::File { zero_copy: !copy }
                    }
                },
                end_of_packet: s.end_of_packet,
            })
            .collect();
        let mut limits = Limits {
            copy_threshold,
            scratch_cap: match options.engine {
                _ if offload || bulk_copied => tuning::PORTABLE_BUFFER,
                Engine::Portable => tuning::PORTABLE_BUFFER,
                _ => tuning::SCRATCH_CAP,
            },
            max_iov: sys::IOV_MAX,
            max_call,
            datagram,
            stop_at_eop: false,
            small_copy: tuning::SMALL_COPY,
        };
        // Cork a TCP socket when a file range goes out with sendfile next to other data, so that
        // headers, file and trailer share segments.
        // ... to a remote peer: over loopback segments are not wire packets, so corking would
        // only cost two system calls per send (measured slower there).
        let cork_wanted = socket.is_tcp
            && !socket.loopback
            && plan.iter().filter(|s| s.len > 0).count() > 1
            && plan.iter().any(|s| plan::uses_sendfile(s, &limits));
        limits.stop_at_eop = cork_wanted;
        let open_paths = res.files.iter().filter(|f| f.fd.is_some()).count();
        if options.file_io == FileIo::Readahead {
            read_ahead(&res);
        }
        Transfer {
            res,
            plan,
            limits,
            socket,
            cursor: Cursor::default(),
            bytes_sent: 0,
            datagrams: 0,
            calls: KernelCalls::default(),
            scratch: take_scratch(),
            pending: None,
            spare: Pending::default(),
            burst: datagram && options.engine != Engine::Portable,
            gso: socket.udp_gso && options.engine != Engine::Portable,
            offload,
            run_buf: Vec::new(),
            nonblocking: None,
            cork_wanted,
            corked: false,
            open_paths,
            open_budget: crate::resolve::open_budget(),
        }
    }

    /// How far the send got.
    pub(crate) fn progress(&self) -> Progress {
        let (elements_completed, offset_in_element) = match self.res.segments.get(self.cursor.seg) {
            Some(s) => (s.element, self.cursor.off),
            None => (self.res.element_count, 0),
        };
        Progress {
            bytes_sent: self.bytes_sent,
            elements_completed,
            offset_in_element,
            datagrams_sent: self.datagrams,
        }
    }

    /// The report of a finished send.
    pub(crate) fn report(&self) -> SendReport {
        SendReport {
            bytes_sent: self.bytes_sent,
            elements: self.res.element_count,
            datagrams: self.datagrams,
            calls: self.calls,
        }
    }

    pub(crate) fn count_wait(&mut self) {
        self.calls.waits += 1;
    }

    /// Whether the next step starts by reading file bytes into memory (and no socket call has
    /// to come first).
    pub(crate) fn next_reads_file(&self) -> bool {
        self.pending.is_none()
            && matches!(
                plan::next_batch(&self.plan, self.cursor, &self.limits),
                Some(Batch::Gather { start, end, .. }) if self.reads_file(start, end)
            )
    }

    /// Whether the segments from `start` to `end` hold file bytes (to be read).
    fn reads_file(&self, start: Cursor, end: Cursor) -> bool {
        let last = if end.off > 0 { end.seg + 1 } else { end.seg };
        self.plan[start.seg..last.min(self.plan.len())]
            .iter()
            .any(|s| s.len > 0 && matches!(s.kind, SegKind::File { .. }))
    }

    /// Reads the next gather's file bytes into memory without touching the socket, so that a
    /// caller can do the reading on another thread; the next [`step`](Self::step) writes them.
    pub(crate) fn read_next(&mut self, k: &mut impl Kernel) -> Result<(), Stop> {
        if self.pending.is_some() {
            return Ok(());
        }
        match plan::next_batch(&self.plan, self.cursor, &self.limits) {
            Some(Batch::Gather {
                end,
                bytes,
                coalesce,
                ..
            }) => self.gather(k, end, bytes, coalesce, true),
            _ => Ok(()),
        }
    }

    /// Makes the next call. See [`Step`] and [`Stop`].
    pub(crate) fn step(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>) -> Result<Step, Stop> {
        let r = self.step_inner(k, sock);
        match r {
            Ok(Step::Done) | Err(Stop::Failed(_)) => self.uncork(k, sock),
            _ => {}
        }
        r
    }

    /// Leaves the socket as the send found it (uncorked). Called on completion and failure;
    /// an async caller that drops a send midway calls it too.
    pub(crate) fn uncork(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>) {
        if self.corked {
            // Best effort: a socket that cannot be uncorked has failed already.
            let _ = k.set_cork(sock, false);
            self.corked = false;
            self.calls.cork_toggles += 1;
        }
    }

    fn step_inner(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>) -> Result<Step, Stop> {
        if self.pending.is_none() {
            let Some(batch) = plan::next_batch(&self.plan, self.cursor, &self.limits) else {
                return Ok(Step::Done);
            };
            if self.cork_wanted && !self.corked && k.set_cork(sock, true).is_ok() {
                self.corked = true;
                self.calls.cork_toggles += 1;
            }
            match batch {
                Batch::Sendfile { seg, offset, len } => {
                    return self.send_file(k, sock, seg, offset, len);
                }
                Batch::Gather {
                    end,
                    bytes,
                    coalesce,
                    ..
                } => self.gather(k, end, bytes, coalesce, !self.offload)?,
            }
        }
        let pending = self.pending.as_ref().expect("a pending gather");
        if self.limits.datagram {
            return self.write_datagrams(k, sock);
        }
        if pending.msgs[0].bytes == 0 {
            let end = pending.msgs[0].end;
            self.finish_pending();
            self.move_to(end);
            return Ok(Step::Progressed);
        }
        self.write_stream(k, sock)
    }

    fn send_file(
        &mut self,
        k: &mut impl Kernel,
        sock: BorrowedFd<'_>,
        seg: usize,
        offset: u64,
        len: u64,
    ) -> Result<Step, Stop> {
        let Source::File { slot, offset: base } = self.res.segments[seg].source else {
            unreachable!("sendfile batches are file segments")
        };
        self.ensure_open(slot, seg)?;
        let fd = self.res.files[slot].borrow_fd().expect("file opened above");
        let r = k.sendfile(sock, fd, base + offset, len as usize);
        match r {
            Ok(0) => Err(self.fail(ErrorKind::FileTruncated, Some(seg), None)),
            Ok(n) => {
                self.calls.sendfile += 1;
                self.bytes_sent += n as u64;
                let to = plan::advance(&self.plan, self.cursor, n as u64);
                self.move_to(to);
                if to.seg > seg {
                    self.push_if_end_of_packet(k, sock, to);
                }
                Ok(Step::Progressed)
            }
            Err(e) if is_retry_zero_copy(&e) => {
                // The kernel will not splice this file (procfs, some FUSE and network file
                // systems): read and write it instead, from where we are.
                if e.raw_os_error() == Some(libc::ENOSYS) {
                    tuning::disable_sendfile();
                }
                self.res.files[slot].zero_copy = false;
                self.calls.fallback_files += 1;
                for (p, s) in self.plan.iter_mut().zip(&self.res.segments) {
                    if matches!(s.source, Source::File { slot: sl, .. } if sl == slot) {
                        p.kind = SegKind::File { zero_copy: false };
                    }
                }
                Ok(Step::Progressed)
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                Err(self.fail(ErrorKind::FileRead, Some(seg), Some(e)))
            }
            Err(e) => self.socket_error(sock, e),
        }
    }

    fn socket_error(&mut self, sock: BorrowedFd<'_>, e: io::Error) -> Result<Step, Stop> {
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(Step::Progressed),
            io::ErrorKind::WouldBlock => {
                // Asked once, at the first EAGAIN (most sends never see one).
                let nonblocking = *self
                    .nonblocking
                    .get_or_insert_with(|| sys::is_nonblocking(sock).unwrap_or(true));
                if nonblocking {
                    Err(Stop::WouldBlock)
                } else {
                    // A blocking socket only says EAGAIN when its SO_SNDTIMEO expired.
                    Err(self.fail(ErrorKind::TimedOut, None, Some(e)))
                }
            }
            _ => {
                let kind = if e.raw_os_error() == Some(libc::EMSGSIZE) {
                    ErrorKind::MessageTooLarge
                } else {
                    ErrorKind::Socket
                };
                Err(self.fail(kind, None, Some(e)))
            }
        }
    }

    /// Builds the error for a failure at segment `seg` (or the current one), with progress.
    fn fail(&mut self, kind: ErrorKind, seg: Option<usize>, source: Option<io::Error>) -> Stop {
        let progress = self.progress();
        let seg = seg.unwrap_or(self.cursor.seg);
        let mut err = SendError::new(kind).with_progress(progress);
        if let Some(s) = self.res.segments.get(seg) {
            err = err.element_index(s.element);
            if let Source::File { slot, .. } = s.source {
                err = err.with_path(self.res.files[slot].path());
            }
        }
        if let Some(e) = source {
            err = err.with_source(e);
        }
        Stop::Failed(err)
    }

    /// Moves the cursor, closing path files whose last segment it passed.
    fn move_to(&mut self, to: Cursor) {
        for seg in self.cursor.seg..to.seg {
            if let Source::File { slot, .. } = self.res.segments[seg].source {
                let f = &mut self.res.files[slot];
                if f.last_segment == seg && f.fd.take().is_some() {
                    self.open_paths -= 1;
                }
            }
        }
        self.cursor = to;
    }

    /// On a corked stream, an end-of-packet element just sent is pushed out now.
    fn push_if_end_of_packet(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>, end: Cursor) {
        let crossed = end.seg > 0 && self.plan[end.seg - 1].end_of_packet;
        if self.corked && crossed && end.seg < self.plan.len() {
            self.uncork(k, sock); // the next step corks again
        }
    }

    /// Opens a path file closed after the checks, and makes sure it is still the same file.
    fn ensure_open(&mut self, slot: usize, seg: usize) -> Result<(), Stop> {
        let f = &self.res.files[slot];
        let path = match &f.origin {
            Origin::Path(path) if f.fd.is_none() => path.clone(),
            _ => return Ok(()),
        };
        if self.open_paths >= self.open_budget {
            // Close every other path file; they are reopened when needed.
            for (i, other) in self.res.files.iter_mut().enumerate() {
                if i != slot && other.fd.take().is_some() {
                    self.open_paths -= 1;
                }
            }
        }
        let fd = match sys::open_read(&path) {
            Ok(fd) => fd,
            Err(e) => {
                let kind = match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR) => ErrorKind::FileChanged,
                    _ => ErrorKind::FileOpen,
                };
                return Err(self.fail(kind, Some(seg), Some(e)));
            }
        };
        let now = sys::fstat(fd.as_fd())
            .map_err(|e| self.fail(ErrorKind::FileOpen, Some(seg), Some(e)))?;
        let f = &self.res.files[slot];
        if (now.dev, now.ino) != (f.stat.dev, f.stat.ino) {
            return Err(self.fail(ErrorKind::FileChanged, Some(seg), None));
        }
        self.res.files[slot].fd = Some(fd);
        self.open_paths += 1;
        Ok(())
    }
}

/// Asks the kernel to start reading every file range of the list (files open now) into the page
/// cache. A hint only: failures are ignored.
fn read_ahead(res: &Resolved) {
    for seg in &res.segments {
        if let Source::File { slot, offset } = seg.source {
            if let (Some(fd), true) = (res.files[slot].borrow_fd(), seg.len > 0) {
                let _ = sys::will_need(fd, offset, seg.len);
            }
        }
    }
}
