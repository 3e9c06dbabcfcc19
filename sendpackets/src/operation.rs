//! One loop: a send is an [`Operation`], a state machine that advances through one function,
//! [`Operation::next`]. The front ends only wait: blocking (`poll`), tokio (readiness, and the
//! blocking pool for a [`Job`]), completion (a few steps on the caller's thread, then the tokio
//! waiter in a task).
//!
//! An operation tries the express path first, then checks the socket (or takes what a
//! `Connection` knows of it), runs the checks and decides the policy, then sends. The checks run
//! in the order the reference gives: connected first (even for an empty list), then every file
//! and range, then datagram sizes. Nothing is sent by any of them. Progress is published here,
//! and nowhere else.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use bytes::Bytes;

use crate::datagram;
use crate::element::{Element, Payload};
use crate::error::{ErrorKind, SendError};
use crate::express::{self, Attempt};
use crate::options::{SendOptions, TransmitFlags};
use crate::plan::{Learned, SocketShape, Wanted};
use crate::report::{Progress, ProgressHandle, SendReport};
use crate::resolve::{self, Resolved, Segment, Source};
use crate::sys::{self, DatagramLimits, FactsError, KindHint, Protocol, SocketFacts, SocketKind};
use crate::transfer::{Kernel, Step, Stop, SysKernel, Transfer};

/// What a send needs to know about its socket: what it is, and for a datagram socket what it
/// may send. Asked once per send, or once per [`Connection`](crate::Connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketState {
    pub(crate) facts: SocketFacts,
    /// Datagram sockets only.
    pub(crate) datagram: Option<DatagramLimits>,
    /// What sends learned of the socket at run time (refusals), kept for the next send.
    pub(crate) learned: Learned,
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
        Ok(SocketState {
            facts,
            datagram,
            learned: Learned::default(),
        })
    }

    fn shape(&self) -> SocketShape {
        self.learned.shape(SocketShape {
            datagram: self.facts.kind == SocketKind::Datagram,
            tcp: self.facts.protocol == Protocol::Tcp,
            max_datagram: self.datagram.map_or(0, |d| d.max_datagram),
            gso_segment: self.datagram.and_then(|d| d.gso_segment),
        })
    }
}

/// What the front end knows of its socket before the send.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Known {
    /// Nothing: ask.
    Nothing,
    /// The socket's type says (tokio's socket types).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Hint(KindHint),
    /// A [`Connection`](crate::Connection) asked when it was made.
    State(SocketState),
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

fn state_of(sock: BorrowedFd<'_>, known: Known) -> Result<SocketState, SendError> {
    match known {
        Known::State(s) => Ok(s),
        Known::Hint(h) => SocketState::probe(sock, Some(h)),
        Known::Nothing => SocketState::probe(sock, None),
    }
}

fn wanted(options: &SendOptions) -> Wanted {
    Wanted {
        engine: options.engine,
        offload: options.file_io == crate::FileIo::Offload,
        send_size: options.send_size,
        sendfile_ok: true,
    }
}

