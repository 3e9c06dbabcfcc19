//! Timing, CPU (getrusage), peak RSS (VmHWM), medians, and the interleaved runner.
//!
//! CPU is `getrusage(RUSAGE_SELF)`: the whole process, so the sender (the main thread), the
//! receiver thread(s) and any tokio worker or blocking-pool threads are all counted. Nothing else
//! runs in the process while a contender is measured. For the raw C harness the CPU is what the
//! harness itself reports (its sender process plus its forked receiver).

use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use crate::table::Calls;

/// What a contender is, for the ratio columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// sendpackets itself.
    Ours,
    /// A loop written in the bench (the "best baseline" is the best of these).
    Baseline,
    /// A mode of the raw C harness (`../shared/limits`), run as a separate process.
    Raw,
}

/// Wall and CPU seconds measured by another process (the C harness).
#[derive(Clone, Copy, Debug)]
pub(crate) struct External {
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
}

/// What one run of a contender did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// Payload bytes sent.
    pub(crate) bytes: u64,
    /// Messages, elements or datagrams sent (the workload's unit).
    pub(crate) items: u64,
    /// Datagrams: how many arrived, and the seconds from the start to the last arrival.
    pub(crate) arrived: Option<(u64, f64)>,
    /// Kernel calls of the run (sendpackets: from `SendReport::calls`; baselines: counted).
    pub(crate) calls: Option<Calls>,
    /// Wall and CPU measured by an external process; replaces ours.
    pub(crate) external: Option<External>,
}

/// One measured run.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
    /// VmHWM after the run, bytes (None for external processes).
    pub(crate) peak_rss: Option<u64>,
    /// VmHWM after the run minus VmRSS at its start, bytes.
    pub(crate) rss_growth: Option<u64>,
    pub(crate) outcome: Outcome,
}

/// Handed to a contender's run: it calls [`Clock::start`] once its setup (connections, receiver
/// thread) is done, and may call [`Clock::stop_wall`] to end the wall time before the end of
/// the run (datagrams: before the receiver's idle timeout). CPU is counted to the end of the run.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    start: Option<Instant>,
    cpu0: f64,
    rss0: u64,
    wall_end: Option<Instant>,
}

impl Clock {
    /// Starts the measurement: resets the peak RSS, reads the CPU time and the clock.
    pub(crate) fn start(&mut self) {
        reset_peak_rss();
        self.rss0 = status_kib("VmRSS:").unwrap_or(0) * 1024;
        self.cpu0 = process_cpu_seconds();
        self.start = Some(Instant::now());
    }

    /// The instant [`start`](Self::start) was called (now if it was not).
    pub(crate) fn started_at(&self) -> Instant {
        self.start.unwrap_or_else(Instant::now)
    }

    /// Ends the wall time (CPU goes on to the end of the run).
    pub(crate) fn stop_wall(&mut self) {
        if self.wall_end.is_none() {
            self.wall_end = Some(Instant::now());
        }
    }

    fn finish(mut self, outcome: Outcome) -> Sample {
        let end = Instant::now();
        let cpu1 = process_cpu_seconds();
        let start = self.start.unwrap_or(end);
        let wall_end = self.wall_end.take().unwrap_or(end);
        let peak = status_kib("VmHWM:").map(|k| k * 1024);
        let (wall, cpu, peak_rss, rss_growth) = match outcome.external {
            Some(x) => (x.wall, x.cpu, None, None),
            None => (
                wall_end.duration_since(start).as_secs_f64(),
                (cpu1 - self.cpu0).max(0.0),
                peak,
                peak.map(|p| p.saturating_sub(self.rss0)),
            ),
        };
        Sample {
            wall,
            cpu,
            peak_rss,
            rss_growth,
            outcome,
        }
    }
}

/// The run of one contender: setup, then `clock.start()`, the measured work, teardown.
pub(crate) type RunFn<'a> = Box<dyn FnMut(&mut Clock) -> io::Result<Outcome> + 'a>;

/// A named way of doing a workload.
pub(crate) struct Contender<'a> {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) run: RunFn<'a>,
}

impl std::fmt::Debug for Contender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<'a> Contender<'a> {
    pub(crate) fn new(
        name: impl Into<String>,
        kind: Kind,
        run: impl FnMut(&mut Clock) -> io::Result<Outcome> + 'a,
    ) -> Self {
        Contender {
            name: name.into(),
            kind,
            run: Box::new(run),
        }
    }
}

/// Every run of one contender.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) samples: Vec<Sample>,
    /// The first failure; the contender is not run again after it.
    pub(crate) error: Option<String>,
}

impl Series {
    /// Median wall seconds.
    pub(crate) fn median_wall(&self) -> Option<f64> {
        median(&self.samples.iter().map(|s| s.wall).collect::<Vec<_>>())
    }

