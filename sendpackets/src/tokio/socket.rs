//! The tokio sockets a send can drive.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;

use tokio::io::Interest;

use crate::sys::{KindHint, SocketKind};

// The sealed trait names crate-private types: it cannot be named (nor implemented, nor its
// methods called) outside the crate, so they never reach a user.
#[allow(private_interfaces)]
pub(crate) mod private {
    use std::future::Future;
    use std::io;

    use crate::sys::KindHint;

    /// What the send needs of a tokio socket; sealed, so that only tokio's own types (whose
    /// readiness the send relies on) can be async sockets.
    pub trait Sealed {
        /// Waits until tokio considers the socket writable.
        fn wait_writable(&self) -> impl Future<Output = io::Result<()>> + Send;

        /// Runs `f` if tokio considers the socket writable; a `WouldBlock` from `f` clears that
        /// readiness (tokio's `try_io`).
        fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;

        /// What the type says about the socket, with no system call.
        fn hint(&self) -> KindHint;
    }
}

/// A tokio socket that an async send can write to: [`TcpStream`](tokio::net::TcpStream),
/// [`UnixStream`](tokio::net::UnixStream), and connected
/// [`UdpSocket`](tokio::net::UdpSocket) and [`UnixDatagram`](tokio::net::UnixDatagram).
///
/// Sealed: the send relies on the socket's readiness being tokio's, which only these types
/// guarantee.
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
/// use sendpackets::tokio::AsyncSocket;
///
/// // One helper for every kind of tokio socket.
/// async fn ping(socket: &impl AsyncSocket) -> Result<u64, sendpackets::SendError> {
///     let report = sendpackets::tokio::send(socket, &[Element::memory("ping")]).await?;
///     Ok(report.bytes_sent)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (a, _b) = tokio::net::UnixStream::pair()?;
/// assert_eq!(ping(&a).await?, 4);
/// let (c, _d) = tokio::net::UnixDatagram::pair()?;
/// assert_eq!(ping(&c).await?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait AsyncSocket: AsFd + private::Sealed {}

macro_rules! async_socket {
    ($($ty:ty => $kind:expr, $ip:expr);* $(;)?) => {$(
        #[allow(private_interfaces)]
        impl private::Sealed for $ty {
            fn wait_writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                self.writable()
            }

            fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, f)
            }

            fn hint(&self) -> KindHint {
                KindHint { kind: $kind, ip: $ip }
            }
        }

        impl AsyncSocket for $ty {}
    )*};
}

async_socket!(
    tokio::net::TcpStream => SocketKind::Stream, true;
    tokio::net::UnixStream => SocketKind::Stream, false;
    tokio::net::UdpSocket => SocketKind::Datagram, true;
    tokio::net::UnixDatagram => SocketKind::Datagram, false;
);
