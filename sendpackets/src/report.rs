//! What a send did: progress while running or at a failure, the report at success.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::element::Element;

/// How far a send got: bytes accepted by the kernel, whole elements done, and the position
/// inside the element being sent.
///
/// "Sent" means accepted by the local kernel, not delivered to or read by the peer.
///
/// # Examples
///
/// Resuming after a failure: the error's progress says what reached the kernel, and
/// [`remaining`](Progress::remaining) what is left.
///
/// ```
/// use sendpackets::{Element, ErrorKind, SendOptions};
/// use std::time::Duration;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?; // nobody reads `_b` yet
/// a.set_nonblocking(true)?;
/// let list = [Element::memory("header"), Element::memory(vec![7u8; 8 << 20])];
/// let opts = SendOptions::new().stall_timeout(Duration::from_millis(20));
/// let err = sendpackets::send_with(&a, &list, &opts).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// let p = err.progress();
/// assert_eq!(p.elements_completed, 1); // the header went out, the body in part
/// let rest = p.remaining(&list);
/// let left: u64 = 6 + (8 << 20) - p.bytes_sent;
/// assert_eq!(rest.len(), 1);
/// assert!(matches!(&rest[0].payload, sendpackets::Payload::Memory(b) if b.len() as u64 == left));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes handed to the kernel in total.
    pub bytes_sent: u64,
    /// Elements sent completely (empty elements before the current position included). The
    /// element at this index is the one the send was in when it stopped.
    pub elements_completed: usize,
    /// Bytes of element `elements_completed` already sent.
    pub offset_in_element: u64,
    /// Datagrams sent completely (datagram sockets only).
    pub datagrams_sent: u64,
}

impl Progress {
    /// What is left of `elements` after this progress: the unfinished elements, the first one
    /// advanced past the bytes already sent.
    pub fn remaining(&self, elements: &[Element]) -> Vec<Element> {
        let mut rest: Vec<Element> = elements
            .get(self.elements_completed..)
            .unwrap_or_default()
            .to_vec();
        if let Some(first) = rest.first_mut() {
            *first = first.advanced(self.offset_in_element);
        }
        rest
    }
}

/// How many times each kernel path was used by one send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelCalls {
    /// Vectored writes: `sendmsg` with an iovec, each carrying one or more buffers, or on a
    /// datagram socket one `sendmmsg` carrying a burst of datagrams.
    pub gather_writes: u64,
    /// `sendfile` calls that sent bytes.
    pub sendfile: u64,
    /// `pread` calls that copied file bytes into memory (small ranges, portable engine,
    /// fallback).
    pub file_reads: u64,
    /// Files whose zero-copy send the kernel refused, so they were read and written instead.
    pub fallback_files: u64,
    /// Times the socket was corked or uncorked (`TCP_CORK`).
    pub cork_toggles: u64,
    /// Times the send waited for the socket to become writable.
    pub waits: u64,
    /// UDP generic segmentation offload messages: each carried a run of equal-size datagrams
    /// that the kernel cut apart (counted in `gather_writes` too, as part of a `sendmmsg`).
    pub udp_gso_messages: u64,
}

/// The result of a successful send.
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let report = sendpackets::send(&a, &[Element::memory("abc"), Element::memory("de")])?;
/// assert_eq!((report.bytes_sent, report.elements), (5, 2));
/// // Short lists go out with one call: the express path.
/// assert_eq!(report.calls.gather_writes, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReport {
    /// Bytes handed to the kernel (.NET `BytesTransferred`).
    pub bytes_sent: u64,
    /// Elements in the list (all of them were sent).
    pub elements: usize,
    /// Datagrams sent (datagram sockets only).
    pub datagrams: u64,
    /// Which kernel paths were used, and how often.
    pub calls: KernelCalls,
}

/// A live view of a running send's progress, shared between the send and any observer (a
/// progress bar, a watchdog). Cloning shares it.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, ProgressHandle, SendOptions};
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair()?;
/// let progress = ProgressHandle::new();
/// let observer = progress.clone(); // e.g. moved to a display thread
/// sendpackets::send_observed(&a, &[Element::memory("abc")], &SendOptions::new(), &progress)?;
/// assert_eq!(observer.get().bytes_sent, 3);
/// assert_eq!(observer.get().elements_completed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProgressHandle(Arc<ProgressCells>);

