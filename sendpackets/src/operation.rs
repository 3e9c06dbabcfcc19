//! One way in: every front end starts a send here, then runs its own loop over the
//! [`Transfer`] it gets (blocking `poll`, tokio readiness, or a few steps and then a task).
//!
//! A start checks the socket (or takes what a `Connection` knows of it), tries the express path,
//! runs the checks and decides the policy. The checks run in the order the reference gives:
//! connected first (even for an empty list), then every file and range, then datagram sizes.
//! Nothing is sent by any of them.

use std::io;
use std::os::fd::BorrowedFd;

use bytes::Bytes;

use crate::datagram;
use crate::element::{Element, Payload};
use crate::error::{ErrorKind, SendError};
use crate::express::{self, Attempt};
use crate::options::{SendOptions, TransmitFlags};
use crate::plan::{SocketShape, Wanted};
use crate::report::SendReport;
use crate::resolve::{self, Resolved, Segment, Source};
use crate::sys::{self, DatagramLimits, FactsError, KindHint, Protocol, SocketFacts, SocketKind};
use crate::transfer::{Kernel, Transfer};
use crate::tuning;

/// What a send needs to know about its socket: what it is, and for a datagram socket what it
/// may send. Asked once per send, or once per [`Connection`](crate::Connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketState {
    pub(crate) facts: SocketFacts,
    /// Datagram sockets only.
    pub(crate) datagram: Option<DatagramLimits>,
}

impl SocketState {
    /// Asks the socket: connected? which kind? and for datagram sockets, their limits.
    pub(crate) fn probe(sock: BorrowedFd<'_>, hint: Option<KindHint>) -> Result<Self, SendError> {
        let facts = sys::socket_facts(sock, hint).map_err(|e| match e {
            FactsError::NotConnected(e) => SendError::new(ErrorKind::NotConnected).with_source(e),
            FactsError::Unsupported(e) => {
                SendError::new(ErrorKind::UnsupportedSocket).with_source(e)
            }
        })?;
        let datagram =
            (facts.kind == SocketKind::Datagram).then(|| sys::datagram_limits(sock, &facts));
        Ok(SocketState { facts, datagram })
    }

    fn shape(&self) -> SocketShape {
        SocketShape {
            datagram: self.facts.kind == SocketKind::Datagram,
            tcp: self.facts.protocol == Protocol::Tcp,
            max_datagram: self.datagram.map_or(0, |d| d.max_datagram),
            gso_segment: self.datagram.and_then(|d| d.gso_segment),
        }
    }
}

/// What the front end knows of its socket before the send.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Known<'a> {
    /// Nothing: ask.
    Nothing,
    /// The socket's type says (tokio's socket types).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Hint(KindHint),
    /// A [`Connection`](crate::Connection) asked when it was made.
    State(&'a SocketState),
}

/// How a send started.
// Moved once per send, never stored: boxing the transfer would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Start {
    /// Done already (the express path sent everything).
    Finished(SendReport),
    /// Checked; the front end runs the transfer.
    Running(Transfer),
    /// The socket is checked; the files are not yet ([`Checks::run`], which an async front end
    /// may run on another thread).
    Checking(Checks),
}

/// The checks still to run: files and ranges, then datagram sizes. Holds no descriptor.
#[derive(Debug)]
pub(crate) struct Checks {
    state: SocketState,
    options: SendOptions,
}

impl Checks {
    /// Opens and checks every file, checks every range and datagram, and decides the policy.
    pub(crate) fn run(self, elements: &[Element]) -> Result<Transfer, SendError> {
        let resolved = resolve::resolve(elements)?;
        if let Some(limits) = self.state.datagram {
            datagram::check_sizes(&resolved, limits.max_datagram)?;
        }
        Ok(transfer(resolved, &self.state, &self.options))
    }
}

