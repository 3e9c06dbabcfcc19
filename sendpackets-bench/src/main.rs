//! `sendpackets-bench`: every workload of issue 6, run interleaved through sendpackets (each
//! engine), hand-written baselines and the raw C harness, printed as markdown tables.
//!
//! ```sh
//! cargo run --release -p sendpackets-bench -- all            # everything (several minutes)
//! cargo run --release -p sendpackets-bench -- --quick all    # a smoke run
//! cargo run --release -p sendpackets-bench -- http --reps 3  # one workload
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod asyncio;
mod baseline;
mod bulk;
mod datagram;
mod fixture;
mod http;
mod limits;
mod measure;
mod serve_nginx;
mod sink;
mod small;
mod sparse;
mod summary;
mod table;

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::fixture::Fixture;
use crate::measure::Series;
use crate::table::Spec;

#[derive(Parser, Debug)]
#[command(
    name = "sendpackets-bench",
    about = "Benchmarks sendpackets against hand-written loops and the raw-kernel C harness, \
             interleaved in one run; prints markdown tables to standard output (progress goes to \
             standard error).",
    after_help = "The regeneration command: cargo run --release -p sendpackets-bench -- all > \
                  sendpackets-bench/last-run.md"
)]
struct Cli {
    /// Rounds of every contender (round-robin: rep 1 of each contender, then rep 2, ...).
    #[arg(long, global = true, default_value_t = 5)]
    reps: usize,
    /// A fast smoke run: small files and counts, one round unless --reps is given.
    #[arg(long, global = true)]
    quick: bool,
    /// Leave out the raw C harness's rows.
    #[arg(long, global = true)]
    no_raw: bool,
    /// Never run apt-get to install liburing-dev for the C harness.
    #[arg(long, global = true)]
    no_install: bool,
    /// Seconds after which a workload starts no new round.
    #[arg(long, global = true, default_value_t = 300)]
    budget: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// Every workload, then the targets of issue 6.
    All,
    /// 1: a 1 GiB file over TCP and a Unix stream.
    Bulk,
    /// 2: HTTP-like messages (200 B + S file bytes + 50 B), per message and 1,000 per operation.
    Http,
    /// 3: 10,000 memory elements of 100 B per operation.
    Small,
    /// 4: 1,200 B datagrams over connected UDP.
    Datagram,
    /// 5: 1,000 concurrent tokio connections, one 64 KiB response each.
    Async,
    /// 6: a 4 GiB sparse file over a Unix stream; peak RSS.
    Sparse,
    /// Bulk and HTTP-like with the raw C harness, then "ours ÷ best raw mode" per target.
    Limits,
    /// `sendpackets serve` against nginx under wrk (not part of `all`; needs the release
    /// `sendpackets` binary, nginx-light and wrk).
    ServeNginx(serve_nginx::Args),
}

/// What every workload is run with.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) reps: usize,
    pub(crate) quick: bool,
    pub(crate) budget: Duration,
    pub(crate) raw: Option<limits::Harness>,
}

/// One printed table: a workload (or one size of it) and its measurements.
#[derive(Debug)]
pub(crate) struct Section {
    /// Stable name, used by the summary (`bulk-tcp`, `http-1024-msg`, ...).
    pub(crate) key: String,
    pub(crate) title: String,
    pub(crate) notes: Vec<String>,
    pub(crate) spec: Spec,
    pub(crate) series: Vec<Series>,
}

/// `1 GiB`, `16 KiB`, `1200 B`.
pub(crate) fn size_name(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} B")
}

