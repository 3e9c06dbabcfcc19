//! The blocking front end.

use std::os::fd::{AsFd, BorrowedFd};

use crate::element::Element;
use crate::error::SendError;
use crate::express::{self, Attempt};
use crate::operation;
use crate::options::{FileIo, SendOptions};
use crate::report::{ProgressHandle, SendReport};
use crate::sys::{self, SocketInfo};
use crate::transfer::{Kernel, Step, Stop, SysKernel};

/// Sends `elements`, in order, over the connected socket `socket`, with default options.
///
/// See [`send_with`].
///
/// # Errors
///
/// As [`send_with`].
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
///
/// let (a, mut b) = UnixStream::pair()?;
/// let report = sendpackets::send(&a, &[Element::memory("hello, "), Element::memory("world")])?;
/// assert_eq!(report.bytes_sent, 12);
/// drop(a);
/// let mut got = String::new();
/// b.read_to_string(&mut got)?;
/// assert_eq!(got, "hello, world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send(socket: impl AsFd, elements: &[Element]) -> Result<SendReport, SendError> {
    send_with(socket, elements, &SendOptions::default())
}

/// Sends `elements`, in order, over the connected socket `socket`: a `TcpStream` (IPv4 or IPv6),
/// a `UnixStream`, a connected `UdpSocket` or `UnixDatagram`, or any connected socket as
/// [`AsFd`].
///
/// Before the first byte, the socket must be connected, every path file is opened and every
/// range checked (and, on datagram sockets, every datagram's size). Then the elements go out with
/// the fastest kernel path for each (see [`Engine`](crate::Engine)). On a non-blocking socket the
/// call waits for writability with `poll`; on a blocking socket with a send timeout
/// (`SO_SNDTIMEO`) an expired timeout is an [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut)
/// error.
///
/// "Sent" means accepted by the local kernel, not delivered. With zero-copy paths the kernel reads
/// file pages after this returns: bytes changed in a file meanwhile can reach the wire.
///
/// # Errors
///
/// A [`SendError`]; its [`kind`](SendError::kind) says what, [`element`](SendError::element)
/// which element, and [`progress`](SendError::progress) how many bytes went out (zero for
/// anything found by the checks). Files the operation opened are closed on every outcome.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, SendOptions, TransmitFlags};
/// use std::io::Read;
/// use std::net::{TcpListener, TcpStream};
///
/// let dir = std::env::temp_dir().join(format!("sendpackets-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let body = dir.join("body.txt");
/// std::fs::write(&body, "file bytes")?;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
///
/// let list = [
///     Element::memory("header\n"),
///     Element::file(&body, ..),
///     Element::memory("\ntrailer").end_of_packet(),
/// ];
/// let opts = SendOptions::new().flags(TransmitFlags::DISCONNECT);
/// let report = sendpackets::send_with(&client, &list, &opts)?;
/// assert_eq!(report.bytes_sent, 25);
///
/// let mut got = String::new();
/// server.read_to_string(&mut got)?; // DISCONNECT: the peer sees end of stream
/// assert_eq!(got, "header\nfile bytes\ntrailer");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_with(
    socket: impl AsFd,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    send_using(&mut SysKernel, socket, elements, options)
}

/// [`send_with`], publishing its progress to `progress` after every kernel call, so another
/// thread can show it while the send runs.
///
/// # Errors
///
/// As [`send_with`]; the handle then holds the progress of the error too.
///
/// # Examples
///
/// See [`ProgressHandle`].
pub fn send_observed(
    socket: impl AsFd,
    elements: &[Element],
    options: &SendOptions,
    progress: &ProgressHandle,
) -> Result<SendReport, SendError> {
    send_using_observed(&mut SysKernel, socket, elements, options, Some(progress))
}

/// [`send_with`] over any [`Kernel`] (tests inject faults through it).
pub(crate) fn send_using(
    kernel: &mut impl Kernel,
    socket: impl AsFd,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    send_using_observed(kernel, socket, elements, options, None)
}

fn send_using_observed(
    kernel: &mut impl Kernel,
    socket: impl AsFd,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    send_checked(kernel, socket.as_fd(), None, elements, options, progress)
}

/// A blocking send; `known` is the socket as a [`Connection`](crate::Connection) checked it
/// (then the socket is not asked again).
pub(crate) fn send_checked(
    kernel: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    known: Option<SocketInfo>,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    // A blocking send reads on its own thread: offloading has nowhere to go.
    let mut options = *options;
    if options.file_io == FileIo::Offload {
        options.file_io = FileIo::Inline;
    }
    let options = &options;
    if progress.is_none() {
        let kind = known.map(|info| info.kind);
        match express::try_send(kernel, sock, elements, options, kind) {
            Attempt::Sent(report) => return Ok(report),
            Attempt::Partial { bytes, calls } => {
                let base = express::progress_at(elements, bytes);
                let rest = base.remaining(elements);
                let r = send_full(kernel, sock, known, &rest, options, None);
                return express::rebase(base, calls, r);
            }
            Attempt::Failed(e) => return Err(e),
            Attempt::NotEligible | Attempt::Fallback => {}
        }
    }
    send_full(kernel, sock, known, elements, options, progress)
}

/// The full path: every check, then the planner's batches.
fn send_full(
    kernel: &mut impl Kernel,
    sock: BorrowedFd<'_>,
    known: Option<SocketInfo>,
    elements: &[Element],
    options: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let info = match known {
        Some(info) => info,
        None => operation::check_socket(sock)?,
    };
    let resolved = crate::resolve::resolve(elements)?;
    let mut transfer = operation::begin(sock, info, resolved, options)?;
    loop {
        let step = transfer.step(kernel, sock);
        if let Some(p) = progress {
            p.publish(transfer.progress());
        }
        match step {
            Ok(Step::Progressed) => {}
            Ok(Step::Done) => break,
            Err(Stop::WouldBlock) => {
                transfer.count_wait();
                if let Err(e) = sys::poll_writable(sock) {
                    transfer.uncork(kernel, sock);
                    return Err(crate::error::SendError::new(crate::ErrorKind::Socket)
                        .with_source(e)
                        .with_progress(transfer.progress()));
                }
            }
            Err(Stop::Failed(e)) => return Err(e),
        }
    }
    operation::finish(sock, &transfer, options)
}