/// Starts a send of `elements` over `sock`. `REUSE_SOCKET` is refused here: only
/// [`crate::send_reusing`], which owns its socket, may replace it.
pub(crate) fn start(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    known: Known<'_>,
    elements: &[Element],
    options: &SendOptions,
) -> Result<Start, SendError> {
    if options.flags.contains(TransmitFlags::REUSE_SOCKET) {
        return Err(SendError::new(ErrorKind::Unsupported).with_detail(
            "REUSE_SOCKET replaces the socket, which only its owner may do: use \
             sendpackets::send_reusing with an OwnedFd"
                .into(),
        ));
    }
    if let Some(total) = express::eligible(elements, options) {
        match express::try_send(k, sock, elements, total) {
            Attempt::Sent { bytes, calls } => {
                let kind = match known {
                    Known::State(s) => s.facts.kind,
                    Known::Hint(h) => h.kind,
                    // Sent, but of an unknown kind: a stream is the only kind that takes any
                    // bytes of a socket we could not ask (none in practice).
                    Known::Nothing => sys::socket_kind(sock).unwrap_or(SocketKind::Stream),
                };
                return Ok(Start::Finished(SendReport {
                    bytes_sent: bytes,
                    elements: elements.len(),
                    datagrams: u64::from(kind == SocketKind::Datagram),
                    calls,
                }));
            }
            Attempt::Partial {
                bytes,
                calls,
                filled,
            } => {
                // Only a stream takes part of a buffer, and the rest is memory: no question to
                // ask the socket (asking could fail after bytes went out, losing the progress).
                let shape = SocketShape {
                    datagram: false,
                    tcp: false,
                    max_datagram: 0,
                    gso_segment: None,
                };
                let mut t = Transfer::new(
                    read_already(elements, filled),
                    shape,
                    wanted(options),
                    options,
                );
                t.skip_sent(bytes, calls);
                return Ok(Start::Running(t));
            }
            Attempt::Failed(e) => return Err(e),
            Attempt::Fallback => {}
        }
    }
    Ok(Start::Checking(Checks {
        state: state_of(sock, known)?,
        options: *options,
    }))
}

/// [`start`], with the checks run on the calling thread.
pub(crate) fn start_here(
    k: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    known: Known<'_>,
    elements: &[Element],
    options: &SendOptions,
) -> Result<Started, SendError> {
    Ok(match start(k, sock, known, elements, options)? {
        Start::Finished(report) => Started::Finished(report),
        Start::Running(t) => Started::Running(t),
        Start::Checking(checks) => Started::Running(checks.run(elements)?),
    })
}

/// How [`start_here`] started.
#[allow(clippy::large_enum_variant)] // as `Start`
#[derive(Debug)]
pub(crate) enum Started {
    Finished(SendReport),
    Running(Transfer),
}

fn state_of(sock: BorrowedFd<'_>, known: Known<'_>) -> Result<SocketState, SendError> {
    match known {
        Known::State(s) => Ok(*s),
        Known::Hint(h) => SocketState::probe(sock, Some(h)),
        Known::Nothing => SocketState::probe(sock, None),
    }
}

fn wanted(options: &SendOptions) -> Wanted {
    Wanted {
        engine: options.engine,
        offload: options.file_io == crate::FileIo::Offload,
        send_size: options.send_size,
        sendfile_ok: tuning::sendfile_available(),
    }
}

fn transfer(resolved: Resolved, state: &SocketState, options: &SendOptions) -> Transfer {
    Transfer::new(resolved, state.shape(), wanted(options), options)
}

/// The list as the express path read it (`filled`, every element's bytes in order), as
/// memory segments: a transfer of it sends the rest of the same bytes.
fn read_already(elements: &[Element], filled: Bytes) -> Resolved {
    let mut segments = Vec::with_capacity(elements.len());
    let mut at = 0usize;
    for (index, e) in elements.iter().enumerate() {
        let len = match &e.payload {
            Payload::Memory(b) => b.len(),
            Payload::Path { range, .. } | Payload::Handle { range, .. } => {
                range.len.unwrap_or(0) as usize
            }
        };
        if len > 0 || e.end_of_packet {
            segments.push(Segment {
                element: index,
                source: Source::Memory(filled.slice(at..at + len)),
                len: len as u64,
                end_of_packet: e.end_of_packet,
            });
        }
        at += len;
    }
    Resolved {
        segments,
        files: Vec::new(),
        element_count: elements.len(),
        open_budget: 0,
    }
}

/// After the last byte: `DISCONNECT`.
pub(crate) fn finish(
    sock: BorrowedFd<'_>,
    transfer: &Transfer,
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    if options.flags.contains(TransmitFlags::DISCONNECT) {
        match sys::shutdown_both(sock) {
            Ok(()) => {}
            // A peer that already closed leaves nothing to shut down: that is not a failure.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
            Err(e) => return Err(disconnect_error(transfer, e)),
        }
    }
    Ok(transfer.report())
}

fn disconnect_error(transfer: &Transfer, e: io::Error) -> SendError {
    SendError::new(ErrorKind::Socket)
        .with_detail("disconnect after the last byte failed".into())
        .with_source(e)
        .with_progress(transfer.progress())
}

/// The report of an express send, as progress (for a `ProgressHandle`).
pub(crate) fn progress_of(report: &SendReport) -> crate::Progress {
    crate::Progress {
        bytes_sent: report.bytes_sent,
        elements_completed: report.elements,
        offset_in_element: 0,
        datagrams_sent: report.datagrams,
    }
}
