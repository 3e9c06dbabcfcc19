//! The one error type of a send, with the progress made before it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::report::Progress;

/// What went wrong, in categories a caller can act on.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, ErrorKind};
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let err = sendpackets::send(&a, &[Element::file("/no/such/file", ..)]).unwrap_err();
/// match err.kind() {
///     // Checks before the first byte: the caller's input is wrong, nothing was sent.
///     ErrorKind::FileNotFound | ErrorKind::DirectoryNotFound => {
///         assert_eq!(err.progress().bytes_sent, 0)
///     }
///     // The connection failed midway: `err.progress()` says what reached the kernel.
///     ErrorKind::Socket | ErrorKind::TimedOut => {}
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The socket has no peer (stream) or no default remote (datagram). Checked before anything
    /// else, even for an empty list.
    NotConnected,
    /// The descriptor is not a socket, or a socket of a kind this library cannot send on.
    UnsupportedSocket,
    /// A path element has an empty path.
    EmptyPath,
    /// A path element names a file that does not exist (its directory does).
    FileNotFound,
    /// A directory in a path element's path does not exist (or is not a directory).
    DirectoryNotFound,
    /// A path element names a directory.
    IsADirectory,
    /// A file element is not a regular file (a FIFO, a device, a socket), so its length and
    /// ranges cannot be known before sending.
    NotARegularFile,
    /// The file may not be read: permission denied, or a handle not opened for reading.
    PermissionDenied,
    /// A range does not lie inside its file (offset or end past the end of the file), or a
    /// memory range inside its buffer ([`Element::memory_range`](crate::Element::memory_range)).
    RangeOutOfBounds,
    /// A datagram is larger than the socket can send in one message.
    MessageTooLarge,
    /// A file became shorter while it was being sent: its range could not be read in full.
    FileTruncated,
    /// A file named by path was removed or replaced between the checks and its use.
    FileChanged,
    /// Reading a file failed.
    FileRead,
    /// Opening or checking a file failed for another reason (too many open files, I/O error).
    FileOpen,
    /// The send ran out of time: the options' [`timeout`](crate::SendOptions::timeout) or
    /// [`stall_timeout`](crate::SendOptions::stall_timeout) passed, or the socket's own send
    /// timeout (`SO_SNDTIMEO`) expired.
    TimedOut,
    /// The socket failed while sending: peer reset, broken pipe, network down.
    Socket,
    /// The caller used the API in a way it cannot honour — a mistake in the calling code, not
    /// a failure of the system: a tokio socket given to the blocking API inside a runtime,
    /// `REUSE_SOCKET` on a socket the call does not own, the completion API outside a tokio
    /// runtime. Nothing was sent.
    Misuse,
    /// The tokio runtime shut down while the send was pending: the error carries the progress
    /// made until then.
    RuntimeShutDown,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NotConnected => "socket is not connected",
            ErrorKind::UnsupportedSocket => "unsupported socket",
            ErrorKind::Misuse => "the API was misused",
            ErrorKind::RuntimeShutDown => "the runtime shut down during the send",
            ErrorKind::EmptyPath => "empty path",
            ErrorKind::FileNotFound => "no such file",
            ErrorKind::DirectoryNotFound => "no such directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::NotARegularFile => "not a regular file",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::RangeOutOfBounds => "range out of bounds",
            ErrorKind::MessageTooLarge => "datagram too large",
            ErrorKind::FileTruncated => "file was truncated during the send",
            ErrorKind::FileChanged => "file changed between check and use",
            ErrorKind::FileRead => "file read failed",
            ErrorKind::FileOpen => "file could not be opened",
            ErrorKind::TimedOut => "send timed out",
            ErrorKind::Socket => "send failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A failed send: what went wrong, about which element, and exactly how far the send got.
///
/// `progress` counts the bytes the kernel accepted before the failure; errors found while
/// checking the list (before the first byte) always have zero progress. To resume, send
/// `err.progress().remaining(&list)` ([`Progress::remaining`]).
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, ErrorKind};
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair().unwrap();
/// let err = sendpackets::send(&a, &[Element::file("/no/such/dir/file", ..)]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::DirectoryNotFound);
/// assert_eq!(err.element(), Some(0));
/// assert_eq!(err.progress().bytes_sent, 0);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct SendError {
    /// Boxed: a `Result<_, SendError>` stays one pointer wider than its `Ok`.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    element: Option<usize>,
    path: Option<PathBuf>,
    detail: Option<String>,
    source: Option<io::Error>,
    progress: Progress,
}

