//! Files a server sends again and again: opened and checked once ([`OpenFile`]), and an
//! open-file cache with a validity period ([`FileCache`], as nginx's `open_file_cache`).

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::element::{Element, FileHandle, FileRange};
use crate::error::{ErrorKind, SendError};
use crate::resolve;
use crate::sys::{self, FileStat};
use crate::transfer::SysKernel;

/// A regular file opened and checked once — readable, a regular file, its length known — to be
/// sent many times: the length for a `Content-Length` header, then any number of ranges.
///
/// Sends of its [`element`](Self::element)s ask the file nothing more (a path element opens,
/// checks and closes the file on every send). The length is the one the file had when opened:
/// a file that grows later is sent as it was then, and one that shrinks under a send fails with
/// [`ErrorKind::FileTruncated`] and exact progress, never a short message. Cheap to clone (the
/// descriptor is shared) and to send from many tasks at once.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, OpenFile};
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("clip.bin");
/// # std::fs::write(&path, b"0123456789")?;
/// let clip = OpenFile::open(&path)?;
/// assert_eq!(clip.len(), 10);
///
/// let (a, mut b) = UnixStream::pair()?;
/// // A range request: bytes 2..=5, with the header built from the known length.
/// let head = format!("Content-Range: bytes 2-5/{}\r\n\r\n", clip.len());
/// sendpackets::send(&a, &[Element::memory(head), clip.element(2..=5)])?;
/// drop(a);
/// let mut got = String::new();
/// b.read_to_string(&mut got)?;
/// assert_eq!(got, "Content-Range: bytes 2-5/10\r\n\r\n2345");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OpenFile {
    inner: Arc<Opened>,
}

struct Opened {
    handle: FileHandle,
    /// The path it was opened by (relative to `beneath`'s directory if that is set); `None`
    /// when made from a descriptor.
    path: Option<PathBuf>,
    stat: FileStat,
    modified: SystemTime,
    /// [`OpenFile::version_tag`], computed once.
    version: u64,
}

