//! `sendpackets-bench`: every workload of issues 6 and 12, run interleaved through sendpackets
//! (each engine), hand-written baselines and the raw C harness, over loopback and over a veth
//! pair into a network namespace of the bench's own (`netpath`), with every buffer placed on
//! purpose (`buf`) and a quiet gate on every run (`measure`); printed as markdown tables.
//!
//! ```sh
//! cargo run --release -p sendpackets-bench -- all            # everything (15–25 minutes)
//! cargo run --release -p sendpackets-bench -- --quick all    # a smoke run
//! cargo run --release -p sendpackets-bench -- http --reps 3  # one workload
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod asyncio;
mod axum_static;
mod baseline;
mod buf;
mod bulk;
mod charts;
mod datagram;
mod fixture;
mod http;
mod limits;
mod measure;
mod netpath;
mod rr;
mod rr_server;
mod scale;
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
use crate::measure::{Plan, Series};
use crate::netpath::{Path, Veth};
use crate::table::Spec;

#[derive(Parser, Debug)]
#[command(
    name = "sendpackets-bench",
    about = "Benchmarks sendpackets against hand-written loops and the raw-kernel C harness, \
             interleaved in one run, over loopback and over a veth pair into a network namespace \
             of its own; prints markdown tables to standard output (progress goes to standard \
             error).",
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
    /// Place every bench buffer (receivers, baselines, message parts; the C harness's too) this
    /// many bytes past a page boundary (0 = on the boundary).
    #[arg(long, global = true, default_value_t = 0)]
    buf_offset: usize,
    /// How many times the quiet gate may discard and redo one run (0: record only).
    #[arg(long, global = true, default_value_t = 3)]
    gate_redos: usize,
    /// Loopback only: make no network namespace or veth pair.
    #[arg(long, global = true)]
    no_veth: bool,
    /// Also run bulk over the veth pair rate-limited by a `tbf` qdisc (RATE as `tc` spells it:
    /// 1gbit, 500mbit).
    #[arg(long, global = true, value_name = "RATE")]
    shaped: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
enum Cmd {
    /// Every workload, then the targets of issue 12.
    All,
    /// 1: a 1 GiB file (alone, and as header + file + trailer) over TCP on both paths, and over
    /// a Unix stream.
    Bulk,
    /// 2: HTTP-like messages (200 B + S file bytes + 50 B), per message and 1,000 per
    /// operation, on both paths.
    Http,
    /// 3: 10,000 memory elements of 100 B per operation, on both paths.
    Small,
    /// 4: 1,200 B datagrams over connected UDP, on both paths.
    Datagram,
    /// 5: 1,000 concurrent tokio connections, one 64 KiB response each, on both paths.
    Async,
    /// 6: a 4 GiB sparse file over a Unix stream; peak RSS.
    Sparse,
    /// 7: 100, 1,000 and 10,000 concurrent async connections over veth (header + 64 KiB +
    /// trailer each, verified by a receiver process in the namespace).
    Scale,
    /// Bulk and HTTP-like with the raw C harness, then the targets.
    Limits,
    /// Only the rate-limited bulk run (needs --shaped RATE).
    Shaped,
    /// 8: memory per in-flight send: 1,000 concurrent async 8 MiB sends per engine, on both
    /// paths (peak RSS goal: under 300 MB).
    Inflight,
    /// The receiver process of `scale` (started by the bench inside its namespace).
    #[command(hide = true)]
    ScaleReceiver {
        #[arg(long)]
        addr: std::net::IpAddr,
        #[arg(long)]
        conns: usize,
        #[arg(long)]
        body: u64,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// `sendpackets serve` against nginx under wrk (not part of `all`; needs the release
    /// `sendpackets` binary, nginx-light and wrk).
    ServeNginx(serve_nginx::Args),
    /// SVG charts from the result files (`last-run.md`, `serve-nginx-*.md`).
    Charts(charts::Args),
    /// Request/response: N keep-alive connections (wrk), one request then the whole response,
    /// against a responder per mechanism, the library's choice, the C limit server, `sendpackets
    /// serve`, nginx and static-web-server, under each congestion control, on both paths (not
    /// part of `all`; needs the release `sendpackets` binary).
    Rr(rr::Args),
    /// A responder of `rr` (started by the bench inside its namespace).
    #[command(hide = true)]
    RrServer {
        #[arg(long)]
        mode: String,
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Static files of an axum application: axum + sendpackets-http vs axum + tower-http
    /// ServeDir vs nginx under wrk (not part of `all`; needs nginx-light and wrk).
    AxumStatic(axum_static::Args),
    /// One axum server of `axum-static` (started by the bench).
    #[command(hide = true)]
    AxumServer(axum_static::ServerArgs),
}

/// What every workload is run with.
#[derive(Debug)]
pub(crate) struct Config<'a> {
    pub(crate) plan: Plan,
    pub(crate) quick: bool,
    pub(crate) raw: Option<limits::Harness>,
    /// The veth path, when the bench could make it.
    pub(crate) veth: Option<&'a Veth>,
}

impl<'a> Config<'a> {
    /// The paths every stream and datagram workload runs on: loopback, then veth if made.
    pub(crate) fn paths(&self) -> Vec<Path<'a>> {
        let mut v = vec![Path::Loopback];
        if let Some(x) = self.veth {
            v.push(Path::Veth(x));
        }
        v
    }
}

