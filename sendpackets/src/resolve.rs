//! Checking the list before the first byte: open or look at every file, check every range, and
//! turn the elements into segments the planner can work with.
//!
//! Every failure here happens with 0 bytes sent, and every descriptor opened here is owned by
//! the result (or dropped with the error), so nothing leaks.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::element::{Element, FileHandle, FileRange, Payload};
use crate::error::{ErrorKind, SendError};
use crate::sys::{self, FileStat};
use crate::transfer::{Kernel, SysKernel};
use crate::tuning;

/// One non-empty (or end-of-packet) element, resolved.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) element: usize,
    pub(crate) source: Source,
    pub(crate) len: u64,
    pub(crate) end_of_packet: bool,
}

/// Where a segment's bytes are.
#[derive(Debug)]
pub(crate) enum Source {
    Memory(Bytes),
    File { slot: usize, offset: u64 },
}

/// How a file of the list is reached.
#[derive(Debug)]
pub(crate) enum Origin {
    Path(PathBuf),
    Handle(FileHandle),
}

/// One distinct file of the list.
#[derive(Debug)]
pub(crate) struct FileSlot {
    pub(crate) origin: Origin,
    /// Open descriptor for path files (opened lazily when not kept from the checks).
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) stat: FileStat,
    /// The last segment reading this file: a path file is closed once the send passes it.
    pub(crate) last_segment: usize,
}

impl FileSlot {
    pub(crate) fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Path(p) => Some(p),
            Origin::Handle(_) => None,
        }
    }

    /// The descriptor to read from, if open.
    pub(crate) fn borrow_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.origin {
            Origin::Handle(h) => Some(h.as_fd()),
            Origin::Path(_) => self.fd.as_ref().map(|fd| fd.as_fd()),
        }
    }
}

/// The checked list.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) segments: Vec<Segment>,
    pub(crate) files: Vec<FileSlot>,
    pub(crate) element_count: usize,
    /// How many path files may stay open at once (see [`open_budget`]).
    pub(crate) open_budget: usize,
}

/// How many path files stay open between the checks and the send; the rest are reopened when
/// needed, so a list may name more files than the process may open at once.
pub(crate) fn open_budget() -> usize {
    let limit = sys::open_file_limit();
    (limit / tuning::OPEN_BUDGET_SHARE).clamp(tuning::OPEN_BUDGET_MIN, tuning::OPEN_BUDGET_MAX)
        as usize
}

/// Why [`open_path`] failed: the `open` (classify it with [`open_error`]) or the `fstat` of
/// the descriptor it opened.
#[derive(Debug)]
pub(crate) enum Opening {
    Open(io::Error),
    Stat(io::Error),
}

/// Opens the file at `path` for reading and asks what it is (`fstat`): the one way the library
/// opens a file by path (the checks, the express path, a reopen during a send, `OpenFile`).
/// Out of descriptors (`EMFILE`, `ENFILE`), `shed` lets go of the caller's spare ones and the
/// open is tried once more. What the caller then requires of the file differs (the checks take a
/// pseudo file as a snapshot, `OpenFile` refuses it, a reopen must find the same file), and
/// [`check_stat`] is the part they share.
pub(crate) fn open_path(
    k: &mut impl Kernel,
    path: &Path,
    shed: impl FnOnce(),
) -> Result<(OwnedFd, FileStat), Opening> {
    let fd = match k.open_read(path) {
        Err(e) if sys::is_out_of_descriptors(&e) => {
            shed();
            k.open_read(path)
        }
        r => r,
    }
    .map_err(Opening::Open)?;
    let stat = k.fstat(fd.as_fd()).map_err(Opening::Stat)?;
    Ok((fd, stat))
}

fn file_error(kind: ErrorKind, element: usize, path: Option<&Path>) -> SendError {
    SendError::new(kind).element_index(element).with_path(path)
}

/// Classifies a failed `open` of `path`.
pub(crate) fn open_error(err: io::Error, element: usize, path: &Path) -> SendError {
    let kind = match err.raw_os_error() {
        Some(libc::ENOENT) => {
            let dir_exists = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.is_dir(),
                _ => true,
            };
            if dir_exists {
                ErrorKind::FileNotFound
            } else {
                ErrorKind::DirectoryNotFound
            }
        }
        Some(libc::ENOTDIR) => ErrorKind::DirectoryNotFound,
        Some(libc::EACCES | libc::EPERM) => ErrorKind::PermissionDenied,
        Some(libc::EISDIR) => ErrorKind::IsADirectory,
        _ => ErrorKind::FileOpen,
    };
    file_error(kind, element, Some(path)).with_source(err)
}

