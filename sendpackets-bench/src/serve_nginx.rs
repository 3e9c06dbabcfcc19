//! `serve-nginx`: `wrk` against `sendpackets serve` and against nginx (open_file_cache off and
//! on), interleaved rounds, on the same files: 1 KiB, 16 KiB, 256 KiB, 1 MiB, a 64 KiB Range
//! of the 1 MiB file, three ranges of it in one `multipart/byteranges` response, and a text file
//! with a gzip sidecar asked for with `Accept-Encoding: gzip` (nginx `gzip_static on`, serve
//! `--precompressed`). Reports requests/s and server CPU µs per request (utime + stime of the
//! server's processes from /proc over the wrk run) with ratios to nginx.
//!
//! Servers and wrk are separate processes; the bench only starts them, reads /proc and parses
//! wrk's output. Where the servers listen (`--listen`) and what wrk connects to (`--target`,
//! default the same) are parameters, for a path other than loopback (a veth pair).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::table::Table;

/// wrk's connections: the figure issue 13 quotes (`wrk -c64`).
const CONNECTIONS: u32 = 64;
/// wrk's threads: one per core of this 2-core machine.
pub(crate) const WRK_THREADS: u32 = 2;
/// Seconds per wrk run: full and quick.
const RUN_SECS: u64 = 10;
const QUICK_RUN_SECS: u64 = 3;
/// How long a server gets to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Extra time a wrk run may take past its duration before it is killed.
const WRK_SLACK: Duration = Duration::from_secs(30);
/// Validity of both open-file caches (ours, nginx's `open_file_cache_valid`), seconds.
pub(crate) const OPEN_FILE_CACHE_SECS: &str = "60";
/// The 1 MiB file's range for the Range cell: 64 KiB from 512 KiB.
const RANGE_START: u64 = 512 << 10;
const RANGE_LEN: u64 = 64 << 10;
/// The multipart cell's ranges of the 1 MiB file: 4 KiB at the start and two 64 KiB pieces
/// (what a video player's or a PDF reader's first requests look like).
const MULTI_RANGES: [(u64, u64); 3] = [(0, 4 << 10), (256 << 10, 64 << 10), (896 << 10, 64 << 10)];
/// The sidecar cell's text file: 256 KiB of repeated log-like lines (gzip makes it ~10x smaller).
const TEXT_LEN: usize = 256 << 10;

/// The workload's own options (after `serve-nginx`).
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Args {
    /// Server worker threads (ours) = worker processes (nginx).
    #[arg(long, default_value_t = 1)]
    workers: u16,
    /// Address both servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Address wrk connects to (default: --listen). Loopback or a namespace address of
    /// 198.18.0.0/15 only.
    #[arg(long)]
    target: Option<IpAddr>,
    /// wrk connections.
    #[arg(long, default_value_t = CONNECTIONS)]
    connections: u32,
    /// Seconds per wrk run (default 10, quick 3).
    #[arg(long)]
    secs: Option<u64>,
    /// Run both servers inside a network namespace of the bench's own, behind a veth pair
    /// (MTU 1500), and point wrk at the namespace's address: the servers answer over a real
    /// link, not loopback. Needs root and `ip`; without them the workload says so and stops.
    #[arg(long)]
    veth: bool,
}

/// One file cell of the table.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub(crate) name: &'static str,
    pub(crate) path: &'static str,
    /// A `Range` header, and the body length each response carries.
    pub(crate) range: Option<String>,
    pub(crate) body: u64,
    /// An `Accept-Encoding` header.
    pub(crate) accept_encoding: Option<&'static str>,
    /// What a correct answer is beyond its body length.
    pub(crate) expect: Expect,
}

/// What [`check`] requires of a cell's answer.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// A body of exactly `body` bytes (200, or 206 with a `range`).
    Plain,
    /// A 206 `multipart/byteranges` whose parts are these ranges (offset, length) of `file`,
    /// byte for byte (the boundary, and so the length, differ between servers).
    Multipart {
        file: PathBuf,
        ranges: Vec<(u64, u64)>,
    },
    /// A 200 with `Content-Encoding: gzip` whose body is exactly the file `sidecar`.
    Sidecar { sidecar: PathBuf },
}

/// One server under test.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// Every process whose CPU counts (nginx: master and workers).
    pub(crate) pids: Vec<u32>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) rps: f64,
    pub(crate) cpu_us_per_req: f64,
}

