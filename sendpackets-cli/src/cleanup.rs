//! Files a command must not leave behind when SIGINT or SIGTERM ends it: the Unix socket path
//! `recv` bound and its partial `--out` file.
//!
//! [`install`] starts one thread that waits for the two signals with `signal-hook`'s iterator
//! (its signal handler only writes to a self-pipe; everything else runs in that ordinary
//! thread). On a signal the thread takes the registry lock, removes every registered path, and
//! ends the process the way the signal itself would have (`emulate_default_handler`), so a shell
//! still sees 130 or 143. The same lock is held while the main thread changes what the registry
//! stands for ([`OnSignal::disarm`], and the removal on drop), so a path is never removed after it
//! was renamed into place or handed back.
//!
//! Without [`install`] the signals keep their default action; nothing else changes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A registered path.
#[derive(Debug)]
struct Entry {
    id: u64,
    path: PathBuf,
}

/// The paths to remove on SIGINT or SIGTERM.
static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Identifies entries, so a guard removes its own.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Whether the signal thread runs (the error text if it could not start).
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

fn registry() -> MutexGuard<'static, Vec<Entry>> {
    // A panic elsewhere while holding the lock leaves a usable list.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the signal thread once; later calls return the first result.
///
/// # Errors
///
/// When the handlers or the thread cannot be set up.
pub(crate) fn install() -> io::Result<()> {
    INSTALLED
        .get_or_init(|| {
            let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("signal-cleanup".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        let entries = registry();
                        for e in entries.iter() {
                            let _ = std::fs::remove_file(&e.path);
                        }
                        // Dies of the signal while still holding the lock.
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                        std::process::exit(128 + signal);
                    }
                })
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(io::Error::other)
}

/// A path removed if SIGINT or SIGTERM ends the process while this guard lives.
#[derive(Debug)]
pub(crate) struct OnSignal {
    id: u64,
    /// Also remove the path when the guard is dropped (a socket file this process bound).
    remove_on_drop: bool,
    path: PathBuf,
}

impl OnSignal {
    /// Registers `path`. With `remove_on_drop`, dropping the guard removes the path as well.
    pub(crate) fn new(path: &Path, remove_on_drop: bool) -> OnSignal {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        registry().push(Entry {
            id,
            path: path.to_path_buf(),
        });
        OnSignal {
            id,
            remove_on_drop,
            path: path.to_path_buf(),
        }
    }

    /// Runs `f` (which moves the path away, such as a rename into place) with the registry
    /// locked, and forgets the path, so a signal cannot remove what `f` produced.
    pub(crate) fn disarm<T>(mut self, f: impl FnOnce() -> T) -> T {
        let mut entries = registry();
        let out = f();
        entries.retain(|e| e.id != self.id);
        self.remove_on_drop = false;
        out
    }
}

impl Drop for OnSignal {
    fn drop(&mut self) {
        let mut entries = registry();
        let before = entries.len();
        entries.retain(|e| e.id != self.id);
        if self.remove_on_drop && entries.len() < before {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_register_and_remove_their_own_paths() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let ga = OnSignal::new(&a, true);
        let gb = OnSignal::new(&b, true);
        let listed = |p: &Path| registry().iter().any(|e| e.path == p);
        assert!(listed(&a) && listed(&b));
        drop(ga);
        assert!(!a.exists() && !listed(&a));
        let kept = gb.disarm(|| 7);
        assert_eq!(kept, 7);
        assert!(
            b.exists() && !listed(&b),
            "disarm neither removes nor keeps listing"
        );
    }
}