/// One printed table: a workload (or one size of it) on one path, and its measurements.
#[derive(Debug)]
pub(crate) struct Section {
    /// Stable name, used by the summary (`bulk-tcp-veth`, `http-1024-msg-loopback`, ...).
    pub(crate) key: String,
    /// The workload without its path (`bulk-tcp`): sections of one group are shown side by
    /// side.
    pub(crate) group: String,
    /// `loopback` or `veth`; None for workloads that have no network path (Unix streams).
    pub(crate) path: Option<&'static str>,
    pub(crate) title: String,
    pub(crate) notes: Vec<String>,
    pub(crate) spec: Spec,
    pub(crate) series: Vec<Series>,
}

/// `group-path`, or the group alone.
pub(crate) fn section_key(group: &str, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("{group}-{p}"),
        None => group.to_string(),
    }
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

/// `10,000`.
pub(crate) fn fmt_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let cli = Cli::parse();
    buf::set_offset(cli.buf_offset);
    if let Cmd::ScaleReceiver {
        addr,
        conns,
        body,
        file,
    } = &cli.command
    {
        let a = scale::ReceiverArgs {
            addr: *addr,
            conns: *conns,
            body: *body,
            file: file.clone(),
        };
        std::process::exit(scale::receiver_main(&a));
    }
    if let Cmd::Charts(args) = &cli.command {
        std::process::exit(charts::main(args));
    }
    if let Cmd::RrServer { mode, dir, listen } = &cli.command {
        std::process::exit(rr_server::main(mode, dir, *listen));
    }
    if let Cmd::AxumServer(a) = &cli.command {
        std::process::exit(axum_static::server_main(a));
    }
    let code = run(cli);
    std::process::exit(code);
}

