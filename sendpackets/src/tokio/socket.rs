//! The tokio sockets a send can drive.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;

use tokio::io::Interest;

mod private {
    pub trait Sealed {}
}

/// A tokio socket that an async send can write to: [`TcpStream`](tokio::net::TcpStream),
/// [`UnixStream`](tokio::net::UnixStream), and connected
/// [`UdpSocket`](tokio::net::UdpSocket) and [`UnixDatagram`](tokio::net::UnixDatagram).
///
/// Sealed: the send relies on the socket's readiness being tokio's, which only these types
/// guarantee.
pub trait AsyncSocket: AsFd + private::Sealed {
    /// Waits until tokio considers the socket writable.
    #[doc(hidden)]
    fn wait_writable(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Runs `f` if tokio considers the socket writable; a `WouldBlock` from `f` clears that
    /// readiness (tokio's `try_io`).
    #[doc(hidden)]
    fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;

    /// What the type says about the socket, with no system call: (datagram, IP).
    #[doc(hidden)]
    fn shape(&self) -> (bool, bool);
}

macro_rules! async_socket {
    ($($ty:ty => $shape:expr),* $(,)?) => {$(
        impl private::Sealed for $ty {}

        impl AsyncSocket for $ty {
            fn wait_writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                self.writable()
            }

            fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, f)
            }

            fn shape(&self) -> (bool, bool) {
                $shape
            }
        }
    )*};
}

async_socket!(
    tokio::net::TcpStream => (false, true),
    tokio::net::UnixStream => (false, false),
    tokio::net::UdpSocket => (true, true),
    tokio::net::UnixDatagram => (true, false),
);
