//! `rr`: request/response. N keep-alive connections (`wrk -t1 -cN`), each sending a small GET and
//! reading the whole response before the next, against one responder per mechanism
//! (`rr_server`), the library's choice, the C limit server (`shared/limits/rr/limit.c`: from
//! memory, MSG_MORE + sendfile, corked sendfile), `sendpackets serve`, nginx and
//! static-web-server; response bodies of 1 KiB to 8 MiB.
//!
//! Every server runs inside a network namespace of the bench's own and listens on the
//! namespace's address. The loopback path is wrk inside that namespace (the address is local
//! there, so traffic goes over the namespace's `lo`); the veth path is wrk outside, over the
//! veth pair. The congestion control is set per namespace (`net.ipv4.tcp_congestion_control`
//! inside it), so the machine's own is never touched, and a server's accepted sockets take the
//! namespace's setting of the moment. Server CPU per request: utime + stime of the server's
//! processes from /proc over the wrk run, divided by the requests wrk counted. Every run is gated
//! by the quiet gate of `measure` (other processes' CPU) and redone when it fails it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{GATE_SHARE, GATE_SLACK, others_cpu_ticks, ticks_to_secs};
use crate::netpath::Veth;
use crate::serve_nginx::{self, Server, cpu_seconds, parse_wrk};
use crate::table::Table;

/// How long a server gets to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Extra time a wrk run may take past its duration before it is killed.
const WRK_SLACK: Duration = Duration::from_secs(60);

/// The workload's own options (after `rr`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    /// Concurrent connections (wrk -c), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1000")]
    conns: Vec<u32>,
    /// Response body sizes, comma-separated (1k, 16k, 64k, 256k, 1m, 8m).
    #[arg(long, value_delimiter = ',', default_value = "1k,16k,64k,256k,1m,8m")]
    sizes: Vec<String>,
    /// Paths, comma-separated: loopback, veth.
    #[arg(long, value_delimiter = ',', default_value = "loopback,veth")]
    paths: Vec<String>,
    /// Congestion controls set in the servers' namespace, comma-separated (those the kernel
    /// allows: /proc/sys/net/ipv4/tcp_allowed_congestion_control). `bbr-fq` is bbr with the
    /// `fq` qdisc on the namespace's devices, when the kernel has it.
    #[arg(long, value_delimiter = ',', default_value = "bbr,bbr-fq,reno")]
    cc: Vec<String>,
    /// Contenders, comma-separated (default: all but the epoll responder's mem, cork and more,
    /// which the limit server covers): limit-mem, limit-more, limit-cork, mem, cork, more,
    /// copy, splice, lib, serve, nginx, sws; and serve-old, `sendpackets serve` of an older
    /// build named by SENDPACKETS_OLD_BIN (before and after a change, side by side);
    /// serve-ofc and serve-old-ofc, the same two with `--open-file-cache` (no open per request).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds per wrk run (default 3, quick 1).
    #[arg(long)]
    secs: Option<u64>,
}

/// Default contenders.
const DEFAULT: &[&str] = &[
    "limit-mem",
    "limit-more",
    "limit-cork",
    "copy",
    "splice",
    "lib",
    "serve",
    "nginx",
    "sws",
];

/// Contender keys and their column names.
fn title(key: &str) -> &'static str {
    match key {
        "limit-mem" => "limit: from memory",
        "limit-more" => "limit: MSG_MORE + sendfile",
        "limit-cork" => "limit: corked sendfile",
        "mem" => "epoll: from memory",
        "cork" => "epoll: corked sendfile",
        "more" => "epoll: MSG_MORE + sendfile",
        "copy" => "epoll: pread + send",
        "splice" => "epoll: splice",
        "lib" => "library's choice",
        "serve" => "sendpackets serve",
        "serve-old" => "serve, older build",
        "serve-ofc" => "serve --open-file-cache",
        "serve-old-ofc" => "older build --open-file-cache",
        "nginx" => "nginx",
        "sws" => "static-web-server",
        _ => "?",
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, shift) = if let Some(n) = s.strip_suffix('k') {
        (n, 10)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 20)
    } else {
        (s.as_str(), 0)
    };
    num.parse::<u64>().ok().map(|n| n << shift)
}

