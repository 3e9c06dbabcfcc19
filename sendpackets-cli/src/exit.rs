//! Exit codes, and the failure every command returns.
//!
//! The rule for `send`: the code follows whether bytes went out. A failure before the first byte
//! reached the kernel is 3 (input) or 4 (connection), whatever went wrong; a failure after at
//! least one byte is 5, whatever went wrong, because the peer may hold part of the list.
//!
//! | code | meaning                                                                     |
//! |------|-----------------------------------------------------------------------------|
//! | 0    | success                                                                     |
//! | 1    | an unexpected internal failure                                              |
//! | 2    | usage: bad option, bad TARGET, bad ELEMENT syntax                           |
//! | 3    | input, nothing sent: missing or unreadable file, bad range, glob without match, datagram too large; `recv`: `--out` exists or cannot be created |
//! | 4    | connection, nothing sent: cannot resolve, connect, bind or accept; the socket failed before the first byte; `recv`: socket path in use or not a socket, nothing arrived within `--wait` |
//! | 5    | during the transfer: `send` failed after at least one byte went out (the message says how many); `recv` failed after the connection or first datagram (read error, idle timeout, truncated datagram, writing `--out`) |
//! | 6    | verification: `recv` got other bytes than `--expect-bytes`/`--expect-sha256` say; `demo` received bytes that differ from what it sent |
//! | 128+N | `recv` ended by signal N (SIGINT 130, SIGTERM 143), after removing its socket file and partial output |
//!
//! `recv` replaces `--out` only when it exits 0: every other code leaves the file as it was.

use std::process::ExitCode;

use sendpackets::ErrorKind;

/// A process exit code with a meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    /// Success.
    Ok = 0,
    /// Internal failure.
    Internal = 1,
    /// Usage error.
    Usage = 2,
    /// Input error.
    Input = 3,
    /// Connection error.
    Connect = 4,
    /// Error during the transfer.
    Transfer = 5,
    /// Verification failed.
    Verify = 6,
}

impl Code {
    /// A one-word name for JSON output.
    pub(crate) fn category(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Internal => "internal",
            Code::Usage => "usage",
            Code::Input => "input",
            Code::Connect => "connection",
            Code::Transfer => "transfer",
            Code::Verify => "verification",
        }
    }

    /// The code a failed send exits with. It follows whether bytes went out: any failure after
    /// at least one byte reached the kernel is [`Code::Transfer`], whatever its kind, since the
    /// peer may hold part of the list; before that, a socket problem is [`Code::Connect`] and
    /// everything else (files, ranges, datagram sizes, a file that cannot be read while it is
    /// checked) is [`Code::Input`].
    pub(crate) fn of_send_error(kind: ErrorKind, bytes_sent: u64) -> Code {
        if bytes_sent > 0 {
            return Code::Transfer;
        }
        match kind {
            ErrorKind::NotConnected
            | ErrorKind::UnsupportedSocket
            | ErrorKind::TimedOut
            | ErrorKind::Socket => Code::Connect,
            _ => Code::Input,
        }
    }
}

impl From<Code> for ExitCode {
    fn from(c: Code) -> ExitCode {
        ExitCode::from(c as u8)
    }
}

/// The text `--help` shows about exit codes.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  1  unexpected internal failure
  2  usage: bad option, TARGET or ELEMENT syntax
  3  input, nothing sent: missing or unreadable file, bad range, glob without a match,
     datagram too large; recv: --out exists or cannot be created
  4  connection, nothing sent: cannot resolve, connect, bind or accept; the socket failed
     before the first byte; recv: socket path in use or not a socket, nothing within --wait
  5  failure during the transfer: send failed after bytes went out (the message says how
     many); recv failed after the connection or first datagram (read error, idle timeout,
     truncated datagram, writing --out)
  6  verification failed: recv got other bytes than --expect-bytes/--expect-sha256 say;
     demo received bytes that differ from the generated data
  130/143  recv ended by SIGINT/SIGTERM (its socket file and partial output removed)
send: 3 and 4 mean nothing was sent; 5 means at least one byte went out.
recv replaces --out only on exit 0; on any other code the file is left as it was.";

/// A failed command: exit code, what to say, and what JSON output carries.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// Exit code.
    pub(crate) code: Code,
    /// A snake_case name of the failure (`file_not_found`, `connect`, ...).
    pub(crate) kind: Box<str>,
    /// The message, starting with what it is about (`element 2 (a.log): no such file`, counted from 0).
    pub(crate) message: String,
    /// The ELEMENT argument it is about, numbered from 1.
    pub(crate) element: Option<usize>,
    /// The file it is about.
    pub(crate) path: Option<Box<str>>,
    /// Bytes that went out before the failure (send only).
    pub(crate) bytes_sent: Option<u64>,
    /// Further lines for people: what went out, what to do.
    pub(crate) notes: Vec<String>,
}

impl Failure {
    /// A failure with a code, kind name and message.
    pub(crate) fn new(code: Code, kind: &str, message: impl Into<String>) -> Self {
        Failure {
            code,
            kind: kind.into(),
            message: message.into(),
            element: None,
            path: None,
            bytes_sent: None,
            notes: Vec::new(),
        }
    }

    /// Adds a line for people.
    #[must_use]
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// `CamelCase` to `snake_case`, for `Debug` names of library enums.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake("FileNotFound"), "file_not_found");
        assert_eq!(snake("Socket"), "socket");
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            Code::Ok,
            Code::Internal,
            Code::Usage,
            Code::Input,
            Code::Connect,
            Code::Transfer,
            Code::Verify,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(*a as usize, i);
        }
    }

    #[test]
    fn send_codes_follow_bytes_sent() {
        assert_eq!(Code::of_send_error(ErrorKind::FileNotFound, 0), Code::Input);
        assert_eq!(Code::of_send_error(ErrorKind::FileRead, 0), Code::Input);
        assert_eq!(
            Code::of_send_error(ErrorKind::NotConnected, 0),
            Code::Connect
        );
        assert_eq!(Code::of_send_error(ErrorKind::Socket, 0), Code::Connect);
        assert_eq!(Code::of_send_error(ErrorKind::TimedOut, 0), Code::Connect);
        for kind in [ErrorKind::FileOpen, ErrorKind::Socket, ErrorKind::FileRead] {
            assert_eq!(Code::of_send_error(kind, 1), Code::Transfer);
        }
    }
}
