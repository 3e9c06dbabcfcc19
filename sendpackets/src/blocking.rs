//! The blocking front end.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::element::Element;
use crate::error::{ErrorKind, SendError};
use crate::operation::{self, Known, Next, Operation, Waited};
use crate::options::{SendOptions, TransmitFlags};
use crate::report::SendReport;
use crate::sys::{self, Ready};
use crate::transfer::{Kernel, SysKernel};

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
/// call waits for writability with `poll`. A send timeout — the options'
/// [`timeout`](SendOptions::timeout) or [`stall_timeout`](SendOptions::stall_timeout), or the
/// socket's own `SO_SNDTIMEO` in either mode — that expires is an
/// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) error with exact progress.
///
/// One send at a time per socket: two sends running at once on the same socket (from two
/// threads) interleave their bytes. A [`Connection`](crate::Connection) makes that impossible
/// (its sends take `&mut self`).
///
/// This blocks the calling thread. Inside a tokio runtime, a non-blocking socket (every tokio
/// socket) is refused with [`ErrorKind::Misuse`](crate::ErrorKind::Misuse) before
/// the first byte, since waiting for it here would stall the runtime: use
/// [`sendpackets::tokio`](crate::tokio) there.
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
    run(
        SysKernel,
        socket.as_fd(),
        &mut Known::Nothing,
        elements,
        options,
    )
}

/// [`send_with`] with [`TransmitFlags::REUSE_SOCKET`] honoured: after the last byte and the
/// `DISCONNECT` shutdown, the descriptor `socket` owns is replaced in place by a fresh,
/// unconnected socket of the same domain, type and protocol (.NET's behaviour on Linux), ready
/// to be connected again. Takes `&mut OwnedFd` because only the owner of a descriptor may
/// replace what it refers to.
///
/// # Errors
///
/// As [`send_with`]; a failure to make or install the fresh socket is an
/// [`ErrorKind::Socket`] error with the full progress (every byte was sent).
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, SendOptions, TransmitFlags};
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut fd = OwnedFd::from(a);
/// let opts = SendOptions::new().flags(TransmitFlags::DISCONNECT | TransmitFlags::REUSE_SOCKET);
/// sendpackets::send_reusing(&mut fd, &[Element::memory("bye")], &opts)?;
/// // `fd` is now a fresh, unconnected Unix stream socket.
/// let again = UnixStream::from(fd);
/// assert!(again.peer_addr().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_reusing(
    socket: &mut OwnedFd,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    let flags = options.flags;
    let reuse = flags.contains(TransmitFlags::REUSE_SOCKET | TransmitFlags::DISCONNECT);
    let plain = options
        .clone()
        .flags(flags.without(TransmitFlags::REUSE_SOCKET));
    let report = send_with(&*socket, elements, &plain)?;
    if reuse {
        sys::replace_with_fresh_socket(socket).map_err(|e| {
            SendError::new(ErrorKind::Socket)
                .with_detail("REUSE_SOCKET: replacing the socket failed".into())
                .with_source(e)
                .with_progress(operation::progress_of(&report))
        })?;
    }
    Ok(report)
}

/// [`send_with`] over any [`Kernel`] (tests inject faults through it).
#[cfg(test)]
pub(crate) fn send_using(
    kernel: &mut impl Kernel,
    socket: impl AsFd,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    run(
        kernel,
        socket.as_fd(),
        &mut Known::Nothing,
        elements,
        options,
    )
}

/// The blocking front end: step the operation, and `poll` when it waits.
pub(crate) fn run(
    kernel: impl Kernel,
    sock: BorrowedFd<'_>,
    known: &mut Known,
    elements: &[Element],
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    if let Err(e) = refuse_runtime_socket(sock) {
        if let Some(p) = &options.progress {
            p.publish(e.progress());
        }
        return Err(e);
    }
    let mut op = Operation::new(kernel, *known, options);
    let r = loop {
        match op.next(sock, elements) {
            Next::Progressed => {}
            Next::Wait(limit) => op.waited(match sys::poll_writable(sock, limit) {
                Ok(Ready::Writable) => Waited::Writable,
                Ok(Ready::TimedOut) => Waited::TimedOut,
                Err(e) => Waited::Failed(e),
            }),
            // This thread may block: the job runs here.
            Next::Elsewhere(job) => op.resume(Ok(job.run())),
            Next::Done(report) => break Ok(report),
            Next::Failed(e) => break Err(e),
        }
    };
    *known = op.known();
    r
}

/// Inside a tokio runtime, a non-blocking socket is almost surely a tokio socket: waiting for
/// it with `poll` here would block a thread of the runtime (a timer of the runtime was seen
/// firing a second late). Refused before the first byte, naming the async API.
fn refuse_runtime_socket(sock: BorrowedFd<'_>) -> Result<(), SendError> {
    #[cfg(feature = "tokio")]
    if ::tokio::runtime::Handle::try_current().is_ok() && sys::is_nonblocking(sock).unwrap_or(false)
    {
        return Err(SendError::new(ErrorKind::Misuse).with_detail(
            "a non-blocking socket inside a tokio runtime: the blocking API would stall the \
             runtime; use sendpackets::tokio (send_with, or tokio::Connection)"
                .into(),
        ));
    }
    let _ = sock;
    Ok(())
}
