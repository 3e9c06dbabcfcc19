//! Buffers placed on purpose: every receiver's, baseline's and contender's buffer in the bench
//! starts on a page boundary, plus one global offset (`--buf-offset N`, default 0).
//!
//! On this CPU a copy whose destination starts 8–24 bytes past a page boundary runs about 3x
//! slower than one at 0 or at 32–4088 (`shared/limits/README.md`): a receiver draining into a
//! buffer 16 bytes past the boundary made `sendfile` over TCP run 1.2 GB/s against 2.8–3.3 GB/s
//! on the boundary. Left to `malloc`, placement would decide the figures, differently for each
//! contender; so the bench places every buffer the same way, and the C harness is told the same
//! offset (`LIMITS_BUF_OFFSET`).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The page size buffers are aligned to.
pub(crate) const PAGE: usize = 4096;

/// Bytes past the page boundary every buffer starts at (`--buf-offset`).
static OFFSET: AtomicUsize = AtomicUsize::new(0);

/// Sets the global placement (bytes past a page boundary, below [`PAGE`]). Call once, before any
/// buffer is made.
pub(crate) fn set_offset(n: usize) {
    OFFSET.store(n % PAGE, Ordering::Relaxed);
}

/// The global placement, bytes past a page boundary.
pub(crate) fn offset() -> usize {
    OFFSET.load(Ordering::Relaxed)
}

/// A zeroed byte buffer that starts exactly [`offset()`] bytes past a page boundary.
#[derive(Debug)]
pub(crate) struct AlignedBuf {
    base: NonNull<u8>,
    layout: Layout,
    off: usize,
    len: usize,
}

// SAFETY: the buffer owns its allocation exclusively, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads through `&[u8]`, like a `Vec<u8>`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` zeroed bytes at the global placement.
    pub(crate) fn new(len: usize) -> AlignedBuf {
        Self::at(len, offset())
    }

    /// `len` zeroed bytes, `off` bytes past a page boundary.
    pub(crate) fn at(len: usize, off: usize) -> AlignedBuf {
        let off = off % PAGE;
        let size = (off + len).max(1).div_ceil(PAGE) * PAGE;
        let layout = Layout::from_size_align(size, PAGE).expect("buffer layout");
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let Some(base) = NonNull::new(p) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf {
            base,
            layout,
            off,
            len,
        }
    }

    /// A copy of `bytes` at the global placement, leaked for the whole program (static message
    /// parts that sendpackets elements borrow).
    pub(crate) fn leak_copy(bytes: &[u8]) -> &'static [u8] {
        let mut b = Self::new(bytes.len());
        b.copy_from_slice(bytes);
        let b: &'static mut AlignedBuf = Box::leak(Box::new(b));
        &b[..]
    }

    /// `len` bytes filled by `f(i)`, at the global placement, leaked for the whole program.
    pub(crate) fn leak_filled(len: usize, f: impl Fn(usize) -> u8) -> &'static [u8] {
        let mut b = Self::new(len);
        for (i, x) in b.iter_mut().enumerate() {
            *x = f(i);
        }
        let b: &'static mut AlignedBuf = Box::leak(Box::new(b));
        &b[..]
    }
}

/// Static bytes (a message header, a trailer) copied once, on first use, into a buffer at the
/// global placement, so that memory elements and baselines read them from the same place.
#[derive(Debug)]
pub(crate) struct Placed {
    src: &'static [u8],
    cell: OnceLock<&'static [u8]>,
}

impl Placed {
    pub(crate) const fn new(src: &'static [u8]) -> Placed {
        Placed {
            src,
            cell: OnceLock::new(),
        }
    }

    /// The placed copy.
    pub(crate) fn get(&self) -> &'static [u8] {
        self.cell.get_or_init(|| AlignedBuf::leak_copy(self.src))
    }

    pub(crate) const fn len(&self) -> usize {
        self.src.len()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed(self.layout)` and is freed once.
        unsafe { dealloc(self.base.as_ptr(), self.layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `off + len <= layout.size()` bytes were allocated and zeroed; the pointer is
        // live for as long as `self`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(self.off), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(self.off), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_where_asked() {
        for off in [0usize, 16, 64, 4088] {
            let b = AlignedBuf::at(1 << 20, off);
            assert_eq!(b.as_ptr() as usize % PAGE, off);
            assert_eq!(b.len(), 1 << 20);
            assert!(b.iter().all(|&x| x == 0));
        }
        let mut b = AlignedBuf::at(10, 4095);
        b[9] = 7;
        assert_eq!(b[9], 7);
        assert_eq!(AlignedBuf::at(0, 0).len(), 0);
    }
}
