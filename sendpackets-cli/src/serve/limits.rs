//! The process's descriptor limit, and how it is shared: raised to the hard limit at start
//! (nginx's `worker_rlimit_nofile`), then split between connections and the open-file cache,
//! so that the cache cannot take the descriptors a connection or a request needs. And
//! memory given back to the system after a burst of connections closes.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything else: standard streams, the runtime's epoll and wakers,
/// the signal pipe, the listener, the served directory. A quarter of the limit when the limit
/// is small.
const RESERVED: u64 = 64;

/// How the descriptor limit is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The soft `RLIMIT_NOFILE` in force.
    pub(crate) limit: u64,
    /// Most connections by default: half of what is left after the reserve, as each
    /// connection holds its socket and, while a response is being opened, a file.
    pub(crate) connections: usize,
    /// Most descriptors the open-file cache may hold: a quarter of what is left after the
    /// reserve.
    pub(crate) files: usize,
}

impl Budget {
    /// The shares of `limit` descriptors.
    pub(crate) fn of(limit: u64) -> Budget {
        let usable = limit.saturating_sub(RESERVED.min(limit / 4));
        let share = |d: u64| usize::try_from(usable / d).unwrap_or(usize::MAX).max(1);
        Budget {
            limit,
            connections: share(2),
            files: share(4),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (when the hard limit is finite) and
/// returns the soft limit now in force. A refusal leaves the limit as it was.
pub(crate) fn raise_nofile() -> u64 {
    let now = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
        if soft < hard
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .is_ok()
        {
            return hard;
        }
    }
    // Unlimited (not on Linux, where the kernel caps it at `fs.nr_open`): no share to keep.
    now.current.unwrap_or(u64::MAX)
}

/// How often [`Trim`] looks at the connection count.
pub(crate) const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes since the last trim below which nothing is given back (a small burst leaves little).
const TRIM_AFTER_CLOSES: usize = 1024;

/// Gives freed heap memory back to the system after a burst of connections has closed: the
/// allocator keeps what thousands of connections used (their tasks, their head buffers) in
/// its free lists, scattered between live blocks, so without this the server stays at its
/// peak. A burst is over when the live connections fell to half their peak since the last
/// look, with at least [`TRIM_AFTER_CLOSES`] closes; steady churn at a stable count never
/// trims.
#[derive(Debug, Default)]
pub(crate) struct Trim {
    closes_seen: usize,
    peak: usize,
}

impl Trim {
    /// Called every [`TRIM_EVERY`] with the total closes so far and the live connections now;
    /// returns whether it trimmed.
    pub(crate) fn tick(&mut self, closes: usize, live: usize) -> bool {
        self.peak = self.peak.max(live);
        let burst_over =
            closes.wrapping_sub(self.closes_seen) >= TRIM_AFTER_CLOSES && live * 2 <= self.peak;
        if !burst_over {
            return false;
        }
        self.closes_seen = closes;
        self.peak = live;
        give_back_memory();
        true
    }

    /// Notes a live count between ticks (the peak is what a burst reached).
    pub(crate) fn saw(&mut self, live: usize) {
        self.peak = self.peak.max(live);
    }
}

/// Returns the free pages of every heap arena to the system (glibc's `malloc_trim`).
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        let b = Budget::of(1024);
        assert_eq!((b.connections, b.files), (480, 240));
        let small = Budget::of(128);
        assert_eq!((small.connections, small.files), (48, 24));
        assert_eq!(Budget::of(0).files, 1);
        assert!(Budget::of(u64::MAX).connections > 1 << 30);
    }

    #[test]
    fn trims_after_a_burst_only() {
        let mut t = Trim::default();
        // Steady churn: many closes, the count stays.
        assert!(!t.tick(5000, 800));
        assert!(!t.tick(10_000, 800));
        // A burst to 8,000 then down to 10.
        t.saw(8000);
        assert!(t.tick(18_000, 10));
        // Nothing more closed: no second trim.
        assert!(!t.tick(18_000, 10));
    }
}