impl SendError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        SendError {
            inner: Box::new(Inner {
                kind,
                element: None,
                path: None,
                detail: None,
                source: None,
                progress: Progress::default(),
            }),
        }
    }

    pub(crate) fn element_index(mut self, index: usize) -> Self {
        self.inner.element = Some(index);
        self
    }

    /// The same error about no element in particular.
    pub(crate) fn unindexed(mut self) -> Self {
        self.inner.element = None;
        self
    }

    pub(crate) fn with_path(mut self, path: Option<&Path>) -> Self {
        self.inner.path = path.map(Path::to_path_buf);
        self
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> Self {
        self.inner.source = Some(source);
        self
    }

    pub(crate) fn with_detail(mut self, detail: String) -> Self {
        self.inner.detail = Some(detail);
        self
    }

    pub(crate) fn with_progress(mut self, progress: Progress) -> Self {
        self.inner.progress = progress;
        self
    }

    /// The category of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The index of the element the error is about, if any.
    pub fn element(&self) -> Option<usize> {
        self.inner.element
    }

    /// The path of that element, for path elements.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The operating-system error behind this one, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.inner.source.as_ref()
    }

    /// The errno behind this error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.inner.source.as_ref().and_then(io::Error::raw_os_error)
    }

    /// What went wrong, worded without the element index or the progress (for callers that
    /// number or report those their own way).
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::Element;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let err = sendpackets::send(&a, &[Element::file("", ..)]).unwrap_err();
    /// assert_eq!(err.cause().to_string(), "empty path");
    /// assert_eq!(err.to_string(), "element 0 (): empty path");
    /// ```
    pub fn cause(&self) -> Cause<'_> {
        Cause(self)
    }

    /// How far the send got before it failed.
    pub fn progress(&self) -> Progress {
        self.inner.progress
    }
}

/// The cause of a [`SendError`] alone, without the element it is about or the progress: see
/// [`SendError::cause`].
#[derive(Debug)]
pub struct Cause<'a>(&'a SendError);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(e.inner.kind.describe())?;
        if let Some(d) = &e.inner.detail {
            write!(f, " ({d})")?;
        }
        // Where the kind already says what the errno would, the errno stays available through
        // `raw_os_error` but is not repeated.
        let restates_kind = matches!(
            e.inner.kind,
            ErrorKind::FileNotFound
                | ErrorKind::DirectoryNotFound
                | ErrorKind::IsADirectory
                | ErrorKind::RangeOutOfBounds
                | ErrorKind::MessageTooLarge
        );
        match &e.inner.source {
            Some(s) if !restates_kind => write!(f, ": {s}"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.inner.element, &self.inner.path) {
            (Some(i), Some(p)) => write!(f, "element {i} ({}): ", p.display())?,
            (Some(i), None) => write!(f, "element {i}: ")?,
            _ => {}
        }
        write!(f, "{}", self.cause())?;
        if self.inner.progress.bytes_sent > 0 {
            write!(
                f,
                "; {} bytes sent, {} elements completed",
                self.inner.progress.bytes_sent, self.inner.progress.elements_completed
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<SendError> for io::Error {
    fn from(e: SendError) -> io::Error {
        let kind = match e.inner.kind {
            ErrorKind::NotConnected => io::ErrorKind::NotConnected,
            ErrorKind::FileNotFound | ErrorKind::DirectoryNotFound => io::ErrorKind::NotFound,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::FileTruncated => io::ErrorKind::UnexpectedEof,
            ErrorKind::EmptyPath
            | ErrorKind::IsADirectory
            | ErrorKind::NotARegularFile
            | ErrorKind::RangeOutOfBounds
            | ErrorKind::MessageTooLarge
            | ErrorKind::UnsupportedSocket => io::ErrorKind::InvalidInput,
            _ => e
                .inner
                .source
                .as_ref()
                .map(io::Error::kind)
                .unwrap_or(io::ErrorKind::Other),
        };
        io::Error::new(kind, e)
    }
}
