//! The one place the server meets the file system and the library: opening files beneath the
//! served directory, and sending a response (head + file range) with one sendpackets call on a
//! `sendpackets::tokio::Connection`, the stall limit in `SendOptions::stall_timeout`.
//!
//! Files are opened here with `openat2(RESOLVE_BENEATH)` relative to the served directory, not
//! with `sendpackets::OpenFile`/`FileCache`: those take a path and resolve it from anywhere, so
//! a symlink could lead outside the directory. The open-file cache and the known-file table
//! below play their part on descriptors this module opened; the library is given
//! `FileHandle`s. Switching to an `OpenFile` made from an open descriptor, when the library has
//! one, touches only this file.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use sendpackets::tokio::Connection;
use sendpackets::{Element, Engine, ErrorKind, FileHandle, SendError, SendOptions};
use tokio::net::TcpStream;

use super::range::Validators;

/// Most paths the open-file cache holds; when full it is emptied (a bound, not a policy: the
/// benchmark's working set is a handful of files; nginx's `open_file_cache max` has no
/// default and is typically set to 1,000–10,000).
const CACHE_MAX: usize = 4096;

/// Most files [`Checked`] keeps.
const CHECKED_MAX: usize = 1024;

/// A checked file unused this long is let go by [`Root::sweep`] (so a deleted file's space is
/// freed within two of these after its last request).
pub(crate) const CHECKED_IDLE: Duration = Duration::from_secs(10);

/// The served directory, opened once.
#[derive(Debug)]
pub(crate) struct Root {
    dir: OwnedFd,
    follow_symlinks: bool,
    cache: Option<FileCache>,
    checked: Checked,
}

/// Files already opened and checked, by identity (device, inode) and version (length,
/// modification and change times). Every request still opens and `fstat`s its file; when the
/// result is a file already known in the same version, the known one is sent instead (it is
/// the same inode, unchanged), so the library does not check a fresh descriptor again and the
/// header values are not formatted again. Not a cache of contents or names: a changed or
/// replaced file is a new version at once.
#[derive(Debug, Default)]
struct Checked {
    map: Mutex<HashMap<FileKey, CheckedFile>>,
    /// Most entries (the smaller of [`CHECKED_MAX`] and the descriptor budget's share).
    max: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    len: u64,
    mtime: (i64, u64),
    ctime: (i64, u64),
}

#[derive(Debug)]
struct CheckedFile {
    file: Arc<ServedFile>,
    version: Version,
    used: Instant,
}

impl Checked {
    fn get(&self, key: FileKey, version: Version, content_type: &str) -> Option<Arc<ServedFile>> {
        let mut map = self.map.lock().ok()?;
        let e = map.get_mut(&key)?;
        if e.version != version || e.file.content_type != content_type {
            return None;
        }
        e.used = Instant::now();
        Some(e.file.clone())
    }

    fn insert(&self, key: FileKey, version: Version, file: Arc<ServedFile>) {
        let Ok(mut map) = self.map.lock() else { return };
        let now = Instant::now();
        if map.len() >= self.max && !map.contains_key(&key) {
            map.retain(|_, e| now.duration_since(e.used) < CHECKED_IDLE);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(
            key,
            CheckedFile {
                file,
                version,
                used: now,
            },
        );
    }
}

/// Open files kept for a validity period, as nginx's `open_file_cache`: within it a path is
/// not opened or checked again, so a file replaced on disk is seen after at most that long.
#[derive(Debug)]
struct FileCache {
    valid: Duration,
    max: usize,
    map: Mutex<HashMap<PathBuf, Cached>>,
}

#[derive(Debug)]
struct Cached {
    opened: Opened,
    at: Instant,
}

/// A file opened beneath the root and checked once: its length and validators are those of
/// the open descriptor, so they match the bytes sent. The header values that depend only on
/// the file are formatted here, once.
#[derive(Debug)]
pub(crate) struct ServedFile {
    handle: FileHandle,
    /// Length and modification time.
    pub(crate) validators: Validators,
    /// `ETag` value.
    pub(crate) etag: String,
    /// `Last-Modified` value.
    pub(crate) last_modified: String,
    /// `Content-Type` value, from the file name's extension.
    pub(crate) content_type: &'static str,
}

/// What a relative path names.
#[derive(Clone, Debug)]
pub(crate) enum Opened {
    /// A regular file, open for reading.
    File(Arc<ServedFile>),
    /// A directory.
    Directory,
}

/// Why a path cannot be served.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Missing (or a component is not a directory, or the name is too long): 404.
    NotFound,
    /// Leads outside the root through a symlink, not readable, or not a regular file: 403.
    Forbidden,
    /// Out of descriptors even after letting go of the tables' ones: 503.
    Unavailable(io::Error),
    /// Anything else (I/O error): 500.
    Other(io::Error),
}