/// A sequence lock over the four fields: the sequence is odd while a publish writes them, and a
/// reader retries until it read them all between two equal, even sequence values. The send never
/// waits for a reader; a reader waits at most for one publish (four stores).
#[derive(Debug, Default)]
struct ProgressCells {
    sequence: AtomicU64,
    bytes_sent: AtomicU64,
    elements_completed: AtomicU64,
    offset_in_element: AtomicU64,
    datagrams_sent: AtomicU64,
}

impl ProgressHandle {
    /// A handle at zero.
    pub fn new() -> Self {
        ProgressHandle::default()
    }

    /// The progress last published by the send: always one the send passed through (all four
    /// fields from the same moment), never a mix of two.
    pub fn get(&self) -> Progress {
        let c = &self.0;
        loop {
            let before = c.sequence.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let p = Progress {
                bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                elements_completed: c.elements_completed.load(Ordering::Relaxed) as usize,
                offset_in_element: c.offset_in_element.load(Ordering::Relaxed),
                datagrams_sent: c.datagrams_sent.load(Ordering::Relaxed),
            };
            // The field loads happen before the second sequence load.
            fence(Ordering::Acquire);
            if c.sequence.load(Ordering::Relaxed) == before {
                return p;
            }
        }
    }

    pub(crate) fn publish(&self, p: Progress) {
        let c = &self.0;
        // Enter the write (odd), one writer at a time: a handle may be shared by sends run one
        // after another, and the last of them may still be publishing its error.
        let mut seq = c.sequence.load(Ordering::Relaxed);
        loop {
            if seq % 2 == 1 {
                std::hint::spin_loop();
                seq = c.sequence.load(Ordering::Relaxed);
                continue;
            }
            match c.sequence.compare_exchange_weak(
                seq,
                seq + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => seq = now,
            }
        }
        // The odd sequence is visible before any field changes.
        fence(Ordering::Release);
        c.bytes_sent.store(p.bytes_sent, Ordering::Relaxed);
        c.elements_completed
            .store(p.elements_completed as u64, Ordering::Relaxed);
        c.offset_in_element
            .store(p.offset_in_element, Ordering::Relaxed);
        c.datagrams_sent.store(p.datagrams_sent, Ordering::Relaxed);
        c.sequence.store(seq + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// Every snapshot is one the send passed through: a writer publishes the progress of a send
    /// of equal elements of `L` bytes, a byte at a time, while a reader checks
    /// `bytes_sent == elements_completed × L + offset_in_element` on every read (for 1 s).
    #[test]
    fn every_snapshot_is_one_the_send_passed_through() {
        const L: u64 = 7;
        let handle = ProgressHandle::new();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (handle, stop) = (handle.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut bytes = 0;
                while !stop.load(Ordering::Relaxed) {
                    bytes += 1;
                    handle.publish(Progress {
                        bytes_sent: bytes,
                        elements_completed: (bytes / L) as usize,
                        offset_in_element: bytes % L,
                        datagrams_sent: bytes / L,
                    });
                }
            })
        };
        let (mut reads, mut torn, mut last) = (0u64, Vec::new(), 0u64);
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            for _ in 0..1_000 {
                let p = handle.get();
                reads += 1;
                let whole = p.elements_completed as u64 * L + p.offset_in_element;
                if whole != p.bytes_sent || p.datagrams_sent != p.elements_completed as u64 {
                    torn.push(p);
                }
                assert!(
                    p.bytes_sent >= last,
                    "progress went back: {p:?} after {last}"
                );
                last = p.bytes_sent;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(last > 0, "the reader saw the writer");
        assert!(
            torn.is_empty(),
            "{} of {reads} reads were torn, e.g. {:?}",
            torn.len(),
            &torn[..torn.len().min(3)]
        );
    }
}
