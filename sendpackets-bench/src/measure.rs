//! Timing, CPU (getrusage), peak RSS (VmHWM), medians, the quiet gate, and the interleaved
//! runner.
//!
//! CPU is `getrusage(RUSAGE_SELF)`: the whole process, so the sender (the main thread), the
//! receiver thread(s) and any tokio worker or blocking-pool threads are all counted. Nothing else
//! runs in the process while a contender is measured. For the raw C harness the CPU is what the
//! harness itself reports (its sender process plus its forked receiver); a receiver in a child
//! process adds its own CPU through [`Outcome::extra_cpu`].
//!
//! The quiet gate: around every run the runner sums the CPU time that *other* processes used
//! (every user process of the machine except this one and its descendants, from
//! `/proc/PID/stat`), and discards and redoes a run in which they used more than
//! [`GATE_SHARE`] of one core (plus [`GATE_SLACK`] for the counters' tick granularity), at most
//! `Config::gate_redos` times per run. The machine is shared: without the gate, ratios swung
//! ±30 % between runs (issue 12).

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
    /// CPU seconds of a helper process of the run (a receiver in a child process), added to
    /// the process's own.
    pub(crate) extra_cpu: f64,
    /// Peak RSS of a helper process of the run, bytes.
    pub(crate) extra_peak_rss: Option<u64>,
    /// The longest pause between two reads of the receiver, seconds (stalls).
    pub(crate) max_gap: Option<f64>,
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
    /// CPU seconds other processes used during the run (the quiet gate's figure).
    pub(crate) others_cpu: f64,
    pub(crate) outcome: Outcome,
}

/// A run is discarded when other processes used more than this share of one core during it...
pub(crate) const GATE_SHARE: f64 = 0.10;
/// ... plus this many CPU seconds: the per-process counters move in clock ticks (10 ms at
/// USER_HZ = 100), so two ticks of anything else must not discard a short run.
pub(crate) const GATE_SLACK: f64 = 0.02;

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
        // Memory freed by earlier runs (other threads' malloc arenas keep it) goes back to the
        // system first, so the peak RSS of this run is this run's.
        // SAFETY: malloc_trim has no preconditions; it only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
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
                (cpu1 - self.cpu0).max(0.0) + outcome.extra_cpu,
                peak,
                peak.map(|p| p.saturating_sub(self.rss0)),
            ),
        };
        Sample {
            wall,
            cpu,
            peak_rss,
            rss_growth,
            others_cpu: 0.0,
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
    /// Runs discarded by the quiet gate and run again.
    pub(crate) redone: usize,
    /// Runs kept although over the gate (the redos were used up).
    pub(crate) kept_noisy: usize,
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

/// How the runner repeats and gates runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Rounds of every contender.
    pub(crate) reps: usize,
    /// No new round starts after this long.
    pub(crate) budget: Duration,
    /// How many times one run may be discarded by the quiet gate and redone.
    pub(crate) gate_redos: usize,
}

/// Runs every contender `reps` times, round-robin (rep 1 of each, then rep 2, ...; round `r`
/// starts at contender `r - 1`, wrapping around) after one unmeasured warm-up run of the first
/// contender, stopping early (after a whole round) when `budget` has passed. A run during which
/// other processes used the CPU (the quiet gate) is discarded and redone, at most
/// `plan.gate_redos` times. Prints one progress line per run to stderr.
pub(crate) fn interleave(title: &str, plan: Plan, contenders: &mut [Contender<'_>]) -> Vec<Series> {
    let Plan {
        reps,
        budget,
        gate_redos,
    } = plan;
    let began = Instant::now();
    let mut series: Vec<Series> = contenders
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            kind: c.kind,
            samples: Vec::new(),
            error: None,
            redone: 0,
            kept_noisy: 0,
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
            let mut attempt = 0;
            loop {
                let before = others_cpu_ticks();
                let t0 = Instant::now();
                let mut clock = Clock::default();
                match (c.run)(&mut clock) {
                    Ok(outcome) => {
                        let mut sample = clock.finish(outcome);
                        let window = t0.elapsed().as_secs_f64();
                        sample.others_cpu = ticks_to_secs(others_cpu_ticks().since(&before));
                        let noisy = sample.others_cpu > GATE_SHARE * window + GATE_SLACK;
                        if noisy && attempt < gate_redos {
                            attempt += 1;
                            s.redone += 1;
                            eprintln!(
                                "  [{title}] rep {rep}/{reps} {:<34} discarded: others used \
                                 {:.2} CPU s in {window:.2} s, redo {attempt}/{gate_redos}",
                                c.name, sample.others_cpu
                            );
                            continue;
                        }
                        s.kept_noisy += usize::from(noisy);
                        eprintln!(
                            "  [{title}] rep {rep}/{reps} {:<34} {:>9.3} s  others {:.2} CPU s{}",
                            c.name,
                            sample.wall,
                            sample.others_cpu,
                            if noisy { " (kept, redos used up)" } else { "" }
                        );
                        s.samples.push(sample);
                    }
                    Err(e) => {
                        eprintln!("  [{title}] rep {rep}/{reps} {:<34} FAILED: {e}", c.name);
                        s.error = Some(e.to_string());
                    }
                }
                break;
            }
        }
    }
    series
}

