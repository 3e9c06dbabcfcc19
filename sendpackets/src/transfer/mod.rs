//! The executor: a state machine that carries out the planner's batches one kernel call at a
//! time, so that a blocking loop and an async runtime can drive the same code.
//!
//! [`Transfer::step`] makes at most one call that sends bytes; it reports `WouldBlock` when the
//! socket is full, and never loses count of what the kernel accepted.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;

use std::time::{Duration, Instant};

use crate::buffer::PageBuf;
use crate::error::{ErrorKind, SendError};
use crate::options::{FileIo, SendOptions};
use crate::plan::{self, Batch, Cursor, Learned, PlanSeg, Policy, SegKind, SocketShape, Wanted};
use crate::report::{KernelCalls, Progress, SendReport};
use crate::resolve::{self, Origin, Resolved, Source};
use crate::sys::{self, Message};
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
    /// Opens a path file for reading during a send (the express path, a reopen).
    fn open_read(&mut self, path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
        sys::open_read(path)
    }
    fn fstat(&mut self, file: BorrowedFd<'_>) -> io::Result<sys::FileStat> {
        sys::fstat(file)
    }
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

/// A borrowed kernel is a kernel (tests keep their fault-injecting kernel to inspect it).
impl<K: Kernel + ?Sized> Kernel for &mut K {
    fn sendmsg(
        &mut self,
        sock: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> io::Result<usize> {
        (**self).sendmsg(sock, bufs, more)
    }
    fn sendfile(
        &mut self,
        sock: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        (**self).sendfile(sock, file, offset, len)
    }
    fn pread(&mut self, file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).pread(file, buf, offset)
    }
    fn preadv(
        &mut self,
        file: BorrowedFd<'_>,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        (**self).preadv(file, bufs, offset)
    }
    fn set_cork(&mut self, sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
        (**self).set_cork(sock, on)
    }
    fn sendmmsg(&mut self, sock: BorrowedFd<'_>, msgs: &[Message<'_>]) -> io::Result<usize> {
        (**self).sendmmsg(sock, msgs)
    }
    fn open_read(&mut self, path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
        (**self).open_read(path)
    }
    fn fstat(&mut self, file: BorrowedFd<'_>) -> io::Result<sys::FileStat> {
        (**self).fstat(file)
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
    /// Decided from `shape`, `wanted` and `learned` by the pure planner; a lesson learned
    /// during the send yields a new policy for the rest (never an edit of this one).
    policy: Policy,
    shape: SocketShape,
    wanted: Wanted,
    /// What this send learned of its socket (reported back to a `Connection`).
    learned: Learned,
    cursor: Cursor,
    bytes_sent: u64,
    datagrams: u64,
    calls: KernelCalls,
    /// Copies of file bytes and small buffers (page-aligned, at most `SCRATCH_CAP` but for
    /// datagram bursts).
    scratch: PageBuf,
    pending: Option<Pending>,
    /// The vectors of the last finished gather, reused by the next one.
    spare: Pending,
    /// The part indices of one file read, reused (see `read_files`).
    run_buf: Vec<usize>,
    /// Files are read on another thread (`read_next`); `step` reads none.
    offload: bool,
    socket: SocketRuntime,
    deadline: Deadline,
    /// Path files open now.
    open_paths: usize,
}

/// What the send learns about its socket while it runs.
#[derive(Debug, Default)]
struct SocketRuntime {
    /// Whether the socket is non-blocking, once an `EAGAIN` made it matter.
    nonblocking: Option<bool>,
    corked: bool,
}

/// The send's time limits ([`SendOptions::timeout`], [`SendOptions::stall_timeout`], or the
/// socket's own `SO_SNDTIMEO`).
#[derive(Debug)]
struct Deadline {
    /// The whole send ends by then.
    end: Option<Instant>,
    /// No progress for this long ends the send.
    stall: Option<Duration>,
    /// When the kernel last accepted bytes (or the send started).
    last_progress: Instant,
}

impl Deadline {
    fn new(options: &SendOptions) -> Self {
        let now = Instant::now();
        Deadline {
            end: options.timeout.map(|t| now + t),
            stall: options.stall_timeout,
            last_progress: now,
        }
    }

