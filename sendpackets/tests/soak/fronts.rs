//! The front ends a soak case sends through, and what a send returned (a report, an error with
//! its progress and remaining elements, or a send dropped midway).

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sendpackets::{
    Element, Engine, ErrorKind, FileIo, Progress, ProgressHandle, SendError, SendOptions,
    SendReport, TransmitFlags,
};

use crate::harness::Rng;
use crate::util::ENGINES;

/// Where a send runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// `sendpackets::send_with`, observed or not (`SendOptions::observe`).
    Blocking,
    /// A `sendpackets::Connection` made for the send.
    Connection,
    /// `sendpackets::tokio` on a current-thread runtime.
    CurrentThread,
    /// `sendpackets::tokio` on a multi-thread runtime (two workers).
    MultiThread,
    /// `sendpackets::tokio::send_packets_async` (the completion API), on either runtime.
    Completion,
    /// A `sendpackets::tokio::Connection` made for the send, on a multi-thread runtime.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    AsyncConnection,
}

#[cfg(feature = "tokio")]
pub(crate) const VIAS: &[Via] = &[
    Via::Blocking,
    Via::Connection,
    Via::CurrentThread,
    Via::MultiThread,
    Via::Completion,
    Via::AsyncConnection,
];
/// Without the `tokio` feature, the blocking front ends only.
#[cfg(not(feature = "tokio"))]
pub(crate) const VIAS: &[Via] = &[Via::Blocking, Via::Connection];

pub(crate) const FILE_IOS: [FileIo; 3] = [FileIo::Inline, FileIo::Readahead, FileIo::Offload];

/// How one send is made.
#[derive(Clone, Debug)]
pub(crate) struct How {
    pub(crate) via: Via,
    /// The completion API's runtime: multi-thread (else current-thread).
    pub(crate) multi: bool,
    /// The options, as chosen (the library's `SendOptions` keeps its fields to itself).
    pub(crate) engine: Engine,
    pub(crate) file_io: FileIo,
    pub(crate) send_size: Option<usize>,
    pub(crate) disconnect: bool,
    /// Observed: `SendOptions::observe` with a progress handle.
    pub(crate) observe: bool,
    /// Async fronts: drop the send future after this long.
    pub(crate) cancel: Option<Duration>,
}

impl How {
    pub(crate) fn random(rng: &mut Rng, via: Via) -> How {
        How {
            via,
            multi: rng.chance(50),
            engine: rng.pick(&ENGINES),
            file_io: rng.pick(&FILE_IOS),
            send_size: None,
            disconnect: false,
            observe: rng.chance(50),
            cancel: None,
        }
    }

    /// The options of the send.
    pub(crate) fn opts(&self) -> SendOptions {
        let mut o = SendOptions::new().engine(self.engine).file_io(self.file_io);
        if let Some(n) = self.send_size {
            o = o.send_size(n);
        }
        if self.disconnect {
            o = o.flags(TransmitFlags::DISCONNECT);
        }
        o
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = format!("{:?}", self.via);
        if self.via == Via::Completion {
            s += if self.multi {
                " (multi-thread)"
            } else {
                " (current-thread)"
            };
        }
        s += &format!(" {:?} {:?}", self.engine, self.file_io);
        if let Some(n) = self.send_size {
            s += &format!(" send_size {n}");
        }
        if self.disconnect {
            s += " DISCONNECT";
        }
        if self.observe {
            s += " observed";
        }
        if let Some(d) = self.cancel {
            s += &format!(" cancel after {d:?}");
        }
        s
    }
}

/// Where an observer finds the progress handle of a running send (the completion API makes
/// its own).
#[derive(Clone, Default)]
pub(crate) struct Watch(pub(crate) Arc<Mutex<Option<ProgressHandle>>>);

impl Watch {
    fn offer(&self, h: &ProgressHandle) {
        *self.0.lock().unwrap() = Some(h.clone());
    }

    pub(crate) fn get(&self) -> Option<Progress> {
        self.0.lock().unwrap().as_ref().map(ProgressHandle::get)
    }
}

/// A failed send, as the soak checks it.
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) element: Option<usize>,
    pub(crate) progress: Progress,
    pub(crate) text: String,
    /// The completion API reported it from the start call.
    pub(crate) thrown: bool,
    /// `err.remaining(&list)`.
    pub(crate) rest: Vec<Element>,
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} at element {:?}{} ({:?}; {} elements remain): {}",
            self.kind,
            self.element,
            if self.thrown { ", thrown at start" } else { "" },
            self.progress,
            self.rest.len(),
            self.text
        )
    }
}

