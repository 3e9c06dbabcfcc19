//! Socket addresses on the command line (`tcp://`, `udp://`, `unix://`, `unixgram://`), and
//! connecting to them.
//!
//! `send` and `recv` share one syntax. A missing host (`:9000`, `udp://9000`, plain `9000`)
//! means the loopback address `127.0.0.1`, so nothing listens beyond this machine unless asked.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Which kind of socket an endpoint names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TCP stream.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// Unix stream socket.
    Unix,
    /// Unix datagram socket.
    UnixGram,
}

impl Kind {
    /// Whether the socket carries datagrams.
    pub(crate) fn is_datagram(self) -> bool {
        matches!(self, Kind::Udp | Kind::UnixGram)
    }

    fn scheme(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
            Kind::Unix => "unix",
            Kind::UnixGram => "unixgram",
        }
    }
}

/// A parsed TARGET or LISTEN argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Which socket.
    pub(crate) kind: Kind,
    /// Where: `host:port` for TCP and UDP, a file system path for Unix sockets.
    pub(crate) addr: Addr,
}

/// The address part of an [`Endpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Addr {
    /// A host (name, IPv4, or bracketed IPv6) and a port.
    Inet { host: String, port: u16 },
    /// A Unix socket path.
    Path(PathBuf),
}

const SYNTAX: &str = "expected HOST:PORT, tcp://HOST:PORT, udp://HOST:PORT, unix:///PATH or \
                      unixgram:///PATH";

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = match s.split_once("://") {
            Some(("tcp", r)) => (Kind::Tcp, r),
            Some(("udp", r)) => (Kind::Udp, r),
            Some(("unix", r)) => (Kind::Unix, r),
            Some(("unixgram", r)) => (Kind::UnixGram, r),
            Some((other, _)) => {
                return Err(format!(
                    "unknown scheme '{other}://' (known: tcp, udp, unix, unixgram)"
                ));
            }
            None => (Kind::Tcp, s),
        };
        let addr = match kind {
            Kind::Unix | Kind::UnixGram => {
                if rest.is_empty() {
                    return Err(format!("missing socket path; {SYNTAX}"));
                }
                Addr::Path(PathBuf::from(rest))
            }
            Kind::Tcp | Kind::Udp => parse_inet(rest)?,
        };
        Ok(Endpoint { kind, addr })
    }
}

/// Parses `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` (the last two on 127.0.0.1).
fn parse_inet(s: &str) -> Result<Addr, String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => ("", s),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number (0-65535); {SYNTAX}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') && !s.starts_with('[') {
        return Err(format!(
            "write IPv6 addresses in brackets, as in [::1]:{port}"
        ));
    }
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok(Addr::Inet {
        host: host.to_string(),
        port,
    })
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        match &self.addr {
            Addr::Inet { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Inet { host, port } => write!(f, "{host}:{port}"),
            Addr::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Endpoint {
    /// Resolves a TCP or UDP endpoint to socket addresses.
    ///
    /// # Errors
    ///
    /// Name resolution failures, or no address found.
    pub(crate) fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let Addr::Inet { host, port } = &self.addr else {
            return Err(io::Error::other("not an internet address"));
        };
        let addrs: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::other(format!("{host} has no address")));
        }
        Ok(addrs)
    }

    /// Connects to this endpoint; `timeout` bounds each TCP connection attempt.
    ///
    /// # Errors
    ///
    /// The last connection error.
    pub(crate) fn connect(&self, timeout: Duration) -> io::Result<Connected> {
        match (&self.kind, &self.addr) {
            (Kind::Unix, Addr::Path(p)) => UnixStream::connect(p).map(Connected::Unix),
            (Kind::UnixGram, Addr::Path(p)) => {
                let sock = UnixDatagram::unbound()?;
                sock.connect(p)?;
                Ok(Connected::UnixGram(sock))
            }
            (Kind::Tcp, _) => {
                let mut last = None;
                for addr in self.resolve()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => return Ok(Connected::Tcp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::other("no address")))
            }
            (Kind::Udp, _) => {
                let mut last = None;
                for addr in self.resolve()? {
                    let local: SocketAddr = if addr.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let attempt = UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|()| s));
                    match attempt {
                        Ok(s) => return Ok(Connected::Udp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::other("no address")))
            }
            _ => Err(io::Error::other("endpoint kind and address disagree")),
        }
    }
}

/// A connected socket of any supported kind.
#[derive(Debug)]
pub(crate) enum Connected {
    /// TCP.
    Tcp(TcpStream),
    /// Connected UDP.
    Udp(UdpSocket),
    /// Unix stream.
    Unix(UnixStream),
    /// Connected Unix datagram socket.
    UnixGram(UnixDatagram),
}

impl Connected {
    /// Sets the send timeout (`SO_SNDTIMEO`).
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Connected::Tcp(s) => s.set_write_timeout(t),
            Connected::Udp(s) => s.set_write_timeout(t),
            Connected::Unix(s) => s.set_write_timeout(t),
            Connected::UnixGram(s) => s.set_write_timeout(t),
        }
    }
}

impl AsFd for Connected {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Connected::Tcp(s) => s.as_fd(),
            Connected::Udp(s) => s.as_fd(),
            Connected::Unix(s) => s.as_fd(),
            Connected::UnixGram(s) => s.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(kind: Kind, host: &str, port: u16) -> Endpoint {
        Endpoint {
            kind,
            addr: Addr::Inet {
                host: host.into(),
                port,
            },
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            "example.org:80".parse(),
            Ok(inet(Kind::Tcp, "example.org", 80))
        );
        assert_eq!(
            "tcp://10.0.0.1:1".parse(),
            Ok(inet(Kind::Tcp, "10.0.0.1", 1))
        );
        assert_eq!("udp://:53".parse(), Ok(inet(Kind::Udp, "127.0.0.1", 53)));
        assert_eq!("9000".parse(), Ok(inet(Kind::Tcp, "127.0.0.1", 9000)));
        assert_eq!("udp://[::1]:7".parse(), Ok(inet(Kind::Udp, "::1", 7)));
        assert_eq!(
            "unix:///tmp/s".parse(),
            Ok(Endpoint {
                kind: Kind::Unix,
                addr: Addr::Path("/tmp/s".into())
            })
        );
        assert_eq!(
            "unixgram://rel/s".parse::<Endpoint>().unwrap().addr,
            Addr::Path("rel/s".into())
        );
    }

    #[test]
    fn errors() {
        assert!(
            "http://x:1"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!("x:99999".parse::<Endpoint>().is_err());
        assert!("x".parse::<Endpoint>().is_err());
        assert!(
            "::1:80"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("brackets")
        );
        assert!("unix://".parse::<Endpoint>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["tcp://127.0.0.1:80", "udp://[::1]:7", "unix:///tmp/s"] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
    }
}