/// Runs the workload and prints its tables. `reps` rounds, interleaved.
pub(crate) fn run(args: &Args, reps: usize, quick: bool, install: bool) {
    if let Err(e) = tools(install) {
        println!("## sendpackets serve vs nginx\n\nSkipped: {e}\n");
        eprintln!("serve-nginx skipped: {e}");
        return;
    }
    let ours = match serve_binary() {
        Ok(p) => p,
        Err(e) => {
            println!("## sendpackets serve vs nginx\n\nSkipped: {e}\n");
            eprintln!("serve-nginx skipped: {e}");
            return;
        }
    };
    println!("# sendpackets serve vs nginx\n");
    println!(
        "- Command: `cargo build --release -p sendpackets-cli && cargo run --release -p \
         sendpackets-bench -- {}`",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("- Machine: {}", crate::measure::machine());
    println!("- Date (UTC): {}", crate::utc_now());
    if let Some(rev) = crate::git_rev() {
        println!("- Commit: {rev}");
    }
    println!();
    match body(args, reps, quick, &ours) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            println!("## sendpackets serve vs nginx\n\nFailed: {e}\n");
            eprintln!("serve-nginx failed: {e}");
        }
    }
}

fn body(args: &Args, reps: usize, quick: bool, ours: &Path) -> io::Result<String> {
    let veth = if args.veth {
        Some(crate::netpath::Veth::create().map_err(io::Error::other)?)
    } else {
        None
    };
    let listen = veth.as_ref().map_or(args.listen, |v| IpAddr::V4(v.ns_addr));
    let target = args.target.unwrap_or(listen);
    let secs = args
        .secs
        .unwrap_or(if quick { QUICK_RUN_SECS } else { RUN_SECS });
    let dir = tempfile::tempdir()?;
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    for (name, len) in [
        ("1k.bin", 1u64 << 10),
        ("16k.bin", 16 << 10),
        ("256k.bin", 256 << 10),
        ("1m.bin", 1 << 20),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(www.join(name), data)?;
    }
    // A text file and its gzip sidecar, made by gzip itself.
    let text: String = (0..)
        .map(|i| format!("{i:08} GET /assets/app.js 200 1234 \"Mozilla/5.0\"\n"))
        .take_while({
            let mut n = 0;
            move |l: &String| {
                n += l.len();
                n <= TEXT_LEN
            }
        })
        .collect();
    std::fs::write(www.join("log.txt"), &text)?;
    let gz = Command::new("gzip")
        .args(["-k", "-n", "-9"])
        .arg(www.join("log.txt"))
        .status()?;
    if !gz.success() {
        return Err(io::Error::other("gzip failed"));
    }
    let multi = MULTI_RANGES
        .iter()
        .map(|(o, l)| format!("{o}-{}", o + l - 1))
        .collect::<Vec<_>>()
        .join(",");
    let cells = vec![
        cell("1 KiB", "/1k.bin", 1 << 10),
        cell("16 KiB", "/16k.bin", 16 << 10),
        cell("256 KiB", "/256k.bin", 256 << 10),
        cell("1 MiB", "/1m.bin", 1 << 20),
        Cell {
            range: Some(format!(
                "bytes={RANGE_START}-{}",
                RANGE_START + RANGE_LEN - 1
            )),
            ..cell("64 KiB Range of 1 MiB", "/1m.bin", RANGE_LEN)
        },
        Cell {
            range: Some(format!("bytes={multi}")),
            expect: Expect::Multipart {
                file: www.join("1m.bin"),
                ranges: MULTI_RANGES.to_vec(),
            },
            ..cell("3 ranges of 1 MiB (multipart)", "/1m.bin", 0)
        },
        Cell {
            accept_encoding: Some("gzip"),
            expect: Expect::Sidecar {
                sidecar: www.join("log.txt.gz"),
            },
            ..cell(
                "256 KiB text, gzip sidecar",
                "/log.txt",
                std::fs::metadata(www.join("log.txt.gz"))?.len(),
            )
        },
    ];
    let v = veth.as_ref();
    let mut servers = vec![
        // Without a cache every request looks its path up, as nginx's `open_file_cache off`
        // (serve's default keeps a path for 1 s); `--precompressed` as nginx's `gzip_static on`.
        start_ours(
            ours,
            &www,
            listen,
            args.workers,
            OursSetup {
                open_file_cache: Some("0"),
                precompressed: true,
            },
            v,
        )?,
        start_ours(
            ours,
            &www,
            listen,
            args.workers,
            OursSetup {
                open_file_cache: Some(OPEN_FILE_CACHE_SECS),
                precompressed: true,
            },
            v,
        )?,
        start_nginx(dir.path(), &www, listen, args.workers, false, v)?,
        start_nginx(dir.path(), &www, listen, args.workers, true, v)?,
    ];
    let (nginx_off, nginx_on) = (2, 3);
    // Every server answers every cell correctly before anything is measured.
    for s in &servers {
        for c in &cells {
            check(SocketAddr::new(target, s.addr.port()), c)
                .map_err(|e| io::Error::other(format!("{} {}: {e}", s.name, c.path)))?;
        }
    }
    let load_before = load();
    // samples[cell][server]
    let mut samples = vec![vec![Vec::<Sample>::new(); servers.len()]; cells.len()];
    let n = servers.len();
    for round in 0..reps {
        for (ci, c) in cells.iter().enumerate() {
            for k in 0..n {
                let si = (round + k) % n;
                let s = &mut servers[si];
                let url = format!("http://{}:{}{}", target, s.addr.port(), c.path);
                let sample = measure(s, &url, c, args.connections, secs)?;
                eprintln!(
                    "serve-nginx round {}/{reps}: {} {}: {:.0} req/s, {:.1} µs CPU/req",
                    round + 1,
                    c.name,
                    s.name,
                    sample.rps,
                    sample.cpu_us_per_req
                );
                samples[ci][si].push(sample);
            }
        }
    }
    let load_after = load();
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    drop(servers);

    let mut out = String::new();
    let _ = writeln!(out, "## sendpackets serve vs nginx\n");
    let _ = writeln!(
        out,
        "wrk -t{WRK_THREADS} -c{} -d{secs}s, keep-alive, {reps} interleaved round(s) (each round \
         starts with the next server). Servers listen on {}, wrk connects to {target}. {} \
         worker thread(s) for `sendpackets serve`, `worker_processes {}` for nginx (sendfile, \
         tcp_nopush, tcp_nodelay on, access_log off, keepalive_requests 1000000). CPU: utime + \
         stime of the server's processes (nginx: master + workers) from /proc over the run, \
         divided by the requests wrk counted. Median of the rounds. Load (1-min average) before \
         {load_before}, after {load_after}.\n",
        args.connections, listen, args.workers, args.workers
    );
    let mut t = Table::new(&[
        "file",
        "server",
        "requests/s",
        "CPU µs/request",
        "rps ÷ nginx",
        "CPU ÷ nginx",
        "rps ÷ nginx+cache",
        "CPU ÷ nginx+cache",
    ]);
    for (ci, c) in cells.iter().enumerate() {
        let med: Vec<Option<Sample>> = samples[ci].iter().map(|v| median(v)).collect();
        for (si, name) in names.iter().enumerate() {
            let Some(m) = med[si] else { continue };
            let ratio = |other: usize| {
                med[other].map_or(("–".into(), "–".into()), |o| {
                    (
                        format!("{:.2}x", m.rps / o.rps),
                        format!("{:.2}x", m.cpu_us_per_req / o.cpu_us_per_req),
                    )
                })
            };
            let is_ours = si < nginx_off;
            let none = || (String::new(), String::new());
            let (r1, c1) = if is_ours { ratio(nginx_off) } else { none() };
            let (r2, c2) = if is_ours { ratio(nginx_on) } else { none() };
            let range = min_max(samples[ci][si].iter().map(|s| s.rps));
            t.row(vec![
                if si == 0 {
                    c.name.to_string()
                } else {
                    String::new()
                },
                if is_ours {
                    format!("**{name}**")
                } else {
                    name.clone()
                },
                format!("{:.0} ({range})", m.rps),
                format!("{:.1}", m.cpu_us_per_req),
                r1,
                c1,
                r2,
                c2,
            ]);
        }
    }
    out.push_str(&t.render());
    Ok(out)
}

