//! The express path: a short list, read whole into one buffer and sent with one call.
//!
//! Small responses (a header, a few KiB of a file, a trailer) are where per-call overhead
//! decides the speed: one `pread` and one `send` per message is 2.5x a call per element, and
//! every extra check is a system call the message pays for. So a short list skips the checks
//! and tries: it reads every file range into one buffer (nothing is sent unless every read
//! succeeded), then sends the buffer. The checks run only when the try fails before the first
//! byte — a short read, a missing file, not connected, a full socket — and then produce exactly
//! the error (or the send) the full path would have, with 0 bytes sent. Two properties make
//! this safe: nothing reaches the socket before every byte of the list is in memory, and a
//! socket accepts a datagram whole or not at all, so a partial send can only be a stream. A
//! stream that took part of the buffer goes on from the same bytes (`operation` makes a
//! transfer of them): nothing is read twice.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};

use bytes::Bytes;

use crate::buffer::PageBuf;
use crate::element::{Element, Payload};
use crate::error::{ErrorKind, SendError};
use crate::options::{Engine, FileIo, SendOptions, TransmitFlags};
use crate::report::KernelCalls;
use crate::resolve::{self, handle_regular};
use crate::sys;
use crate::transfer::Kernel;
use crate::tuning;

/// What an express try did.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Nothing was sent: run the full path (its checks give the exact error, or it sends).
    Fallback,
    /// Everything was sent.
    Sent { bytes: u64, calls: KernelCalls },
    /// A stream accepted only the first `bytes` of `filled` (the whole list, read): a transfer
    /// of the same bytes sends the rest.
    Partial {
        bytes: u64,
        calls: KernelCalls,
        filled: Bytes,
    },
    /// Nothing was sent, and the socket said why (an error the checks would not explain).
    Failed(SendError),
}

/// The first send failed with nothing sent. Errors the checks explain better (not connected,
/// not a socket, too large a datagram) and a full non-blocking socket go to the full path; the
/// socket's own errors (a reset, a refused datagram) are reported as they are: asking again
/// would consume them and report something else. A blocking socket's `EAGAIN` is its send
/// timeout.
fn first_send_failed(sock: BorrowedFd<'_>, elements: &[Element], e: io::Error) -> Attempt {
    // As the full path does, the error names the element the send was in: the first with bytes.
    let first = elements
        .iter()
        .position(|e| !matches!(&e.payload, Payload::Memory(b) if b.is_empty()))
        .unwrap_or(0);
    match e.raw_os_error() {
        Some(
            libc::ENOTCONN
            | libc::EDESTADDRREQ
            | libc::ENOTSOCK
            | libc::EMSGSIZE
            | libc::EPIPE
            | libc::EOPNOTSUPP
            | libc::EINVAL,
        ) => Attempt::Fallback,
        _ if e.kind() == io::ErrorKind::WouldBlock => {
            if sys::is_nonblocking(sock).unwrap_or(true) {
                Attempt::Fallback
            } else {
                Attempt::Failed(
                    SendError::new(ErrorKind::TimedOut)
                        .element_index(first)
                        .with_source(e),
                )
            }
        }
        _ => Attempt::Failed(
            SendError::new(ErrorKind::Socket)
                .element_index(first)
                .with_source(e),
        ),
    }
}

thread_local! {
    /// One page-aligned buffer per thread (at most `EXPRESS_MAX` bytes), reused by every
    /// express send on it.
    static BUFFER: RefCell<PageBuf> = const { RefCell::new(PageBuf::new()) };
}

/// The total length of `elements` if they qualify: 1 to 64 elements, memory or file ranges
/// of known length, at most [`tuning::EXPRESS_MAX`] bytes in all (and not more than the send
/// size), an end-of-packet mark only on the last, no `DISCONNECT`, not the zero-copy engine.
pub(crate) fn eligible(elements: &[Element], options: &SendOptions) -> Option<usize> {
    if elements.is_empty()
        || elements.len() > tuning::EXPRESS_ELEMENTS
        || options.engine == Engine::ZeroCopy
        // Offloaded sends never read files on the sending thread.
        || options.file_io == FileIo::Offload
        || options.flags.contains(TransmitFlags::DISCONNECT)
    {
        return None;
    }
    let mut total = 0u64;
    for (i, e) in elements.iter().enumerate() {
        if e.end_of_packet && i + 1 != elements.len() {
            return None;
        }
        let len = match &e.payload {
            Payload::Memory(b) => b.len() as u64,
            // A file range must be read to be checked: an empty one would go unchecked.
            Payload::Path { range, .. } | Payload::Handle { range, .. } => {
                range.len.filter(|&n| n > 0)?
            }
        };
        total = total
            .checked_add(len)
            .filter(|&t| t <= tuning::EXPRESS_MAX)?;
    }
    let fits_call = options.send_size.is_none_or(|n| n.get() as u64 >= total);
    (total > 0 && fits_call).then_some(total as usize)
}

