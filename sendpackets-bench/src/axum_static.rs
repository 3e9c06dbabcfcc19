//! `axum-static`: static files of an axum application under wrk, three ways, interleaved
//! rounds on the same files: axum + `sendpackets_http::serve` (files answered by the crate
//! with one sendpackets send), axum + tower-http `ServeDir` (files read on tokio's blocking
//! pool and copied through hyper), and nginx (sendfile, open_file_cache off). 1 KiB, 256 KiB,
//! 1 MiB and a 64 KiB Range of the 1 MiB file, all under `/static/`. Requests/s and server CPU
//! µs per request, with ratios to `ServeDir` and to nginx.
//!
//! The axum servers are this bench's own executable started again as `axum-server` (a hidden
//! subcommand), so each is a separate process whose CPU /proc reports; on `--veth` they and
//! nginx run inside the bench's namespace and wrk connects over the veth link.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::serve_nginx::{
    Cell, Sample, Server, WRK_THREADS, cell, check, command_in, load, measure, median, min_max,
    start_nginx, tools,
};
use crate::table::Table;

/// wrk's connections (as `serve-nginx`).
const CONNECTIONS: u32 = 64;
/// Seconds per wrk run: full and quick.
const RUN_SECS: u64 = 5;
const QUICK_RUN_SECS: u64 = 2;
/// The 1 MiB file's range: 64 KiB from 512 KiB (as `serve-nginx`).
const RANGE_START: u64 = 512 << 10;
const RANGE_LEN: u64 = 64 << 10;

/// The workload's options (after `axum-static`).
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Args {
    /// Runtime worker threads of the axum servers = nginx worker processes.
    #[arg(long, default_value_t = 1)]
    workers: u16,
    /// wrk connections.
    #[arg(long, default_value_t = CONNECTIONS)]
    connections: u32,
    /// Seconds per wrk run (default 5, quick 2).
    #[arg(long)]
    secs: Option<u64>,
    /// Run the servers inside a network namespace of the bench's own, behind a veth pair, and
    /// point wrk at it (needs root and `ip`).
    #[arg(long)]
    veth: bool,
}

/// Which static-file path an `axum-server` process uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `sendpackets_http::serve` with `StaticFiles` at `/static`.
    Sendpackets,
    /// `axum::serve` with tower-http `ServeDir` nested at `/static`.
    Servedir,
}

/// The options of the hidden `axum-server` subcommand.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: u16,
}

/// The `axum-server` process: serves `dir` at `/static` and `GET /api/hello`, prints
/// `listening on http://ADDR/` on stderr, runs until killed.
pub(crate) fn server_main(args: &ServerArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads.max(1)))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return 1;
        }
    };
    let result: io::Result<()> = rt.block_on(async {
        use axum::Router;
        use axum::routing::get;
        let router = Router::new().route("/api/hello", get(|| async { "hello" }));
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        eprintln!("listening on http://{}/", listener.local_addr()?);
        match args.mode {
            Mode::Sendpackets => {
                let files = sendpackets_http::StaticFiles::new(&args.dir).at("/static");
                sendpackets_http::serve(listener, router, files).await
            }
            Mode::Servedir => {
                let router =
                    router.nest_service("/static", tower_http::services::ServeDir::new(&args.dir));
                axum::serve(listener, router).await
            }
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("axum-server: {e}");
            1
        }
    }
}

