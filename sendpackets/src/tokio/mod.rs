//! The async front end, over tokio's sockets (feature `tokio`, on by default).
//!
//! The same checks, planner and kernel paths as the blocking [`send`](crate::send), driven by
//! tokio's readiness: a full socket never blocks a runtime worker, the send waits for
//! writability instead. Works on current-thread and multi-thread runtimes.
//!
//! ```
//! use sendpackets::Element;
//! use tokio::io::AsyncReadExt;
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let client = TcpStream::connect(listener.local_addr()?).await?;
//! let (mut server, _) = listener.accept().await?;
//!
//! let list = [Element::memory("HTTP/1.1 200 OK\r\n\r\n"), Element::memory("hello")];
//! let report = sendpackets::tokio::send(&client, &list).await?;
//! drop(client);
//!
//! let mut got = String::new();
//! server.read_to_string(&mut got).await?;
//! assert_eq!(got, "HTTP/1.1 200 OK\r\n\r\nhello");
//! assert_eq!(report.bytes_sent, 24);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Files and the runtime
//!
//! Opening files, reading small ranges (`pread`) and `sendfile` all run on the runtime thread
//! by default ([`FileIo::Inline`](crate::FileIo::Inline)). From the page cache they take
//! microseconds; on a page-cache miss each one **waits for the disk**, `sendfile` included, and
//! stalls every task on that worker meanwhile. For content that may be cold, choose
//! [`FileIo::Readahead`](crate::FileIo::Readahead) (ask the kernel to prefetch every range at
//! the start; keeps zero-copy) or [`FileIo::Offload`](crate::FileIo::Offload) (open and read
//! files on tokio's blocking pool; the runtime only ever writes memory to the socket).
//!
//! # Many sends on one socket
//!
//! A server answering many requests on one connection makes a [`Connection`] once: it checks
//! the socket when it is made, and its sends skip those system calls. Its sends take
//! `&mut self`, so two can never interleave on the socket.
//!
//! # Time limits
//!
//! [`SendOptions::timeout`](crate::SendOptions::timeout) and
//! [`SendOptions::stall_timeout`](crate::SendOptions::stall_timeout) end a send with
//! [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) and its exact progress: a client that
//! stops reading is given up on without a watchdog of the caller's own. They need a runtime
//! with its time driver (`enable_time` or `enable_all`).
//!
//! # Flags
//!
//! `DISCONNECT` shuts the connection down after the last byte, as in the blocking send.
//! `REUSE_SOCKET` is refused ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)): it
//! would replace the descriptor under tokio's registration of it.
//!
//! # The module's name
//!
//! This module is named after the runtime it serves, so `use sendpackets::tokio;` would hide
//! the `tokio` crate in that file (and `#[tokio::main]` would then fail to resolve). Call it
//! by its path (`sendpackets::tokio::send_with(..)`), or import it under another name:
//!
//! ```
//! use sendpackets::tokio as sp;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (a, _b) = tokio::net::UnixStream::pair()?;
//!     sp::send(&a, &[sendpackets::Element::memory("hi")]).await?;
//!     Ok(())
//! }
//! ```
//!
//! The completion-style API of .NET's `SendPacketsAsync` is [`send_packets_async`].

mod completion;
mod connection;
mod drive;
mod socket;

use crate::element::Element;
use crate::error::SendError;
use crate::operation::Known;
use crate::options::SendOptions;
use crate::report::{ProgressHandle, SendReport};

pub use completion::{Completion, SendPacketsArgs, StartError, Started, send_packets_async};
pub use connection::Connection;
pub use socket::AsyncSocket;

/// Sends `elements`, in order, over the connected tokio socket `socket`, with default options.
///
/// See [`send_with`].
///
/// # Errors
///
/// As [`send_with`].
///
/// # Cancel safety
///
/// As [`send_with`].
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (a, mut b) = tokio::net::UnixStream::pair()?;
/// let report = sendpackets::tokio::send(&a, &[Element::memory("ping")]).await?;
/// assert_eq!(report.bytes_sent, 4);
/// let mut got = [0u8; 4];
/// b.read_exact(&mut got).await?;
/// assert_eq!(&got, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn send<S: AsyncSocket>(
    socket: &S,
    elements: &[Element],
) -> Result<SendReport, SendError> {
    send_with(socket, elements, &SendOptions::default()).await
}