impl Failure {
    pub(crate) fn new(e: &SendError, list: &[Element], thrown: bool) -> Failure {
        Failure {
            kind: e.kind(),
            element: e.element(),
            progress: e.progress(),
            text: e.to_string(),
            thrown,
            rest: e.progress().remaining(list),
        }
    }
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Outcome {
    Sent(SendReport),
    Failed(Failure),
    /// The send future was dropped midway: its progress handle then, and
    /// `progress.remaining(&list)`.
    Cancelled(Progress, Vec<Element>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Sent(r) => write!(
                f,
                "sent {} bytes, {} datagrams, {:?}",
                r.bytes_sent, r.datagrams, r.calls
            ),
            Outcome::Failed(e) => write!(f, "failed: {e:?}"),
            Outcome::Cancelled(p, rest) => {
                write!(f, "cancelled at {p:?} ({} elements remain)", rest.len())
            }
        }
    }
}

impl Outcome {
    pub(crate) fn label(&self) -> String {
        match self {
            Outcome::Sent(_) => "sent".into(),
            Outcome::Failed(f) => format!("{:?}", f.kind),
            Outcome::Cancelled(..) => "cancelled".into(),
        }
    }
}

pub(crate) struct Attempt {
    pub(crate) outcome: Outcome,
    /// The progress handle at the end, if the send had one.
    pub(crate) observed: Option<Progress>,
}

impl Attempt {
    fn finished(
        r: Result<SendReport, SendError>,
        list: &[Element],
        h: Option<&ProgressHandle>,
    ) -> Attempt {
        Attempt {
            outcome: match r {
                Ok(report) => Outcome::Sent(report),
                Err(e) => Outcome::Failed(Failure::new(&e, list, false)),
            },
            observed: h.map(ProgressHandle::get),
        }
    }
}

/// Sends `list` over `sock` as `how` says, leaving the socket's blocking mode as it was. A
/// `watch` is given the progress handle before the first byte.
pub(crate) fn send_through(
    how: &How,
    sock: BorrowedFd<'_>,
    list: &[Element],
    watch: Option<&Watch>,
) -> Attempt {
    let handle = (how.observe || watch.is_some() || how.cancel.is_some()).then(ProgressHandle::new);
    if let (Some(w), Some(h)) = (watch, &handle) {
        w.offer(h);
    }
    let opts = &how.opts();
    match how.via {
        Via::Blocking => {
            let r = match &handle {
                Some(h) => sendpackets::send_with(sock, list, &opts.clone().observe(h)),
                None => sendpackets::send_with(sock, list, opts),
            };
            Attempt::finished(r, list, handle.as_ref())
        }
        Via::Connection => {
            let mut conn = match sendpackets::Connection::new(sock) {
                Ok(c) => c,
                Err(e) => return Attempt::finished(Err(e), list, handle.as_ref()),
            };
            conn.set_options(match &handle {
                Some(h) => opts.clone().observe(h),
                None => opts.clone(),
            });
            let r = conn.send(list);
            Attempt::finished(r, list, handle.as_ref())
        }
        #[cfg(feature = "tokio")]
        Via::CurrentThread | Via::MultiThread | Via::AsyncConnection => {
            asynch::send_future(how, sock, list, handle.as_ref())
        }
        #[cfg(feature = "tokio")]
        Via::Completion => asynch::send_completion(how, sock, list, watch),
        #[cfg(not(feature = "tokio"))]
        _ => unreachable!("{:?} needs the tokio feature", how.via),
    }
}

/// The tokio front ends: a send future (dropped midway when the case says so) and the
/// completion API.
#[cfg(feature = "tokio")]
pub(crate) mod asynch {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use sendpackets::tokio::{AsyncSocket, SendPacketsArgs, Started, send_packets_async};
    use socket2::SockRef;

    use super::*;
    use crate::harness::PATIENCE;
    use crate::limits::Squeeze;
    use crate::util::{self, front::TokioSocket};

    fn nonblocking(sock: BorrowedFd<'_>) -> bool {
        rustix::fs::fcntl_getfl(sock)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    }

    /// `sendpackets::tokio::send_with`, observed or not, on the runtime `how.via` names.
    pub(super) fn send_future(
        how: &How,
        sock: BorrowedFd<'_>,
        list: &[Element],
        handle: Option<&ProgressHandle>,
    ) -> Attempt {
        let opts = &how.opts();
        let flavour = if how.via == Via::CurrentThread {
            util::Front::CurrentThread
        } else {
            util::Front::MultiThread
        };
        let was_nonblocking = nonblocking(sock);
        let rt = util::front::runtime(flavour);
        let connection = how.via == Via::AsyncConnection;
        let r = rt.block_on(async {
            let s = TokioSocket::from_fd(sock);
            let send = async {
                if connection {
                    s.send_connection(list, opts, handle).await
                } else {
                    s.send(list, opts, handle).await
                }
            };
            tokio::time::timeout(how.cancel.unwrap_or(PATIENCE), send).await
        });
        drop(rt);
        SockRef::from(&sock)
            .set_nonblocking(was_nonblocking)
            .unwrap();
        match r {
            Ok(r) => Attempt::finished(r, list, handle),
            Err(_) if how.cancel.is_some() => {
                // The future is gone: the handle says what the kernel accepted.
                let p = handle.expect("a cancelled send is observed").get();
                Attempt {
                    outcome: Outcome::Cancelled(p, p.remaining(list)),
                    observed: Some(p),
                }
            }
            Err(_) => panic!("an async send did not finish within {PATIENCE:?}"),
        }
    }

