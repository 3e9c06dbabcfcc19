//! The express path: a short list, read whole into one buffer and sent with one call.
//!
//! Small responses (a header, a few KiB of a file, a trailer) are where per-call overhead
//! decides the speed: on loopback one `pread` and one `send` per message is 2.5x a call per
//! element, and every extra check is a system call the message pays for. So a short list skips
//! the checks and tries: it reads every file range into one buffer (nothing is sent unless every
//! read succeeded), then sends the buffer. The checks run only when the try fails before the
//! first byte — a short read, a missing file, not connected, a full socket — and then produce
//! exactly the error (or the send) the full path would have, with 0 bytes sent. Two properties
//! make this safe: nothing reaches the socket before every byte of the list is in memory, and a
//! socket accepts a datagram whole or not at all, so a partial send can only be a stream.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};

use crate::element::{Element, Payload};
use crate::error::{ErrorKind, SendError};
use crate::options::{Engine, SendOptions, TransmitFlags};
use crate::report::{KernelCalls, Progress, SendReport};
use crate::sys::{self, SocketKind};
use crate::transfer::Kernel;
use crate::tuning;

/// What an express try did.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The list does not qualify; nothing was done.
    NotEligible,
    /// Nothing was sent: run the full path (its checks give the exact error, or it sends).
    Fallback,
    /// Everything was sent.
    Sent(SendReport),
    /// A stream accepted only the first `bytes`: the full path sends the rest.
    Partial { bytes: u64, calls: KernelCalls },
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
    /// One buffer per thread, reused by every express send on it.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The total length of `elements` if they qualify: 1 to 64 elements, memory or file ranges
/// of known length, at most [`tuning::EXPRESS_MAX`] bytes in all (and not more than the send
/// size), an end-of-packet mark only on the last, no `DISCONNECT`, not the zero-copy engine.
fn eligible(elements: &[Element], options: &SendOptions) -> Option<usize> {
    if elements.is_empty()
        || elements.len() > tuning::EXPRESS_ELEMENTS
        || options.engine == Engine::ZeroCopy
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

/// Tries to send `elements` in one call. `kind` is the socket's kind when the caller knows it
/// (tokio's socket types do); otherwise one `getsockopt` asks.
pub(crate) fn try_send(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    elements: &[Element],
    options: &SendOptions,
    kind: Option<SocketKind>,
) -> Attempt {
    let Some(total) = eligible(elements, options) else {
        return Attempt::NotEligible;
    };
    let mut own = Vec::new();
    let r = BUFFER.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => Some(attempt(k, sock, elements, total, kind, &mut buf)),
        // Re-entered on this thread: use a buffer of its own (below).
        Err(_) => None,
    });
    match r {
        Ok(Some(attempt)) => attempt,
        // Re-entered, or the thread is exiting (its buffer is gone).
        _ => attempt(k, sock, elements, total, kind, &mut own),
    }
}

fn attempt(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    elements: &[Element],
    total: usize,
    kind: Option<SocketKind>,
    buf: &mut Vec<u8>,
) -> Attempt {
    if buf.len() < total {
        buf.resize(total, 0);
    }
    let mut calls = KernelCalls::default();
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
                let ok = file.is_regular_file().unwrap_or(false)
                    && read_exact(
                        k,
                        file.as_fd(),
                        &mut buf[at..at + len],
                        range.offset,
                        &mut calls,
                    );
                at += len;
                ok
            }
            Payload::Path { path, range } => {
                let len = range.len.unwrap_or(0) as usize;
                let ok = match sys::open_read(path) {
                    Ok(fd) => {
                        sys::fstat(fd.as_fd()).is_ok_and(|st| st.regular)
                            && read_exact(
                                k,
                                fd.as_fd(),
                                &mut buf[at..at + len],
                                range.offset,
                                &mut calls,
                            )
                    }
                    Err(_) => false,
                };
                at += len;
                ok
            }
        };
        if !ok {
            return Attempt::Fallback;
        }
    }
    let mut sent = 0;
    loop {
        let r = k.sendmsg(sock, &[IoSlice::new(&buf[sent..total])], false);
        calls.gather_writes += 1;
        match r {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if sent == 0 => return first_send_failed(sock, elements, e),
            // Unreachable in practice (the loop ends after the first successful call).
            Err(_) => break,
        }
        break;
    }
    if sent < total {
        return Attempt::Partial {
            bytes: sent as u64,
            calls,
        };
    }
    let kind = match kind {
        Some(kind) => kind,
        None => match sys::socket_kind(sock) {
            Ok(kind) => kind,
            // Sent, but of an unknown kind: a stream is the only kind that takes any bytes of
            // a socket we could not ask (none in practice).
            Err(_) => SocketKind::Stream,
        },
    };
    Attempt::Sent(SendReport {
        bytes_sent: total as u64,
        elements: elements.len(),
        datagrams: u64::from(kind == SocketKind::Datagram),
        calls,
    })
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

