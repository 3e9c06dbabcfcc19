//! What a send did: progress while running or at a failure, the report at success.

use crate::element::Element;

/// How far a send got: bytes accepted by the kernel, whole elements done, and the position
/// inside the element being sent.
///
/// "Sent" means accepted by the local kernel, not delivered to or read by the peer.
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
    /// Vectored writes (`sendmsg` with an iovec), each carrying one or more buffers.
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
}

/// The result of a successful send.
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