    /// `sendpackets::tokio::send_packets_async` on the runtime `how.multi` names.
    pub(super) fn send_completion(
        how: &How,
        sock: BorrowedFd<'_>,
        list: &[Element],
        watch: Option<&Watch>,
    ) -> Attempt {
        let opts = &how.opts();
        let flavour = if how.multi {
            util::Front::MultiThread
        } else {
            util::Front::CurrentThread
        };
        let was_nonblocking = nonblocking(sock);
        let rt = util::front::runtime(flavour);
        let calls = Arc::new(AtomicUsize::new(0));
        let (attempt, pending) = rt.block_on(async {
            match TokioSocket::from_fd(sock) {
                TokioSocket::Tcp(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::Unix(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::Udp(s) => complete_on(Arc::new(s), list, opts, watch, &calls).await,
                TokioSocket::UnixDgram(s) => {
                    complete_on(Arc::new(s), list, opts, watch, &calls).await
                }
            }
        });
        drop(rt);
        SockRef::from(&sock)
            .set_nonblocking(was_nonblocking)
            .unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            usize::from(pending),
            "the completion callback runs exactly once for a pending operation, never for \
             one completed during the call (pending: {pending})"
        );
        attempt
    }

    const TOKEN: u64 = 0x50a6;

    /// One operation of the completion API; returns the attempt and whether it went pending.
    async fn complete_on<S: AsyncSocket + Send + Sync + 'static>(
        socket: Arc<S>,
        list: &[Element],
        opts: &SendOptions,
        watch: Option<&Watch>,
        calls: &Arc<AtomicUsize>,
    ) -> (Attempt, bool) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let counter = Arc::clone(calls);
        let mut args = SendPacketsArgs::new(TOKEN, move |args: SendPacketsArgs<u64>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = tx.lock().unwrap().send(args);
        });
        args.elements = list.to_vec();
        args.options = opts.clone();
        let handle = args.progress();
        if let Some(w) = watch {
            w.offer(&handle);
        }
        let finished = |args: &SendPacketsArgs<u64>| {
            assert_eq!(args.user_token, TOKEN, "the user token comes back");
            let result = args.result().expect("a finished operation has its result");
            let outcome = match result {
                Ok(r) => Outcome::Sent(*r),
                Err(e) => Outcome::Failed(Failure::new(e, list, false)),
            };
            let sent = match &outcome {
                Outcome::Sent(r) => r.bytes_sent,
                Outcome::Failed(f) => f.progress.bytes_sent,
                Outcome::Cancelled(..) => unreachable!(),
            };
            assert_eq!(args.bytes_transferred(), sent, "bytes_transferred");
            Attempt {
                outcome,
                observed: Some(args.progress().get()),
            }
        };
        match send_packets_async(&socket, args) {
            Err(e) => {
                assert_eq!(e.args.user_token, TOKEN, "the arguments come back");
                let attempt = Attempt {
                    outcome: Outcome::Failed(Failure::new(&e.error, list, true)),
                    observed: Some(handle.get()),
                };
                (attempt, false)
            }
            Ok(Started::Completed(args)) => (finished(&args), false),
            Ok(Started::Pending(progress)) => {
                let args = tokio::task::spawn_blocking(move || rx.recv_timeout(PATIENCE))
                    .await
                    .expect("waiting for the callback")
                    .expect("the completion callback came");
                let attempt = finished(&args);
                assert_eq!(
                    Some(progress.get()),
                    attempt.observed,
                    "the pending operation's handle and its arguments' agree"
                );
                (attempt, true)
            }
        }
    }

    /// A tokio send of `list` on the runtime `via` names, the descriptors squeezed to `free`
    /// once the runtime and the socket exist.
    pub(crate) fn send_squeezed(
        via: Via,
        sock: BorrowedFd<'_>,
        list: &[Element],
        opts: &SendOptions,
        free: usize,
    ) -> Result<SendReport, SendError> {
        let flavour = if via == Via::CurrentThread {
            util::Front::CurrentThread
        } else {
            util::Front::MultiThread
        };
        let rt = util::front::runtime(flavour);
        let r = rt.block_on(async {
            let s = TokioSocket::from_fd(sock);
            let _squeeze = Squeeze::leave(free);
            s.send(list, opts, None).await
        });
        drop(rt);
        SockRef::from(&sock).set_nonblocking(false).unwrap();
        r
    }
}