fn file_name(len: u64) -> String {
    format!(
        "{}.bin",
        crate::size_name(len).replace(' ', "").to_lowercase()
    )
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    rps: f64,
    cpu_us: f64,
    /// wrk's socket errors (connect, read, write, timeout) and non-2xx responses.
    errors: u64,
    /// Bytes read per second (partial responses included: with 1,000 connections and 8 MiB
    /// responses few complete within a run).
    bps: f64,
}

/// A contender's servers: one for every size, or one per size (the limit server).
#[derive(Debug)]
enum Servers {
    One(Server),
    PerSize(HashMap<u64, Server>),
}

impl Servers {
    fn get(&mut self, size: u64) -> Option<&mut Server> {
        match self {
            Servers::One(s) => Some(s),
            Servers::PerSize(m) => m.get_mut(&size),
        }
    }
}

/// Runs the workload and prints its tables.
pub(crate) fn run(args: &Args, reps: usize, quick: bool, install: bool, gate_redos: usize) {
    println!("# Request/response (`rr`)\n");
    println!(
        "- Command: `cargo build --release -p sendpackets-cli -p sendpackets-bench && \
         target/release/sendpackets-bench {}`",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("- Machine: {}", crate::measure::machine());
    println!("- Date (UTC): {}", crate::utc_now());
    if let Some(rev) = crate::git_rev() {
        println!("- Commit: {rev}");
    }
    println!();
    match body(args, reps, quick, install, gate_redos) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            println!("Failed: {e}\n");
            eprintln!("rr failed: {e}");
        }
    }
}