    /// How long a wait for the socket may last (`None`: no limit).
    fn wait_limit(&self) -> Option<Duration> {
        let now = Instant::now();
        let total = self.end.map(|e| e.saturating_duration_since(now));
        let stall = self
            .stall
            .map(|s| (self.last_progress + s).saturating_duration_since(now));
        match (total, stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn why(&self) -> String {
        match (self.end, self.stall) {
            (Some(end), _) if Instant::now() >= end => "the send's timeout passed".into(),
            (_, Some(stall)) => format!("no progress for {stall:?}"),
            _ => "the send's timeout passed".into(),
        }
    }
}

fn is_retry_zero_copy(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

thread_local! {
    /// The scratch buffer of the last finished send on this thread, for the next one (at most
    /// `THREAD_KEEP` bytes are kept): a fresh buffer per send would be fresh pages (faults,
    /// zeroing) every time.
    static SPARE_SCRATCH: std::cell::Cell<PageBuf> = const { std::cell::Cell::new(PageBuf::new()) };
}

fn take_scratch() -> PageBuf {
    SPARE_SCRATCH
        .try_with(std::cell::Cell::take)
        .unwrap_or_default()
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // Keep small buffers for the next send on this thread; large ones go.
        if self.scratch.capacity() <= tuning::THREAD_KEEP {
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
    /// A transfer of `res` to a socket of this shape, under the policy the planner decides.
    /// Makes no system call but for `FileIo::Readahead`'s hints.
    pub(crate) fn new(
        res: Resolved,
        socket: SocketShape,
        wanted: Wanted,
        options: &SendOptions,
    ) -> Self {
        let plan = plan_segments(&res);
        let policy = plan::policy(socket, wanted, &plan);
        let (shape, learned) = (socket, Learned::default());
        if options.file_io == FileIo::Readahead {
            read_ahead(&res);
        }
        let open_paths = res.files.iter().filter(|f| f.fd.is_some()).count();
        Transfer {
            res,
            plan,
            policy,
            shape,
            wanted,
            learned,
            cursor: Cursor::default(),
            bytes_sent: 0,
            datagrams: 0,
            calls: KernelCalls::default(),
            scratch: take_scratch(),
            pending: None,
            spare: Pending::default(),
            run_buf: Vec::new(),
            offload: options.file_io == FileIo::Offload,
            socket: SocketRuntime::default(),
            deadline: Deadline::new(options),
            open_paths,
        }
    }

    /// Moves past the first `bytes` of the list, already sent (by the express path) with
    /// `calls`.
    pub(crate) fn skip_sent(&mut self, bytes: u64, calls: KernelCalls) {
        self.cursor = plan::advance(&self.plan, self.cursor, bytes);
        self.bytes_sent = bytes;
        self.calls = calls;
    }

    /// What this send learned of its socket.
    pub(crate) fn learned(&self) -> Learned {
        self.learned
    }

    /// Takes a lesson: the policy for the rest of the send is decided anew from it.
    pub(crate) fn learn(&mut self, lesson: Learned) {
        self.learned = self.learned.merge(lesson);
        self.policy = plan::policy(
            self.learned.shape(self.shape),
            self.learned.wanted(self.wanted),
            &self.plan,
        );
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
                plan::next_batch(&self.plan, self.cursor, &self.policy.limits),
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
        match plan::next_batch(&self.plan, self.cursor, &self.policy.limits) {
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
        if self.deadline.end.is_some_and(|end| Instant::now() >= end) {
            let e = self.timed_out();
            self.uncork(k, sock);
            return Err(Stop::Failed(e));
        }
        let before = self.bytes_sent;
        let r = self.step_inner(k, sock);
        if self.bytes_sent > before && self.deadline.stall.is_some() {
            self.deadline.last_progress = Instant::now();
        }
        match r {
            Ok(Step::Done) | Err(Stop::Failed(_)) => self.uncork(k, sock),
            _ => {}
        }
        r
    }

    /// How long a front end may wait for the socket before the send times out (`None`: no
    /// limit).
    pub(crate) fn wait_limit(&self) -> Option<Duration> {
        self.deadline.wait_limit()
    }

    /// The error of a send whose time ran out, with its progress.
    pub(crate) fn timed_out(&self) -> SendError {
        SendError::new(ErrorKind::TimedOut)
            .with_detail(self.deadline.why())
            .with_source(io::Error::from(io::ErrorKind::TimedOut))
            .with_progress(self.progress())
    }

    /// The error of a failed wait for the socket, with progress.
    pub(crate) fn wait_failed(&self, e: io::Error) -> SendError {
        SendError::new(ErrorKind::Socket)
            .with_source(e)
            .with_progress(self.progress())
    }

    /// Leaves the socket as the send found it (uncorked). Called on completion and failure;
    /// an async caller that drops a send midway calls it too.
    pub(crate) fn uncork(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>) {
        if self.socket.corked {
            // Best effort: a socket that cannot be uncorked has failed already.
            let _ = k.set_cork(sock, false);
            self.socket.corked = false;
            self.calls.cork_toggles += 1;
        }
    }

    fn step_inner(&mut self, k: &mut impl Kernel, sock: BorrowedFd<'_>) -> Result<Step, Stop> {
        if self.pending.is_none() {
            let Some(batch) = plan::next_batch(&self.plan, self.cursor, &self.policy.limits) else {
                return Ok(Step::Done);
            };
            if self.policy.cork && !self.socket.corked && k.set_cork(sock, true).is_ok() {
                self.socket.corked = true;
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
        if self.policy.limits.datagram {
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
        self.ensure_open(k, slot, seg)?;
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
                    self.learn(Learned {
                        sendfile_missing: true,
                        ..Learned::default()
                    });
                }
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
                let nonblocking = match self.socket.nonblocking {
                    Some(nb) => nb,
                    None => self.learn_blocking_mode(sock),
                };
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
        if self.socket.corked && crossed && end.seg < self.plan.len() {
            self.uncork(k, sock); // the next step corks again
        }
    }

    /// Asks whether the socket is non-blocking, and if so, takes its `SO_SNDTIMEO` as the stall
    /// limit when the options set none (so a non-blocking socket honours its send timeout as a
    /// blocking one does).
    fn learn_blocking_mode(&mut self, sock: BorrowedFd<'_>) -> bool {
        let nonblocking = sys::is_nonblocking(sock).unwrap_or(true);
        self.socket.nonblocking = Some(nonblocking);
        if nonblocking && self.deadline.stall.is_none() {
            if let Ok(Some(t)) = sys::send_timeout(sock) {
                self.deadline.stall = Some(t);
                self.deadline.last_progress = Instant::now();
            }
        }
        nonblocking
    }

    /// Opens a path file closed after the checks, and makes sure it is still the file the checks
    /// saw: same device and inode, length, and modification and change times to the nanosecond
    /// (ext4 reuses a freed inode number at once, so a file deleted and re-created can have the
    /// old one).
    fn ensure_open(&mut self, k: &mut impl Kernel, slot: usize, seg: usize) -> Result<(), Stop> {
        let f = &self.res.files[slot];
        let path = match &f.origin {
            Origin::Path(path) if f.fd.is_none() => path.clone(),
            _ => return Ok(()),
        };
        if self.open_paths >= self.res.open_budget {
            self.close_other_files(slot);
        }
        // Descriptors running short (others of the process hold them): give back this send's
        // other files and try once more.
        let opened = resolve::open_path(k, &path, || self.close_other_files(slot));
        let (fd, now) = match opened {
            Ok(opened) => opened,
            Err(resolve::Opening::Open(e)) => {
                let kind = match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR) => ErrorKind::FileChanged,
                    _ => ErrorKind::FileOpen,
                };
                return Err(self.fail(kind, Some(seg), Some(e)));
            }
            Err(resolve::Opening::Stat(e)) => {
                return Err(self.fail(ErrorKind::FileOpen, Some(seg), Some(e)));
            }
        };
        if now.id != self.res.files[slot].stat.id {
            let err = self.fail(ErrorKind::FileChanged, Some(seg), None);
            return Err(match err {
                Stop::Failed(e) => Stop::Failed(
                    e.with_detail("the file was replaced or modified since the checks".into()),
                ),
                other => other,
            });
        }
        self.res.files[slot].fd = Some(fd);
        self.open_paths += 1;
        Ok(())
    }

    /// Closes every open path file but `keep`; they are reopened (and re-checked) when needed.
    fn close_other_files(&mut self, keep: usize) {
        for (i, other) in self.res.files.iter_mut().enumerate() {
            if i != keep && other.fd.take().is_some() {
                self.open_paths -= 1;
            }
        }
    }
}

/// The planner's view of the resolved segments.
fn plan_segments(res: &Resolved) -> Vec<PlanSeg> {
    res.segments
        .iter()
        .map(|s| PlanSeg {
            len: s.len,
            kind: match s.source {
                Source::Memory(_) => SegKind::Memory,
                Source::File { .. } => SegKind::File { zero_copy: true },
            },
            end_of_packet: s.end_of_packet,
        })
        .collect()
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