impl OpenFile {
    /// Opens `path` for reading and checks it: it must be a readable regular file.
    ///
    /// # Errors
    ///
    /// As the checks of a path element: [`ErrorKind::EmptyPath`], [`ErrorKind::FileNotFound`],
    /// [`ErrorKind::DirectoryNotFound`], [`ErrorKind::IsADirectory`],
    /// [`ErrorKind::NotARegularFile`] (also for procfs and sysfs files, whose lengths are made
    /// up), [`ErrorKind::PermissionDenied`], [`ErrorKind::FileOpen`]; each names the path.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{ErrorKind, OpenFile};
    ///
    /// let err = OpenFile::open("/no/such/dir/file").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::DirectoryNotFound);
    /// let err = OpenFile::open("/").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::IsADirectory);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<OpenFile, SendError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(SendError::new(ErrorKind::EmptyPath).with_path(Some(path)));
        }
        let (fd, stat) = resolve::open_path(&mut SysKernel, path, || {}).map_err(|e| match e {
            resolve::Opening::Open(e) => resolve::open_error(e, 0, path).unindexed(),
            resolve::Opening::Stat(e) => SendError::new(ErrorKind::FileOpen)
                .with_path(Some(path))
                .with_source(e),
        })?;
        OpenFile::checked(fd, stat, Some(path))
    }

    /// Opens `relative` for reading strictly beneath the directory `dir`, and checks it as
    /// [`open`](Self::open) does. The kernel resolves the path (`openat2` with
    /// `RESOLVE_BENEATH`): an absolute path, `..` above `dir`, or a symlink whose target lies
    /// outside fails, whatever renames race the lookup. What a file server needs to serve a
    /// directory and nothing else.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); a path that leads outside `dir` is
    /// [`ErrorKind::PermissionDenied`] (detail: "outside the directory"), and a kernel
    /// without `openat2` (before Linux 5.6) is [`ErrorKind::FileOpen`] with `ENOSYS`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{ErrorKind, OpenFile};
    ///
    /// # let root = tempfile::tempdir()?;
    /// std::fs::write(root.path().join("index.html"), "<h1>hi</h1>")?;
    /// let dir = std::fs::File::open(root.path())?;
    /// let page = OpenFile::open_beneath(&dir, "index.html")?;
    /// assert_eq!(page.len(), 11);
    /// let err = OpenFile::open_beneath(&dir, "../../etc/passwd").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_beneath(dir: impl AsFd, relative: impl AsRef<Path>) -> Result<OpenFile, SendError> {
        let relative = relative.as_ref();
        let fd = sys::open_beneath(dir.as_fd(), relative, false)
            .map_err(|e| beneath_error(e, relative))?;
        OpenFile::stat_and_check(fd, Some(relative))
    }

    /// Takes an open descriptor and checks it as [`open`](Self::open) does (readable, a
    /// regular file, not a pseudo file), for files opened by other means (`openat2` with
    /// flags of the caller's, a descriptor passed over a Unix socket, `memfd`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::IsADirectory`], [`ErrorKind::NotARegularFile`],
    /// [`ErrorKind::PermissionDenied`] (not open for reading), [`ErrorKind::FileOpen`]
    /// (`fstat` failed). The descriptor is closed on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::OpenFile;
    /// use std::os::fd::OwnedFd;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "abc")?;
    /// let file = OpenFile::from_fd(OwnedFd::from(std::fs::File::open(&path)?))?;
    /// assert_eq!((file.len(), file.path()), (3, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<OpenFile, SendError> {
        match sys::readable(fd.as_fd()) {
            Ok(true) => {}
            Ok(false) => {
                return Err(SendError::new(ErrorKind::PermissionDenied)
                    .with_detail("the descriptor is not open for reading".into()));
            }
            Err(e) => return Err(SendError::new(ErrorKind::FileOpen).with_source(e)),
        }
        OpenFile::stat_and_check(fd, None)
    }

    /// `fstat`, then [`checked`](Self::checked).
    fn stat_and_check(fd: OwnedFd, path: Option<&Path>) -> Result<OpenFile, SendError> {
        let stat = sys::fstat(fd.as_fd()).map_err(|e| {
            SendError::new(ErrorKind::FileOpen)
                .with_path(path)
                .with_source(e)
        })?;
        OpenFile::checked(fd, stat, path)
    }

    /// The checks every way of opening shares: a regular file ([`resolve::check_stat`], as a
    /// send's), and not a pseudo file (a send would snapshot one; an `OpenFile` is for sending
    /// many times, so it refuses one).
    fn checked(fd: OwnedFd, stat: FileStat, path: Option<&Path>) -> Result<OpenFile, SendError> {
        let named = |kind: ErrorKind| SendError::new(kind).with_path(path);
        resolve::check_stat(&stat, 0, path).map_err(SendError::unindexed)?;
        if stat.no_blocks && sys::on_pseudo_fs(fd.as_fd()).unwrap_or(false) {
            return Err(named(ErrorKind::NotARegularFile)
                .with_detail("a pseudo file (procfs, sysfs): its length is made up".into()));
        }
        let since_epoch = u64::try_from(stat.id.mtime_ns).unwrap_or(0);
        let modified = SystemTime::UNIX_EPOCH + Duration::from_nanos(since_epoch);
        let handle = FileHandle::new(fd);
        let facts = handle.facts();
        let _ = facts.regular.set(true);
        let _ = facts.readable.set(true);
        let _ = facts.checked.set(stat);
        Ok(OpenFile {
            inner: Arc::new(Opened {
                handle,
                path: path.map(Path::to_path_buf),
                stat,
                modified,
                version: version_tag(&stat),
            }),
        })
    }

    /// Whether the file changed in place since it was opened (written, truncated, its times
    /// set): one `fstat` of the open descriptor. A file replaced by a rename is not seen here
    /// (the descriptor still names the old one).
    fn changed_in_place(&self) -> bool {
        sys::fstat(self.inner.handle.as_fd()).map_or(true, |now| now.id != self.inner.stat.id)
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.inner.stat.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's modification time when it was opened (for `Last-Modified`).
    pub fn modified(&self) -> SystemTime {
        self.inner.modified
    }

    /// A tag that changes whenever the file is replaced or modified: device, inode, length,
    /// modification and change times (for an `ETag`). Stable: the same file version gives the
    /// same tag whatever build or toolchain computes it.
    pub fn version_tag(&self) -> u64 {
        self.inner.version
    }

    /// The path it was opened by (relative to the directory for
    /// [`open_beneath`](Self::open_beneath)); `None` for [`from_fd`](Self::from_fd).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// An element sending `range` of the file (`..` for all of it; see [`FileRange`]). The
    /// range is checked against [`len`](Self::len) when the list is sent.
    pub fn element(&self, range: impl Into<FileRange>) -> Element {
        Element::shared_handle(self.inner.handle.clone(), range)
    }

    /// Whether the file at `path` is still the one opened (same device, inode, length,
    /// modification and change times): one `stat`.
    /// Whether its path (beneath `dir` when given) still names this file, unchanged.
    fn still_current(&self, dir: Option<BorrowedFd<'_>>) -> bool {
        let Some(path) = &self.inner.path else {
            return !self.changed_in_place();
        };
        let now = match dir {
            Some(dir) => sys::open_beneath(dir, path, true).and_then(|fd| sys::fstat(fd.as_fd())),
            None => sys::stat_path(path),
        };
        now.is_ok_and(|now| now.id == self.inner.stat.id)
    }
}