pub(crate) fn cell(name: &'static str, path: &'static str, body: u64) -> Cell {
    Cell {
        name,
        path,
        range: None,
        body,
        accept_encoding: None,
        expect: Expect::Plain,
    }
}

/// nginx and wrk present, installed with apt-get when missing (and allowed).
pub(crate) fn tools(install: bool) -> Result<(), String> {
    let have = |bin: &str| {
        Command::new("sh")
            .args([
                "-c",
                &format!("command -v {bin} || test -x /usr/sbin/{bin}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("nginx") && have("wrk") {
        return Ok(());
    }
    if !install {
        return Err("nginx or wrk missing and --no-install given".into());
    }
    eprintln!("installing nginx-light and wrk with apt-get ...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             nginx-light wrk",
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && have("nginx") && have("wrk") {
        Ok(())
    } else {
        Err("nginx-light or wrk could not be installed with apt-get".into())
    }
}

/// The `sendpackets` binary: `$SENDPACKETS_BIN`, or beside this bench's executable.
pub(crate) fn serve_binary() -> Result<PathBuf, String> {
    let path = match std::env::var_os("SENDPACKETS_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sendpackets"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release -p sendpackets-cli) or set \
             SENDPACKETS_BIN",
            path.display()
        ))
    }
}

/// A command for `program`, inside the veth namespace when there is one.
pub(crate) fn command_in(veth: Option<&crate::netpath::Veth>, program: &Path) -> Command {
    match veth {
        Some(v) => v.command(program),
        None => Command::new(program),
    }
}

/// How `sendpackets serve` is started: its `--open-file-cache` (`None`: serve's default) and
/// whether `--precompressed` (older builds have neither flag: `None, false`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OursSetup {
    pub(crate) open_file_cache: Option<&'static str>,
    pub(crate) precompressed: bool,
}