/// The whole run; every namespace and link it made is removed before it returns (the `Veth`
/// guard), also on a panic (unwinding) and on SIGINT/SIGTERM/SIGHUP (the signal watcher).
fn run(cli: Cli) -> i32 {
    let reps_given = std::env::args().any(|a| a == "--reps" || a.starts_with("--reps="));
    let reps = if cli.quick && !reps_given {
        1
    } else {
        cli.reps.max(1)
    };
    raise_nofile();
    if let Cmd::ServeNginx(args) = &cli.command {
        serve_nginx::run(args, reps, cli.quick, !cli.no_install);
        return 0;
    }
    if let Cmd::Rr(args) = &cli.command {
        if let Err(e) = netpath::install_signal_cleanup() {
            eprintln!("cannot watch for signals: {e}");
            return 1;
        }
        rr::run(args, reps, cli.quick, !cli.no_install, cli.gate_redos);
        return 0;
    }
    if let Cmd::AxumStatic(args) = &cli.command {
        let _watching = netpath::install_signal_cleanup();
        axum_static::run(args, reps, cli.quick, !cli.no_install);
        return 0;
    }

    let cmd = cli.command.clone();
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
        return 1;
    }
    let watching = netpath::install_signal_cleanup();
    let wants_net = !matches!(cmd, Cmd::Sparse) && !cli.no_veth;
    let mut no_veth = None;
    let veth = match (wants_net, watching) {
        (false, _) => None,
        (true, Err(e)) => {
            no_veth = Some(format!("cannot watch for signals: {e}"));
            None
        }
        (true, Ok(())) => match Veth::create() {
            Ok(v) => {
                eprintln!("veth path: {}", v.describe());
                Some(v)
            }
            Err(e) => {
                no_veth = Some(e);
                None
            }
        },
    };
    if let Some(why) = &no_veth {
        eprintln!("No veth path ({why}): loopback only.");
    }
    let cfg = Config {
        plan: Plan {
            reps,
            budget: Duration::from_secs(cli.budget),
            gate_redos: cli.gate_redos,
        },
        quick: cli.quick,
        raw,
        veth: veth.as_ref(),
    };

    print_header(&cfg, no_veth.as_deref());
    let began = Instant::now();
    let needs_file = cmd != Cmd::Small;
    let big_len: u64 = if cfg.quick { 64 << 20 } else { 1 << 30 };
    let fx = if needs_file {
        eprintln!("creating a {} test file ...", size_name(big_len));
        match Fixture::create(big_len) {
            Ok(fx) => Some(fx),
            Err(e) => {
                eprintln!("cannot create the test file: {e}");
                return 1;
            }
        }
    } else {
        None
    };

    let mut all: Vec<Section> = Vec::new();
    let run = |w: Cmd| matches!(cmd, Cmd::All) || cmd == w;
    let mut emit = |sections: Vec<Section>| {
        print_sections(&sections);
        all.extend(sections);
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
        if run(Cmd::Scale) {
            emit(scale::run(&cfg, fx));
        }
        if run(Cmd::Inflight) {
            emit(scale::inflight(&cfg, fx));
        }
        if run(Cmd::Sparse) {
            emit(sparse::run(&cfg, fx));
        }
        if run(Cmd::Shaped) || cmd == Cmd::Shaped {
            if let Some(rate) = &cli.shaped {
                emit(shaped(&cfg, fx, rate));
            } else if cmd == Cmd::Shaped {
                eprintln!("`shaped` needs --shaped RATE");
            }
        }
    }
    let t = summary::targets(&all);
    if !t.rows.is_empty() {
        println!("## Targets of issue 12 (same run; each row on loopback and veth)\n");
        println!(
            "\"Best raw mode\" is the fastest row on that path that is not sendpackets: the \
             bench's own loops (raw `sendfile`, corked, `MSG_MORE`, copy into one buffer, \
             `writev`, per-element) on both paths, and the C harness's modes on loopback.\n"
        );
        println!("{}", t.render());
    }
    let p = summary::policy(&all);
    if !p.rows.is_empty() {
        println!("## Policy questions of issue 12 (same run, both paths)\n");
        println!(
            "The options of each question side by side, as measured above: rate, CPU per byte, \
             RSS growth of one run (for one send in flight: the memory it costs; for the \
             in-flight workload: all of them), and the ratio to the fastest option on that \
             path.\n"
        );
        println!("{}", p.render());
    }
    let redone: usize = all.iter().flat_map(|s| &s.series).map(|x| x.redone).sum();
    let kept: usize = all
        .iter()
        .flat_map(|s| &s.series)
        .map(|x| x.kept_noisy)
        .sum();
    println!(
        "_Quiet gate: {redone} run(s) discarded and redone, {kept} kept over the gate after \
         {} redos. Total run time: {:.0} s._",
        cfg.plan.gate_redos,
        began.elapsed().as_secs_f64()
    );
    drop(fx);
    drop(veth);
    0
}

