//! Optional knobs of a send: send size, flags, engine, file I/O.

use std::fmt;
use std::num::NonZeroUsize;
use std::ops::{BitOr, BitOrAssign};
use std::time::Duration;

/// Which kernel paths a send may use.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, Engine, SendOptions};
/// use std::io::Read;
///
/// // The same bytes through every engine; only the kernel calls differ.
/// for engine in [Engine::Auto, Engine::ZeroCopy, Engine::Portable] {
///     let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
///     let opts = SendOptions::new().engine(engine);
///     let report = sendpackets::send_with(&a, &[Element::memory("same bytes")], &opts)?;
///     drop(a);
///     let mut got = String::new();
///     b.read_to_string(&mut got)?;
///     assert_eq!((got.as_str(), report.bytes_sent), ("same bytes", 10));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// Pick per element: `sendfile` for large file ranges, small ranges read and coalesced with
    /// neighbouring buffers into one vectored write, `MSG_MORE` or a cork on TCP. The default.
    #[default]
    Auto,
    /// Every file range goes out with `sendfile`, whatever its size (falls back to reading only
    /// where the kernel refuses it for a file).
    ZeroCopy,
    /// Only portable POSIX calls (`pread`, vectored `sendmsg`, `poll`): file ranges are read into a
    /// bounded buffer and written. No Linux-specific call is made.
    Portable,
}

/// How a send reads files when a page may not be in the page cache.
///
/// Reading a file page that is not cached blocks the calling thread on the disk, and so does
/// `sendfile` (it reads the pages it sends). In a blocking send that is expected; in an async
/// send it stalls a runtime worker and every task on it. Serving from the page cache (the common
/// case for hot content) never blocks, so the default does the reads inline, as nginx does
/// without `aio threads`.
///
/// # Examples
///
/// ```
/// use sendpackets::{FileIo, SendOptions};
///
/// // A media server whose files are mostly cold: keep the runtime responsive.
/// let opts = SendOptions::new().file_io(FileIo::Offload);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileIo {
    /// Read (and `sendfile`) on the sending thread. The fastest path when files are cached.
    #[default]
    Inline,
    /// As `Inline`, but first ask the kernel to start reading every file range of the list into
    /// the page cache (`posix_fadvise(POSIX_FADV_WILLNEED)`), so that disk reads overlap the send
    /// instead of each call waiting for its own pages. Keeps zero-copy; a call can still wait
    /// for a page the read-ahead has not brought in yet.
    Readahead,
    /// Async sends only (a blocking send treats it as `Inline`): files are opened and read on
    /// tokio's blocking thread pool, into a bounded buffer, and the socket is written from that
    /// buffer on the runtime. No runtime worker ever waits for the disk; the price is a copy
    /// (no `sendfile`) and a thread hand-off per buffer (up to 128 KiB).
    Offload,
}

/// Flags mirroring .NET's `TransmitFileOptions` (Win32 `TF_*`).
///
/// Combine with `|`. Only the two flags that act on Linux exist: Win32's `TF_WRITE_BEHIND` (a
/// send here always completes once the kernel accepted the bytes), `TF_USE_SYSTEM_THREAD` and
/// `TF_USE_KERNEL_APC` (Windows' threads) have no counterpart (the crate guide's .NET table says
/// so). Win32's `TF_USE_DEFAULT_WORKER_THREAD` (.NET's `UseDefaultWorkerThread`) is 0, the
/// absence of the other hints: it is [`TransmitFlags::NONE`], and has no constant of its own
/// (a zero flag would be "contained" in every set).
///
/// # Examples
///
/// ```
/// use sendpackets::TransmitFlags;
///
/// let f = TransmitFlags::DISCONNECT | TransmitFlags::NONE;
/// assert!(f.contains(TransmitFlags::DISCONNECT));
/// assert!(!f.contains(TransmitFlags::REUSE_SOCKET));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TransmitFlags(u32);

impl TransmitFlags {
    /// No flag.
    pub const NONE: TransmitFlags = TransmitFlags(0);
    /// After the last byte went out, shut the connection down in both directions
    /// (`shutdown(SHUT_RDWR)`): the peer sees end of stream and later sends on the socket fail.
    /// Not done when the send fails.
    pub const DISCONNECT: TransmitFlags = TransmitFlags(0x01);
    /// With [`DISCONNECT`](Self::DISCONNECT): after the shutdown, the socket's descriptor is
    /// replaced in place (`dup3`) by a fresh, unconnected socket of the same domain, type and
    /// protocol, so that it can be connected again. This is what .NET does on Linux.
    ///
    /// Replacing a descriptor is for its owner alone (I/O safety): only
    /// [`send_reusing`](crate::send_reusing), which takes `&mut OwnedFd`, honours it. Every
    /// other function refuses it with [`ErrorKind::Misuse`](crate::ErrorKind::Misuse)
    /// before the first byte.
    pub const REUSE_SOCKET: TransmitFlags = TransmitFlags(0x02);
    /// Whether every flag in `other` is set (always true for [`NONE`](Self::NONE)).
    pub const fn contains(self, other: TransmitFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags without those of `other`.
    pub(crate) const fn without(self, other: TransmitFlags) -> Self {
        TransmitFlags(self.0 & !other.0)
    }
}

impl BitOr for TransmitFlags {
    type Output = TransmitFlags;
    fn bitor(self, rhs: Self) -> Self {
        TransmitFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TransmitFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TransmitFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TransmitFlags, &str); 2] = [
            (TransmitFlags::DISCONNECT, "DISCONNECT"),
            (TransmitFlags::REUSE_SOCKET, "REUSE_SOCKET"),
        ];
        let mut list = f.debug_set();
        for (flag, name) in NAMES {
            if self.contains(flag) {
                list.entry(&format_args!("{name}"));
            }
        }
        list.finish()
    }
}

