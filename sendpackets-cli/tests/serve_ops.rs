//! `sendpackets serve` under operating limits: few descriptors, many idle connections, and the
//! access log parsed line by line. The built binary, real clients (raw TCP, curl, Python).

mod serve_util;

use std::io;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use serve_util::{Raw, Server, wait_for};

/// The child's `RLIMIT_NOFILE` set to `soft`/`hard` before it runs.
fn nofile(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: the closure runs between fork and exec and calls only setrlimit, which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: `lim` is a valid rlimit for the duration of the call.
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The test process's own soft descriptor limit raised to its hard limit; returns it.
fn raise_own_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur as u64
}

/// `(soft, hard)` "Max open files" of a process, from /proc.
fn proc_nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().to_string(), f.next().unwrap().to_string())
}

/// A directory of `n` small distinct files `f0`..`f{n-1}`, each holding its own name.
fn many_files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(dir.path().join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    dir
}

fn get(raw: &mut Raw, path: &str) -> serve_util::Response {
    raw.send(format!("GET /{path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    raw.response(false)
}

/// The descriptor limit (soft = hard = 128) is far below what 300 distinct files and the
/// tables would take: every file is still served, one at a time on one connection, with and
/// without the open-file cache, and the server never runs out of descriptors for `accept`.
#[test]
fn more_distinct_files_than_descriptors() {
    const FILES: usize = 300;
    let dir = many_files(FILES);
    for cache in [None, Some("60")] {
        let mut args = vec!["--log"];
        if let Some(secs) = cache {
            args.extend(["--open-file-cache", secs]);
        }
        let srv = Server::start_with(dir.path(), &args, |c| nofile(c, 128, 128));
        let mut raw = Raw::connect(srv.addr);
        for i in 0..FILES {
            let r = get(&mut raw, &format!("f{i}"));
            assert_eq!(r.status, 200, "f{i} (cache {cache:?})");
            assert_eq!(r.body, format!("file {i}\n").as_bytes());
        }
        // New connections are still accepted and served, again and again.
        for i in 0..20 {
            let mut fresh = Raw::connect(srv.addr);
            assert_eq!(get(&mut fresh, &format!("f{i}")).status, 200);
        }
        let errors = srv.error_lines();
        assert!(
            !errors.iter().any(|l| l.contains("Too many open files")),
            "the server ran out of descriptors: {errors:?}"
        );
    }
}

/// A soft limit below the hard one is raised to the hard one at start (nginx's
/// `worker_rlimit_nofile`).
#[test]
fn soft_descriptor_limit_raised_to_the_hard_limit() {
    let dir = many_files(1);
    let srv = Server::start_with(dir.path(), &[], |c| nofile(c, 256, 4096));
    assert_eq!(
        proc_nofile(srv.pid()),
        ("4096".to_string(), "4096".to_string())
    );
    let mut raw = Raw::connect(srv.addr);
    assert_eq!(get(&mut raw, "f0").status, 200);
}

/// More idle connections than the descriptor limit allows: the default `--max-connections`
/// leaves room for files, so the ones beyond it wait in the backlog (and are served once idle
/// ones time out), none fails for want of a descriptor, and a client that asks for a file is
/// answered.
#[test]
fn more_idle_connections_than_descriptors() {
    const IDLE: usize = 300;
    let dir = many_files(50);
    let srv = Server::start_with(dir.path(), &["--log", "--idle-timeout", "1"], |c| {
        nofile(c, 128, 128)
    });
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(srv.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A client with a request is answered while the idle ones come and go.
    let mut raw = Raw::connect(srv.addr);
    for i in 0..50 {
        let r = get(&mut raw, &format!("f{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("file {i}\n").as_bytes());
    }
    // Every idle connection is eventually closed cleanly by the server (EOF, not a reset).
    for s in &mut idle {
        s.set_read_timeout(Some(serve_util::READ_LIMIT)).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(io::Read::read(s, &mut b), Ok(0)),
            "an idle connection was not closed cleanly"
        );
    }
    let errors = srv.error_lines();
    assert!(
        !errors.iter().any(|l| l.contains("Too many open files")),
        "the server ran out of descriptors: {errors:?}"
    );
    assert!(wait_for(Duration::from_secs(5), || srv.open_fds() < 40));
}

/// `--max-connections` above what the descriptor limit allows: a request that finds no
/// descriptor for its file is answered 503 with `Retry-After` (never 500), its connection
/// closes, and once connections close every file is served again.
#[test]
fn out_of_descriptors_is_503() {
    const CONNS: usize = 70;
    let dir = many_files(CONNS);
    let srv = Server::start_with(
        dir.path(),
        &["--max-connections", "1000", "--idle-timeout", "2"],
        |c| nofile(c, 64, 64),
    );
    let mut conns: Vec<Raw> = (0..CONNS).map(|_| Raw::connect(srv.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (mut ok, mut unavailable) = (0, 0);
    for (i, c) in conns.iter_mut().enumerate() {
        let r = get(c, &format!("f{i}"));
        match r.status {
            200 => {
                assert_eq!(r.body, format!("file {i}\n").as_bytes());
                ok += 1;
            }
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                assert_eq!(r.header("connection"), Some("close"));
                unavailable += 1;
            }
            s => panic!("f{i}: status {s}"),
        }
    }
    assert!(
        ok > 0 && unavailable > 0,
        "{ok} served, {unavailable} refused"
    );
    drop(conns);
    let mut raw = Raw::connect(srv.addr);
    for i in 0..CONNS {
        assert_eq!(get(&mut raw, &format!("f{i}")).status, 200);
    }
}
