//! The completion-style API of .NET's `Socket.SendPacketsAsync(SocketAsyncEventArgs)`.

use std::fmt;
use std::sync::Arc;

use crate::element::Element;
use crate::error::{ErrorKind, SendError};
use crate::operation::{Known, Next, Operation};
use crate::options::SendOptions;
use crate::report::{ProgressHandle, SendReport};
use crate::transfer::SysKernel;
use crate::tuning::COMPLETION_SYNC_STEPS;

use super::AsyncSocket;
use super::drive;

/// The completion callback: called once per pending operation, on a runtime worker, with the
/// finished arguments object (.NET's `Completed` event).
pub type Completion<T> = Arc<dyn Fn(SendPacketsArgs<T>) + Send + Sync>;

/// The arguments object of [`send_packets_async`] (.NET's `SocketAsyncEventArgs` as used by
/// `SendPacketsAsync`): the list, the options, a user token of the caller's type and the
/// completion callback going in; the result coming out. Reusable: after completion, set new
/// elements and start again.
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
/// use sendpackets::tokio::{SendPacketsArgs, Started, send_packets_async};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (a, _b) = tokio::net::UnixStream::pair()?;
/// let a = Arc::new(a);
/// let mut args = SendPacketsArgs::new("request 1", |args: SendPacketsArgs<&str>| {
///     println!("{} finished later: {:?}", args.user_token, args.result());
/// });
/// // .NET's BufferZeroCount_Ignored: a zero-count buffer sends nothing...
/// args.elements = vec![Element::memory_range(vec![1u8; 8], 4, 0)?];
/// let Ok(Started::Completed(mut args)) = send_packets_async(&a, args) else { panic!() };
/// assert_eq!(args.bytes_transferred(), 0);
/// // ...and the same object is reused for the next operation.
/// args.elements = vec![Element::memory(vec![1u8, 2, 3, 4])];
/// let Ok(Started::Completed(args)) = send_packets_async(&a, args) else { panic!() };
/// assert_eq!(args.bytes_transferred(), 4);
/// assert!(args.error().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SendPacketsArgs<T> {
    /// The elements to send (.NET `SendPacketsElements`).
    pub elements: Vec<Element>,
    /// Send size, flags and engine (.NET `SendPacketsSendSize`, `SendPacketsFlags`).
    pub options: SendOptions,
    /// The caller's value, carried through the operation untouched (.NET `UserToken`).
    pub user_token: T,
    completed: Completion<T>,
    result: Option<Result<SendReport, SendError>>,
    progress: ProgressHandle,
}

impl<T> SendPacketsArgs<T> {
    /// An arguments object with no elements, default options, the user token and the
    /// completion callback.
    pub fn new(
        user_token: T,
        completed: impl Fn(SendPacketsArgs<T>) + Send + Sync + 'static,
    ) -> Self {
        SendPacketsArgs {
            elements: Vec::new(),
            options: SendOptions::default(),
            user_token,
            completed: Arc::new(completed),
            result: None,
            progress: ProgressHandle::new(),
        }
    }

    /// Replaces the completion callback.
    pub fn set_completed(
        &mut self,
        completed: impl Fn(SendPacketsArgs<T>) + Send + Sync + 'static,
    ) {
        self.completed = Arc::new(completed);
    }

    /// The result of the last operation, `None` before the first one finished.
    pub fn result(&self) -> Option<&Result<SendReport, SendError>> {
        self.result.as_ref()
    }

    /// Bytes the last operation handed to the kernel (.NET `BytesTransferred`), on success
    /// and on failure alike.
    pub fn bytes_transferred(&self) -> u64 {
        match &self.result {
            Some(Ok(r)) => r.bytes_sent,
            Some(Err(e)) => e.progress().bytes_sent,
            None => 0,
        }
    }

    /// The error of the last operation, if it failed (.NET `SocketError` other than
    /// `Success`).
    pub fn error(&self) -> Option<&SendError> {
        self.result.as_ref().and_then(|r| r.as_ref().err())
    }

    /// A live view of the running (or last) operation's progress.
    pub fn progress(&self) -> ProgressHandle {
        self.progress.clone()
    }