/// Sends `elements`, in order, over the connected tokio socket `socket`: what
/// [`crate::send_with`] does for a blocking socket, without ever blocking the runtime on a full
/// socket. Datagram sockets send one datagram per end-of-packet mark, as in the blocking send.
///
/// # Errors
///
/// A [`SendError`], as [`crate::send_with`]: the checks before the first byte (not connected,
/// missing file, range past the end, datagram too large) fail with 0 bytes sent; a failure
/// midway carries the exact [`progress`](SendError::progress).
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future midway stops the send after the last kernel call it
/// made, part of the list sent. The socket stays open and usable (uncorked, never left
/// mid-`sendmsg`), for the caller to close or to resume on: pass a [`ProgressHandle`] to
/// [`send_observed`] to know exactly how many bytes and elements the kernel accepted, then
/// [`Progress::remaining`](crate::Progress::remaining) gives what is left. Files the send opened
/// are closed when the future is dropped (with [`FileIo::Offload`](crate::FileIo::Offload), when
/// a read already running on the blocking pool finishes).
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, FileIo, SendOptions, TransmitFlags};
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async {
/// # let dir = std::env::temp_dir().join(format!("sendpackets-tokio-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let body = dir.join("body.bin");
/// std::fs::write(&body, vec![7u8; 100_000])?;
///
/// let (a, mut b) = tokio::net::UnixStream::pair()?;
/// let list = [Element::memory("len=100000\n"), Element::file(&body, ..)];
/// let opts = SendOptions::new()
///     .file_io(FileIo::Offload)
///     .flags(TransmitFlags::DISCONNECT);
/// let reader = tokio::spawn(async move {
///     let mut got = Vec::new();
///     b.read_to_end(&mut got).await.map(|_| got)
/// });
/// let report = sendpackets::tokio::send_with(&a, &list, &opts).await?;
/// assert_eq!(report.bytes_sent, 100_011);
/// assert_eq!(reader.await??.len(), 100_011);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn send_with<S: AsyncSocket>(
    socket: &S,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    drive::run(socket, &mut Known::Nothing, elements, options, None).await
}

/// [`send_with`], publishing its progress to `progress` after every kernel call: for a progress
/// bar, and to know exactly what was sent if the future is dropped.
///
/// # Errors
///
/// As [`send_with`]; the handle then holds the progress of the error too.
///
/// # Cancel safety
///
/// As [`send_with`]. After the future is dropped, `progress` holds exactly what the kernel
/// accepted: every kernel call's result is published before the future can be suspended again.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, ProgressHandle, SendOptions};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (a, _b) = tokio::net::UnixStream::pair()?; // nobody reads `_b`
/// let big = Element::memory(vec![0u8; 64 << 20]);
/// let progress = ProgressHandle::new();
/// let opts = SendOptions::new();
/// let send = sendpackets::tokio::send_observed(&a, std::slice::from_ref(&big), &opts, &progress);
/// // Give up after 50 ms: the socket buffer filled long before.
/// assert!(tokio::time::timeout(Duration::from_millis(50), send).await.is_err());
/// let sent = progress.get();
/// assert!(sent.bytes_sent > 0 && sent.bytes_sent < 64 << 20);
/// assert_eq!((sent.elements_completed, sent.offset_in_element), (0, sent.bytes_sent));
/// let rest = sent.remaining(&[big]); // what a resumed send would send
/// assert_eq!(rest.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn send_observed<S: AsyncSocket>(
    socket: &S,
    elements: &[Element],
    options: &SendOptions,
    progress: &ProgressHandle,
) -> Result<SendReport, SendError> {
    drive::run(
        socket,
        &mut Known::Nothing,
        elements,
        options,
        Some(progress),
    )
    .await
}
