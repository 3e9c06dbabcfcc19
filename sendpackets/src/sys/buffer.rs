//! Page-aligned byte buffers for the bytes the library copies (scratch, express, portable and
//! offload reads).
//!
//! Where a copy's destination starts within its 4 KiB page decides its speed on common CPUs:
//! reading file pages into a buffer 8–24 bytes past a page boundary was measured at 1.9 GB/s
//! against 6.4–6.9 GB/s on the boundary (`../shared/limits/README.md`), and a `Vec` of a fresh
//! process lands 16 bytes past one. So every buffer the library copies file bytes into starts
//! on a page boundary, on purpose.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::tuning::PAGE;

/// A zero-initialised, page-aligned byte buffer whose length is its capacity.
pub(crate) struct PageBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `PageBuf` owns its allocation exclusively, like a `Box<[u8]>`.
unsafe impl Send for PageBuf {}
// SAFETY: shared access only reads through `&[u8]`.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// An empty buffer (no allocation).
    pub(crate) const fn new() -> Self {
        PageBuf {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    fn layout(len: usize) -> Layout {
        // Rounded up to whole pages: the allocator then hands out page-aligned pages.
        let size = len.div_ceil(PAGE) * PAGE;
        Layout::from_size_align(size, PAGE).expect("a buffer size below isize::MAX")
    }

    /// A buffer of at least `len` bytes, zeroed.
    pub(crate) fn zeroed(len: usize) -> Self {
        if len == 0 {
            return PageBuf::new();
        }
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (len > 0, rounded up to a page).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        PageBuf {
            ptr,
            len: layout.size(),
        }
    }

    /// Makes the buffer at least `len` bytes long, keeping its contents.
    pub(crate) fn grow_to(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        let mut bigger = PageBuf::zeroed(len);
        bigger[..self.len].copy_from_slice(self);
        *self = bigger;
    }

    /// The buffer's length (whole pages).
    pub(crate) fn capacity(&self) -> usize {
        self.len
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout (len is the
            // rounded size it was allocated with) and is freed once, here.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
        }
    }
}

impl Default for PageBuf {
    fn default() -> Self {
        PageBuf::new()
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised (zeroed at allocation) bytes, or
        // dangling and well aligned with `len == 0`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBuf").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_aligned_zeroed_and_growing_keeps_contents() {
        let mut b = PageBuf::zeroed(10);
        assert_eq!(b.as_ptr() as usize % PAGE, 0);
        assert_eq!(b.capacity(), PAGE);
        assert!(b.iter().all(|&x| x == 0));
        b[..3].copy_from_slice(b"abc");
        b.grow_to(3 * PAGE + 1);
        assert_eq!(b.capacity(), 4 * PAGE);
        assert_eq!(b.as_ptr() as usize % PAGE, 0);
        assert_eq!(&b[..3], b"abc");
        let empty = PageBuf::new();
        assert!(empty.is_empty());
    }
}