fn main() {
    let cli = Cli::parse();
    let reps_given = std::env::args().any(|a| a == "--reps" || a.starts_with("--reps="));
    let reps = if cli.quick && !reps_given {
        1
    } else {
        cli.reps.max(1)
    };
    raise_nofile();
    if let Cmd::ServeNginx(args) = cli.command {
        serve_nginx::run(&args, reps, cli.quick, !cli.no_install);
        return;
    }

    let cmd = cli.command;
    let wants_raw = matches!(cmd, Cmd::All | Cmd::Bulk | Cmd::Http | Cmd::Limits) && !cli.no_raw;
    let raw = if wants_raw {
        match limits::prepare(!cli.no_install) {
            Ok(h) => {
                eprintln!("C harness: {}", h.bin.display());
                Some(h)
            }
            Err(e) => {
                eprintln!("C harness unavailable, its rows are left out: {e}");
                None
            }
        }
    } else {
        None
    };
    if cmd == Cmd::Limits && raw.is_none() {
        eprintln!("the limits section needs the C harness");
        std::process::exit(1);
    }
    let cfg = Config {
        reps,
        quick: cli.quick,
        budget: Duration::from_secs(cli.budget),
        raw,
    };

    print_header(&cfg);
    let began = Instant::now();
    let needs_file = cmd != Cmd::Small;
    let big_len: u64 = if cfg.quick { 64 << 20 } else { 1 << 30 };
    let fx = if needs_file {
        eprintln!("creating a {} test file ...", size_name(big_len));
        match Fixture::create(big_len) {
            Ok(fx) => Some(fx),
            Err(e) => {
                eprintln!("cannot create the test file: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };

    let mut all: Vec<Section> = Vec::new();
    let run = |w: Cmd| matches!(cmd, Cmd::All) || cmd == w;
    let mut emit = |sections: Vec<Section>| {
        for s in sections {
            print_section(&s);
            all.push(s);
        }
    };
    if let Some(fx) = &fx {
        if run(Cmd::Bulk) || cmd == Cmd::Limits {
            emit(bulk::run(&cfg, fx));
        }
        if run(Cmd::Http) || cmd == Cmd::Limits {
            emit(http::run(&cfg, fx));
        }
    }
    if run(Cmd::Small) {
        emit(small::run(&cfg));
    }
    if let Some(fx) = &fx {
        if run(Cmd::Datagram) {
            emit(datagram::run(&cfg, fx));
        }
        if run(Cmd::Async) {
            emit(asyncio::run(&cfg, fx));
        }
        if run(Cmd::Sparse) {
            emit(sparse::run(&cfg, fx));
        }
    }
    let t = summary::targets(&all);
    if !t.rows.is_empty() {
        println!("## Targets of issue 6 (same run)\n");
        println!("{}", t.render());
    }
    println!("_Total run time: {:.0} s._", began.elapsed().as_secs_f64());
}

fn print_header(cfg: &Config) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("# sendpackets benchmark run\n");
    println!(
        "- Command: `cargo run --release -p sendpackets-bench -- {}`",
        args.join(" ")
    );
    println!("- Machine: {}", measure::machine());
    println!("- Date (UTC): {}", utc_now());
    if let Some(rev) = git_rev() {
        println!("- Commit: {rev}");
    }
    println!(
        "- {} round(s) per workload, interleaved: round 1 of every contender, then round 2, ... \
         (round r starts with the r-th contender of the table and wraps around), after one \
         unmeasured warm-up run of the first contender. Median wall \
         time, fastest–slowest, throughput at the median.",
        cfg.reps
    );
    println!(
        "- **Bold** rows are sendpackets; plain rows are baselines written in the bench; \
         \"raw C\" rows are modes of the C harness `shared/limits` (its own process, its own \
         timing and CPU figures), run in the same rounds. \"÷ best baseline\" divides by the \
         fastest plain row, \"÷ best raw C\" by the fastest raw C row of the table."
    );
    println!(
        "- CPU s/GB: `getrusage(RUSAGE_SELF)` around the run, which counts the whole process — \
         the sending thread *and* the receiver thread(s), which run in-process (and tokio's \
         threads) — divided by GB sent. The raw C rows add the harness's sender and forked \
         receiver the same way."
    );
    println!(
        "- Peak RSS: VmHWM of /proc/self/status after the run, reset before it by writing 5 to \
         /proc/self/clear_refs; growth = that peak − VmRSS at the start of the run. Whole \
         process, receiver included. Not measured for raw C rows."
    );
    match &cfg.raw {
        Some(h) => println!("- C harness: `{}`", h.source.display()),
        None => println!("- C harness: not run"),
    }
    println!();
    let _ = std::io::stdout().flush();
}

fn print_section(s: &Section) {
    println!("## {}\n", s.title);
    for n in &s.notes {
        println!("{n}\n");
    }
    println!("{}", table::workload_table(&s.spec, &s.series).render());
    let _ = std::io::stdout().flush();
}

fn git_rev() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    (!rev.is_empty()).then(|| {
        if dirty {
            format!("{rev} (with uncommitted changes)")
        } else {
            rev
        }
    })
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Raises the soft descriptor limit to the hard one (1,000 connections need 2,000+).
fn raise_nofile() {
    // SAFETY: an all-zero rlimit is a valid value of this plain C struct.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a live, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 && r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: `r` is a live rlimit with cur <= max.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_names() {
        assert_eq!(size_name(1 << 30), "1 GiB");
        assert_eq!(size_name(4 << 30), "4 GiB");
        assert_eq!(size_name(256 << 10), "256 KiB");
        assert_eq!(size_name(1200), "1200 B");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn cli_parses() {
        let c = Cli::try_parse_from(["b", "--quick", "http", "--reps", "3"]).unwrap();
        assert_eq!(c.command, Cmd::Http);
        assert!(c.quick);
        assert_eq!(c.reps, 3);
        assert!(Cli::try_parse_from(["b", "nope"]).is_err());
    }
}