    fn complete(mut self, result: Result<SendReport, SendError>) -> Self {
        if let Err(e) = &result {
            self.progress.publish(e.progress());
        }
        self.result = Some(result);
        self
    }
}

impl<T: fmt::Debug> fmt::Debug for SendPacketsArgs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendPacketsArgs")
            .field("elements", &self.elements)
            .field("options", &self.options)
            .field("user_token", &self.user_token)
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

/// How [`send_packets_async`] started.
#[derive(Debug)]
#[must_use = "a synchronously completed operation returns its arguments object here"]
pub enum Started<T> {
    /// The operation finished during the call (.NET returns `false`): here is the arguments
    /// object with the result filled in. The callback is not called.
    Completed(SendPacketsArgs<T>),
    /// The operation goes on in a task (.NET returns `true`): the callback will be called
    /// exactly once with the arguments object. The handle shows its progress meanwhile.
    Pending(ProgressHandle),
}

/// A failure that [`send_packets_async`] reports at once (what .NET throws from the call),
/// with the arguments object given back.
#[non_exhaustive]
pub struct StartError<T> {
    /// What failed: not connected or not a socket, or a file that could not be opened (missing
    /// file or directory, empty path, a directory, no permission).
    pub error: SendError,
    /// The arguments object, unchanged.
    pub args: SendPacketsArgs<T>,
}

impl<T> fmt::Debug for StartError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for StartError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for StartError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Whether .NET reports this failure by throwing from the start call (the socket state, and
/// opening files, which .NET does before it starts) rather than through the result (range
/// checks and everything after them).
fn thrown_at_start(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotConnected
            | ErrorKind::UnsupportedSocket
            | ErrorKind::EmptyPath
            | ErrorKind::FileNotFound
            | ErrorKind::DirectoryNotFound
            | ErrorKind::IsADirectory
            | ErrorKind::NotARegularFile
            | ErrorKind::PermissionDenied
            | ErrorKind::FileOpen
    )
}