impl Root {
    /// Opens `dir` (it must be a directory).
    ///
    /// # Errors
    ///
    /// The `open` error, or `NotADirectory`.
    /// `cache_valid`: keep opened files that long (`None`: open on every request).
    /// `max_files`: most descriptors each table of open files may hold.
    pub(crate) fn new(
        dir: &Path,
        follow_symlinks: bool,
        cache_valid: Option<Duration>,
        max_files: usize,
    ) -> io::Result<Root> {
        let dir = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            dir,
            follow_symlinks,
            cache: cache_valid.map(|valid| FileCache {
                valid,
                max: max_files.min(CACHE_MAX),
                map: Mutex::new(HashMap::new()),
            }),
            checked: Checked {
                max: max_files.min(CHECKED_MAX),
                ..Checked::default()
            },
        })
    }

    /// Lets go of every file the tables hold (out of descriptors: those not being sent are
    /// closed at once).
    pub(crate) fn shed(&self) {
        if let Ok(mut map) = self.checked.map.lock() {
            map.clear();
        }
        if let Some(cache) = &self.cache {
            if let Ok(mut map) = cache.map.lock() {
                map.clear();
            }
        }
    }

    /// Lets go of checked files unused for [`CHECKED_IDLE`] and of expired cache entries
    /// (called every [`CHECKED_IDLE`]).
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut map) = self.checked.map.lock() {
            map.retain(|_, e| now.duration_since(e.used) < CHECKED_IDLE);
        }
        if let Some(cache) = &self.cache {
            if let Ok(mut map) = cache.map.lock() {
                map.retain(|_, c| now.duration_since(c.at) < cache.valid);
            }
        }
    }

    /// [`open`](Self::open), through the open-file cache when there is one. Failures are not
    /// cached.
    pub(crate) fn open_cached(&self, relative: &Path) -> Result<Opened, OpenFailure> {
        let Some(cache) = &self.cache else {
            return self.open(relative);
        };
        let now = Instant::now();
        if let Some(c) = cache.map.lock().ok().and_then(|m| {
            m.get(relative)
                .filter(|c| now.duration_since(c.at) < cache.valid)
                .map(|c| c.opened.clone())
        }) {
            return Ok(c);
        }
        let opened = self.open(relative)?;
        if let Ok(mut m) = cache.map.lock() {
            if m.len() >= cache.max {
                m.clear();
            }
            m.insert(
                relative.to_path_buf(),
                Cached {
                    opened: opened.clone(),
                    at: now,
                },
            );
        }
        Ok(opened)
    }

    /// Opens `relative` (empty: the root itself) for reading. Without `--follow-symlinks` the
    /// kernel resolves it strictly beneath the root (`openat2` with `RESOLVE_BENEATH`): a
    /// symlink whose target lies outside fails with `EXDEV`, whatever races happen meanwhile.
    pub(crate) fn open(&self, relative: &Path) -> Result<Opened, OpenFailure> {
        let path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused after fstat).
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let open = || {
            if self.follow_symlinks {
                rustix::fs::openat(&self.dir, path, flags, Mode::empty())
            } else {
                open_beneath(&self.dir, path, flags)
            }
        };
        let opened = match open() {
            Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => {
                self.shed();
                open()
            }
            r => r,
        };
        let fd = opened.map_err(|e| match e {
            rustix::io::Errno::NOENT
            | rustix::io::Errno::NOTDIR
            | rustix::io::Errno::NAMETOOLONG => OpenFailure::NotFound,
            rustix::io::Errno::ACCESS
            | rustix::io::Errno::PERM
            | rustix::io::Errno::XDEV
            | rustix::io::Errno::LOOP => OpenFailure::Forbidden,
            e @ (rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => {
                OpenFailure::Unavailable(e.into())
            }
            e => OpenFailure::Other(e.into()),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| OpenFailure::Other(e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let len = u64::try_from(st.st_size).unwrap_or(0);
                let key = FileKey {
                    dev: st.st_dev,
                    ino: st.st_ino,
                };
                let version = Version {
                    len,
                    mtime: (st.st_mtime, st.st_mtime_nsec as u64),
                    ctime: (st.st_ctime, st.st_ctime_nsec as u64),
                };
                let content_type = mime_guess::from_path(relative)
                    .first_raw()
                    .unwrap_or("application/octet-stream");
                if let Some(known) = self.checked.get(key, version, content_type) {
                    return Ok(Opened::File(known)); // `fd` is closed: the known one is sent
                }
                let modified = std::time::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0));
                let validators = Validators::new(len, modified);
                let file = Arc::new(ServedFile {
                    handle: FileHandle::new(fd),
                    validators,
                    etag: validators.etag(),
                    last_modified: validators.last_modified(),
                    content_type,
                });
                self.checked.insert(key, version, file.clone());
                Ok(Opened::File(file))
            }
            FileType::Directory => Ok(Opened::Directory),
            _ => Err(OpenFailure::Forbidden),
        }
    }
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, retried a few times on `EAGAIN` (the
/// kernel's answer when a rename raced the lookup).
fn open_beneath(dir: &OwnedFd, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    const TRIES: usize = 4;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut last = rustix::io::Errno::AGAIN;
    for _ in 0..TRIES {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) => last = rustix::io::Errno::AGAIN,
            r => return r,
        }
    }
    Err(last)
}