/// The open descriptor, borrowed: to read or map the file (see also
/// [`version_tag`](OpenFile::version_tag) to tell versions apart). It is shared with every
/// clone and with sends in flight, so it must not be closed or replaced; its file offset is
/// never used by the library (sends read at explicit offsets).
impl AsFd for OpenFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.handle.as_fd()
    }
}

/// FNV-1a over a file's identity and version, in a fixed byte order: the same file version
/// gives the same tag on every build and toolchain (std's hasher makes no such promise).
fn version_tag(stat: &FileStat) -> u64 {
    let id = &stat.id;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = [id.dev, id.ino, id.len]
        .into_iter()
        .flat_map(u64::to_le_bytes)
        .chain(
            [id.mtime_ns, id.ctime_ns]
                .into_iter()
                .flat_map(i128::to_le_bytes),
        );
    for byte in bytes {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFile")
            .field("path", &self.inner.path)
            .field("len", &self.inner.stat.len)
            .field("fd", &self.inner.handle.as_fd())
            .finish()
    }
}

/// An open-file cache, as nginx's `open_file_cache`: [`open`](Self::open) returns the
/// [`OpenFile`] of a path opened within the validity period without a system call; after it, a
/// `stat` of the path tells whether the file is still the same (then it is kept, and valid
/// again) or was replaced or changed (then it is opened anew). At most `capacity` files are
/// kept open; the least recently used goes first.
///
/// Every hit costs one `fstat` of the open descriptor: a file changed in place (written,
/// truncated), deleted or renamed over (its change time moves with its link count) is dropped
/// and opened anew at once, so a response never starts from a length the file no longer has.
/// What that `fstat` cannot see (a file created where none was, a directory of the path renamed)
/// is seen after the validity period. Errors are not cached.
///
/// [`beneath`](Self::beneath) makes a cache that opens every path beneath one directory, as
/// [`OpenFile::open_beneath`] does: what a file server needs.
///
/// # Examples
///
/// ```
/// use sendpackets::FileCache;
/// use std::time::Duration;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("a.txt");
/// std::fs::write(&path, "one")?;
/// let cache = FileCache::new(Duration::from_secs(5), 1000);
/// let first = cache.open(&path)?;
/// let again = cache.open(&path)?; // one fstat, no open
/// assert_eq!((first.len(), again.len()), (3, 3));
/// assert_eq!(cache.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileCache {
    /// Paths are opened beneath this directory when set.
    dir: Option<OwnedFd>,
    valid: Duration,
    capacity: usize,
    entries: Mutex<HashMap<PathBuf, Entry>>,
}

struct Entry {
    file: OpenFile,
    checked: Instant,
    used: Instant,
}