/// CPU clock ticks of other processes, per process, at one moment.
#[derive(Debug, Default)]
pub(crate) struct OthersSnapshot {
    /// pid → utime + stime + cutime + cstime, in clock ticks.
    ticks: std::collections::HashMap<u32, u64>,
}

impl OthersSnapshot {
    /// The CPU ticks other processes used since `earlier`.
    ///
    /// The sum over processes of their own and their reaped children's time is conserved when a
    /// process exits (its time moves into its parent's `cutime`), so the difference of the two
    /// sums counts what ran in between: a process that exited is subtracted with what it had
    /// used before, its parent adds all it used.
    pub(crate) fn since(&self, earlier: &OthersSnapshot) -> u64 {
        let now: u64 = self.ticks.values().sum();
        let then: u64 = earlier.ticks.values().sum();
        now.saturating_sub(then)
    }
}

/// Reads every user process's CPU ticks, leaving out this process, its descendants (receiver
/// children, the C harness and its receiver) and kernel threads.
pub(crate) fn others_cpu_ticks() -> OthersSnapshot {
    let me = std::process::id();
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(p) = parse_stat(&stat) {
                if !p.kernel_thread {
                    procs.push((pid, p.ppid, p.ticks));
                }
            }
        }
    }
    let parent: std::collections::HashMap<u32, u32> =
        procs.iter().map(|&(pid, ppid, _)| (pid, ppid)).collect();
    let mine = |mut pid: u32| {
        for _ in 0..64 {
            if pid == me {
                return true;
            }
            match parent.get(&pid) {
                Some(&pp) if pp != 0 => pid = pp,
                _ => return false,
            }
        }
        false
    };
    OthersSnapshot {
        ticks: procs
            .into_iter()
            .filter(|&(pid, _, _)| !mine(pid))
            .map(|(pid, _, t)| (pid, t))
            .collect(),
    }
}

/// The fields of `/proc/PID/stat` the gate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatLine {
    ppid: u32,
    /// utime + stime + cutime + cstime, clock ticks.
    ticks: u64,
    kernel_thread: bool,
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

fn parse_stat(stat: &str) -> Option<StatLine> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] = field 3 (state), f[1] = ppid, f[6] = flags, f[11..15] = utime stime cutime cstime.
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    let ticks = num(11)? + num(12)? + num(13)? + num(14)?;
    Some(StatLine {
        ppid: u32::try_from(num(1)?).ok()?,
        ticks,
        kernel_thread: num(6)? & PF_KTHREAD != 0,
    })
}

/// Clock ticks to seconds (`sysconf(_SC_CLK_TCK)`, normally 100).
pub(crate) fn ticks_to_secs(t: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    t as f64 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// utime + stime of one process, seconds (a receiver child), from `/proc/PID/stat`.
pub(crate) fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(ticks_to_secs(num(11)? + num(12)?))
}

/// VmHWM of another process, bytes.
pub(crate) fn pid_peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM:").map(|k| k * 1024)
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
    fn stat_lines_parse() {
        let s = "1234 (a (b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 30 5 7 20 0 1 0";
        assert_eq!(
            parse_stat(s),
            Some(StatLine {
                ppid: 77,
                ticks: 292,
                kernel_thread: false
            })
        );
        let k = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 1 2 0 0 20 0 1 0";
        assert!(parse_stat(k).unwrap().kernel_thread);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn others_exclude_this_process() {
        let a = others_cpu_ticks();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        // This process burned 0.3 s: none of it is "others".
        assert!(a.ticks.values().count() > 0);
        assert!(!a.ticks.contains_key(&std::process::id()));
    }

    #[test]
    fn series_figures() {
        let sample = |wall: f64| Sample {
            wall,
            cpu: wall / 2.0,
            peak_rss: Some((wall * 10.0) as u64),
            rss_growth: None,
            others_cpu: 0.0,
            outcome: Outcome::default(),
        };
        let s = Series {
            name: "x".into(),
            kind: Kind::Baseline,
            samples: vec![sample(3.0), sample(1.0), sample(2.0)],
            error: None,
            redone: 0,
            kept_noisy: 0,
        };
        assert_eq!(s.median_wall(), Some(2.0));
        assert_eq!(s.wall_range(), Some((1.0, 3.0)));
        assert_eq!(s.median_of(|x| Some(x.cpu)), Some(1.0));
        assert_eq!(s.max_of(|x| x.peak_rss), Some(30));
    }
}
