//! What every soak test shares: configuration, seeds and replay, the hang watch, the loop that
//! runs a test's cases (with the per-case check that no descriptor names a test file the case
//! opened), the final descriptor count, the case's random generator and the counts printed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util;

/// The whole file's default running time, in seconds.
const DEFAULT_SECS: f64 = 60.0;
/// Shares of the running time: the random lists, then the churn tests.
pub(crate) const SHARE_RANDOM: f64 = 0.60;
pub(crate) const SHARE_CHURN_DURING: f64 = 0.24;
pub(crate) const SHARE_CHURN_BETWEEN: f64 = 0.08;
/// A case still running after this is a hang: the process aborts, printing the case.
const HANG: Duration = Duration::from_secs(150);
/// No receiving socket waits longer than this for one read.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// No send or callback is waited for longer than this.
pub(crate) const PATIENCE: Duration = util::PATIENCE;
/// `SO_SNDBUF` / `SO_RCVBUF` of "small buffer" sockets (the kernel doubles it).
pub(crate) const SMALL_BUFFER: usize = 16 << 10;

struct Config {
    pub(crate) seed: u64,
    pub(crate) secs: f64,
    pub(crate) only_case: Option<u64>,
    pub(crate) max_failures: usize,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let seed = match var("SENDPACKETS_SOAK_SEED") {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_SEED={v}: not a u64")),
            None => {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                mix(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)) % 1_000_000_000
            }
        };
        let secs = var("SENDPACKETS_SOAK_SECS").map_or(DEFAULT_SECS, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_SECS={v}: not a number"))
        });
        let only_case = var("SENDPACKETS_SOAK_CASE").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_CASE={v}: not a case index"))
        });
        let max_failures = var("SENDPACKETS_SOAK_MAX_FAILURES").map_or(MAX_FAILURES, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SENDPACKETS_SOAK_MAX_FAILURES={v}: not a number"))
        });
        Config {
            seed,
            secs,
            only_case,
            max_failures,
        }
    })
}

/// The tests of this file run one at a time.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn replay_hint(test: &str, index: u64) -> String {
    format!(
        "SENDPACKETS_SOAK_SEED={} SENDPACKETS_SOAK_CASE={index} cargo test -p sendpackets --test soak {test}",
        config().seed
    )
}

/// What a running case says about itself: its parameters, then notes as it goes.
#[derive(Clone, Default)]
pub(crate) struct CaseLog(pub(crate) Arc<Mutex<String>>);