#[allow(clippy::too_many_lines)]
fn body(
    args: &Args,
    reps: usize,
    quick: bool,
    install: bool,
    gate_redos: usize,
) -> io::Result<String> {
    let mut notes: Vec<String> = Vec::new();
    serve_nginx::tools(install).map_err(io::Error::other)?;
    let secs = args.secs.unwrap_or(if quick { 1 } else { 3 });
    let mut sizes: Vec<u64> = Vec::new();
    for s in &args.sizes {
        sizes.push(parse_size(s).ok_or_else(|| io::Error::other(format!("size {s}?")))?);
    }
    let mut keys: Vec<&str> = if args.only.is_empty() {
        DEFAULT.to_vec()
    } else {
        args.only.iter().map(String::as_str).collect()
    };
    let allowed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
        .unwrap_or_default();
    let allowed: Vec<&str> = allowed.split_whitespace().collect();
    let has_fq = qdisc_exists("fq");
    let mut ccs: Vec<String> = Vec::new();
    for cc in &args.cc {
        let (alg, fq) = match cc.strip_suffix("-fq") {
            Some(a) => (a, true),
            None => (cc.as_str(), false),
        };
        if !allowed.contains(&alg) {
            notes.push(format!(
                "{cc} left out: the kernel allows only {} in a namespace \
                 (tcp_allowed_congestion_control)",
                allowed.join(", ")
            ));
        } else if fq && !has_fq {
            notes.push(format!(
                "{cc} left out: this kernel has no `fq` qdisc (`tc qdisc add ... fq`: \
                 \"Specified qdisc kind is unknown\"); bbr paces by itself (internal pacing)"
            ));
        } else {
            ccs.push(cc.clone());
        }
    }

    let limit_bin = if keys.iter().any(|k| k.starts_with("limit-")) {
        match build_limit() {
            Ok(p) => Some(p),
            Err(e) => {
                notes.push(format!("limit server left out: {e}"));
                keys.retain(|k| !k.starts_with("limit-"));
                None
            }
        }
    } else {
        None
    };
    let serve_bin = if keys.iter().any(|k| matches!(*k, "serve" | "serve-ofc")) {
        match serve_nginx::serve_binary() {
            Ok(p) => Some(p),
            Err(e) => {
                notes.push(format!("sendpackets serve left out: {e}"));
                keys.retain(|k| !matches!(*k, "serve" | "serve-ofc"));
                None
            }
        }
    } else {
        None
    };
    let sws_bin = if keys.contains(&"sws") {
        match sws_binary(install) {
            Ok(p) => Some(p),
            Err(e) => {
                notes.push(format!("static-web-server left out: {e}"));
                keys.retain(|k| *k != "sws");
                None
            }
        }
    } else {
        None
    };

    let veth = Veth::create().map_err(io::Error::other)?;
    let v = &veth;
    let ip = IpAddr::V4(v.ns_addr);
    let dir = tempfile::tempdir()?;
    crate::netpath::remove_on_signal(dir.path());
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    for &len in &sizes {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(www.join(file_name(len)), data)?;
    }

    let me = std::env::current_exe()?;
    let mut servers: Vec<(String, Servers)> = Vec::new();
    for &k in &keys {
        let s = match k {
            "limit-mem" | "limit-more" | "limit-cork" => {
                let mode = match k {
                    "limit-mem" => "mem",
                    "limit-more" => "sendfile",
                    _ => "cork",
                };
                let bin = limit_bin.as_ref().expect("built above");
                let mut m = HashMap::new();
                for &len in &sizes {
                    m.insert(
                        len,
                        start_limit(v, bin, mode, &www.join(file_name(len)), len)?,
                    );
                }
                Servers::PerSize(m)
            }
            "mem" | "cork" | "more" | "copy" | "splice" | "lib" => {
                Servers::One(start_rr(v, &me, k, &www)?)
            }
            "serve" | "serve-ofc" => Servers::One(serve_nginx::start_ours(
                serve_bin.as_ref().expect("found above"),
                &www,
                ip,
                1,
                ours_setup(k == "serve-ofc"),
                Some(v),
            )?),
            "serve-old" | "serve-old-ofc" => {
                let bin = std::env::var_os("SENDPACKETS_OLD_BIN").ok_or_else(|| {
                    io::Error::other("serve-old needs SENDPACKETS_OLD_BIN (an older build)")
                })?;
                Servers::One(serve_nginx::start_ours(
                    Path::new(&bin),
                    &www,
                    ip,
                    1,
                    ours_setup(k == "serve-old-ofc"),
                    Some(v),
                )?)
            }
            "nginx" => Servers::One(serve_nginx::start_nginx(
                dir.path(),
                &www,
                ip,
                1,
                false,
                Some(v),
            )?),
            "sws" => Servers::One(start_sws(v, sws_bin.as_ref().expect("found above"), &www)?),
            other => return Err(io::Error::other(format!("unknown contender {other}"))),
        };
        let pids: Vec<u32> = match &s {
            Servers::One(x) => x.pids.clone(),
            Servers::PerSize(m) => m.values().flat_map(|x| x.pids.clone()).collect(),
        };
        for pid in pids {
            crate::netpath::kill_on_signal(pid);
        }
        servers.push((k.to_string(), s));
    }
    // Every server answers every size with the file's exact bytes before anything is measured.
    for (k, s) in &mut servers {
        for &len in &sizes {
            let srv = s.get(len).expect("a server per size");
            let want = std::fs::read(www.join(file_name(len)))?;
            check(srv.addr, &file_name(len), &want)
                .map_err(|e| io::Error::other(format!("{k} {}: {e}", file_name(len))))?;
        }
    }
    eprintln!("rr: every server answered every size byte for byte");

    let paths: Vec<&str> = args
        .paths
        .iter()
        .map(String::as_str)
        .filter(|p| matches!(*p, "loopback" | "veth"))
        .collect();
    // results[(path, cc, conns, size, key)]
    let mut results: Results = HashMap::new();
    let (mut discarded, mut kept_noisy) = (0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    let wrk_bin = which("wrk").unwrap_or_else(|| PathBuf::from("wrk"));
    let began = Instant::now();
    for &path in &paths {
        for cc in &ccs {
            set_cc(v, cc)?;
            for &conns in &args.conns {
                for round in 0..reps {
                    for &len in &sizes {
                        let n = servers.len();
                        for j in 0..n {
                            let si = (round + j) % n;
                            let (k, s) = &mut servers[si];
                            let srv = s.get(len).expect("a server per size");
                            let url = format!("http://{}/{}", srv.addr, file_name(len));
                            let mut attempt = 0;
                            let sample = loop {
                                let before = others_cpu_ticks();
                                let t0 = Instant::now();
                                let sample = match wrk(v, path, &wrk_bin, srv, &url, conns, secs) {
                                    Ok(s) => s,
                                    Err(e) => {
                                        eprintln!(
                                            "  rr {path} {cc} c{conns} {} {k}: FAILED: {e}",
                                            crate::size_name(len)
                                        );
                                        failures.push(format!(
                                            "{path}, {cc}, {conns} connection(s), {}, {}: {e}",
                                            crate::size_name(len),
                                            title(k)
                                        ));
                                        break None;
                                    }
                                };
                                let window = t0.elapsed().as_secs_f64();
                                let others = ticks_to_secs(others_cpu_ticks().since(&before));
                                let noisy = others > GATE_SHARE * window + GATE_SLACK;
                                if noisy && attempt < gate_redos {
                                    attempt += 1;
                                    discarded += 1;
                                    eprintln!(
                                        "  rr {path} {cc} c{conns} {} {k}: discarded (others \
                                         {others:.2} CPU s in {window:.1} s), redo {attempt}",
                                        crate::size_name(len)
                                    );
                                    continue;
                                }
                                kept_noisy += usize::from(noisy);
                                break Some(sample);
                            };
                            let Some(sample) = sample else { continue };
                            eprintln!(
                                "  rr {path} {cc} c{conns} round {}/{reps} {:>7} {:<18} \
                                 {:>9.0} req/s {:>8.1} µs/req {:>7.0} MB/s{}",
                                round + 1,
                                crate::size_name(len),
                                k,
                                sample.rps,
                                sample.cpu_us,
                                sample.bps / 1e6,
                                if sample.errors > 0 {
                                    format!("  ({} errors)", sample.errors)
                                } else {
                                    String::new()
                                }
                            );
                            results
                                .entry((path.into(), cc.clone(), conns, len, k.clone()))
                                .or_default()
                                .push(sample);
                        }
                    }
                }
                // Each table as soon as it is measured (a run stopped later keeps it).
                eprintln!("{}", render(&keys, &sizes, &results, path, cc, conns));
            }
        }
    }
    let elapsed = began.elapsed();
    drop(servers);
    drop(veth);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "`wrk -t1 -cN -d{secs}s`, keep-alive; every server one thread (nginx `worker_processes \
         1`, `sendpackets serve --threads 1`, static-web-server `--threads-multiplier 1`), inside \
         the bench's namespace; loopback = wrk in the namespace, veth = wrk outside over the veth \
         pair (MTU 1500). {reps} interleaved round(s) (each round starts with the next server), \
         median. Cells: requests/s (server CPU µs per request). Response header {} bytes (the \
         bench's responders and the limit server; nginx, serve and static-web-server send their \
         own). Quiet gate: {discarded} run(s) discarded and redone, {kept_noisy} kept over the \
         gate (redos used up). Measuring took {:.0} s.\n",
        crate::rr_server::HEADER_LEN,
        elapsed.as_secs_f64()
    );
    for n in &notes {
        let _ = writeln!(out, "- {n}");
    }
    for f in &failures {
        let _ = writeln!(out, "- Run failed (left out of the medians): {f}");
    }
    if !notes.is_empty() || !failures.is_empty() {
        out.push('\n');
    }
    for &path in &paths {
        for cc in &ccs {
            for &conns in &args.conns {
                out.push_str(&render(&keys, &sizes, &results, path, cc, conns));
            }
        }
    }
    Ok(out)
}

