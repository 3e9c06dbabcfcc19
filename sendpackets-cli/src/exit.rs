//! Exit codes, and the failure every command returns.
//!
//! | code | meaning                                                                     |
//! |------|-----------------------------------------------------------------------------|
//! | 0    | success                                                                     |
//! | 1    | an unexpected internal failure                                              |
//! | 2    | usage: bad option, bad TARGET, bad ELEMENT syntax                           |
//! | 3    | input: missing file, bad range, glob without match, datagram too large, `--out` exists |
//! | 4    | connection: cannot resolve, connect, bind or accept; socket not connected   |
//! | 5    | during the send or receive: the socket or a file failed after the start; bytes may have gone out |
//! | 6    | verification: received bytes differ from what was sent (`demo`)            |

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

    /// The code a library error maps to.
    pub(crate) fn of_send_error(kind: ErrorKind) -> Code {
        match kind {
            ErrorKind::NotConnected | ErrorKind::UnsupportedSocket => Code::Connect,
            ErrorKind::EmptyPath
            | ErrorKind::FileNotFound
            | ErrorKind::DirectoryNotFound
            | ErrorKind::IsADirectory
            | ErrorKind::NotARegularFile
            | ErrorKind::PermissionDenied
            | ErrorKind::RangeOutOfBounds
            | ErrorKind::MessageTooLarge
            | ErrorKind::FileOpen => Code::Input,
            _ => Code::Transfer,
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
  3  input: missing file, bad range, glob without a match, datagram too large, --out exists
  4  connection: cannot resolve, connect, bind or accept
  5  failure during the transfer (the message says how many bytes went out)
  6  verification failed: received bytes differ from the expected bytes (demo)";

/// A failed command: exit code, what to say, and what JSON output carries.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// Exit code.
    pub(crate) code: Code,
    /// A snake_case name of the failure (`file_not_found`, `connect`, ...).
    pub(crate) kind: Box<str>,
    /// The message, starting with what it is about (`element 3 (a.log): no such file`).
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
        assert_eq!(Code::of_send_error(ErrorKind::FileNotFound), Code::Input);
        assert_eq!(Code::of_send_error(ErrorKind::NotConnected), Code::Connect);
        assert_eq!(Code::of_send_error(ErrorKind::Socket), Code::Transfer);
    }
}
