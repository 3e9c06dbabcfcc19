//! Gathers: the buffers of one vectored write (or of a burst of datagrams), their file bytes
//! read into the scratch buffer, and the write itself.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;

use crate::error::ErrorKind;
use crate::plan::{self, Batch, Cursor};
use crate::resolve::Source;
use crate::sys;
use crate::tuning;

use super::{Kernel, Step, Stop, Transfer};

/// One piece of a prepared gather: `len` bytes of segment `seg` from `off`, either straight
/// from memory or at `scratch` in the scratch buffer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Part {
    pub(super) seg: usize,
    pub(super) off: u64,
    pub(super) len: usize,
    pub(super) scratch: Option<usize>,
}

/// One message of a prepared gather: `parts[first..last]`, `bytes` long, ending at `end`. On a
/// stream socket a gather is one message; on a datagram socket, one datagram each.
#[derive(Clone, Copy, Debug)]
pub(super) struct Msg {
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) bytes: u64,
    pub(super) end: Cursor,
}

/// Gathered messages whose file bytes are read and which are being written.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) msgs: Vec<Msg>,
    pub(super) parts: Vec<Part>,
    /// Messages already sent (datagrams).
    pub(super) next: usize,
    /// Bytes of the first message already written (streams).
    pub(super) written: u64,
    /// Scratch bytes in use.
    pub(super) scratch_len: usize,
}

impl Pending {
    pub(super) fn clear(&mut self) {
        self.msgs.clear();
        self.parts.clear();
        self.next = 0;
        self.written = 0;
        self.scratch_len = 0;
    }
}

impl Transfer {
    /// Prepares the planned gather up to `end`; on a datagram socket, then as many following
    /// datagrams as one burst takes (without `file_reads`, none that reads a file).
    pub(super) fn gather(
        &mut self,
        k: &mut impl Kernel,
        end: Cursor,
        bytes: u64,
        coalesce: bool,
        file_reads: bool,
    ) -> Result<(), Stop> {
        let mut pending = std::mem::take(&mut self.spare);
        pending.clear();
        let r = self.gather_into(k, &mut pending, end, bytes, coalesce, file_reads);
        match r {
            Ok(()) => {
                self.pending = Some(pending);
                Ok(())
            }
            Err(e) => {
                self.spare = pending;
                Err(e)
            }
        }
    }

    pub(super) fn gather_into(
        &mut self,
        k: &mut impl Kernel,
        pending: &mut Pending,
        end: Cursor,
        bytes: u64,
        coalesce: bool,
        file_reads: bool,
    ) -> Result<(), Stop> {
        self.layout(pending, self.cursor, end, bytes, coalesce);
        if self.policy.burst {
            let mut at = end;
            while pending.msgs.len() < tuning::BURST_DATAGRAMS {
                let Some(Batch::Gather {
                    end,
                    bytes,
                    copied,
                    coalesce,
                    ..
                }) = plan::next_batch(&self.plan, at, &self.policy.limits)
                else {
                    break;
                };
                let copy = if coalesce { bytes } else { copied };
                let parts = end.seg.saturating_sub(at.seg) + 1;
                if pending.scratch_len as u64 + copy > tuning::BURST_BYTES as u64
                    || pending.parts.len() + parts > 4 * sys::IOV_MAX
                    // Offloaded reads: a datagram that reads a file waits for `read_next`.
                    || (!file_reads && self.reads_file(at, end))
                {
                    break;
                }
                self.layout(pending, at, end, bytes, coalesce);
                at = end;
            }
        }
        match self.read_files(k, pending) {
            Ok(()) => Ok(()),
            Err((part, stop)) => {
                // The datagrams before the one that cannot be read go out now; the next step
                // meets the failure again and reports it with exact progress.
                let m = pending.msgs.iter().position(|m| part < m.last).unwrap_or(0);
                if m == 0 {
                    return Err(stop);
                }
                let first = pending.msgs[m].first;
                pending.msgs.truncate(m);
                pending.parts.truncate(first);
                Ok(())
            }
        }
    }

