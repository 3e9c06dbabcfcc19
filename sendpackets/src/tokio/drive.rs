//! The async front end's loop: start the operation, then step on the runtime thread, wait
//! through tokio's readiness, and with `FileIo::Offload` read files on the blocking pool.

use std::io;
use std::os::fd::BorrowedFd;

use crate::element::Element;
use crate::error::{ErrorKind, SendError};
use crate::operation::{self, Known, Start};
use crate::options::{FileIo, SendOptions};
use crate::report::{ProgressHandle, SendReport};
use crate::transfer::{Step, Stop, SysKernel, Transfer};

use super::AsyncSocket;

/// Sends `elements` over `socket`: the async front end of every send, `Connection` included.
pub(crate) async fn run<S: AsyncSocket + ?Sized>(
    socket: &S,
    known: Known<'_>,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let r = run_inner(socket, known, elements, options, progress).await;
    if let (Some(p), Err(e)) = (progress, &r) {
        p.publish(e.progress());
    }
    r
}

async fn run_inner<S: AsyncSocket + ?Sized>(
    socket: &S,
    known: Known<'_>,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let hint = socket.hint();
    let known = match known {
        Known::Nothing => Known::Hint(hint),
        known => known,
    };
    let transfer = match operation::start(&mut SysKernel, socket.as_fd(), known, elements, options)?
    {
        Start::Finished(report) => {
            if let Some(p) = progress {
                p.publish(operation::progress_of(&report));
            }
            return Ok(report);
        }
        Start::Running(t) => t,
        // Offload: the files are opened and checked on the blocking pool too.
        Start::Checking(checks) if options.file_io == FileIo::Offload => {
            let owned = elements.to_vec();
            offloaded(move || checks.run(&owned)).await??
        }
        Start::Checking(checks) => checks.run(elements)?,
    };
    drive(socket, transfer, options, progress, true).await
}

/// Runs `f` on tokio's blocking pool; a panic there is resumed here.
async fn offloaded<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, SendError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
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

// `Transfer` crosses to the blocking pool and back.
const _: () = {
    const fn send<T: Send + 'static>() {}
    send::<Transfer>();
    send::<operation::Checks>();
};

/// A transfer owned by a send future; dropping the future uncorks the socket.
struct Running<'s> {
    /// `None` while a file read runs on the blocking pool.
    transfer: Option<Transfer>,
    sock: BorrowedFd<'s>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(t) = &mut self.transfer {
            t.uncork(&mut SysKernel, self.sock);
        }
    }
}

/// What [`step_now`] stopped at.
pub(crate) enum Now {
    Done,
    Blocked,
    Failed(SendError),
    /// The step budget ran out, or the next step reads a file that must be offloaded.
    Later,
}

/// Steps `transfer` on the calling thread, without waiting, at most `budget` times.
pub(crate) fn step_now(
    transfer: &mut Transfer,
    sock: BorrowedFd<'_>,
    options: &SendOptions,
    progress: &ProgressHandle,
    budget: usize,
) -> Now {
    for _ in 0..budget {
        if options.file_io == FileIo::Offload && transfer.next_reads_file() {
            return Now::Later;
        }
        let step = transfer.step(&mut SysKernel, sock);
        progress.publish(transfer.progress());
        match step {
            Ok(Step::Progressed) => {}
            Ok(Step::Done) => return Now::Done,
            Err(Stop::WouldBlock) => return Now::Blocked,
            Err(Stop::Failed(e)) => return Now::Failed(e),
        }
    }
    Now::Later
}

/// How a wait for the socket ended.
enum Waited {
    Writable,
    TimedOut,
    Failed(io::Error),
}

/// Waits until tokio sees the socket writable, at most the transfer's time limit.
async fn wait<S: AsyncSocket + ?Sized>(socket: &S, t: &Transfer) -> Waited {
    let r = match t.wait_limit() {
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

/// Sends the rest of `transfer`, then applies the flags. `direct`: try the socket before
/// asking tokio (right after the checks, tokio may not have seen the socket writable yet).
pub(crate) async fn drive<S: AsyncSocket + ?Sized>(
    socket: &S,
    transfer: Transfer,
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
    mut direct: bool,
) -> Result<SendReport, SendError> {
    let sock = socket.as_fd();
    let mut run = Running {
        transfer: Some(transfer),
        sock,
    };
    let offload = options.file_io == FileIo::Offload;
    loop {
        let t = run.transfer.as_mut().expect("the transfer is home");
        if offload && t.next_reads_file() {
            let mut moved = run.transfer.take().expect("the transfer is home");
            // Reading sends nothing: if the runtime goes away meanwhile, this is the progress.
            let progress = moved.progress();
            let (moved, read) = offloaded(move || {
                let r = moved.read_next(&mut SysKernel);
                (moved, r)
            })
            .await
            .map_err(|e| e.with_progress(progress))?;
            let t = run.transfer.insert(moved);
            if let Err(Stop::Failed(e)) = read {
                return Err(t.abandon(&mut SysKernel, sock, e));
            }
            continue;
        }
        let step = if direct {
            t.step(&mut SysKernel, sock)
        } else {
            step_when_ready(socket, t, sock)
        };
        if let Some(p) = progress {
            p.publish(t.progress());
        }
        match step {
            Ok(Step::Progressed) => tokio::task::coop::consume_budget().await,
            Ok(Step::Done) => break,
            Err(Stop::WouldBlock) => {
                direct = false;
                t.count_wait();
                let error = match wait(socket, t).await {
                    Waited::Writable => continue,
                    Waited::TimedOut => t.timed_out(),
                    Waited::Failed(e) => t.wait_failed(e),
                };
                let t = run.transfer.as_mut().expect("the transfer is home");
                return Err(t.abandon(&mut SysKernel, sock, error));
            }
            Err(Stop::Failed(e)) => return Err(e),
        }
    }
    let transfer = run.transfer.take().expect("the transfer is home");
    operation::finish(sock, &transfer, options)
}

/// One step inside tokio's `try_io`, so that `EAGAIN` clears tokio's readiness.
fn step_when_ready<S: AsyncSocket + ?Sized>(
    socket: &S,
    t: &mut Transfer,
    sock: BorrowedFd<'_>,
) -> Result<Step, Stop> {
    let r = socket.try_write_io(|| match t.step(&mut SysKernel, sock) {
        Err(Stop::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
        other => Ok(other),
    });
    match r {
        Ok(step) => step,
        // Not ready by tokio's account (the closure did not run), or the step hit EAGAIN.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Stop::WouldBlock),
        // The closure returns no other error; a socket error is still reported as one.
        Err(e) => Err(Stop::Failed(t.wait_failed(e))),
    }
}