/// Starts sending `args.elements` over `socket`, the way .NET's
/// `Socket.SendPacketsAsync(SocketAsyncEventArgs)` does.
///
/// The checks run, then the send makes as many kernel calls as it can without waiting (up to
/// 64). If that finishes the operation, the call returns [`Started::Completed`] with the
/// arguments object and its result (.NET's `false`), and the callback is **not** called. If the
/// socket fills up (or after 64 calls), the rest is sent by a task on the current runtime and
/// the call returns [`Started::Pending`] (.NET's `true`); the callback is then called exactly
/// once, on a runtime worker, with the arguments object.
///
/// The arguments object is moved in, so starting a second operation with an object whose
/// operation is still pending cannot compile: that is how .NET's `InvalidOperationException`
/// ("an asynchronous socket operation is already in progress using this
/// SocketAsyncEventArgs instance") maps. Files are opened during this call, on the caller's
/// thread, as .NET does (even with [`FileIo::Offload`](crate::FileIo::Offload), which then offloads only the reads).
///
/// # Errors
///
/// What .NET throws from the call comes back as a (boxed) [`StartError`] holding the arguments
/// object: not connected (.NET's `NotSupportedException`), not a socket, and files that cannot
/// be opened (missing file or directory, empty path, a directory, no permission). Everything
/// else — a range past the end of its file, a datagram too large, a peer reset — is the
/// operation's result, in [`SendPacketsArgs::error`], whether it completed synchronously or
/// through the callback.
///
/// # Cancel safety
///
/// Not an async fn: there is no future to drop. A pending operation runs in its own task until
/// it completes or fails (a peer that stops reading stalls it, as it would stall .NET's, unless
/// the options set a [`stall_timeout`](SendOptions::stall_timeout)); the handle in
/// [`Started::Pending`] shows its progress meanwhile. Closing the socket from elsewhere is not
/// possible while the task holds its `Arc`. If the runtime shuts down while the operation is
/// pending, the callback is still called exactly once, from the shutdown, with an
/// [`ErrorKind::Socket`] error ("the runtime shut down during the send") and the progress made.
///
/// # Panics
///
/// When called outside a tokio runtime (a pending send needs one for its task), before
/// anything is checked or sent, as `tokio::spawn` does.
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
/// use sendpackets::tokio::{SendPacketsArgs, Started, send_packets_async};
/// use std::sync::Arc;
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async {
/// let (a, mut b) = tokio::net::UnixStream::pair()?;
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let tx = std::sync::Mutex::new(Some(tx));
/// let mut args = SendPacketsArgs::new(42u32, move |args: SendPacketsArgs<u32>| {
///     // Called once, with the finished object, when the send went pending.
///     if let Some(tx) = tx.lock().unwrap().take() {
///         let _ = tx.send(args);
///     }
/// });
/// args.elements = vec![Element::memory(vec![9u8; 8 << 20])]; // more than the socket holds
///
/// let started = send_packets_async(&Arc::new(a), args)?;
/// assert!(matches!(started, Started::Pending(_)));
/// let mut got = vec![0u8; 8 << 20];
/// b.read_exact(&mut got).await?;
/// let args = rx.await?;
/// assert_eq!((args.user_token, args.bytes_transferred()), (42, 8 << 20));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_packets_async<S, T>(
    socket: &Arc<S>,
    args: SendPacketsArgs<T>,
) -> Result<Started<T>, Box<StartError<T>>>
where
    S: AsyncSocket + Send + Sync + 'static,
    T: Send + 'static,
{
    use std::os::fd::AsFd;

    // A pending send needs a runtime to go on: know it before the first byte goes out.
    let runtime = tokio::runtime::Handle::try_current()
        .expect("send_packets_async must be called within a tokio runtime");
    let sock = socket.as_fd();
    args.progress.publish(Default::default());
    let options = args.options;
    let known = Known::Hint(socket.hint());
    let mut op = Operation::new(SysKernel, known, &options, Some(args.progress.clone()));
    // The checks (files are opened here, on the caller's thread, as .NET does, even when reads
    // are offloaded) and up to `COMPLETION_SYNC_STEPS` calls without waiting.
    let mut job = None;
    let mut steps = 0;
    while steps < COMPLETION_SYNC_STEPS {
        match op.next(sock, &args.elements) {
            Next::Progressed => steps += 1,
            Next::Elsewhere(checks) if !op.is_sending() => op.resume(Ok(checks.run())),
            Next::Elsewhere(read) => {
                job = Some(read);
                break;
            }
            Next::Wait(_) => break,
            Next::Done(report) => return Ok(Started::Completed(args.complete(Ok(report)))),
            Next::Failed(error) if !op.is_sending() && thrown_at_start(error.kind()) => {
                return Err(Box::new(StartError { error, args }));
            }
            Next::Failed(error) => return Ok(Started::Completed(args.complete(Err(error)))),
        }
    }
    let progress = args.progress.clone();
    let socket = Arc::clone(socket);
    let mut pending = Pending { args: Some(args) };
    runtime.spawn(async move {
        if let Some(job) = job {
            op.resume(drive::elsewhere(job).await);
        }
        let elements = &pending
            .args
            .as_ref()
            .expect("pending has its arguments")
            .elements;
        let result = drive::drive(&*socket, &mut op, elements, false).await;
        // The operation lets go of the socket before the callback runs: a caller that closes
        // its last handle in the callback closes the socket.
        drop(socket);
        pending.complete(result);
    });
    Ok(Started::Pending(progress))
}

/// The arguments of a pending operation, owned by its task. The callback is called exactly
/// once: with the result, or, if the task is dropped first (the runtime shut down), from the
/// drop with an error that carries the progress made.
struct Pending<T> {
    args: Option<SendPacketsArgs<T>>,
}

impl<T> Pending<T> {
    fn complete(&mut self, result: Result<SendReport, SendError>) {
        if let Some(args) = self.args.take() {
            let args = args.complete(result);
            let completed = Arc::clone(&args.completed);
            completed(args);
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if let Some(args) = &self.args {
            let progress = args.progress.get();
            let error = drive::runtime_gone(std::io::Error::other("runtime shut down"))
                .with_progress(progress);
            self.complete(Err(error));
        }
    }
}