impl CaseLog {
    pub(crate) fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    pub(crate) fn note(&self, text: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str("\n    ");
        s.push_str(text);
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The case running now, watched by a thread that aborts the process when one hangs.
type Armed = Option<(Instant, String, CaseLog)>;

fn watched() -> &'static Mutex<Armed> {
    static ARMED: Mutex<Armed> = Mutex::new(None);
    static WATCHER: Once = Once::new();
    WATCHER.call_once(|| {
        thread::spawn(|| {
            loop {
                thread::sleep(Duration::from_secs(1));
                let armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((since, head, log)) = &*armed {
                    if since.elapsed() > HANG {
                        // Straight to the process's stderr: the test harness's capture would
                        // be lost with the abort.
                        let _ = writeln!(
                            io::stderr(),
                            "\nsoak: HANG: {head} still running after {HANG:?}\n  case: {}",
                            log.text()
                        );
                        std::process::abort();
                    }
                }
            }
        });
    });
    &ARMED
}

/// How many failing cases a test collects before it stops (`SENDPACKETS_SOAK_MAX_FAILURES`).
const MAX_FAILURES: usize = 5;

/// Runs the cases of one test: index 0, 1, ... until its share of the running time is spent
/// (at least `min_cases`), or only the case `SENDPACKETS_SOAK_CASE`. A failing case is
/// reported with the seed, its parameters and the command that replays it, and the run goes
/// on (up to `Config::max_failures`); `Err` holds every report.
pub(crate) fn soak_loop(
    test: &str,
    share: f64,
    min_cases: u64,
    mut case: impl FnMut(u64, &CaseLog),
) -> Result<(), String> {
    let cfg = config();
    let budget = Duration::from_secs_f64(cfg.secs * share);
    eprintln!(
        "{test}: seed {} (replay: SENDPACKETS_SOAK_SEED={}), budget {budget:?}",
        cfg.seed, cfg.seed
    );
    let start = Instant::now();
    let indices = match cfg.only_case {
        Some(c) => c..c + 1,
        None => 0..u64::MAX,
    };
    let (mut ran, mut failures) = (0, Vec::new());
    for index in indices {
        let spent = index >= min_cases && start.elapsed() >= budget;
        if (cfg.only_case.is_none() && spent) || failures.len() >= cfg.max_failures {
            break;
        }
        let log = CaseLog::default();
        let head = format!("{test}: seed {} case {index}", cfg.seed);
        *watched().lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), head.clone(), log.clone()));
        let open_before = util::test_files_open();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(index, &log)));
        *watched().lock().unwrap_or_else(|e| e.into_inner()) = None;
        ran += 1;
        // Every case closes what it opened: once it returned, no descriptor names a test file
        // but those open before it (a test's shared pool of handles); its own handles are
        // dropped, and receiver threads open no files. Bounded: 5 s.
        let r = r.and_then(|()| {
            let opened = || {
                let mut now = util::test_files_open();
                now.retain(|d| !open_before.contains(d));
                now
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut open = opened();
            while !open.is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
                open = opened();
            }
            if open.is_empty() {
                Ok(())
            } else {
                Err(Box::new(format!(
                    "the case left files open:\n  {}",
                    open.join("\n  ")
                )) as Box<dyn std::any::Any + Send>)
            }
        });
        if let Err(payload) = r {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(panic without a message)");
            let report = format!(
                "soak failure: {head}\n  replay: {}\n  case: {}\n  failure: {msg}",
                replay_hint(test, index),
                log.text()
            );
            eprintln!("\n{report}\n");
            failures.push(report);
        }
    }
    eprintln!(
        "{test}: {ran} cases in {:.1?}, {} failed",
        start.elapsed(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {ran} cases failed (seed {}):\n\n{}\n",
            failures.len(),
            cfg.seed,
            failures.join("\n\n")
        ))
    }
}

pub(crate) fn verdict(result: Result<(), String>, fds_before: usize) {
    if let Err(report) = result {
        panic!("{report}");
    }
    // A case's receiver threads may still be closing their ends for a moment after the case
    // returns: wait for them (bounded, 5 s) before counting; a leak stays a leak.
    let deadline = Instant::now() + Duration::from_secs(5);
    while util::open_fds() > fds_before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let now = util::open_fds();
    if now != fds_before {
        let listing: Vec<String> = fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.filter_map(|e| {
                    let e = e.ok()?;
                    Some(format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        fs::read_link(e.path()).ok()?.display()
                    ))
                })
                .collect()
            })
            .unwrap_or_default();
        let threads = fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        panic!(
            "every descriptor the sends opened was closed (seed {}): {now} open, {fds_before} \
             expected; {threads} threads; open now:\n  {}",
            config().seed,
            listing.join("\n  ")
        );
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator (splitmix64): one per case, from the run's seed, the test
/// and the case index, so a case replays alone.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn for_case(test: &str, index: u64) -> Rng {
        let name = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(mix(config().seed ^ mix(name ^ mix(index.wrapping_add(1)))))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// 0..n (0 when n is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// 0..=n.
    pub(crate) fn upto(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            self.next()
        } else {
            self.below(n + 1)
        }
    }

    /// lo..=hi.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.upto(hi.saturating_sub(lo))
    }

    /// 0..=max, small values as likely as large ones on a log scale.
    pub(crate) fn skewed(&mut self, max: u64) -> u64 {
        let bits = 64 - u64::from(max.leading_zeros());
        let b = self.upto(bits);
        let cap = if b >= 64 { u64::MAX } else { (1u64 << b) - 1 };
        self.upto(cap.min(max))
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn duration_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}

/// Counts of what the soak did, printed at the end of each test.
#[derive(Default)]
pub(crate) struct Stats(pub(crate) BTreeMap<String, u64>);

impl Stats {
    pub(crate) fn bump(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    pub(crate) fn print(&self, test: &str) {
        let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let (group, rest) = k.split_once(':').unwrap_or(("", k));
            groups.entry(group).or_default().push(format!("{rest} {v}"));
        }
        for (group, items) in groups {
            eprintln!("{test}: {group}: {}", items.join(", "));
        }
    }
}