/// Bulk over the veth pair under a `tbf` rate limit: the link, not the CPU, is the limit.
fn shaped(cfg: &Config<'_>, fx: &Fixture, rate: &str) -> Vec<Section> {
    let Some(v) = cfg.veth else {
        eprintln!("shaped: no veth path, skipped");
        return Vec::new();
    };
    if let Err(e) = v.shape(rate) {
        eprintln!("shaped: tc refused the rate limit {rate}: {e}");
        return Vec::new();
    }
    let qdisc = v.qdisc();
    // About one second of the link per run, at most two rounds: the rate is the link's for
    // every contender, what differs is CPU per byte and stalls.
    let bits = parse_rate(rate).unwrap_or(1e9);
    let len = ((bits / 8.0) as u64).clamp(16 << 20, fx.big_len) & !4095;
    let cfg = &Config {
        plan: Plan {
            reps: cfg.plan.reps.min(2),
            ..cfg.plan
        },
        quick: cfg.quick,
        raw: None,
        veth: cfg.veth,
    };
    let mut out = Vec::new();
    for shape in [bulk::Shape::File, bulk::Shape::HeaderFileTrailer] {
        let mut s = bulk::one(cfg, fx, sink::Transport::Tcp(Path::Veth(v)), shape, len);
        s.group = format!("shaped-{}", s.group);
        s.key = format!("shaped-{}", s.key);
        s.title = format!("{} — rate-limited to {rate} (tbf)", s.title);
        s.notes.push(format!(
            "Qdisc on the host end: `{qdisc}`. \"Longest pause\" is the receiver's longest wait \
             between two reads (a stall shows as a pause far above the rest)."
        ));
        s.notes.push(shaped_gaps(&s.series));
        out.push(s);
    }
    v.unshape();
    out
}

/// The receiver's longest pause between reads, per contender.
fn shaped_gaps(series: &[Series]) -> String {
    let parts: Vec<String> = series
        .iter()
        .map(|s| {
            let g = s.median_of(|x| x.outcome.max_gap);
            format!(
                "{}: {}",
                s.name,
                g.map_or("–".into(), |g| format!("{:.1} ms", g * 1e3))
            )
        })
        .collect();
    format!(
        "Longest pause between reads (median): {}.",
        parts.join("; ")
    )
}

/// `1gbit`, `500mbit`, `100kbit` as bits per second.
fn parse_rate(rate: &str) -> Option<f64> {
    let r = rate.to_ascii_lowercase();
    let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(u, m)| r.strip_suffix(u).map(|n| (n.to_string(), m)))?;
    num.trim().parse::<f64>().ok().map(|n| n * mult)
}