pub(crate) fn start_ours(
    bin: &Path,
    www: &Path,
    ip: IpAddr,
    workers: u16,
    setup: OursSetup,
    veth: Option<&crate::netpath::Veth>,
) -> io::Result<Server> {
    let mut cmd = command_in(veth, bin);
    cmd.arg("serve")
        .arg(www)
        .arg("--listen")
        .arg(SocketAddr::new(ip, 0).to_string())
        .args(["--threads", &workers.to_string()]);
    if let Some(secs) = setup.open_file_cache {
        cmd.args(["--open-file-cache", secs]);
    }
    if setup.precompressed {
        cmd.arg("--precompressed");
    }
    let mut child = cmd
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
        .ok_or_else(|| io::Error::other(format!("sendpackets serve said {first:?}")))?;
    let pid = child.id();
    Ok(Server {
        name: match setup.open_file_cache {
            Some(secs) => format!("sendpackets serve --open-file-cache {secs}"),
            None => "sendpackets serve".into(),
        },
        child,
        addr,
        pids: vec![pid],
    })
}

pub(crate) fn start_nginx(
    dir: &Path,
    www: &Path,
    ip: IpAddr,
    workers: u16,
    cache: bool,
    veth: Option<&crate::netpath::Veth>,
) -> io::Result<Server> {
    let tag = if cache { "cache" } else { "nocache" };
    let prefix = dir.join(format!("nginx-{tag}"));
    std::fs::create_dir_all(prefix.join("logs"))?;
    // A free port where nginx will listen (inside the namespace when there is one).
    let probe = move || {
        Ok(TcpListener::bind(SocketAddr::new(ip, 0))?
            .local_addr()?
            .port())
    };
    let port = match veth {
        Some(v) => crate::netpath::Path::Veth(v).run_in(probe)?,
        None => probe()?,
    };
    let addr = SocketAddr::new(ip, port);
    let listen = match ip {
        IpAddr::V4(_) => addr.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let cache_conf = if cache {
        format!(
            "open_file_cache max=1000 inactive=60s; open_file_cache_min_uses 1; \
             open_file_cache_errors on; open_file_cache_valid {OPEN_FILE_CACHE_SECS}s;"
        )
    } else {
        "open_file_cache off;".to_string()
    };
    let p = prefix.display();
    let conf = format!(
        "user root;\nworker_processes {workers};\ndaemon off;\nmaster_process on;\n\
         pid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n  \
         keepalive_timeout 65;\n  keepalive_requests 1000000;\n  gzip_static on;\n  {cache_conf}\n  \
         types {{ application/octet-stream bin; }}\n  default_type application/octet-stream;\n  \
         client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  \
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  \
         server {{\n    listen {listen};\n    root {};\n    location / {{ }}\n  }}\n}}\n",
        www.display()
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let nginx = if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let child = command_in(veth, Path::new(nginx))
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let master = child.id();
    let mut server = Server {
        name: if cache {
            "nginx, open_file_cache on".into()
        } else {
            "nginx, open_file_cache off".into()
        },
        child,
        addr,
        pids: vec![master],
    };
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let workers_up = children(master).len() >= usize::from(workers);
        if workers_up && TcpStream::connect(addr).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
            return Err(io::Error::other(format!("nginx did not start: {log}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.pids.extend(children(master));
    Ok(server)
}

/// Processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat_fields(p).is_some_and(|f| f.ppid == pid))
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct StatFields {
    ppid: u32,
    /// utime + stime, clock ticks.
    ticks: u64,
}

/// Fields of /proc/PID/stat (after the command name, which may contain spaces).
fn stat_fields(pid: u32) -> Option<StatFields> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    Some(StatFields {
        ppid: f.get(1)?.parse().ok()?,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

pub(crate) fn cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = pids
        .iter()
        .filter_map(|&p| stat_fields(p))
        .map(|f| f.ticks)
        .sum();
    ticks as f64 / hz
}

pub(crate) fn measure(
    s: &mut Server,
    url: &str,
    c: &Cell,
    conns: u32,
    secs: u64,
) -> io::Result<Sample> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{WRK_THREADS}"),
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--timeout",
        "10s",
    ]);
    if let Some(r) = &c.range {
        cmd.args(["-H", &format!("Range: {r}")]);
    }
    if let Some(e) = c.accept_encoding {
        cmd.args(["-H", &format!("Accept-Encoding: {e}")]);
    }
    cmd.arg(url).stdout(Stdio::piped()).stderr(Stdio::piped());
    let cpu0 = cpu_seconds(&s.pids);
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
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu1 = cpu_seconds(&s.pids);
    let mut text = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut text)?;
    }
    if !status.success() {
        return Err(io::Error::other(format!("wrk failed: {text}")));
    }
    if let Ok(Some(st)) = s.child.try_wait() {
        return Err(io::Error::other(format!("{} exited: {st}", s.name)));
    }
    let wrk = parse_wrk(&text).ok_or_else(|| io::Error::other(format!("wrk said: {text}")))?;
    if wrk.bad > 0 {
        return Err(io::Error::other(format!(
            "{}: {} responses were not 2xx/3xx",
            s.name, wrk.bad
        )));
    }
    Ok(Sample {
        rps: wrk.rps,
        cpu_us_per_req: (cpu1 - cpu0) * 1e6 / wrk.requests.max(1) as f64,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WrkResult {
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    /// Non-2xx or 3xx responses.
    pub(crate) bad: u64,
}

pub(crate) fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut requests = None;
    let mut rps = None;
    let mut bad = 0;
    for line in text.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("Requests/sec:") {
            rps = r.trim().parse().ok();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next()?.parse().ok();
        } else if let Some(r) = line.strip_prefix("Non-2xx or 3xx responses:") {
            bad = r.trim().parse().ok()?;
        }
    }
    Some(WrkResult {
        requests: requests?,
        rps: rps?,
        bad,
    })
}

/// One request with a raw socket: the status and body length are what the cell expects.
pub(crate) fn check(addr: SocketAddr, c: &Cell) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut range = c
        .range
        .as_ref()
        .map(|r| format!("Range: {r}\r\n"))
        .unwrap_or_default();
    if let Some(e) = c.accept_encoding {
        range += &format!("Accept-Encoding: {e}\r\n");
    }
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: bench\r\n{range}Connection: close\r\n\r\n",
        c.path
    )?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    let text = String::from_utf8_lossy(&got);
    let want = if c.range.is_some() { "206" } else { "200" };
    let head_end = text
        .find("\r\n\r\n")
        .ok_or_else(|| io::Error::other("no response head"))?;
    if !text.starts_with(&format!("HTTP/1.1 {want}")) {
        return Err(io::Error::other(format!(
            "expected {want}, got {:?}",
            text.lines().next()
        )));
    }
    let head = &text[..head_end];
    let body_bytes = &got[head_end + 4..];
    match &c.expect {
        Expect::Plain => {}
        Expect::Multipart { file, ranges } => {
            return check_multipart(head, body_bytes, file, ranges);
        }
        Expect::Sidecar { sidecar } => {
            if !head
                .lines()
                .any(|l| l.eq_ignore_ascii_case("content-encoding: gzip"))
            {
                return Err(io::Error::other(format!(
                    "no Content-Encoding: gzip in {head:?}"
                )));
            }
            if body_bytes != std::fs::read(sidecar)? {
                return Err(io::Error::other("the body is not the gzip sidecar"));
            }
        }
    }
    let body = body_bytes.len();
    if body as u64 != c.body {
        return Err(io::Error::other(format!(
            "body of {body} bytes, expected {}",
            c.body
        )));
    }
    Ok(())
}