/// Every sample, by path, congestion control, connections, size and contender.
type Results = HashMap<(String, String, u32, u64, String), Vec<Sample>>;

/// The table of one path, congestion control and connection count.
fn render(
    keys: &[&str],
    sizes: &[u64],
    results: &Results,
    path: &str,
    cc: &String,
    conns: u32,
) -> String {
    let mut out = String::new();
    let cols: Vec<String> = keys.iter().map(|k| title(k).to_string()).collect();
    let _ = writeln!(out, "### {path}, {cc}, {conns} connection(s)\n");
    let mut head = vec!["size".to_string()];
    head.extend(cols.iter().cloned());
    head.extend(
        [
            "serve ÷ best limit",
            "library ÷ best limit",
            "serve ÷ nginx",
            "serve ÷ sws",
            "library ÷ copy",
        ]
        .map(String::from),
    );
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head_refs);
    for &len in sizes {
        let med = |k: &str| {
            results
                .get(&(path.into(), cc.clone(), conns, len, k.to_string()))
                .and_then(|v| median(v))
        };
        let mut row = vec![crate::size_name(len)];
        for k in keys {
            row.push(med(k).map_or("–".into(), |m| {
                let err = if m.errors > 0 {
                    format!(", {} err", m.errors)
                } else {
                    String::new()
                };
                // Where few responses complete in a run, the bytes say more.
                let mbs = if len >= 1 << 20 && conns >= 1000 {
                    format!(", {:.0} MB/s", m.bps / 1e6)
                } else {
                    String::new()
                };
                format!("{} ({:.1}{mbs}{err})", rate(m.rps), m.cpu_us)
            }));
        }
        let best_limit = ["limit-mem", "limit-more", "limit-cork"]
            .iter()
            .filter_map(|k| med(k).map(|m| m.rps))
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
        let ratio = |a: Option<Sample>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a.rps / b),
            _ => "–".into(),
        };
        row.push(ratio(med("serve"), best_limit));
        row.push(ratio(med("lib"), best_limit));
        row.push(ratio(med("serve"), med("nginx").map(|m| m.rps)));
        row.push(ratio(med("serve"), med("sws").map(|m| m.rps)));
        row.push(ratio(med("lib"), med("copy").map(|m| m.rps)));
        t.row(row);
    }
    out.push_str(&t.render());
    out.push('\n');
    out
}

