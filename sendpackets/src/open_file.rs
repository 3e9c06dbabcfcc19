//! Files a server sends again and again: opened and checked once ([`OpenFile`]), and an
//! open-file cache with a validity period ([`FileCache`], as nginx's `open_file_cache`).

use std::collections::HashMap;
use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::element::{Element, FileHandle, FileRange};
use crate::error::{ErrorKind, SendError};
use crate::resolve;
use crate::sys::{self, FileStat};

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
    path: PathBuf,
    stat: FileStat,
    modified: SystemTime,
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
        let named = |kind: ErrorKind| SendError::new(kind).with_path(Some(path));
        if path.as_os_str().is_empty() {
            return Err(named(ErrorKind::EmptyPath));
        }
        let fd = sys::open_read(path).map_err(|e| resolve::open_error(e, 0, path).unindexed())?;
        let stat = sys::fstat(fd.as_fd()).map_err(|e| named(ErrorKind::FileOpen).with_source(e))?;
        if stat.directory {
            return Err(named(ErrorKind::IsADirectory));
        }
        if !stat.regular {
            return Err(named(ErrorKind::NotARegularFile));
        }
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
                path: path.to_path_buf(),
                stat,
                modified,
            }),
        })
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

    /// A tag that changes whenever the file is replaced or modified: device, inode, length and
    /// modification time (for an `ETag`).
    pub fn version_tag(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.stat.id.hash(&mut h);
        h.finish()
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The shared open file.
    pub fn handle(&self) -> &FileHandle {
        &self.inner.handle
    }

    /// An element sending `range` of the file (`..` for all of it; see [`FileRange`]). The
    /// range is checked against [`len`](Self::len) when the list is sent.
    pub fn element(&self, range: impl Into<FileRange>) -> Element {
        Element::shared_handle(self.inner.handle.clone(), range)
    }

    /// Whether the file at `path` is still the one opened (same device, inode, length,
    /// modification and change times): one `stat`.
    fn still_current(&self) -> bool {
        sys::stat_path(&self.inner.path).is_ok_and(|now| now.id == self.inner.stat.id)
    }
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
/// Within the validity period a changed file is still served as it was (as nginx does): a
/// replaced file's old contents, whole, or a truncated file's error ([`ErrorKind::FileTruncated`]).
/// Errors are not cached.
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
/// let again = cache.open(&path)?; // no system call
/// assert_eq!((first.len(), again.len()), (3, 3));
/// assert_eq!(cache.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileCache {
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
            valid,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
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
        match cached {
            Some((file, true)) => return Ok(file),
            Some((file, false)) if file.still_current() => {
                if let Some(e) = self.lock().get_mut(path) {
                    e.checked = now;
                }
                return Ok(file);
            }
            _ => {}
        }
        let opened = OpenFile::open(path);
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