/// The progress of the first `bytes` of `elements` (where a resumed send starts).
pub(crate) fn progress_at(elements: &[Element], bytes: u64) -> Progress {
    let mut left = bytes;
    let mut p = Progress {
        bytes_sent: bytes,
        ..Progress::default()
    };
    for e in elements {
        let len = match &e.payload {
            Payload::Memory(b) => b.len() as u64,
            Payload::Path { range, .. } | Payload::Handle { range, .. } => range.len.unwrap_or(0),
        };
        if left < len || (left == 0 && len == 0 && e.end_of_packet) {
            p.offset_in_element = left;
            return p;
        }
        left -= len;
        p.elements_completed += 1;
    }
    p
}

/// A result of sending the rest (`rest = base.remaining(list)`), in terms of the whole list.
pub(crate) fn rebase(
    base: Progress,
    calls: KernelCalls,
    r: Result<SendReport, crate::SendError>,
) -> Result<SendReport, crate::SendError> {
    let shift = |p: Progress| Progress {
        bytes_sent: base.bytes_sent + p.bytes_sent,
        elements_completed: base.elements_completed + p.elements_completed,
        offset_in_element: if p.elements_completed == 0 {
            base.offset_in_element + p.offset_in_element
        } else {
            p.offset_in_element
        },
        datagrams_sent: p.datagrams_sent,
    };
    match r {
        Ok(mut report) => {
            report.bytes_sent += base.bytes_sent;
            report.elements += base.elements_completed;
            report.calls.gather_writes += calls.gather_writes;
            report.calls.file_reads += calls.file_reads;
            Ok(report)
        }
        Err(e) => {
            let p = shift(e.progress());
            let element = e.element().map(|i| i + base.elements_completed);
            Err(e.rebased(p, element))
        }
    }
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
    fn progress_at_points_into_the_unfinished_element() {
        let l = list();
        let p = progress_at(&l, 3);
        assert_eq!((p.elements_completed, p.offset_in_element), (0, 3));
        let p = progress_at(&l, 5);
        assert_eq!((p.elements_completed, p.offset_in_element), (2, 0));
        let p = progress_at(&l, 6);
        assert_eq!((p.elements_completed, p.offset_in_element), (2, 1));
        assert_eq!(p.remaining(&l).len(), 1);
    }

    #[test]
    fn rebase_adds_what_went_before() {
        let base = progress_at(&list(), 6);
        let calls = KernelCalls {
            gather_writes: 1,
            ..KernelCalls::default()
        };
        let rest = SendReport {
            bytes_sent: 2,
            elements: 1,
            datagrams: 0,
            calls,
        };
        let r = rebase(base, calls, Ok(rest)).unwrap();
        assert_eq!((r.bytes_sent, r.elements, r.calls.gather_writes), (8, 3, 2));
        let err = crate::SendError::new(crate::ErrorKind::Socket)
            .element_index(0)
            .with_progress(Progress {
                bytes_sent: 1,
                offset_in_element: 1,
                ..Progress::default()
            });
        let e = rebase(base, calls, Err(err)).unwrap_err();
        assert_eq!(e.element(), Some(2));
        let p = e.progress();
        assert_eq!(
            (p.bytes_sent, p.elements_completed, p.offset_in_element),
            (7, 2, 2)
        );
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
        assert_eq!(eligible(&list(), &opts.engine(Engine::ZeroCopy)), None);
        assert_eq!(eligible(&list(), &opts.send_size(4)), None);
        assert_eq!(
            eligible(&list(), &opts.flags(TransmitFlags::DISCONNECT)),
            None
        );
        let big = [Element::memory(vec![0u8; 64 * 1024 + 1])];
        assert_eq!(eligible(&big, &opts), None);
    }
}