fn rate(rps: f64) -> String {
    if rps >= 10_000.0 {
        format!("{:.1} k", rps / 1000.0)
    } else if rps >= 1000.0 {
        format!("{:.2} k", rps / 1000.0)
    } else {
        format!("{rps:.0}")
    }
}

fn median(v: &[Sample]) -> Option<Sample> {
    let mid = |mut x: Vec<f64>| crate::measure::median(&std::mem::take(&mut x));
    Some(Sample {
        rps: mid(v.iter().map(|s| s.rps).collect())?,
        cpu_us: mid(v.iter().map(|s| s.cpu_us).collect())?,
        errors: v.iter().map(|s| s.errors).max().unwrap_or(0),
        bps: mid(v.iter().map(|s| s.bps).collect())?,
    })
}

/// Whether the kernel knows a qdisc (tried in a namespace of its own, removed after).
fn qdisc_exists(kind: &str) -> bool {
    let Ok(v) = Veth::create() else {
        return false;
    };
    Command::new("tc")
        .args([
            "-n", &v.netns, "qdisc", "replace", "dev", &v.ns_if, "root", kind,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sets the namespace's congestion control (and the `fq` qdisc for `X-fq`, else the default).
fn set_cc(v: &Veth, cc: &str) -> io::Result<()> {
    let (alg, fq) = match cc.strip_suffix("-fq") {
        Some(a) => (a, true),
        None => (cc, false),
    };
    let ok = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("ip").args([
        "netns",
        "exec",
        &v.netns,
        "sysctl",
        "-qw",
        &format!("net.ipv4.tcp_congestion_control={alg}"),
    ])) {
        return Err(io::Error::other(format!(
            "cannot set {alg} in the namespace"
        )));
    }
    for dev in [v.ns_if.as_str(), "lo"] {
        let mut c = Command::new("tc");
        if fq {
            c.args(["-n", &v.netns, "qdisc", "replace", "dev", dev, "root", "fq"]);
        } else {
            c.args(["-n", &v.netns, "qdisc", "del", "dev", dev, "root"]);
        }
        let done = ok(&mut c);
        if fq && !done {
            return Err(io::Error::other(format!("cannot put fq on {dev}")));
        }
    }
    Ok(())
}

/// One wrk run against `srv`.
fn wrk(
    v: &Veth,
    path: &str,
    wrk_bin: &Path,
    srv: &mut Server,
    url: &str,
    conns: u32,
    secs: u64,
) -> io::Result<Sample> {
    let mut cmd = if path == "loopback" {
        v.command(wrk_bin)
    } else {
        Command::new(wrk_bin)
    };
    cmd.args([
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--timeout",
        "10s",
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let cpu0 = cpu_seconds(&srv.pids);
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(secs) + WRK_SLACK;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("wrk ran too long"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu1 = cpu_seconds(&srv.pids);
    let mut text = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut text)?;
    }
    if !status.success() {
        return Err(io::Error::other(format!("wrk failed: {text}")));
    }
    if let Ok(Some(st)) = srv.child.try_wait() {
        return Err(io::Error::other(format!("{} exited: {st}", srv.name)));
    }
    let w = parse_wrk(&text).ok_or_else(|| io::Error::other(format!("wrk said: {text}")))?;
    let socket_errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    Ok(Sample {
        rps: w.rps,
        cpu_us: (cpu1 - cpu0) * 1e6 / w.requests.max(1) as f64,
        errors: w.bad + socket_errors,
        bps: transfer_rate(&text).unwrap_or(0.0),
    })
}

/// wrk's `Transfer/sec:  12.34MB` in bytes per second.
fn transfer_rate(text: &str) -> Option<f64> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Transfer/sec:"))?
        .trim();
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let mult = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * mult)
}

/// One request with the bench's own client: status 200, and the body is the file, byte for
/// byte (from the host, over the veth pair).
fn check(addr: SocketAddr, name: &str, want: &[u8]) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    for _ in 0..2 {
        write!(s, "GET /{name} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b)?;
            head.push(b[0]);
            if head.len() > 8192 {
                return Err(io::Error::other("no end of head"));
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !text.starts_with("http/1.1 200") {
            return Err(io::Error::other(format!(
                "status {:?}",
                text.lines().next()
            )));
        }
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no content-length"))?;
        if len != want.len() {
            return Err(io::Error::other(format!(
                "content-length {len}, file {}",
                want.len()
            )));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        if body != want {
            return Err(io::Error::other("body differs from the file"));
        }
    }
    Ok(())
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// A free port on the namespace's address.
fn free_port(v: &Veth) -> io::Result<u16> {
    let ip = IpAddr::V4(v.ns_addr);
    crate::netpath::Path::Veth(v).run_in(move || {
        Ok(TcpListener::bind(SocketAddr::new(ip, 0))?
            .local_addr()?
            .port())
    })
}

fn wait_listening(mut s: Server) -> io::Result<Server> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if TcpStream::connect(s.addr).is_ok() {
            return Ok(s);
        }
        if let Ok(Some(st)) = s.child.try_wait() {
            return Err(io::Error::other(format!("{} exited: {st}", s.name)));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("{} did not start", s.name)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_limit(v: &Veth, bin: &Path, mode: &str, file: &Path, len: u64) -> io::Result<Server> {
    let port = free_port(v)?;
    let child = v
        .command(bin)
        .args([&v.ns_addr.to_string(), &port.to_string(), mode])
        .arg(file)
        .args([
            "0",
            &len.to_string(),
            "200",
            &crate::rr_server::HEADER_LEN.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    wait_listening(Server {
        name: format!("limit {mode} {len}"),
        child,
        addr: SocketAddr::new(IpAddr::V4(v.ns_addr), port),
        pids: vec![pid],
    })
}

fn start_rr(v: &Veth, me: &Path, mode: &str, www: &Path) -> io::Result<Server> {
    let mut child = v
        .command(me)
        .args(["rr-server", "--mode", mode, "--dir"])
        .arg(www)
        .arg("--listen")
        .arg(SocketAddr::new(IpAddr::V4(v.ns_addr), 0).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    std::thread::spawn(move || for _ in lines {});
    let addr = first
        .strip_prefix("listening on http://")
        .and_then(|a| a.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("rr-server {mode} said {first:?}")))?;
    let pid = child.id();
    Ok(Server {
        name: format!("rr-server {mode}"),
        child,
        addr,
        pids: vec![pid],
    })
}

fn start_sws(v: &Veth, bin: &Path, www: &Path) -> io::Result<Server> {
    let port = free_port(v)?;
    let child = v
        .command(bin)
        .args([
            "--host",
            &v.ns_addr.to_string(),
            "--port",
            &port.to_string(),
        ])
        .arg("--root")
        .arg(www)
        .args([
            "--threads-multiplier",
            "1",
            "--log-level",
            "error",
            "--compression",
            "false",
            "--cache-control-headers",
            "false",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    wait_listening(Server {
        name: "static-web-server".into(),
        child,
        addr: SocketAddr::new(IpAddr::V4(v.ns_addr), port),
        pids: vec![pid],
    })
}

/// `shared/limits/rr/limit.c`, built with gcc next to this binary when no up-to-date build is
/// there.
fn build_limit() -> Result<PathBuf, String> {
    let dir = crate::limits::locate().ok_or("shared/limits was not found")?;
    let src = dir.join("rr/limit.c");
    if !src.is_file() {
        return Err(format!("{} is missing", src.display()));
    }
    let out_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("limits-harness")))
        .unwrap_or_else(|| std::env::temp_dir().join("sendpackets-bench-limits"));
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let bin = out_dir.join("rr-limit");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(b), Some(s)) = (modified(&bin), modified(&src)) {
        if b >= s {
            return Ok(bin);
        }
    }
    let ok = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(bin)
    } else {
        Err("gcc could not build rr/limit.c".into())
    }
}

/// static-web-server: on the PATH, or installed from crates.io (`cargo install
/// static-web-server --locked --root DIR`) into `rr-tools` beside this binary.
fn sws_binary(install: bool) -> Result<PathBuf, String> {
    if let Some(p) = which("static-web-server") {
        return Ok(p);
    }
    let root = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .and_then(Path::parent)
        .ok_or("no target folder")?
        .join("rr-tools");
    let bin = root.join("bin/static-web-server");
    if bin.is_file() {
        return Ok(bin);
    }
    if !install {
        return Err("not installed and --no-install given".into());
    }
    eprintln!(
        "installing static-web-server from crates.io into {} (several minutes) ...",
        root.display()
    );
    let ok = Command::new("cargo")
        .args(["install", "static-web-server", "--locked", "--root"])
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    if ok && bin.is_file() {
        Ok(bin)
    } else {
        Err("cargo install static-web-server failed".into())
    }
}

/// `serve` as it starts by default, or with `--open-file-cache` (the `-ofc` contenders); no
/// flag an older build lacks.
fn ours_setup(cache: bool) -> serve_nginx::OursSetup {
    serve_nginx::OursSetup {
        open_file_cache: cache.then_some(serve_nginx::OPEN_FILE_CACHE_SECS),
        precompressed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(file_name(64 << 10), "64kib.bin");
        let wrk = "Requests/sec:   1.50\nTransfer/sec:     12.50MB\n";
        assert_eq!(transfer_rate(wrk), Some(12.5 * 1024.0 * 1024.0));
        assert_eq!(transfer_rate("nothing"), None);
    }
}