fn transfer(resolved: Resolved, state: &SocketState, options: &SendOptions) -> Transfer {
    let wanted = state.learned.wanted(wanted(options));
    Transfer::new(resolved, state.shape(), wanted, options)
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

/// A send, from its first check to its last byte: the one state machine every front end runs.
#[derive(Debug)]
pub(crate) struct Operation<K: Kernel = SysKernel> {
    kernel: K,
    options: SendOptions,
    known: Known,
    progress: Option<ProgressHandle>,
    phase: Phase,
    /// The checks passed (or the express path sent part): an error now is not one of the
    /// checks.
    began: bool,
}

#[derive(Debug)]
enum Phase {
    /// Nothing done yet: the express path comes first.
    Start,
    /// The socket is checked (`Operation::known` says what it is); the files are not yet.
    Check,
    /// Sending.
    Run(Transfer),
    /// A [`Job`] holds the checks or the transfer on another thread; the send is at `progress`.
    Away { progress: Progress },
    /// A wait or a job ended the send: the next step uncorks and returns the error.
    Ending(Option<Transfer>, SendError),
    /// Done, or failed: nothing more to do.
    Over,
}

/// What the front end does next.
#[allow(clippy::large_enum_variant)] // moved once per step, never stored
#[derive(Debug)]
pub(crate) enum Next {
    /// A step was made: call [`Operation::next`] again.
    Progressed,
    /// The socket is full: wait until it is writable (at most this long; `None`: no limit),
    /// then tell [`Operation::waited`].
    Wait(Option<Duration>),
    /// Run this job where reading files may block (tokio's blocking pool, or here), then give
    /// its result to [`Operation::resume`].
    Elsewhere(Job),
    /// Everything was sent.
    Done(SendReport),
    /// The send failed; the error carries the progress.
    Failed(SendError),
}

/// Work that may block on files: the checks, or the next file read of a transfer. Owns all it
/// needs, so it can run on another thread.
#[allow(clippy::large_enum_variant)] // moved to the job's thread and back, never stored
#[derive(Debug)]
pub(crate) enum Job {
    Check {
        checks: Checks,
        elements: Vec<Element>,
    },
    Read(Transfer),
}

/// What a [`Job`] did.
#[derive(Debug)]
pub(crate) enum JobDone {
    Checked(Result<Transfer, SendError>),
    Read(Transfer, Result<(), Stop>),
}

impl Job {
    /// Runs the job on the calling thread.
    pub(crate) fn run(self) -> JobDone {
        match self {
            Job::Check { checks, elements } => JobDone::Checked(checks.run(&elements)),
            Job::Read(mut t) => {
                let r = t.read_next(&mut SysKernel);
                JobDone::Read(t, r)
            }
        }
    }
}

/// How a front end's wait for the socket ended.
#[derive(Debug)]
pub(crate) enum Waited {
    Writable,
    TimedOut,
    Failed(io::Error),
}

// An operation and its jobs cross to the blocking pool and back.
const _: () = {
    const fn send<T: Send + 'static>() {}
    send::<Operation>();
    send::<Job>();
    send::<JobDone>();
};

impl<K: Kernel> Operation<K> {
    /// An operation that has done nothing yet; `progress` is published at every step.
    pub(crate) fn new(
        kernel: K,
        known: Known,
        options: &SendOptions,
        progress: Option<ProgressHandle>,
    ) -> Self {
        Operation {
            kernel,
            options: *options,
            known,
            progress,
            phase: Phase::Start,
            began: false,
        }
    }

    /// Advances the send by one step: at most one kernel call that sends bytes. `elements` is
    /// the list the operation sends (read only until the checks are done).
    pub(crate) fn next(&mut self, sock: BorrowedFd<'_>, elements: &[Element]) -> Next {
        let next = self.advance(sock, elements);
        if let Some(p) = &self.progress {
            match (&next, &self.phase) {
                (Next::Done(r), _) => p.publish(progress_of(r)),
                (Next::Failed(e), _) => p.publish(e.progress()),
                (_, Phase::Run(t)) => p.publish(t.progress()),
                _ => {}
            }
        }
        next
    }

    fn advance(&mut self, sock: BorrowedFd<'_>, elements: &[Element]) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Start => self.start(sock, elements),
            Phase::Check => {
                let checks = Checks {
                    state: match self.known {
                        Known::State(s) => s,
                        _ => unreachable!("the socket is checked before the files"),
                    },
                    options: self.options,
                };
                if self.options.file_io == crate::FileIo::Offload {
                    self.phase = Phase::Away {
                        progress: Progress::default(),
                    };
                    return Next::Elsewhere(Job::Check {
                        checks,
                        elements: elements.to_vec(),
                    });
                }
                self.checked(checks.run(elements))
            }
            Phase::Run(t) => self.step(t, sock),
            Phase::Ending(t, e) => {
                if let Some(mut t) = t {
                    t.uncork(&mut self.kernel, sock);
                    self.absorb(&t);
                }
                Next::Failed(e)
            }
            Phase::Away { .. } => unreachable!("a front end steps an operation whose job is away"),
            Phase::Over => unreachable!("a front end steps a finished operation"),
        }
    }

    /// The first step: `REUSE_SOCKET` refused, the express path tried, the socket asked.
    fn start(&mut self, sock: BorrowedFd<'_>, elements: &[Element]) -> Next {
        if self.options.flags.contains(TransmitFlags::REUSE_SOCKET) {
            return Next::Failed(
                SendError::new(ErrorKind::Unsupported).with_detail(
                    "REUSE_SOCKET replaces the socket, which only its owner may do: use \
                 sendpackets::send_reusing with an OwnedFd"
                        .into(),
                ),
            );
        }
        if let Some(total) = express::eligible(elements, &self.options) {
            match express::try_send(&mut self.kernel, sock, elements, total) {
                Attempt::Sent { bytes, calls } => {
                    let kind = match self.known {
                        Known::State(s) => s.facts.kind,
                        Known::Hint(h) => h.kind,
                        // Sent, but of an unknown kind: a stream is the only kind that takes
                        // any bytes of a socket we could not ask (none in practice).
                        Known::Nothing => sys::socket_kind(sock).unwrap_or(SocketKind::Stream),
                    };
                    return Next::Done(SendReport {
                        bytes_sent: bytes,
                        elements: elements.len(),
                        datagrams: u64::from(kind == SocketKind::Datagram),
                        calls,
                    });
                }
                Attempt::Partial {
                    bytes,
                    calls,
                    filled,
                } => {
                    // Only a stream takes part of a buffer, and the rest is memory: no question
                    // to ask the socket (asking could fail after bytes went out, losing the
                    // progress).
                    let shape = SocketShape {
                        datagram: false,
                        tcp: false,
                        max_datagram: 0,
                        gso_segment: None,
                    };
                    let mut t = Transfer::new(
                        read_already(elements, filled),
                        shape,
                        wanted(&self.options),
                        &self.options,
                    );
                    t.skip_sent(bytes, calls);
                    self.began = true;
                    self.phase = Phase::Run(t);
                    return Next::Progressed;
                }
                Attempt::Failed(e) => return Next::Failed(e),
                Attempt::Fallback => {}
            }
        }
        match state_of(sock, self.known) {
            Ok(state) => {
                self.known = Known::State(state);
                self.phase = Phase::Check;
                Next::Progressed
            }
            Err(e) => Next::Failed(e),
        }
    }

    fn checked(&mut self, r: Result<Transfer, SendError>) -> Next {
        match r {
            Ok(t) => {
                self.began = true;
                self.phase = Phase::Run(t);
                Next::Progressed
            }
            Err(e) => Next::Failed(e),
        }
    }

    /// Keeps what a transfer learned of the socket with the socket's state.
    fn absorb(&mut self, t: &Transfer) {
        if let Known::State(s) = &mut self.known {
            s.learned = s.learned.merge(t.learned());
        }
    }

    /// What the operation knows of its socket now, lessons included (a `Connection` keeps it).
    pub(crate) fn known(&self) -> Known {
        self.known
    }

    fn step(&mut self, mut t: Transfer, sock: BorrowedFd<'_>) -> Next {
        if self.options.file_io == crate::FileIo::Offload && t.next_reads_file() {
            self.phase = Phase::Away {
                progress: t.progress(),
            };
            return Next::Elsewhere(Job::Read(t));
        }
        let r = t.step(&mut self.kernel, sock);
        if !matches!(r, Ok(Step::Progressed) | Err(Stop::WouldBlock)) {
            self.absorb(&t);
        }
        match r {
            Ok(Step::Progressed) => {
                self.phase = Phase::Run(t);
                Next::Progressed
            }
            Ok(Step::Done) => match finish(sock, &t, &self.options) {
                Ok(report) => Next::Done(report),
                Err(e) => Next::Failed(e),
            },
            Err(Stop::WouldBlock) => {
                let limit = t.wait_limit();
                self.phase = Phase::Run(t);
                Next::Wait(limit)
            }
            Err(Stop::Failed(e)) => Next::Failed(e),
        }
    }

    /// Whether the next step writes to the socket (a readiness-driven front end steps inside
    /// its readiness then; every other step it makes at once).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn writes_next(&self) -> bool {
        matches!(self.phase, Phase::Run(_))
    }

    /// How long a wait for the socket may last now (`None`: no limit).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wait_limit(&self) -> Option<Duration> {
        match &self.phase {
            Phase::Run(t) => t.wait_limit(),
            _ => None,
        }
    }

    /// A front end's wait for the socket ended: a timeout or a failure ends the send (the next
    /// step returns the error with its progress).
    pub(crate) fn waited(&mut self, w: Waited) {
        let Phase::Run(t) = &mut self.phase else {
            return;
        };
        t.count_wait();
        let e = match w {
            Waited::Writable => return,
            Waited::TimedOut => t.timed_out(),
            Waited::Failed(e) => t.wait_failed(e),
        };
        let Phase::Run(t) = std::mem::replace(&mut self.phase, Phase::Over) else {
            unreachable!()
        };
        self.phase = Phase::Ending(Some(t), e);
    }

    /// The job of [`Next::Elsewhere`] is back: `Err` when it could not run (the runtime shut
    /// down), which ends the send at the progress it had.
    pub(crate) fn resume(&mut self, done: Result<JobDone, SendError>) {
        let Phase::Away { progress } = self.phase else {
            unreachable!("resume without a job away")
        };
        self.phase = match done {
            Err(e) => Phase::Ending(None, e.with_progress(progress)),
            Ok(JobDone::Checked(Ok(t))) => {
                self.began = true;
                Phase::Run(t)
            }
            Ok(JobDone::Checked(Err(e))) => Phase::Ending(None, e),
            // A read never blocks on the socket.
            Ok(JobDone::Read(t, Ok(()) | Err(Stop::WouldBlock))) => Phase::Run(t),
            Ok(JobDone::Read(t, Err(Stop::Failed(e)))) => Phase::Ending(Some(t), e),
        };
    }

    /// Whether the checks passed and the send began (an error before is one of the checks).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn is_sending(&self) -> bool {
        self.began
    }

    /// Leaves the socket as the send found it (uncorked), when the send stops before its end
    /// (a dropped future).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn abandon(&mut self, sock: BorrowedFd<'_>) {
        if let Phase::Run(t) | Phase::Ending(Some(t), _) = &mut self.phase {
            t.uncork(&mut self.kernel, sock);
        }
    }
}