fn print_header(cfg: &Config<'_>, no_veth: Option<&str>) {
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
        "- Paths: loopback (127.0.0.1){}. Every TCP and UDP workload runs on each path; the \
         receivers of the veth path run inside the namespace, and the bench sends only to the \
         namespace's own address.",
        match (cfg.veth, no_veth) {
            (Some(v), _) => format!("; {}", v.describe()),
            (None, Some(why)) => format!(" only. No veth path ({why}): loopback only"),
            (None, None) => " only (--no-veth)".into(),
        }
    );
    println!(
        "- Buffers: every receiver, baseline and message-part buffer of the bench starts {} \
         bytes past a page boundary (`--buf-offset`); the C harness is given the same \
         (`LIMITS_BUF_OFFSET`).",
        buf::offset()
    );
    println!(
        "- {} round(s) per workload, interleaved: round 1 of every contender, then round 2, ... \
         (round r starts with the r-th contender of the table and wraps around), after one \
         unmeasured warm-up run of the first contender. Median wall \
         time, fastest–slowest, throughput at the median.",
        cfg.plan.reps
    );
    println!(
        "- Quiet gate: around every run, the CPU time of every other user process of the machine \
         (`/proc/PID/stat`, this process and its children left out) is summed; a run during \
         which they used more than {:.0} % of one core (+{:.2} s for tick granularity) is \
         discarded and redone, at most {} times per run. \"redone\" counts them per contender.",
        measure::GATE_SHARE * 100.0,
        measure::GATE_SLACK,
        cfg.plan.gate_redos
    );
    println!(
        "- **Bold** rows are sendpackets; plain rows are baselines written in the bench; \
         \"raw C\" rows are modes of the C harness `shared/limits` (its own process, its own \
         timing and CPU figures, loopback only), run in the same rounds. \"÷ best raw\" (side \
         by side) divides by the fastest row on that path that is not sendpackets."
    );
    println!(
        "- CPU: `getrusage(RUSAGE_SELF)` around the run, which counts the whole process — \
         the sending thread *and* the receiver thread(s), which run in-process (and tokio's \
         threads) — plus a receiver child process's own CPU (scale), per GB sent or per item. \
         The raw C rows add the harness's sender and forked receiver the same way."
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

/// Prints the side-by-side table of every group that has several paths, then each section.
fn print_sections(sections: &[Section]) {
    let mut groups: Vec<&str> = Vec::new();
    for s in sections {
        if !groups.contains(&s.group.as_str()) {
            groups.push(&s.group);
        }
    }
    for g in groups {
        let members: Vec<&Section> = sections.iter().filter(|s| s.group == g).collect();
        if members.len() > 1 && members.iter().all(|s| s.path.is_some()) {
            let first = members[0];
            let title = first
                .title
                .replace("TCP over loopback", "TCP")
                .replace("TCP loopback", "TCP")
                .replace(" over 127.0.0.1", "")
                .replace(" over loopback", "");
            println!("## {title} — loopback and veth side by side\n");
            let paths: Vec<(&str, &[Series])> = members
                .iter()
                .map(|s| (s.path.unwrap_or(""), s.series.as_slice()))
                .collect();
            println!(
                "{}",
                table::side_by_side(first.spec.metric, &paths).render()
            );
        }
        for s in members {
            print_section(s);
        }
    }
}

fn print_section(s: &Section) {
    println!("### {}\n", s.title);
    for n in &s.notes {
        println!("{n}\n");
    }
    let redone: usize = s.series.iter().map(|x| x.redone).sum();
    let kept: usize = s.series.iter().map(|x| x.kept_noisy).sum();
    let runs: usize = s.series.iter().map(|x| x.samples.len()).sum();
    println!(
        "Quiet gate: {redone} run(s) discarded and redone; {kept} of the {runs} kept run(s) \
         over the gate (redos used up).\n"
    );
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

/// Raises the soft descriptor limit to the hard one (1,000 connections need 2,000+; 10,000
/// need 10,000 on each side).
pub(crate) fn raise_nofile() {
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
        let c =
            Cli::try_parse_from(["b", "--buf-offset", "16", "--shaped", "1gbit", "all"]).unwrap();
        assert_eq!(c.buf_offset, 16);
        assert_eq!(c.shaped.as_deref(), Some("1gbit"));
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(parse_rate("1gbit"), Some(1e9));
        assert_eq!(parse_rate("500mbit"), Some(5e8));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(fmt_thousands(10_000), "10,000");
        assert_eq!(fmt_thousands(100), "100");
        assert_eq!(section_key("bulk-tcp", Some("veth")), "bulk-tcp-veth");
    }
}
