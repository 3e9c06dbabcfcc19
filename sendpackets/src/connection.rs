//! A connected socket checked once, for many sends.

use std::fmt;
use std::os::fd::AsFd;

use crate::blocking;
use crate::element::Element;
use crate::error::SendError;
use crate::operation::{Known, SocketState};
use crate::options::SendOptions;
use crate::report::SendReport;
use crate::transfer::SysKernel;

/// A connected socket, checked once, for many blocking sends: a server's per-connection sender.
///
/// [`send`](crate::send) asks the socket on every call whether it is connected and of which
/// kind (TCP, UDP, Unix, stream or datagram), and on a datagram socket what it may send (the
/// datagram limit, UDP GSO, the path MTU): two to five system calls. For a 1 KiB response that
/// is sent with two (`pread` + `send`), those questions are a third of the cost. A `Connection`
/// asks once, when it is made, and every send on it skips them; everything else (the file and
/// range checks, the paths, the errors and their progress) is the same.
///
/// Sends take `&mut self`: one send at a time, so two sends can never interleave their bytes on
/// the socket. Sharing a `Connection` between threads to send from both does not compile:
///
/// ```compile_fail
/// use std::sync::Arc;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let conn = Arc::new(sendpackets::Connection::new(a).unwrap());
/// let other = Arc::clone(&conn);
/// std::thread::spawn(move || other.send(&[sendpackets::Element::memory("x")]));
/// conn.send(&[sendpackets::Element::memory("y")]); // error: `conn` is not mutable
/// ```
///
/// For tokio sockets, use [`sendpackets::tokio::Connection`](crate::tokio::Connection).
///
/// The answers stay true for the life of a connected socket. After a send with
/// [`TransmitFlags::DISCONNECT`](crate::TransmitFlags::DISCONNECT) the connection is over:
/// later sends fail with the socket's error; make a new `Connection` for a new connection.
///
/// # Examples
///
/// ```
/// use sendpackets::{Connection, Element};
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut conn = Connection::new(&a)?;
/// for i in 0..3 {
///     conn.send(&[Element::memory(format!("response {i}\n"))])?;
/// }
/// drop(conn);
/// drop(a);
/// let mut got = String::new();
/// b.read_to_string(&mut got)?;
/// assert_eq!(got, "response 0\nresponse 1\nresponse 2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Connection<S: AsFd> {
    socket: S,
    state: SocketState,
    options: SendOptions,
}

impl<S: AsFd> Connection<S> {
    /// Checks `socket` once: it must be connected (a stream with a peer, a datagram socket with
    /// a default remote).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotConnected`](crate::ErrorKind::NotConnected), or
    /// [`ErrorKind::UnsupportedSocket`](crate::ErrorKind::UnsupportedSocket) for a descriptor
    /// that is not a stream or datagram socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Connection, ErrorKind};
    ///
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?; // no default remote
    /// let err = Connection::new(&udp).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotConnected);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(socket: S) -> Result<Self, SendError> {
        let state = SocketState::probe(socket.as_fd(), None)?;
        Ok(Connection {
            socket,
            state,
            options: SendOptions::default(),
        })
    }

    /// Sends `elements` as [`crate::send_with`] does, with this connection's
    /// [options](Self::set_options), without asking the socket again.
    ///
    /// # Errors
    ///
    /// As [`crate::send_with`], but for the socket checks, made once by [`new`](Self::new): a
    /// socket that stopped being connected fails with the socket's own error
    /// ([`ErrorKind::Socket`](crate::ErrorKind::Socket)).
    ///
    /// # Examples
    ///
    /// See [`Connection`].
    pub fn send(&mut self, elements: &[Element]) -> Result<SendReport, SendError> {
        let mut known = Known::State(self.state);
        let r = blocking::run(
            SysKernel,
            self.socket.as_fd(),
            &mut known,
            elements,
            &self.options,
        );
        self.keep(known);
        r
    }

    /// The options of every later [`send`](Self::send) (default: [`SendOptions::default`]).
    /// A server sets its limits once per connection; a last response sets
    /// [`TransmitFlags::DISCONNECT`](crate::TransmitFlags::DISCONNECT) before its send.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Connection, Element, SendOptions, TransmitFlags};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut conn = Connection::new(a)?;
    /// conn.set_options(SendOptions::new().flags(TransmitFlags::DISCONNECT));
    /// let report = conn.send(&[Element::memory("last words")])?;
    /// assert_eq!(report.bytes_sent, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_options(&mut self, options: SendOptions) {
        self.options = options;
    }

    /// Keeps what a send learned of the socket for the next one.
    fn keep(&mut self, known: Known) {
        if let Known::State(s) = known {
            self.state = s;
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.socket
    }

    /// The socket, giving up the connection.
    pub fn into_inner(self) -> S {
        self.socket
    }
}

impl<S: AsFd> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket.as_fd())
            .field("state", &self.state)
            .finish()
    }
}