/// The body of a response: bytes `start..end` of a file.
#[derive(Debug)]
pub(crate) struct Body<'a> {
    /// The file.
    pub(crate) file: &'a ServedFile,
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) end: u64,
}

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
    opts: SendOptions,
    /// Bodies of at least this many bytes go with [`Engine::ZeroCopy`] (`sendfile`, never a
    /// copy into the process), the others with the library's choice.
    zero_copy_from: u64,
    zero_copy: SendOptions,
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
        let opts = SendOptions::new().stall_timeout(stall);
        Ok(Peer {
            conn: Connection::new(stream)?,
            zero_copy: opts.clone().engine(Engine::ZeroCopy),
            opts,
            zero_copy_from,
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

    /// Sends `head` then the body's range, in one library call. Returns the bytes sent.
    ///
    /// # Errors
    ///
    /// [`SendFailure`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (as the library's send): dropping the future leaves part of the
    /// response sent; the caller then closes the connection.
    pub(crate) async fn send(
        &mut self,
        head: Vec<u8>,
        body: Option<Body<'_>>,
    ) -> Result<u64, SendFailure> {
        let head = Element::memory(head);
        let (one, two);
        let mut opts = &self.opts;
        let list: &[Element] = match body.filter(|b| b.end > b.start) {
            Some(b) => {
                if b.end - b.start >= self.zero_copy_from {
                    opts = &self.zero_copy;
                }
                let file = Element::shared_handle(b.file.handle.clone(), b.start..b.end);
                two = [head, file];
                &two
            }
            None => {
                one = [head];
                &one
            }
        };
        match self.conn.send_with(list, opts).await {
            Ok(report) => Ok(report.bytes_sent),
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(SendFailure::Stalled(e)),
            Err(e) => Err(SendFailure::Send(e)),
        }
    }
}
