//! The element model: what one entry of a send-packets list is.
//!
//! An [`Element`] is plain data: a [`Payload`] (memory, a file named by path, or an already-open
//! file) and an end-of-packet flag. Memory ranges are checked when the element is built; file
//! ranges are checked when the send starts, because only then is the file looked at.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// One entry of the ordered list that a send operation transmits.
///
/// Build elements with [`Element::memory`], [`Element::memory_range`], [`Element::file`] and
/// [`Element::handle`], and mark a packet boundary with [`Element::end_of_packet`].
///
/// # Examples
///
/// ```
/// use sendpackets::Element;
///
/// let list = vec![
///     Element::memory("HTTP/1.1 200 OK\r\n\r\n"),
///     Element::file("index.html", ..),       // the whole file
///     Element::file("index.html", 10..30),   // bytes 10 to 29
///     Element::memory(&b"\r\n"[..]).end_of_packet(),
/// ];
/// assert_eq!(list.len(), 4);
/// assert!(list[3].end_of_packet);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Element {
    /// What the element sends.
    pub payload: Payload,
    /// This element ends a packet: on datagram sockets it closes the current datagram, on stream
    /// sockets data up to here is pushed to the peer without being held back.
    pub end_of_packet: bool,
}

/// What an [`Element`] sends.
///
/// # Examples
///
/// ```
/// use sendpackets::{Element, Payload};
///
/// let e = Element::file("index.html", 10..20);
/// match &e.payload {
///     Payload::Path { path, range } => {
///         assert_eq!(path.to_str(), Some("index.html"));
///         assert_eq!((range.offset, range.len), (10, Some(10)));
///     }
///     _ => unreachable!(),
/// }
/// assert!(matches!(Element::memory("hi").payload, Payload::Memory(_)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Payload {
    /// Bytes in memory. An empty buffer sends nothing and is skipped.
    Memory(Bytes),
    /// A file named by path, opened when the send starts. Relative paths resolve against the
    /// current working directory at that time.
    Path {
        /// The file's path.
        path: PathBuf,
        /// Which bytes of the file to send.
        range: FileRange,
    },
    /// An already-open file. Reads use explicit offsets: the handle's cursor is never used or
    /// moved, so one handle may appear in several elements.
    Handle {
        /// The open file.
        file: FileHandle,
        /// Which bytes of the file to send.
        range: FileRange,
    },
}

/// A byte range of a file: an offset and either a length or "to the end of the file".
///
/// The end is decided when the send starts: a file that grows afterwards still sends only the
/// range decided then.
///
/// # Examples
///
/// ```
/// use sendpackets::FileRange;
///
/// assert_eq!(FileRange::from(..), FileRange::new(0, None));
/// assert_eq!(FileRange::from(10..30), FileRange::new(10, Some(20)));
/// assert_eq!(FileRange::from(10..), FileRange::new(10, None));
/// // .NET's (offset, count) with count 0 meaning "to the end":
/// assert_eq!(FileRange::from_dotnet_count_or_to_end(5, 0), FileRange::new(5, None));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FileRange {
    /// First byte to send.
    pub offset: u64,
    /// How many bytes to send; `None` sends from `offset` to the end of the file.
    pub len: Option<u64>,
}

impl FileRange {
    /// A range of `len` bytes from `offset`, or to the end of the file when `len` is `None`.
    pub const fn new(offset: u64, len: Option<u64>) -> Self {
        FileRange { offset, len }
    }

    /// .NET's `SendPacketsElement(path, offset, count)` spelling, named for its trap:
    /// `count == 0` means "from `offset` to the end of the file", not "nothing" (an empty range
    /// is `FileRange::new(offset, Some(0))` or `offset..offset`).
    pub const fn from_dotnet_count_or_to_end(offset: u64, count: u64) -> Self {
        FileRange {
            offset,
            len: if count == 0 { None } else { Some(count) },
        }
    }

    /// This range moved `n` bytes further into the file (what is left after `n` bytes went out).
    pub(crate) fn advanced(self, n: u64) -> Self {
        FileRange {
            offset: self.offset.saturating_add(n),
            len: self.len.map(|len| len.saturating_sub(n)),
        }
    }

    /// Resolves the range against a file of `file_len` bytes: `Some((offset, len))`, or `None`
    /// when the range does not lie inside the file.
    pub(crate) fn resolve(self, file_len: u64) -> Option<(u64, u64)> {
        if self.offset > file_len {
            return None;
        }
        let available = file_len - self.offset;
        match self.len {
            None => Some((self.offset, available)),
            Some(len) if len <= available => Some((self.offset, len)),
            Some(_) => None,
        }
    }
}

