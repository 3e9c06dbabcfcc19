//! Driving a [`Transfer`] from tokio: steps on the runtime thread, waits through tokio's
//! readiness, file reads optionally on the blocking pool.

use std::io;
use std::os::fd::BorrowedFd;

use crate::error::{ErrorKind, SendError};
use crate::operation;
use crate::options::{FileIo, SendOptions};
use crate::report::{ProgressHandle, SendReport};
use crate::resolve::{self, Resolved};
use crate::transfer::{Step, Stop, SysKernel, Transfer};

use super::AsyncSocket;

/// The checks before the first byte, with `FileIo::Offload` opening the files on the blocking
/// pool.
pub(crate) async fn start<S: AsyncSocket + ?Sized>(
    socket: &S,
    elements: &[crate::Element],
    options: &SendOptions,
) -> Result<Transfer, SendError> {
    let sock = socket.as_fd();
    let (datagram, ip) = socket.shape();
    let info = operation::check_socket_shaped(sock, Some((datagram, ip)))?;
    let resolved = if options.file_io == FileIo::Offload {
        let owned = elements.to_vec();
        offloaded(move || resolve::resolve(&owned)).await??
    } else {
        resolve::resolve(elements)?
    };
    operation::begin(sock, info, resolved, options)
}

/// Runs `f` on tokio's blocking pool; a panic there is resumed here.
async fn offloaded<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, SendError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(SendError::new(ErrorKind::Socket)
            .with_detail("the runtime shut down during the send".into())
            .with_source(io::Error::other(e))),
    }
}

// `Resolved` crosses to the blocking pool and back.
const _: () = {
    const fn send<T: Send + 'static>() {}
    send::<Resolved>();
    send::<Transfer>();
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
                t.uncork(&mut SysKernel, sock);
                return Err(e);
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
                if let Err(e) = socket.wait_writable().await {
                    let t = run.transfer.as_mut().expect("the transfer is home");
                    t.uncork(&mut SysKernel, sock);
                    return Err(SendError::new(ErrorKind::Socket)
                        .with_source(e)
                        .with_progress(t.progress()));
                }
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
        Err(e) => Err(Stop::Failed(
            SendError::new(ErrorKind::Socket)
                .with_source(e)
                .with_progress(t.progress()),
        )),
    }
}
