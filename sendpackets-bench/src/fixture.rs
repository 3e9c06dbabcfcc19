//! Test data: a large file in the page cache and a sparse file, in one temporary directory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sendpackets::FileHandle;

/// The bench's files, removed when dropped.
#[derive(Debug)]
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    /// A file of pseudo-random bytes, read once so it sits in the page cache.
    pub(crate) big: PathBuf,
    pub(crate) big_len: u64,
    /// `big`, open, shared by the elements of every workload.
    pub(crate) handle: FileHandle,
    /// `big`, open, for the baselines.
    pub(crate) file: std::sync::Arc<File>,
}

impl Fixture {
    /// Creates `len` bytes of pseudo-random data (written, synced to disk, then read back once).
    pub(crate) fn create(len: u64) -> io::Result<Fixture> {
        let dir = tempfile::Builder::new()
            .prefix("sendpackets-bench-")
            .tempdir()?;
        crate::netpath::remove_on_signal(dir.path());
        let big = dir.path().join("big.bin");
        let mut f = File::create(&big)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut left = len;
        while left > 0 {
            for chunk in buf.chunks_exact_mut(8) {
                // xorshift64: cheap bytes that do not compress.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        // Written back now, so no writeback runs during the measurements.
        f.sync_all()?;
        drop(f);
        warm(&big)?;
        let file = std::sync::Arc::new(File::open(&big)?);
        Ok(Fixture {
            handle: FileHandle::new(file.clone()),
            file,
            big,
            big_len: len,
            dir,
        })
    }

    /// Creates a sparse file of `len` bytes (only holes) and returns its path.
    pub(crate) fn sparse(&self, len: u64) -> io::Result<PathBuf> {
        let p = self.dir.path().join(format!("sparse-{len}.bin"));
        let f = File::create(&p)?;
        f.set_len(len)?;
        Ok(p)
    }
}

/// Reads a file once, so its pages are in the page cache.
pub(crate) fn warm(path: &Path) -> io::Result<()> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// The file offset of message `i` with `msg` file bytes, as the C harness computes it: a
/// page-aligned walk through the file in steps of `msg` rounded up to a page.
pub(crate) fn msg_offset(i: u64, msg: u64, file_len: u64) -> u64 {
    let span = file_len - msg;
    let stride = msg.div_ceil(4096) * 4096;
    ((i * stride) % (span + 1)) & !4095
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_inside_and_aligned() {
        let len = 10 << 20;
        for msg in [1024u64, 16384, 262_144] {
            for i in 0..5000 {
                let off = msg_offset(i, msg, len);
                assert_eq!(off % 4096, 0);
                assert!(off + msg <= len);
            }
        }
        assert_eq!(msg_offset(1, 1024, len), 4096);
        assert_eq!(msg_offset(2, 16384, len), 32768);
    }
}
