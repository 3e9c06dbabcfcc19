//! The async front end: it steps the [`Operation`] on the runtime thread, waits through tokio's
//! readiness, and runs the operation's jobs (file checks and reads with `FileIo::Offload`) on the
//! blocking pool.

use std::io;
use std::os::fd::BorrowedFd;

use crate::element::Element;
use crate::error::{ErrorKind, SendError};
use crate::operation::{Job, JobDone, Known, Next, Operation, Waited};
use crate::options::SendOptions;
use crate::report::{ProgressHandle, SendReport};

use super::AsyncSocket;

/// Sends `elements` over `socket`: the async front end of every send, `Connection` included.
pub(crate) async fn run<S: AsyncSocket + ?Sized>(
    socket: &S,
    known: &mut Known,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let start = match *known {
        Known::Nothing => Known::Hint(socket.hint()),
        known => known,
    };
    let mut op = Operation::new(Default::default(), start, options, progress.cloned());
    let r = drive(socket, &mut op, elements, true).await;
    *known = op.known();
    r
}

/// Runs `op` to its end. `direct`: step before asking tokio (right after the checks, tokio may
/// not have seen the socket writable yet).
pub(crate) async fn drive<S: AsyncSocket + ?Sized>(
    socket: &S,
    op: &mut Operation,
    elements: &[Element],
    mut direct: bool,
) -> Result<SendReport, SendError> {
    let sock = socket.as_fd();
    let run = Running { op, sock };
    loop {
        let next = if direct || !run.op.writes_next() {
            run.op.next(sock, elements)
        } else {
            next_when_ready(socket, run.op, sock, elements)
        };
        match next {
            Next::Progressed => tokio::task::coop::consume_budget().await,
            Next::Wait(limit) => {
                direct = false;
                let waited = wait(socket, limit).await;
                run.op.waited(waited);
            }
            Next::Elsewhere(job) => {
                let done = elsewhere(job).await;
                run.op.resume(done);
            }
            Next::Done(report) => return Ok(report),
            Next::Failed(e) => return Err(e),
        }
    }
}

/// Runs `job` on tokio's blocking pool; a panic there is resumed here.
pub(crate) async fn elsewhere(job: Job) -> Result<JobDone, SendError> {
    match tokio::task::spawn_blocking(move || job.run()).await {
        Ok(done) => Ok(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(runtime_gone(io::Error::other(e))),
    }
}

/// The error of a send whose runtime shut down under it.
pub(crate) fn runtime_gone(source: io::Error) -> SendError {
    SendError::new(ErrorKind::Socket)
        .with_detail("the runtime shut down during the send".into())
        .with_source(source)
}

/// An operation driven by a send future; dropping the future uncorks the socket.
struct Running<'o, 's> {
    op: &'o mut Operation,
    sock: BorrowedFd<'s>,
}

impl Drop for Running<'_, '_> {
    fn drop(&mut self) {
        self.op.abandon(self.sock);
    }
}

/// Waits until tokio sees the socket writable, at most `limit`.
async fn wait<S: AsyncSocket + ?Sized>(socket: &S, limit: Option<std::time::Duration>) -> Waited {
    let r = match limit {
        None => socket.wait_writable().await,
        Some(limit) => match tokio::time::timeout(limit, socket.wait_writable()).await {
            Ok(r) => r,
            Err(_) => return Waited::TimedOut,
        },
    };
    match r {
        Ok(()) => Waited::Writable,
        Err(e) => Waited::Failed(e),
    }
}

/// One step inside tokio's `try_io`, so that a full socket clears tokio's readiness.
fn next_when_ready<S: AsyncSocket + ?Sized>(
    socket: &S,
    op: &mut Operation,
    sock: BorrowedFd<'_>,
    elements: &[Element],
) -> Next {
    let mut full = None;
    let r = socket.try_write_io(|| match op.next(sock, elements) {
        Next::Wait(limit) => {
            full = Some(limit);
            Err(io::ErrorKind::WouldBlock.into())
        }
        next => Ok(next),
    });
    match r {
        Ok(next) => next,
        // Not ready by tokio's account (the step did not run), or the socket was full.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            Next::Wait(full.unwrap_or_else(|| op.wait_limit()))
        }
        // The closure returns no other error; a socket error is still reported as one.
        Err(e) => {
            op.waited(Waited::Failed(e));
            Next::Progressed
        }
    }
}