    /// Fastest and slowest wall seconds.
    pub(crate) fn wall_range(&self) -> Option<(f64, f64)> {
        min_max(&self.samples.iter().map(|s| s.wall).collect::<Vec<_>>())
    }

    /// Median of a per-sample figure.
    pub(crate) fn median_of(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(&self.samples.iter().filter_map(f).collect::<Vec<_>>())
    }

    /// Largest of a per-sample figure.
    pub(crate) fn max_of(&self, f: impl Fn(&Sample) -> Option<u64>) -> Option<u64> {
        self.samples.iter().filter_map(f).max()
    }

    /// The last sample's outcome.
    pub(crate) fn last(&self) -> Option<&Outcome> {
        self.samples.last().map(|s| &s.outcome)
    }
}

/// Runs every contender `reps` times, round-robin (rep 1 of each, then rep 2, ...; round `r`
/// starts at contender `r - 1`, wrapping around) after one unmeasured warm-up run of the first
/// contender, stopping
/// early (after a whole round) when `budget` has passed. Prints one progress line per run to
/// stderr.
pub(crate) fn interleave(
    title: &str,
    reps: usize,
    budget: Duration,
    contenders: &mut [Contender<'_>],
) -> Vec<Series> {
    let began = Instant::now();
    let mut series: Vec<Series> = contenders
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            kind: c.kind,
            samples: Vec::new(),
            error: None,
        })
        .collect();
    // One unmeasured run first: whatever the process does once per workload (allocator arenas
    // growing, page-cache and TLB warm-up, tokio's first tasks) is not charged to the first
    // contender of round 1.
    if let Some(c) = contenders.first_mut() {
        let mut clock = Clock::default();
        match (c.run)(&mut clock) {
            Ok(_) => eprintln!("  [{title}] warm-up {}", c.name),
            Err(e) => eprintln!("  [{title}] warm-up {} failed: {e}", c.name),
        }
    }
    for rep in 1..=reps {
        if rep > 1 && began.elapsed() > budget {
            eprintln!(
                "  [{title}] time budget {budget:?} used up after {} rounds",
                rep - 1
            );
            break;
        }
        // Each round starts one contender further on, so no contender always runs first (right
        // after another workload, or after a file was created).
        let n = contenders.len();
        for k in 0..n {
            let idx = (k + rep - 1) % n;
            let (c, s) = (&mut contenders[idx], &mut series[idx]);
            if s.error.is_some() {
                continue;
            }
            let mut clock = Clock::default();
            match (c.run)(&mut clock) {
                Ok(outcome) => {
                    let sample = clock.finish(outcome);
                    eprintln!(
                        "  [{title}] rep {rep}/{reps} {:<34} {:>9.3} s",
                        c.name, sample.wall
                    );
                    s.samples.push(sample);
                }
                Err(e) => {
                    eprintln!("  [{title}] rep {rep}/{reps} {:<34} FAILED: {e}", c.name);
                    s.error = Some(e.to_string());
                }
            }
        }
    }
    series
}

/// The median (mean of the two middle values for an even count); None when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The smallest and largest value; None when empty.
pub(crate) fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let first = *values.first()?;
    Some(
        values
            .iter()
            .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    )
}

/// User + system CPU seconds of the whole process (all threads, live and exited).
pub(crate) fn process_cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` that outlives the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `kB` line of /proc/self/status (VmRSS, VmHWM), in KiB.
pub(crate) fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/self/clear_refs`); best effort.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A one-line description of the machine, for the report header.
pub(crate) fn machine() -> String {
    let mut out = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_status_kib(&m, "MemTotal:"))
        .map_or(0.0, |k| k as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = write!(
        out,
        "{cpu}, {cores} cores, {mem:.0} GiB RAM, Linux {}",
        kernel.trim()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn min_max_of_values() {
        assert_eq!(min_max(&[]), None);
        assert_eq!(min_max(&[2.0, 7.0, -1.0, 3.0]), Some((-1.0, 7.0)));
    }

    #[test]
    fn status_lines_parse() {
        let s = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  2048 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(s, "VmRSS:"), Some(2048));
        assert_eq!(parse_status_kib(s, "VmSwap:"), None);
    }

    #[test]
    fn series_figures() {
        let sample = |wall: f64| Sample {
            wall,
            cpu: wall / 2.0,
            peak_rss: Some((wall * 10.0) as u64),
            rss_growth: None,
            outcome: Outcome::default(),
        };
        let s = Series {
            name: "x".into(),
            kind: Kind::Baseline,
            samples: vec![sample(3.0), sample(1.0), sample(2.0)],
            error: None,
        };
        assert_eq!(s.median_wall(), Some(2.0));
        assert_eq!(s.wall_range(), Some((1.0, 3.0)));
        assert_eq!(s.median_of(|x| Some(x.cpu)), Some(1.0));
        assert_eq!(s.max_of(|x| x.peak_rss), Some(30));
    }
}