/// What every file sent must be: not a directory, a regular file.
pub(crate) fn check_stat(
    stat: &FileStat,
    element: usize,
    path: Option<&Path>,
) -> Result<(), SendError> {
    if stat.directory {
        return Err(file_error(ErrorKind::IsADirectory, element, path));
    }
    if !stat.regular {
        return Err(file_error(ErrorKind::NotARegularFile, element, path));
    }
    Ok(())
}

/// Reads a whole pseudo file (whose `st_size` is made up) into memory.
fn read_pseudo(
    fd: BorrowedFd<'_>,
    element: usize,
    path: Option<&Path>,
) -> Result<Bytes, SendError> {
    let mut buf = vec![0u8; tuning::PSEUDO_FIRST_READ];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= tuning::MAX_PSEUDO_FILE {
                return Err(
                    file_error(ErrorKind::NotARegularFile, element, path).with_detail(format!(
                        "pseudo file larger than {} bytes",
                        tuning::MAX_PSEUDO_FILE
                    )),
                );
            }
            buf.resize(buf.len() * 2, 0);
        }
        match sys::pread(fd, &mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(file_error(ErrorKind::FileRead, element, path).with_source(e)),
        }
    }
    buf.truncate(len);
    Ok(Bytes::from(buf))
}

/// What the checks learned about one distinct file.
struct Checked {
    slot: usize,
    /// Set for pseudo files: their contents, read once.
    snapshot: Option<Bytes>,
}

struct Resolver {
    files: Vec<FileSlot>,
    snapshots: Vec<Option<Bytes>>,
    by_path: HashMap<PathBuf, usize>,
    by_fd: HashMap<RawFd, usize>,
    kept_open: usize,
    /// Asked (`getrlimit`) at the first path file: lists of memory and handles never need it.
    budget: Option<usize>,
}

impl Resolver {
    fn check_path(&mut self, path: &Path, element: usize) -> Result<Checked, SendError> {
        if let Some(&slot) = self.by_path.get(path) {
            return Ok(Checked {
                slot,
                snapshot: self.snapshots[slot].clone(),
            });
        }
        if path.as_os_str().is_empty() {
            return Err(file_error(ErrorKind::EmptyPath, element, Some(path)));
        }
        // Out of descriptors: close the ones kept so far and try once more.
        let files = &mut self.files;
        let kept_open = &mut self.kept_open;
        let shed = || {
            for f in files.iter_mut() {
                f.fd = None;
            }
            *kept_open = 0;
        };
        let (fd, stat) = open_path(&mut SysKernel, path, shed).map_err(|e| match e {
            Opening::Open(e) => open_error(e, element, path),
            Opening::Stat(e) => file_error(ErrorKind::FileOpen, element, Some(path)).with_source(e),
        })?;
        check_stat(&stat, element, Some(path))?;
        let snapshot = self.snapshot_if_pseudo(fd.as_fd(), &stat, element, Some(path))?;
        let budget = *self.budget.get_or_insert_with(open_budget);
        let keep = snapshot.is_none() && self.kept_open < budget;
        if keep {
            self.kept_open += 1;
        }
        let slot = self.files.len();
        self.files.push(FileSlot {
            origin: Origin::Path(path.to_path_buf()),
            fd: keep.then_some(fd),
            stat,
            last_segment: 0,
        });
        self.snapshots.push(snapshot.clone());
        self.by_path.insert(path.to_path_buf(), slot);
        Ok(Checked { slot, snapshot })
    }

    fn check_handle(&mut self, handle: &FileHandle, element: usize) -> Result<Checked, SendError> {
        let fd = handle.as_fd();
        if let Some(&slot) = self.by_fd.get(&fd.as_raw_fd()) {
            return Ok(Checked {
                slot,
                snapshot: self.snapshots[slot].clone(),
            });
        }
        let readable = handle_readable(handle)
            .map_err(|e| file_error(ErrorKind::FileOpen, element, None).with_source(e))?;
        if !readable {
            return Err(file_error(ErrorKind::PermissionDenied, element, None)
                .with_detail("handle is not open for reading".into()));
        }
        // A file opened by `OpenFile` was checked once; its length is the one it had then.
        let stat = match handle.facts().checked.get() {
            Some(stat) => *stat,
            None => sys::fstat(fd)
                .map_err(|e| file_error(ErrorKind::FileOpen, element, None).with_source(e))?,
        };
        check_stat(&stat, element, None)?;
        let snapshot = self.snapshot_if_pseudo(fd, &stat, element, None)?;
        let slot = self.files.len();
        self.files.push(FileSlot {
            origin: Origin::Handle(handle.clone()),
            fd: None,
            stat,
            last_segment: 0,
        });
        self.snapshots.push(snapshot.clone());
        self.by_fd.insert(fd.as_raw_fd(), slot);
        Ok(Checked { slot, snapshot })
    }