impl<R: RangeBounds<u64>> From<R> for FileRange {
    fn from(range: R) -> Self {
        let offset = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        // Counted from the offset, so `a..=u64::MAX` is `u64::MAX - a + 1` bytes (no end
        // bound past u64::MAX is needed); an empty or reversed range is 0 bytes.
        let len = match range.end_bound() {
            Bound::Included(&e) if e >= offset => Some((e - offset).saturating_add(1)),
            Bound::Included(_) => Some(0),
            Bound::Excluded(&e) => Some(e.saturating_sub(offset)),
            Bound::Unbounded => None,
        };
        FileRange { offset, len }
    }
}

/// A shared, already-open file: a [`std::fs::File`], an `Arc<File>` (an `Arc` of anything
/// [`AsFd`] is itself [`AsFd`]), an `OwnedFd`, or anything [`AsFd`].
///
/// Cloning shares the handle. The send reads with explicit offsets and never moves its cursor.
#[derive(Clone)]
pub struct FileHandle {
    file: Arc<dyn AsFd + Send + Sync>,
    /// What never changes for a descriptor, once asked: (regular file, open for reading).
    /// Clones share the answers.
    facts: Arc<Facts>,
}

/// What never changes for a descriptor, once asked (filled in by the checks, `resolve.rs`).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// A regular file.
    pub(crate) regular: OnceLock<bool>,
    /// Open for reading.
    pub(crate) readable: OnceLock<bool>,
    /// Set by [`OpenFile`](crate::OpenFile): the file as checked when it was opened; sends
    /// take its length from here and ask no more.
    pub(crate) checked: OnceLock<crate::sys::FileStat>,
}

impl FileHandle {
    /// Wraps an open file (or anything with a file descriptor opened for reading). The
    /// descriptor it gives must stay the same for the handle's life.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::{Element, FileHandle};
    /// use std::io::Read;
    /// use std::os::unix::net::UnixStream;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("asset.bin");
    /// std::fs::write(&path, b"0123456789")?;
    /// // One open file, shared by many elements (and many sends): cloning shares it.
    /// let file = FileHandle::new(std::fs::File::open(&path)?);
    /// let (a, mut b) = UnixStream::pair()?;
    /// let list = [
    ///     Element::shared_handle(file.clone(), 0..3),
    ///     Element::shared_handle(file, 7..),
    /// ];
    /// sendpackets::send(&a, &list)?;
    /// drop(a);
    /// let mut got = String::new();
    /// b.read_to_string(&mut got)?;
    /// assert_eq!(got, "012789");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(file: impl AsFd + Send + Sync + 'static) -> Self {
        FileHandle {
            file: Arc::new(file),
            facts: Arc::default(),
        }
    }

    /// The facts the checks remember about the descriptor.
    pub(crate) fn facts(&self) -> &Facts {
        &self.facts
    }
}

impl AsFd for FileHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FileHandle").field(&self.as_fd()).finish()
    }
}

impl Element {
    /// Bytes in memory: `Bytes`, `Vec<u8>`, `&'static [u8]`, `String` or `&'static str`.
    ///
    /// The buffer is shared, not copied (converting a `Vec` or `String` takes ownership).
    pub fn memory(bytes: impl Into<Bytes>) -> Self {
        Element {
            payload: Payload::Memory(bytes.into()),
            end_of_packet: false,
        }
    }

    /// `count` bytes of `bytes` from `offset`, as .NET's `SendPacketsElement(byte[], int, int)`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::RangeOutOfBounds`](crate::ErrorKind::RangeOutOfBounds) when
    /// `offset > bytes.len()` or `count > bytes.len() - offset`, before anything is sent (the
    /// error names no element: the list does not exist yet).
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets::Element;
    ///
    /// assert!(Element::memory_range(vec![0u8; 10], 2, 8).is_ok());
    /// let err = Element::memory_range(vec![0u8; 10], 2, 9).unwrap_err();
    /// assert_eq!(err.kind(), sendpackets::ErrorKind::RangeOutOfBounds);
    /// ```
    pub fn memory_range(
        bytes: impl Into<Bytes>,
        offset: usize,
        count: usize,
    ) -> Result<Self, crate::SendError> {
        let bytes = bytes.into();
        let fits = offset <= bytes.len() && count <= bytes.len() - offset;
        if !fits {
            return Err(
                crate::SendError::new(crate::ErrorKind::RangeOutOfBounds).with_detail(format!(
                    "memory range offset {offset} count {count} does not fit a buffer of {} bytes",
                    bytes.len()
                )),
            );
        }
        Ok(Element::memory(bytes.slice(offset..offset + count)))
    }