/// A `multipart/byteranges` answer: the boundary from `Content-Type`, then every part's
/// `Content-Range` and bytes against `file`, in order, and nothing else.
fn check_multipart(head: &str, body: &[u8], file: &Path, ranges: &[(u64, u64)]) -> io::Result<()> {
    let bad = |what: String| Err(io::Error::other(format!("multipart: {what}")));
    let Some(boundary) = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.eq_ignore_ascii_case("content-type") {
            return None;
        }
        let value = value.trim();
        value.starts_with("multipart/byteranges").then(|| {
            value
                .split_once("boundary=")
                .map(|(_, b)| b.trim_matches('"').to_string())
        })?
    }) else {
        return bad(format!("no multipart/byteranges Content-Type in {head:?}"));
    };
    let data = std::fs::read(file)?;
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut at = 0;
    let find = |from: usize, needle: &[u8]| {
        text[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    for &(offset, len) in ranges {
        let Some(d) = find(at, delimiter.as_bytes()) else {
            return bad(format!("part {offset}+{len} missing"));
        };
        let Some(h_end) = find(d, b"\r\n\r\n") else {
            return bad("a part without headers".into());
        };
        let headers = String::from_utf8_lossy(&text[d..h_end]).to_ascii_lowercase();
        let want = format!(
            "content-range: bytes {offset}-{}/{}",
            offset + len - 1,
            data.len()
        );
        if !headers.contains(&want) {
            return bad(format!("{want:?} not in {headers:?}"));
        }
        let start = h_end + 4;
        let end = start + usize::try_from(len).unwrap_or(usize::MAX);
        let want_bytes = &data[offset as usize..(offset + len) as usize];
        if text.get(start..end) != Some(want_bytes) {
            return bad(format!("the bytes of part {offset}+{len} differ"));
        }
        at = end;
    }
    let closing = format!("\r\n--{boundary}--");
    if find(at, closing.as_bytes()) != Some(at) {
        return bad("no closing delimiter right after the last part".into());
    }
    Ok(())
}

pub(crate) fn median(v: &[Sample]) -> Option<Sample> {
    let mut rps: Vec<f64> = v.iter().map(|s| s.rps).collect();
    let mut cpu: Vec<f64> = v.iter().map(|s| s.cpu_us_per_req).collect();
    rps.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let mid = |x: &[f64]| {
        let n = x.len();
        if n % 2 == 1 {
            x[n / 2]
        } else {
            (x[n / 2 - 1] + x[n / 2]) / 2.0
        }
    };
    (!v.is_empty()).then(|| Sample {
        rps: mid(&rps),
        cpu_us_per_req: mid(&cpu),
    })
}

pub(crate) fn min_max(v: impl Iterator<Item = f64>) -> String {
    let (lo, hi) = v.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi {
        String::new()
    } else {
        format!("{lo:.0}–{hi:.0}")
    }
}

/// The 1-minute load average.
pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_parses() {
        let text = "Running 3s test @ http://127.0.0.1:1/1k.bin\n  2 threads and 64 connections\n\
                    \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                    \x20 1234567 requests in 3.00s, 1.20GB read\n\
                    \x20 Non-2xx or 3xx responses: 2\nRequests/sec: 411522.33\n\
                    Transfer/sec:    410.00MB\n";
        assert_eq!(
            parse_wrk(text),
            Some(WrkResult {
                requests: 1_234_567,
                rps: 411_522.33,
                bad: 2
            })
        );
        assert_eq!(parse_wrk("nothing"), None);
    }

    #[test]
    fn medians() {
        let s = |rps| Sample {
            rps,
            cpu_us_per_req: rps / 10.0,
        };
        let m = median(&[s(3.0), s(1.0), s(2.0)]).unwrap();
        assert_eq!((m.rps, m.cpu_us_per_req), (2.0, 0.2));
        assert!(median(&[]).is_none());
    }
}
