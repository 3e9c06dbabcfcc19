//! An accepted connection as the library knows it: every response is one sendpackets call on
//! a `sendpackets::tokio::Connection`, the stall limit in `SendOptions::stall_timeout`.

use std::time::Duration;

use sendpackets::tokio::Connection;
use sendpackets::{Engine, ErrorKind, SendError, SendOptions};
use sendpackets_http::Response;
use tokio::net::TcpStream;

/// Why a response did not go out whole. The connection is closed either way.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// No progress for the stall timeout: the client stopped reading (the library's error,
    /// with its progress).
    Stalled(SendError),
    /// The library's error (peer reset, file truncated, ...), with its progress.
    Send(SendError),
}

impl SendFailure {
    /// Bytes the kernel took before the failure.
    pub(crate) fn bytes_sent(&self) -> u64 {
        match self {
            SendFailure::Stalled(e) | SendFailure::Send(e) => e.progress().bytes_sent,
        }
    }
}

/// An accepted connection as the library knows it: checked once (connected TCP), then every
/// response is one send on it, with the stall timeout in the options.
#[derive(Debug)]
pub(crate) struct Peer {
    conn: Connection<TcpStream>,
    /// The most time a response may go without progress.
    stall: Duration,
    /// Bodies of at least this many bytes go with [`Engine::ZeroCopy`] (`sendfile`, never a
    /// copy into the process), the others with the library's choice.
    zero_copy_from: u64,
    /// Whether the connection's options are the zero-copy ones now (they change only when
    /// the kind of response does).
    zero_copy: bool,
}

impl Peer {
    /// Takes an accepted stream; `stall`: the most time a response may go without progress.
    ///
    /// # Errors
    ///
    /// The library's check of the socket (not connected: the client already left).
    pub(crate) fn new(
        stream: TcpStream,
        stall: Duration,
        zero_copy_from: u64,
    ) -> Result<Peer, SendError> {
        let mut conn = Connection::new(stream)?;
        conn.set_options(options(stall, false));
        Ok(Peer {
            conn,
            stall,
            zero_copy_from,
            zero_copy: false,
        })
    }

    /// The stream, for reading requests.
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        self.conn.get_mut()
    }

    /// The stream back, for the lingering close.
    pub(crate) fn into_stream(self) -> TcpStream {
        self.conn.into_inner()
    }

    /// Sends the response (head, then its body) in one library call. Returns the bytes sent.
    ///
    /// # Errors
    ///
    /// [`SendFailure`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (as the library's send): dropping the future leaves part of the
    /// response sent; the caller then closes the connection.
    pub(crate) async fn send(&mut self, response: Response) -> Result<u64, SendFailure> {
        let body_len = response.body_len();
        let list = response.into_elements();
        // A second element is the file range.
        let zero_copy = list.len() > 1 && body_len >= self.zero_copy_from;
        if zero_copy != self.zero_copy {
            self.conn.set_options(options(self.stall, zero_copy));
            self.zero_copy = zero_copy;
        }
        match self.conn.send(&list).await {
            Ok(report) => Ok(report.bytes_sent),
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(SendFailure::Stalled(e)),
            Err(e) => Err(SendFailure::Send(e)),
        }
    }
}

/// The options of a response: the stall timeout, and `sendfile` forced for a zero-copy one.
fn options(stall: Duration, zero_copy: bool) -> SendOptions {
    let opts = SendOptions::new().stall_timeout(stall);
    if zero_copy {
        opts.engine(Engine::ZeroCopy)
    } else {
        opts
    }
}