/// Runs the workload and prints its table. `reps` rounds, interleaved.
pub(crate) fn run(args: &Args, reps: usize, quick: bool, install: bool) {
    let title = "axum static files: sendpackets-http vs tower-http ServeDir vs nginx";
    if let Err(e) = tools(install) {
        println!("## {title}\n\nSkipped: {e}\n");
        eprintln!("axum-static skipped: {e}");
        return;
    }
    println!("# {title}\n");
    println!(
        "- Command: `cargo run --release -p sendpackets-bench -- {}`",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("- Machine: {}", crate::measure::machine());
    println!("- Date (UTC): {}", crate::utc_now());
    if let Some(rev) = crate::git_rev() {
        println!("- Commit: {rev}");
    }
    println!();
    match body(args, reps, quick) {
        Ok(text) => println!("{text}"),
        Err(e) => {
            println!("## {title}\n\nFailed: {e}\n");
            eprintln!("axum-static failed: {e}");
        }
    }
}

fn body(args: &Args, reps: usize, quick: bool) -> io::Result<String> {
    let veth = if args.veth {
        Some(crate::netpath::Veth::create().map_err(io::Error::other)?)
    } else {
        None
    };
    let listen = veth
        .as_ref()
        .map_or(IpAddr::from([127, 0, 0, 1]), |v| IpAddr::V4(v.ns_addr));
    let path_name = if veth.is_some() { "veth" } else { "loopback" };
    let secs = args
        .secs
        .unwrap_or(if quick { QUICK_RUN_SECS } else { RUN_SECS });
    let dir = tempfile::tempdir()?;
    let www = dir.path().join("www");
    let files = www.join("static");
    std::fs::create_dir_all(&files)?;
    for (name, len) in [
        ("1k.bin", 1u64 << 10),
        ("256k.bin", 256 << 10),
        ("1m.bin", 1 << 20),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(files.join(name), data)?;
    }
    let cells = vec![
        cell("1 KiB", "/static/1k.bin", 1 << 10),
        cell("256 KiB", "/static/256k.bin", 256 << 10),
        cell("1 MiB", "/static/1m.bin", 1 << 20),
        Cell {
            range: Some(format!(
                "bytes={RANGE_START}-{}",
                RANGE_START + RANGE_LEN - 1
            )),
            ..cell("64 KiB Range of 1 MiB", "/static/1m.bin", RANGE_LEN)
        },
    ];
    let v = veth.as_ref();
    let me = std::env::current_exe()?;
    let mut servers = vec![
        start_axum(&me, Mode::Sendpackets, &files, listen, args.workers, v)?,
        start_axum(&me, Mode::Servedir, &files, listen, args.workers, v)?,
        start_nginx(dir.path(), &www, listen, args.workers, false, v)?,
    ];
    let (servedir, nginx) = (1, 2);
    for s in &servers {
        for c in &cells {
            check(s.addr, c)
                .map_err(|e| io::Error::other(format!("{} {}: {e}", s.name, c.path)))?;
        }
    }
    let load_before = load();
    let n = servers.len();
    let mut samples = vec![vec![Vec::<Sample>::new(); n]; cells.len()];
    for round in 0..reps {
        for (ci, c) in cells.iter().enumerate() {
            for k in 0..n {
                let si = (round + k) % n;
                let s = &mut servers[si];
                let url = format!("http://{}{}", s.addr, c.path);
                let sample = measure(s, &url, c, args.connections, secs)?;
                eprintln!(
                    "axum-static {path_name} round {}/{reps}: {} {}: {:.0} req/s, {:.1} µs CPU/req",
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
    let _ = writeln!(out, "## axum static files over {path_name}\n");
    let _ = writeln!(
        out,
        "wrk -t{WRK_THREADS} -c{} -d{secs}s, keep-alive, {reps} interleaved round(s) (each round \
         starts with the next server), servers on {listen}. {} tokio worker thread(s) for both \
         axum servers (ServeDir also uses tokio's blocking pool), `worker_processes {}` for \
         nginx (sendfile, tcp_nopush, tcp_nodelay, open_file_cache off, access_log off). CPU: \
         utime + stime of the server's processes from /proc over the run ÷ requests. Median \
         of the rounds (min–max of requests/s in brackets). Load (1-min average) before \
         {load_before}, after {load_after}.\n",
        args.connections, args.workers, args.workers
    );
    let mut t = Table::new(&[
        "file",
        "server",
        "requests/s",
        "CPU µs/request",
        "rps ÷ ServeDir",
        "CPU ÷ ServeDir",
        "rps ÷ nginx",
        "CPU ÷ nginx",
    ]);
    for (ci, c) in cells.iter().enumerate() {
        let med: Vec<Option<Sample>> = samples[ci].iter().map(|v| median(v)).collect();
        for (si, name) in names.iter().enumerate() {
            let Some(m) = med[si] else { continue };
            let ratio = |other: usize| {
                if other == si {
                    return (String::new(), String::new());
                }
                med[other].map_or(("–".into(), "–".into()), |o| {
                    (
                        format!("{:.2}x", m.rps / o.rps),
                        format!("{:.2}x", m.cpu_us_per_req / o.cpu_us_per_req),
                    )
                })
            };
            let (r1, c1) = if si == 0 {
                ratio(servedir)
            } else {
                (String::new(), String::new())
            };
            let (r2, c2) = if si == nginx {
                (String::new(), String::new())
            } else {
                ratio(nginx)
            };
            let range = min_max(samples[ci][si].iter().map(|s| s.rps));
            t.row(vec![
                if si == 0 {
                    c.name.to_string()
                } else {
                    String::new()
                },
                if si == 0 {
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

/// Starts `me axum-server --mode MODE` on `ip`, port 0; waits for its address.
fn start_axum(
    me: &Path,
    mode: Mode,
    dir: &Path,
    ip: IpAddr,
    workers: u16,
    veth: Option<&crate::netpath::Veth>,
) -> io::Result<Server> {
    let mut child = command_in(veth, me)
        .arg("axum-server")
        .args([
            "--mode",
            match mode {
                Mode::Sendpackets => "sendpackets",
                Mode::Servedir => "servedir",
            },
        ])
        .arg("--dir")
        .arg(dir)
        .arg("--listen")
        .arg(SocketAddr::new(ip, 0).to_string())
        .args(["--threads", &workers.to_string()])
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
        .ok_or_else(|| io::Error::other(format!("axum-server said {first:?}")))?;
    let pid = child.id();
    Ok(Server {
        name: match mode {
            Mode::Sendpackets => "axum + sendpackets-http".into(),
            Mode::Servedir => "axum + tower-http ServeDir".into(),
        },
        child,
        addr,
        pids: vec![pid],
    })
}
