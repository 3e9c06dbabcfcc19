//! A connected tokio socket checked once, for many async sends.

use std::fmt;

use crate::element::Element;
use crate::error::SendError;
use crate::operation::{Known, SocketState};
use crate::options::SendOptions;
use crate::report::SendReport;

use super::AsyncSocket;
use super::drive;

/// A connected tokio socket, checked once, for many async sends: a server's per-connection
/// sender, the async twin of [`sendpackets::Connection`](crate::Connection).
///
/// [`send_with`](super::send_with) asks the socket on every call whether it is connected (and,
/// on a datagram socket, its datagram limit, UDP GSO and path MTU). A `Connection` asks once,
/// when it is made, and every send skips those calls; the file and range checks, the kernel
/// paths, the errors and their progress are the same. Sends take `&mut self`, so two sends can
/// never interleave on the socket; [`get_mut`](Self::get_mut) reads requests in between.
///
/// # Examples
///
/// A keep-alive HTTP/1.1 loop: read a request, answer with header + file in one send, repeat.
///
/// ```
/// use sendpackets::{Element, OpenFile};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("index.html");
/// std::fs::write(&path, "<h1>hello</h1>")?;
/// let page = OpenFile::open(&path)?; // opened and checked once, sent many times
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (stream, _) = listener.accept().await?;
/// stream.set_nodelay(true)?;
///
/// let server = tokio::spawn(async move {
///     let mut conn = sendpackets::tokio::Connection::new(stream)?;
///     let mut buf = vec![0u8; 4096];
///     let mut have = 0;
///     loop {
///         // Read until a whole request head is in (a real server parses it, e.g. httparse).
///         let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
///             let n = conn.get_mut().read(&mut buf[have..]).await?;
///             if n == 0 { return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(()) }
///             have += n;
///             continue;
///         };
///         buf.copy_within(end + 4..have, 0);
///         have -= end + 4;
///         let head = format!(
///             "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
///             page.len()
///         );
///         conn.send(&[Element::memory(head), page.element(..)]).await?;
///     }
/// });
///
/// for _ in 0..2 {
///     client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
///     let mut got = vec![0u8; 80];
///     let want = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<h1>hello</h1>";
///     let got = &mut got[..want.len()];
///     client.read_exact(got).await?;
///     assert_eq!(got, want.as_bytes());
/// }
/// drop(client);
/// server.await?.map_err(|e| e.to_string())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Connection<S: AsyncSocket> {
    socket: S,
    state: SocketState,
    options: SendOptions,
}

impl<S: AsyncSocket> Connection<S> {
    /// Checks `socket` once: it must be connected (a stream with a peer, a datagram socket with
    /// a default remote). Not async: the checks are a few non-blocking system calls.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotConnected`](crate::ErrorKind::NotConnected), or
    /// [`ErrorKind::UnsupportedSocket`](crate::ErrorKind::UnsupportedSocket).
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::ErrorKind;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?; // no default remote
    /// let err = sendpackets::tokio::Connection::new(udp).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotConnected);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(socket: S) -> Result<Self, SendError> {
        let state = SocketState::probe(socket.as_fd(), Some(socket.hint()))?;
        Ok(Connection {
            socket,
            state,
            options: SendOptions::default(),
        })
    }

    /// Sends `elements` as [`sendpackets::tokio::send_with`](super::send_with) does, with this
    /// connection's [options](Self::set_options), without asking the socket again.
    ///
    /// # Errors
    ///
    /// As [`sendpackets::tokio::send_with`](super::send_with), but for the socket checks, made
    /// once by [`new`](Self::new): a socket that stopped being connected fails with the
    /// socket's own error ([`ErrorKind::Socket`](crate::ErrorKind::Socket)).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future midway leaves part of the list sent, as
    /// [`sendpackets::tokio::send_with`](super::send_with) says; use
    /// [`SendOptions::observe`] to know exactly how much. A server usually closes
    /// the connection then. Prefer [`SendOptions::stall_timeout`] to a `select!`: the error
    /// carries the progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Element, ErrorKind, SendOptions};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, _b) = tokio::net::UnixStream::pair()?; // a peer that never reads
    /// let mut conn = sendpackets::tokio::Connection::new(a)?;
    /// conn.set_options(SendOptions::new().stall_timeout(Duration::from_millis(50)));
    /// let big = [Element::memory(vec![0u8; 16 << 20])];
    /// let err = conn.send(&big).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert!(err.progress().bytes_sent > 0); // what the socket buffer took
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send(&mut self, elements: &[Element]) -> Result<SendReport, SendError> {
        let mut known = Known::State(self.state);
        let r = drive::run(&self.socket, &mut known, elements, &self.options).await;
        if let Known::State(s) = known {
            self.state = s;
        }
        r
    }

    /// The options of every later [`send`](Self::send) (default: [`SendOptions::default`]).
    /// A server sets its limits once per connection, and
    /// [`TransmitFlags::DISCONNECT`](crate::TransmitFlags::DISCONNECT) before a last response.
    pub fn set_options(&mut self, options: SendOptions) {
        self.options = options;
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.socket
    }

    /// The socket, to read from it between sends.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// The socket, giving up the connection.
    pub fn into_inner(self) -> S {
        self.socket
    }
}

impl<S: AsyncSocket> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket.as_fd())
            .field("state", &self.state)
            .finish()
    }
}
