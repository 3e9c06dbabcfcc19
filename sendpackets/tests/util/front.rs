//! The front ends a case runs through: the blocking send, and the tokio send on both runtime
//! flavours. One function sends through any of them, so every case is written once.

use std::future::Future;
use std::os::fd::AsFd;
#[cfg(feature = "tokio")]
use std::os::fd::{BorrowedFd, OwnedFd};

use sendpackets::{Element, ProgressHandle, SendError, SendOptions, SendReport};

/// Where a send runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    Blocking,
    /// A `sendpackets::Connection` made for the send (the socket checked once).
    Connection,
    /// `sendpackets::tokio` on a current-thread runtime.
    CurrentThread,
    /// `sendpackets::tokio` on a multi-thread runtime with two workers.
    MultiThread,
    /// A `sendpackets::tokio::Connection` made for the send, on a multi-thread runtime.
    AsyncConnection,
}

#[cfg(feature = "tokio")]
pub const FRONTS: [Front; 5] = [
    Front::Blocking,
    Front::Connection,
    Front::CurrentThread,
    Front::MultiThread,
    Front::AsyncConnection,
];

/// The tokio fronts on both runtime flavours (none without the `tokio` feature).
#[cfg(feature = "tokio")]
pub const RUNTIMES: &[Front] = &[Front::CurrentThread, Front::MultiThread];
#[cfg(not(feature = "tokio"))]
pub const RUNTIMES: &[Front] = &[];

/// Without the `tokio` feature, the blocking fronts only.
#[cfg(not(feature = "tokio"))]
pub const FRONTS: [Front; 2] = [Front::Blocking, Front::Connection];

/// A runtime of `front`'s flavour (not for `Blocking`).
pub fn runtime(front: Front) -> tokio::runtime::Runtime {
    let mut b = match front {
        Front::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Front::MultiThread | Front::AsyncConnection => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        Front::Blocking | Front::Connection => unreachable!("a blocking front has no runtime"),
    };
    b.enable_all().build().expect("tokio runtime")
}

#[cfg(feature = "tokio")]
/// A tokio socket made from a duplicate of a connected (or not) socket descriptor.
pub enum TokioSocket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Udp(tokio::net::UdpSocket),
    UnixDgram(tokio::net::UnixDatagram),
}

#[cfg(feature = "tokio")]
impl TokioSocket {
    /// Must run inside a runtime. The descriptor is duplicated and made non-blocking (which the
    /// original shares: the caller restores it).
    pub fn from_fd(sock: BorrowedFd<'_>) -> TokioSocket {
        let owned: OwnedFd = sock.try_clone_to_owned().expect("dup");
        let r = socket2::SockRef::from(&owned);
        let ty = r.r#type().expect("SO_TYPE");
        let unix = r.domain().expect("SO_DOMAIN") == socket2::Domain::UNIX;
        r.set_nonblocking(true).unwrap();
        if ty == socket2::Type::STREAM && unix {
            TokioSocket::Unix(tokio::net::UnixStream::from_std(owned.into()).unwrap())
        } else if ty == socket2::Type::STREAM {
            TokioSocket::Tcp(tokio::net::TcpStream::from_std(owned.into()).unwrap())
        } else if unix {
            TokioSocket::UnixDgram(tokio::net::UnixDatagram::from_std(owned.into()).unwrap())
        } else {
            TokioSocket::Udp(tokio::net::UdpSocket::from_std(owned.into()).unwrap())
        }
    }

    pub async fn send(
        &self,
        list: &[Element],
        opts: &SendOptions,
        progress: Option<&ProgressHandle>,
    ) -> Result<SendReport, SendError> {
        async fn one<S: sendpackets::tokio::AsyncSocket>(
            s: &S,
            list: &[Element],
            opts: &SendOptions,
            progress: Option<&ProgressHandle>,
        ) -> Result<SendReport, SendError> {
            match progress {
                Some(p) => sendpackets::tokio::send_with(s, list, &opts.clone().observe(p)).await,
                None => sendpackets::tokio::send_with(s, list, opts).await,
            }
        }
        match self {
            TokioSocket::Tcp(s) => one(s, list, opts, progress).await,
            TokioSocket::Unix(s) => one(s, list, opts, progress).await,
            TokioSocket::Udp(s) => one(s, list, opts, progress).await,
            TokioSocket::UnixDgram(s) => one(s, list, opts, progress).await,
        }
    }

