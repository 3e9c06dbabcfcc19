//! Descriptor faults: the soft descriptor limit lowered, or every free slot but a few filled.

use std::fs::{self, File};
use std::os::fd::OwnedFd;

/// Lowers the soft `RLIMIT_NOFILE` until dropped.
pub(crate) struct LowLimit(libc::rlimit);

impl LowLimit {
    pub(crate) fn to(soft: u64) -> LowLimit {
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is valid for writes.
        let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) };
        assert_eq!(r, 0);
        let low = libc::rlimit {
            rlim_cur: soft.min(saved.rlim_cur),
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `low` is a valid rlimit.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
        assert_eq!(r, 0);
        LowLimit(saved)
    }
}

impl Drop for LowLimit {
    fn drop(&mut self) {
        // SAFETY: the limit read before.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
    }
}

/// Leaves this process exactly `free` descriptors until dropped: lowers `RLIMIT_NOFILE` and
/// fills every other free slot below it.
pub(crate) struct Squeeze {
    pub(crate) saved: libc::rlimit,
    pub(crate) _fillers: Vec<OwnedFd>,
    pub(crate) _null: File,
}

impl Squeeze {
    pub(crate) fn leave(free: usize) -> Squeeze {
        let null = File::open("/dev/null").unwrap();
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is valid for writes.
        let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) };
        assert_eq!(r, 0);
        let highest = fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let low = libc::rlimit {
            rlim_cur: highest + 1 + free as u64 + 8,
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `low` is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let mut fillers = Vec::new();
        for _ in 0..100_000 {
            match rustix::io::fcntl_dupfd_cloexec(&null, 0) {
                Ok(fd) => fillers.push(fd),
                Err(rustix::io::Errno::MFILE) => break,
                Err(e) => panic!("dup: {e}"),
            }
        }
        assert!(fillers.len() >= free, "{} fillers", fillers.len());
        fillers.truncate(fillers.len() - free);
        Squeeze {
            saved,
            _fillers: fillers,
            _null: null,
        }
    }
}

impl Drop for Squeeze {
    fn drop(&mut self) {
        // SAFETY: `saved` is the limit read before.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
    }
}