    fn snapshot_if_pseudo(
        &self,
        fd: BorrowedFd<'_>,
        stat: &FileStat,
        element: usize,
        path: Option<&Path>,
    ) -> Result<Option<Bytes>, SendError> {
        // Real files with data have blocks; only then is fstatfs worth a call.
        if !stat.no_blocks || !sys::on_pseudo_fs(fd).unwrap_or(false) {
            return Ok(None);
        }
        read_pseudo(fd, element, path).map(Some)
    }
}

/// Checks `elements` and turns them into segments. Nothing is sent.
pub(crate) fn resolve(elements: &[Element]) -> Result<Resolved, SendError> {
    let mut r = Resolver {
        files: Vec::new(),
        snapshots: Vec::new(),
        by_path: HashMap::new(),
        by_fd: HashMap::new(),
        kept_open: 0,
        budget: None,
    };
    let mut segments = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        let eop = element.end_of_packet;
        let (checked, range, path) = match &element.payload {
            Payload::Memory(bytes) => {
                if !bytes.is_empty() || eop {
                    segments.push(Segment {
                        element: index,
                        len: bytes.len() as u64,
                        source: Source::Memory(bytes.clone()),
                        end_of_packet: eop,
                    });
                }
                continue;
            }
            Payload::Path { path, range } => (r.check_path(path, index)?, *range, Some(&**path)),
            Payload::Handle { file, range } => (r.check_handle(file, index)?, *range, None),
        };
        let file_len = match &checked.snapshot {
            Some(s) => s.len() as u64,
            None => r.files[checked.slot].stat.len,
        };
        let Some((offset, len)) = range.resolve(file_len) else {
            return Err(range_error(index, path, range, file_len));
        };
        if len == 0 && !eop {
            continue;
        }
        let source = match checked.snapshot {
            Some(s) => Source::Memory(s.slice(offset as usize..(offset + len) as usize)),
            None => {
                r.files[checked.slot].last_segment = segments.len();
                Source::File {
                    slot: checked.slot,
                    offset,
                }
            }
        };
        segments.push(Segment {
            element: index,
            source,
            len,
            end_of_packet: eop,
        });
    }
    Ok(Resolved {
        segments,
        files: r.files,
        element_count: elements.len(),
        open_budget: r.budget.unwrap_or(0),
    })
}

fn range_error(index: usize, path: Option<&Path>, range: FileRange, file_len: u64) -> SendError {
    let wanted = match range.len {
        Some(len) => format!("offset {} count {len}", range.offset),
        None => format!("offset {} to end", range.offset),
    };
    SendError::new(ErrorKind::RangeOutOfBounds)
        .element_index(index)
        .with_path(path)
        .with_detail(format!("{wanted}, file is {file_len} bytes"))
        .with_source(io::Error::from_raw_os_error(libc::EINVAL))
}

/// Whether a handle's descriptor was opened for reading (`fcntl` the first time, remembered in
/// the handle: an open file's access mode cannot change).
pub(crate) fn handle_readable(handle: &FileHandle) -> io::Result<bool> {
    let facts = handle.facts();
    if let Some(&readable) = facts.readable.get() {
        return Ok(readable);
    }
    let readable = sys::readable(handle.as_fd())?;
    let _ = facts.readable.set(readable);
    Ok(readable)
}

/// Whether a handle's descriptor is a regular file (`fstat` the first time, remembered).
pub(crate) fn handle_regular(handle: &FileHandle) -> io::Result<bool> {
    let facts = handle.facts();
    if let Some(&regular) = facts.regular.get() {
        return Ok(regular);
    }
    let regular = sys::fstat(handle.as_fd())?.regular;
    let _ = facts.regular.set(regular);
    Ok(regular)
}