    /// Sends through a `sendpackets::tokio::Connection` made of this socket.
    pub async fn send_connection(
        self,
        list: &[Element],
        opts: &SendOptions,
        progress: Option<&ProgressHandle>,
    ) -> Result<SendReport, SendError> {
        async fn one<S: sendpackets::tokio::AsyncSocket>(
            s: S,
            list: &[Element],
            opts: &SendOptions,
            progress: Option<&ProgressHandle>,
        ) -> Result<SendReport, SendError> {
            let mut conn = sendpackets::tokio::Connection::new(s)?;
            conn.set_options(match progress {
                Some(p) => opts.clone().observe(p),
                None => opts.clone(),
            });
            conn.send(list).await
        }
        match self {
            TokioSocket::Tcp(s) => one(s, list, opts, progress).await,
            TokioSocket::Unix(s) => one(s, list, opts, progress).await,
            TokioSocket::Udp(s) => one(s, list, opts, progress).await,
            TokioSocket::UnixDgram(s) => one(s, list, opts, progress).await,
        }
    }
}

#[cfg(feature = "tokio")]
impl AsFd for TokioSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            TokioSocket::Tcp(s) => s.as_fd(),
            TokioSocket::Unix(s) => s.as_fd(),
            TokioSocket::Udp(s) => s.as_fd(),
            TokioSocket::UnixDgram(s) => s.as_fd(),
        }
    }
}

/// Runs `f` on a runtime of `front`'s flavour.
pub fn block_on<F: Future>(front: Front, f: F) -> F::Output {
    runtime(front).block_on(f)
}

/// Sends `list` over `sock` through `front`, leaving the socket's blocking mode as it was.
pub fn send_via(
    front: Front,
    sock: impl AsFd,
    list: &[Element],
    opts: &SendOptions,
) -> Result<SendReport, SendError> {
    send_observed_via(front, sock, list, opts, None)
}

/// [`send_via`], publishing progress to `progress` if given.
pub fn send_observed_via(
    front: Front,
    sock: impl AsFd,
    list: &[Element],
    opts: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let sock = sock.as_fd();
    if front == Front::Blocking {
        return match progress {
            Some(p) => sendpackets::send_with(sock, list, &opts.clone().observe(p)),
            None => sendpackets::send_with(sock, list, opts),
        };
    }
    if front == Front::Connection {
        let mut conn = sendpackets::Connection::new(sock)?;
        conn.set_options(match progress {
            Some(p) => opts.clone().observe(p),
            None => opts.clone(),
        });
        return conn.send(list);
    }
    #[cfg(feature = "tokio")]
    return send_tokio(front, sock, list, opts, progress);
    #[cfg(not(feature = "tokio"))]
    unreachable!("{front:?} needs the tokio feature");
}

/// Sends through a tokio front, leaving the socket's blocking mode as it was.
#[cfg(feature = "tokio")]
fn send_tokio(
    front: Front,
    sock: BorrowedFd<'_>,
    list: &[Element],
    opts: &SendOptions,
    progress: Option<&ProgressHandle>,
) -> Result<SendReport, SendError> {
    let was_nonblocking = rustix::fs::fcntl_getfl(sock)
        .unwrap()
        .contains(rustix::fs::OFlags::NONBLOCK);
    let result = block_on(front, async {
        let s = TokioSocket::from_fd(sock);
        if front == Front::AsyncConnection {
            s.send_connection(list, opts, progress).await
        } else {
            s.send(list, opts, progress).await
        }
    });
    socket2::SockRef::from(&sock)
        .set_nonblocking(was_nonblocking)
        .unwrap();
    result
}