impl FileCache {
    /// A cache keeping at most `capacity` files open, each trusted for `valid` after it was
    /// opened or last checked.
    pub fn new(valid: Duration, capacity: usize) -> Self {
        FileCache {
            dir: None,
            valid,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A cache like [`new`](Self::new)'s whose paths are opened beneath the directory `dir`
    /// ([`OpenFile::open_beneath`]: nothing outside it is ever opened, symlinks included).
    /// Paths given to [`open`](Self::open) are relative to `dir`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{ErrorKind, FileCache};
    /// use std::os::fd::OwnedFd;
    /// use std::time::Duration;
    ///
    /// # let root = tempfile::tempdir()?;
    /// std::fs::write(root.path().join("a.css"), "p{}")?;
    /// let dir = OwnedFd::from(std::fs::File::open(root.path())?);
    /// let cache = FileCache::beneath(dir, Duration::from_secs(5), 1000);
    /// assert_eq!(cache.open("a.css")?.len(), 3);
    /// assert_eq!(cache.open("/etc/passwd").unwrap_err().kind(), ErrorKind::PermissionDenied);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn beneath(dir: OwnedFd, valid: Duration, capacity: usize) -> Self {
        FileCache {
            dir: Some(dir),
            ..FileCache::new(valid, capacity)
        }
    }

    /// The file at `path`: from the cache while valid, checked with one `stat` after that,
    /// opened when new or changed.
    ///
    /// # Errors
    ///
    /// As [`OpenFile::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<OpenFile, SendError> {
        let path = path.as_ref();
        let now = Instant::now();
        let cached = {
            let mut map = self.lock();
            match map.get_mut(path) {
                Some(e) => {
                    e.used = now;
                    Some((e.file.clone(), now.duration_since(e.checked) < self.valid))
                }
                None => None,
            }
        };
        let dir = self.dir.as_ref().map(AsFd::as_fd);
        match cached {
            Some((file, true)) if !file.changed_in_place() => return Ok(file),
            Some((file, false)) if file.still_current(dir) => {
                if let Some(e) = self.lock().get_mut(path) {
                    e.checked = now;
                }
                return Ok(file);
            }
            _ => {}
        }
        let opened = match dir {
            Some(dir) => OpenFile::open_beneath(dir, path),
            None => OpenFile::open(path),
        };
        let mut map = self.lock();
        match &opened {
            Ok(file) => {
                if !map.contains_key(path) && map.len() >= self.capacity {
                    let oldest = map
                        .iter()
                        .min_by_key(|(_, e)| e.used)
                        .map(|(p, _)| p.clone());
                    if let Some(p) = oldest {
                        map.remove(&p);
                    }
                }
                map.insert(
                    path.to_path_buf(),
                    Entry {
                        file: file.clone(),
                        checked: now,
                        used: now,
                    },
                );
            }
            Err(_) => {
                map.remove(path);
            }
        }
        opened
    }

    /// How many files the cache holds open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds no file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every file (they close once no send holds them).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets the files not asked for during the last `unused_for` (they close once no send
    /// holds them), as nginx's `open_file_cache inactive`. A server calls it now and then, so
    /// that a file deleted and no longer asked for is not kept open (nor its space on disk).
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::FileCache;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("a.txt");
    /// std::fs::write(&path, "one")?;
    /// let cache = FileCache::new(Duration::from_secs(5), 1000);
    /// cache.open(&path)?;
    /// cache.forget_unused(Duration::from_secs(60)); // asked for just now: kept
    /// assert_eq!(cache.len(), 1);
    /// cache.forget_unused(Duration::ZERO);
    /// assert!(cache.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget_unused(&self, unused_for: Duration) {
        let now = Instant::now();
        self.lock()
            .retain(|_, e| now.duration_since(e.used) < unused_for);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCache")
            .field("valid", &self.valid)
            .field("capacity", &self.capacity)
            .field("open", &self.len())
            .finish()
    }
}

/// The error of [`OpenFile::open_beneath`]: as a path element's, and a path that leads outside
/// the directory (`EXDEV`, or `ELOOP` from a magic link) is permission denied.
fn beneath_error(e: std::io::Error, relative: &Path) -> SendError {
    match e.raw_os_error() {
        Some(libc::EXDEV | libc::ELOOP) => SendError::new(ErrorKind::PermissionDenied)
            .with_path(Some(relative))
            .with_detail("the path leads outside the directory".into())
            .with_source(e),
        Some(libc::ENOENT) => SendError::new(ErrorKind::FileNotFound)
            .with_path(Some(relative))
            .with_source(e),
        _ => resolve::open_error(e, 0, relative).unindexed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::FileVersion;

    /// The tag is the FNV-1a of the fields' little-endian bytes in this order, written out the
    /// plain way: a change of order, width or hash would change every `ETag` made from it.
    fn reference(id: &FileVersion) -> u64 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&id.dev.to_le_bytes());
        bytes.extend_from_slice(&id.ino.to_le_bytes());
        bytes.extend_from_slice(&id.len.to_le_bytes());
        bytes.extend_from_slice(&id.mtime_ns.to_le_bytes());
        bytes.extend_from_slice(&id.ctime_ns.to_le_bytes());
        assert_eq!(bytes.len(), 56);
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    #[test]
    fn version_tag_is_fnv1a_of_the_version_fields() {
        let versions = [
            (0, 0, 0, 0, 0),
            (2049, 1_234_567, 1024, 1_765_000_000_123_456_789, -1),
            (u64::MAX, 7, 1 << 40, i128::MIN, i128::MAX),
        ];
        for (dev, ino, len, mtime_ns, ctime_ns) in versions {
            let id = FileVersion {
                dev,
                ino,
                len,
                mtime_ns,
                ctime_ns,
            };
            let stat = FileStat {
                regular: true,
                directory: false,
                len,
                id,
                no_blocks: false,
            };
            assert_eq!(version_tag(&stat), reference(&id));
        }
    }
}