    /// A range of the file at `path`: `..` for the whole file, `a..b`, `a..` (to the end), or a
    /// [`FileRange`]. The file is opened and the range checked when the send starts.
    pub fn file(path: impl Into<PathBuf>, range: impl Into<FileRange>) -> Self {
        Element {
            payload: Payload::Path {
                path: path.into(),
                range: range.into(),
            },
            end_of_packet: false,
        }
    }

    /// A range of an already-open file (`File`, `Arc<File>`, anything [`AsFd`]).
    pub fn handle(file: impl AsFd + Send + Sync + 'static, range: impl Into<FileRange>) -> Self {
        Element::shared_handle(FileHandle::new(file), range)
    }

    /// A range of a [`FileHandle`] that other elements may share.
    pub fn shared_handle(file: FileHandle, range: impl Into<FileRange>) -> Self {
        Element {
            payload: Payload::Handle {
                file,
                range: range.into(),
            },
            end_of_packet: false,
        }
    }

    /// Marks this element as the last of a packet.
    #[must_use]
    pub fn end_of_packet(mut self) -> Self {
        self.end_of_packet = true;
        self
    }

    /// The path of a path element.
    pub fn path(&self) -> Option<&Path> {
        match &self.payload {
            Payload::Path { path, .. } => Some(path),
            _ => None,
        }
    }

    /// What is left of this element after its first `n` bytes were sent (used to resume).
    #[must_use]
    pub(crate) fn advanced(&self, n: u64) -> Element {
        let payload = match &self.payload {
            Payload::Memory(b) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX).min(b.len());
                Payload::Memory(b.slice(n..))
            }
            Payload::Path { path, range } => Payload::Path {
                path: path.clone(),
                range: range.advanced(n),
            },
            Payload::Handle { file, range } => Payload::Handle {
                file: file.clone(),
                range: range.advanced(n),
            },
        };
        Element {
            payload,
            end_of_packet: self.end_of_packet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_range_to_the_last_offset_is_whole() {
        // 3..=u64::MAX holds u64::MAX - 2 offsets.
        assert_eq!(FileRange::from(3..=u64::MAX).len, Some(u64::MAX - 2));
        assert_eq!(FileRange::from(0..=u64::MAX).len, Some(u64::MAX)); // saturates: 2^64 bytes
        let (a, b) = (5, 4);
        assert_eq!(FileRange::from(a..=b).len, Some(0));
        assert_eq!(FileRange::from(5..=5).len, Some(1));
    }

    #[test]
    fn range_spellings() {
        assert_eq!(FileRange::from(..), FileRange::new(0, None));
        assert_eq!(FileRange::from(3..=4), FileRange::new(3, Some(2)));
        let (lo, hi) = (7, 3);
        assert_eq!(FileRange::from(lo..hi), FileRange::new(7, Some(0)));
        assert_eq!(
            FileRange::from_dotnet_count_or_to_end(0, 0),
            FileRange::new(0, None)
        );
    }

    #[test]
    fn resolve_checks_bounds() {
        assert_eq!(FileRange::new(0, None).resolve(1024), Some((0, 1024)));
        assert_eq!(FileRange::new(1024, None).resolve(1024), Some((1024, 0)));
        assert_eq!(FileRange::new(11000, None).resolve(1024), None);
        assert_eq!(FileRange::new(5, Some(10000)).resolve(1024), None);
        assert_eq!(FileRange::new(10, Some(20)).resolve(1024), Some((10, 20)));
        assert_eq!(FileRange::new(u64::MAX, Some(1)).resolve(u64::MAX), None);
    }

    #[test]
    fn memory_range_checks() {
        let e = Element::memory_range(&b"hello world"[..], 6, 5).unwrap();
        match e.payload {
            Payload::Memory(b) => assert_eq!(&b[..], b"world"),
            _ => unreachable!(),
        }
        let err = Element::memory_range(&b"abc"[..], 4, 0).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::RangeOutOfBounds);
        assert_eq!(
            err.cause().to_string(),
            "range out of bounds (memory range offset 4 count 0 does not fit a buffer of 3 bytes)"
        );
        assert!(Element::memory_range(&b"abc"[..], 3, 0).is_ok());
        assert!(Element::memory_range(&b"abc"[..], 1, usize::MAX).is_err());
    }

    #[test]
    fn advanced_elements() {
        let e = Element::memory("abcdef").end_of_packet().advanced(2);
        assert!(e.end_of_packet);
        match e.payload {
            Payload::Memory(b) => assert_eq!(&b[..], b"cdef"),
            _ => unreachable!(),
        }
        let f = Element::file("x", 10..30).advanced(5);
        match f.payload {
            Payload::Path { range, .. } => assert_eq!(range, FileRange::new(15, Some(15))),
            _ => unreachable!(),
        }
    }
}
