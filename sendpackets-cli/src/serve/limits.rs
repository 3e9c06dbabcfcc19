//! The process's descriptor limit, and how it is shared: raised to the hard limit at start
//! (nginx's `worker_rlimit_nofile`), then split between connections and the tables of open
//! files, so that no table can take the descriptors a connection or a request needs.

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
    /// Most descriptors each table of open files (known files, the open-file cache) may
    /// hold: a quarter of what is left after the reserve.
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
}