/// Options of one send operation. `SendOptions::default()` lets the library choose everything.
///
/// # Examples
///
/// ```
/// use sendpackets::{Engine, SendOptions, TransmitFlags};
///
/// let opts = SendOptions::new()
///     .send_size(64 * 1024)
///     .flags(TransmitFlags::DISCONNECT)
///     .engine(Engine::Portable);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SendOptions {
    /// The most bytes one kernel call may hand to the socket (.NET `SendPacketsSendSize`);
    /// `None` lets the library choose.
    pub(crate) send_size: Option<NonZeroUsize>,
    /// `TransmitFileOptions`-style flags.
    pub(crate) flags: TransmitFlags,
    /// Which kernel paths may be used.
    pub(crate) engine: Engine,
    /// Where file reads happen (matters for async sends).
    pub(crate) file_io: FileIo,
    /// The most time the whole send may take ([`timeout`](Self::timeout)).
    pub(crate) timeout: Option<Duration>,
    /// The most time the send may go without the kernel accepting a byte
    /// ([`stall_timeout`](Self::stall_timeout)).
    pub(crate) stall_timeout: Option<Duration>,
    /// Where the send publishes its progress ([`observe`](Self::observe)).
    pub(crate) progress: Option<crate::ProgressHandle>,
}

impl SendOptions {
    /// The defaults: library-chosen send size, no flags, [`Engine::Auto`], [`FileIo::Inline`].
    pub fn new() -> Self {
        SendOptions::default()
    }

    /// Caps the bytes per kernel call; 0 means "let the library choose" (as in .NET).
    #[must_use]
    pub fn send_size(mut self, bytes: usize) -> Self {
        self.send_size = NonZeroUsize::new(bytes);
        self
    }

    /// Sets the flags.
    #[must_use]
    pub fn flags(mut self, flags: TransmitFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Chooses the engine.
    #[must_use]
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Chooses where file reads happen.
    #[must_use]
    pub fn file_io(mut self, file_io: FileIo) -> Self {
        self.file_io = file_io;
        self
    }

    /// Ends the send with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) once it has run
    /// this long, with its exact progress, on every front end and socket mode.
    ///
    /// The limit is checked before each kernel call and bounds every wait for the socket. On a
    /// socket in blocking mode one call may block past it: a blocking call cannot be cut short
    /// from outside, so such a call is bounded only by the socket's own send timeout
    /// (`SO_SNDTIMEO`). Non-blocking sockets (every tokio socket) are bounded exactly. The async
    /// API needs a runtime with its time driver enabled (`enable_time` or `enable_all`) when a
    /// limit is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Element, ErrorKind, SendOptions};
    /// use std::time::Duration;
    ///
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?; // nobody reads `_b`
    /// a.set_nonblocking(true)?;
    /// let big = Element::memory(vec![0u8; 16 << 20]);
    /// let opts = SendOptions::new().timeout(Duration::from_millis(50));
    /// let err = sendpackets::send_with(&a, &[big], &opts).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert!(err.progress().bytes_sent > 0); // what the socket buffer took
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Ends the send with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when the kernel
    /// accepted no byte for this long: a peer that stops reading is given up on, one that reads
    /// slowly is not. Exact progress comes with the error. Bounds as [`timeout`](Self::timeout).
    ///
    /// Without it, a non-blocking socket's own `SO_SNDTIMEO` (if set) serves as the stall limit,
    /// as it does for a socket in blocking mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Element, ErrorKind, SendOptions};
    /// use std::time::Duration;
    ///
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?; // nobody reads `_b`
    /// a.set_nonblocking(true)?;
    /// let opts = SendOptions::new().stall_timeout(Duration::from_millis(50));
    /// let err = sendpackets::send_with(&a, &[Element::memory(vec![1u8; 16 << 20])], &opts)
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn stall_timeout(mut self, limit: Duration) -> Self {
        self.stall_timeout = Some(limit);
        self
    }

    /// Publishes the send's progress to `progress` after every kernel call (and its final
    /// progress at the end, success or error), so another thread or task can show it while the
    /// send runs: a progress bar, a watchdog. Every snapshot it returns is one the send passed
    /// through.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Element, ProgressHandle, SendOptions};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let progress = ProgressHandle::new();
    /// let observer = progress.clone(); // e.g. moved to a display thread
    /// let opts = SendOptions::new().observe(&progress);
    /// sendpackets::send_with(&a, &[Element::memory("abc")], &opts)?;
    /// assert_eq!(observer.get().bytes_sent, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn observe(mut self, progress: &crate::ProgressHandle) -> Self {
        self.progress = Some(progress.clone());
        self
    }
}