/// Tries to send `elements` (`total` bytes, see [`eligible`]) in one call.
pub(crate) fn try_send(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    elements: &[Element],
    total: usize,
) -> Attempt {
    let mut own = PageBuf::new();
    let r = BUFFER.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => Some(attempt(k, sock, elements, total, &mut buf)),
        // Re-entered on this thread: use a buffer of its own (below).
        Err(_) => None,
    });
    match r {
        Ok(Some(attempt)) => attempt,
        // Re-entered, or the thread is exiting (its buffer is gone).
        _ => attempt(k, sock, elements, total, &mut own),
    }
}

fn attempt(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    elements: &[Element],
    total: usize,
    buf: &mut PageBuf,
) -> Attempt {
    let mut calls = KernelCalls::default();
    let mut slices = [IoSlice::new(&[]); tuning::EXPRESS_ELEMENTS];
    let count = if elements
        .iter()
        .all(|e| matches!(e.payload, Payload::Memory(_)))
    {
        // Memory only (a response from memory: head and body): the elements' own bytes,
        // nothing copied.
        for (slot, e) in slices.iter_mut().zip(elements) {
            if let Payload::Memory(b) = &e.payload {
                *slot = IoSlice::new(b);
            }
        }
        elements.len()
    } else {
        buf.grow_to(total);
        if !fill(k, elements, &mut buf[..total], &mut calls) {
            return Attempt::Fallback;
        }
        slices[0] = IoSlice::new(&buf[..total]);
        1
    };
    let slices = &slices[..count];
    let sent = loop {
        let r = k.sendmsg(sock, slices, false);
        calls.gather_writes += 1;
        match r {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return first_send_failed(sock, elements, e),
        }
    };
    if sent < total {
        let mut filled = Vec::with_capacity(total);
        for s in slices {
            filled.extend_from_slice(s);
        }
        return Attempt::Partial {
            bytes: sent as u64,
            calls,
            filled: Bytes::from(filled),
        };
    }
    Attempt::Sent {
        bytes: total as u64,
        calls,
    }
}

/// Copies every element's bytes into `buf`; false if a file could not be read whole (the
/// checks explain why).
fn fill(
    k: &mut impl Kernel,
    elements: &[Element],
    buf: &mut [u8],
    calls: &mut KernelCalls,
) -> bool {
    let mut at = 0;
    for e in elements {
        let ok = match &e.payload {
            Payload::Memory(b) => {
                buf[at..at + b.len()].copy_from_slice(b);
                at += b.len();
                true
            }
            Payload::Handle { file, range } => {
                let len = range.len.unwrap_or(0) as usize;
                // Devices read fine but are refused by the checks: never send them.
                let ok = handle_regular(file).unwrap_or(false)
                    && read_exact(k, file.as_fd(), &mut buf[at..at + len], range.offset, calls);
                at += len;
                ok
            }
            Payload::Path { path, range } => {
                let len = range.len.unwrap_or(0) as usize;
                // Any failure (out of descriptors included) leaves it to the checks to explain.
                let ok = resolve::open_path(k, path, || {}).is_ok_and(|(fd, st)| {
                    st.regular
                        && read_exact(k, fd.as_fd(), &mut buf[at..at + len], range.offset, calls)
                });
                at += len;
                ok
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// `pread` until `buf` is full; false on a short file or an error (the checks explain it).
fn read_exact(
    k: &mut impl Kernel,
    file: BorrowedFd<'_>,
    buf: &mut [u8],
    offset: u64,
    calls: &mut KernelCalls,
) -> bool {
    let mut done = 0;
    while done < buf.len() {
        let r = k.pread(file, &mut buf[done..], offset + done as u64);
        calls.file_reads += 1;
        match r {
            Ok(0) => return false,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<Element> {
        vec![
            Element::memory("abcde"),
            Element::memory(""),
            Element::memory("xyz").end_of_packet(),
        ]
    }

    #[test]
    fn eligibility() {
        let opts = SendOptions::new();
        assert_eq!(eligible(&list(), &opts), Some(8));
        assert_eq!(eligible(&[], &opts), None);
        let marked_early = [Element::memory("a").end_of_packet(), Element::memory("b")];
        assert_eq!(eligible(&marked_early, &opts), None);
        let whole_file = [Element::file("x", ..)];
        assert_eq!(eligible(&whole_file, &opts), None);
        assert_eq!(
            eligible(&list(), &opts.clone().engine(Engine::ZeroCopy)),
            None
        );
        assert_eq!(eligible(&list(), &opts.clone().send_size(4)), None);
        assert_eq!(
            eligible(&list(), &opts.clone().flags(TransmitFlags::DISCONNECT)),
            None
        );
        let big = [Element::memory(vec![0u8; 64 * 1024 + 1])];
        assert_eq!(eligible(&big, &opts), None);
    }
}