    pub(super) fn finish_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.spare = p;
        }
    }

    /// Lays out one message (from `start` to `end`): its parts, their places in the scratch
    /// buffer, and copies of its small memory parts. File bytes are read by [`read_files`].
    ///
    /// [`read_files`]: Self::read_files
    pub(super) fn layout(
        &mut self,
        pending: &mut Pending,
        start: Cursor,
        end: Cursor,
        bytes: u64,
        coalesce: bool,
    ) {
        let first = pending.parts.len();
        let mut at = start;
        let mut scratch_len = pending.scratch_len;
        while at < end {
            let seg = &self.res.segments[at.seg];
            let stop = if at.seg == end.seg { end.off } else { seg.len };
            let len = (stop - at.off) as usize;
            if len > 0 {
                let copy = coalesce || plan::copies(&self.plan[at.seg], &self.policy.limits);
                pending.parts.push(Part {
                    seg: at.seg,
                    off: at.off,
                    len,
                    scratch: copy.then_some(scratch_len),
                });
                if copy {
                    scratch_len += len;
                }
            }
            at = Cursor {
                seg: at.seg + 1,
                off: 0,
            };
        }
        if self.scratch.capacity() < scratch_len {
            self.scratch.grow_to(scratch_len);
        }
        for part in &pending.parts[first..] {
            if let (Some(dst), Source::Memory(b)) =
                (part.scratch, &self.res.segments[part.seg].source)
            {
                let off = part.off as usize;
                self.scratch[dst..dst + part.len].copy_from_slice(&b[off..off + part.len]);
            }
        }
        pending.scratch_len = scratch_len;
        pending.msgs.push(Msg {
            first,
            last: pending.parts.len(),
            bytes,
            end,
        });
    }

    /// Reads the file parts of `pending` into the scratch buffer. Parts that continue one
    /// another in the same file (a datagram burst walking a file, say) are read by one
    /// `preadv`, however the memory parts between them lie. On failure, the index of the part
    /// that could not be read.
    pub(super) fn read_files(
        &mut self,
        k: &mut impl Kernel,
        pending: &Pending,
    ) -> Result<(), (usize, Stop)> {
        let mut i = 0;
        let parts = &pending.parts;
        while i < parts.len() {
            let Some((slot, offset)) = self.file_part(&parts[i]) else {
                i += 1;
                continue;
            };
            // The run: file parts of the same file, each starting where the previous ended
            // (indices kept in a vector reused by every run of the send).
            let mut run = std::mem::take(&mut self.run_buf);
            run.clear();
            run.push(i);
            let mut next_offset = offset + parts[i].len as u64;
            let mut j = i + 1;
            while j < parts.len() && run.len() < sys::IOV_MAX {
                match self.file_part(&parts[j]) {
                    None => {} // memory: not read, does not break the run
                    Some((s, o)) if s == slot && o == next_offset => {
                        run.push(j);
                        next_offset += parts[j].len as u64;
                    }
                    _ => break,
                }
                j += 1;
            }
            let read = self
                .ensure_open(k, slot, parts[i].seg)
                .map_err(|e| (i, e))
                .and_then(|()| self.read_run(k, slot, offset, parts, &run));
            i = run.last().map_or(j, |&last| last + 1);
            self.run_buf = run;
            read?;
        }
        Ok(())
    }

    /// The file and file offset of a copied file part.
    pub(super) fn file_part(&self, part: &Part) -> Option<(usize, u64)> {
        match (part.scratch, &self.res.segments[part.seg].source) {
            (Some(_), Source::File { slot, offset }) => Some((*slot, offset + part.off)),
            _ => None,
        }
    }

    /// `preadv` until the parts `run` (contiguous in file `slot` from `offset`) are in the
    /// scratch buffer.
    pub(super) fn read_run(
        &mut self,
        k: &mut impl Kernel,
        slot: usize,
        offset: u64,
        parts: &[Part],
        run: &[usize],
    ) -> Result<(), (usize, Stop)> {
        let total: usize = run.iter().map(|&p| parts[p].len).sum();
        let mut done = 0;
        while done < total {
            let r = if let [p] = run {
                // One part: a plain pread.
                let dst = parts[*p].scratch.expect("a copied part");
                let fd = self.res.files[slot].borrow_fd().expect("file opened above");
                k.pread(
                    fd,
                    &mut self.scratch[dst + done..dst + total],
                    offset + done as u64,
                )
            } else {
                // Disjoint, increasing scratch ranges: split the buffer into them.
                let mut bufs: Vec<IoSliceMut<'_>> = Vec::with_capacity(run.len());
                let mut rest: &mut [u8] = &mut self.scratch;
                let (mut base, mut skip) = (0usize, done);
                for &p in run {
                    let part = parts[p];
                    if skip >= part.len {
                        skip -= part.len;
                        continue;
                    }
                    let dst = part.scratch.expect("a copied part") + skip;
                    let tail = std::mem::take(&mut rest).split_at_mut(dst - base).1;
                    let (chunk, tail) = tail.split_at_mut(part.len - skip);
                    bufs.push(IoSliceMut::new(chunk));
                    rest = tail;
                    base = dst + part.len - skip;
                    skip = 0;
                }
                let fd = self.res.files[slot].borrow_fd().expect("file opened above");
                k.preadv(fd, &mut bufs, offset + done as u64)
            };
            self.calls.file_reads += 1;
            let at = |done: usize| {
                let mut left = done;
                for &p in run {
                    if left < parts[p].len {
                        return p;
                    }
                    left -= parts[p].len;
                }
                *run.last().expect("a run has parts")
            };
            match r {
                Ok(0) => {
                    let p = at(done);
                    return Err((
                        p,
                        self.fail(ErrorKind::FileTruncated, Some(parts[p].seg), None),
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let p = at(done);
                    return Err((
                        p,
                        self.fail(ErrorKind::FileRead, Some(parts[p].seg), Some(e)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Appends the iovec of `parts` (skipping the first `skip` bytes) to `iov`: memory parts as
    /// they are, copied parts from the scratch buffer, back-to-back copies as one entry.
    pub(super) fn push_iov<'a>(
        &'a self,
        parts: &[Part],
        mut skip: u64,
        iov: &mut Vec<IoSlice<'a>>,
    ) {
        let mut run: Option<(usize, usize)> = None;
        for part in parts {
            let len = part.len as u64;
            if skip >= len {
                skip -= len;
                continue;
            }
            let from = skip as usize;
            skip = 0;
            match (part.scratch, &self.res.segments[part.seg].source) {
                (Some(dst), _) => match &mut run {
                    Some((_, end)) if *end == dst + from => *end = dst + part.len,
                    _ => {
                        if let Some((a, b)) = run.take() {
                            iov.push(IoSlice::new(&self.scratch[a..b]));
                        }
                        run = Some((dst + from, dst + part.len));
                    }
                },
                (None, Source::Memory(b)) => {
                    if let Some((a, e)) = run.take() {
                        iov.push(IoSlice::new(&self.scratch[a..e]));
                    }
                    let off = part.off as usize;
                    iov.push(IoSlice::new(&b[off + from..off + part.len]));
                }
                (None, Source::File { .. }) => unreachable!("file parts are always copied"),
            }
        }
        if let Some((a, b)) = run {
            iov.push(IoSlice::new(&self.scratch[a..b]));
        }
    }

    /// Writes (the rest of) a stream gather with one vectored `sendmsg`.
    pub(super) fn write_stream(
        &mut self,
        k: &mut impl Kernel,
        sock: BorrowedFd<'_>,
    ) -> Result<Step, Stop> {
        let pending = self.pending.as_ref().expect("a pending gather");
        let msg = pending.msgs[0];
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(msg.last - msg.first);
        self.push_iov(
            &pending.parts[msg.first..msg.last],
            pending.written,
            &mut iov,
        );
        let more = plan::more_follows(&self.plan, msg.end, &self.policy);
        let r = k.sendmsg(sock, &iov, more);
        drop(iov);
        self.calls.gather_writes += 1;
        match r {
            Ok(n) => {
                let pending = self.pending.as_mut().expect("a pending gather");
                let n = n as u64;
                pending.written += n;
                self.bytes_sent += n;
                if pending.written == msg.bytes {
                    self.finish_pending();
                    self.move_to(msg.end);
                    self.push_if_end_of_packet(k, sock, msg.end);
                } else {
                    let to = plan::advance(&self.plan, self.cursor, n);
                    self.move_to(to);
                }
                Ok(Step::Progressed)
            }
            Err(e) => self.socket_error(sock, e),
        }
    }
}
