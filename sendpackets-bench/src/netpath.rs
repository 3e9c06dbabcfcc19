//! The network paths a workload runs on: loopback, and a veth pair into a network namespace of
//! the bench's own (issue 12: servers answer remote clients, and loopback — 64 KiB MTU, no
//! qdisc, no segmentation — is a path they never get).
//!
//! [`Veth::create`] makes a namespace and a veth pair (MTU 1500, GSO/TSO as the kernel sets
//! them) with addresses from the benchmarking range 198.18.0.0/15 (RFC 2544), checks that they
//! exist and that the route to the namespace's address leaves through its own link, and removes
//! exactly what it made when dropped — on a normal end, an error or a panic (unwinding drops
//! it), and on SIGINT/SIGTERM/SIGHUP (a watcher thread removes every live pair, then exits).
//! Traffic goes only to [`Veth::ns_addr`], the namespace's own address.
//!
//! Receivers run inside the namespace: [`Path::spawn`] starts a thread that first joins the
//! namespace (`setns(CLONE_NEWNET)`), [`Path::run_in`] runs a closure there (sockets keep the
//! namespace they were made in), and [`Veth::command`] starts a child process there
//! (`ip netns exec`).

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The benchmarking range of RFC 2544, 198.18.0.0/15: every address the bench gives a link.
const BENCH_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Its /30 blocks (host, namespace) used by the bench: the first 198.18.0.0/16 of it.
const BLOCKS: u32 = 1 << 14;
/// The veth MTU: an Ethernet path, as a remote client's.
pub(crate) const VETH_MTU: u32 = 1500;

/// A path a stream or datagram workload runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'a> {
    /// 127.0.0.1, receivers in this process's namespace.
    Loopback,
    /// Over a veth pair to the namespace's address, receivers inside the namespace.
    Veth(&'a Veth),
}

impl Path<'_> {
    /// `loopback` or `veth`: table columns and section keys.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Loopback => "loopback",
            Path::Veth(_) => "veth",
        }
    }

    /// The address receivers listen on (and the only one senders send to).
    pub(crate) fn receiver_ip(self) -> IpAddr {
        match self {
            Path::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Path::Veth(v) => IpAddr::V4(v.ns_addr),
        }
    }

    /// The address senders bind to (their end of the path).
    pub(crate) fn sender_ip(self) -> IpAddr {
        match self {
            Path::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Path::Veth(v) => IpAddr::V4(v.host_addr),
        }
    }

    /// Runs `f` on a thread inside the path's namespace (here, for loopback) and returns its
    /// result: sockets made by `f` stay in that namespace.
    pub(crate) fn run_in<T: Send + 'static>(
        self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self {
            Path::Loopback => f(),
            Path::Veth(v) => v
                .spawn("netns", f)?
                .join()
                .map_err(|_| io::Error::other("namespace thread panicked"))?,
        }
    }

    /// Starts a thread named `name` that runs `f` inside the path's namespace.
    pub(crate) fn spawn<T: Send + 'static>(
        self,
        name: &str,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<JoinHandle<io::Result<T>>> {
        match self {
            Path::Loopback => std::thread::Builder::new().name(name.into()).spawn(f),
            Path::Veth(v) => v.spawn(name, f),
        }
    }
}

/// What a live pair needs for its removal (kept in [`LIVE`] for the signal watcher).
#[derive(Clone, Debug, Default)]
struct Made {
    netns: Option<String>,
    link: Option<String>,
    qdisc: Option<String>,
}

impl Made {
    /// Removes what was made, newest first; quiet (it may run twice: signal and drop).
    fn remove(&mut self) {
        if let Some(dev) = self.qdisc.take() {
            let _ = quiet("tc", &["qdisc", "del", "dev", &dev, "root"]);
        }
        if let Some(link) = self.link.take() {
            let _ = quiet("ip", &["link", "del", &link]);
        }
        if let Some(ns) = self.netns.take() {
            let _ = quiet("ip", &["netns", "del", &ns]);
        }
    }
}

/// Pairs made by this process so far (their names and addresses are told apart by it).
static MADE_HERE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Every pair this process made and has not removed yet.
static LIVE: Mutex<Vec<Arc<Mutex<Made>>>> = Mutex::new(Vec::new());

/// Removes every live pair (used by the signal watcher before the process exits).
pub(crate) fn remove_all() {
    let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for m in live {
        if let Ok(mut m) = m.lock() {
            m.remove();
        }
    }
}

/// Server processes of the bench's own, killed by the signal watcher (they would outlive the
/// bench, in a namespace that is gone).
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Has the signal watcher kill `pid` (a child of the bench's own) before the process ends on a
/// signal; a normal end stops it through its own guard.
pub(crate) fn kill_on_signal(pid: u32) {
    if let Ok(mut p) = PIDS.lock() {
        p.push(pid);
    }
}

/// Folders of the bench's own (its test files) removed by the signal watcher too.
static DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Has the signal watcher remove `dir` (a temporary folder of the bench's own) before the
/// process ends on a signal; a normal end removes it through its own guard.
pub(crate) fn remove_on_signal(dir: &std::path::Path) {
    if let Ok(mut d) = DIRS.lock() {
        d.push(dir.to_path_buf());
    }
}

/// Starts the thread that removes every live pair (and the folders of [`remove_on_signal`])
/// on SIGINT, SIGTERM or SIGHUP and then ends the process (exit status 128 + signal). Call
/// once, before making a pair.
pub(crate) fn install_signal_cleanup() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("signal {sig}: removing the bench's network namespace, links and files");
                let pids = PIDS.lock().map(|p| p.clone()).unwrap_or_default();
                for pid in pids {
                    // SAFETY: kill has no memory preconditions. The pids are the bench's own
                    // children, not yet reaped while it runs, so none names another process.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                remove_all();
                let dirs = DIRS.lock().map(|d| d.clone()).unwrap_or_default();
                for d in dirs {
                    let _ = std::fs::remove_dir_all(d);
                }
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// A veth pair between this namespace and a network namespace of the bench's own; removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct Veth {
    /// The namespace's name (`/run/netns/NAME`).
    pub(crate) netns: String,
    /// The host end of the pair.
    pub(crate) host_if: String,
    /// The namespace's end.
    pub(crate) ns_if: String,
    /// The host end's address.
    pub(crate) host_addr: Ipv4Addr,
    /// The namespace's address: the only address the bench sends to over this path.
    pub(crate) ns_addr: Ipv4Addr,
    ns_file: Arc<File>,
    made: Arc<Mutex<Made>>,
}

impl Veth {
    /// Makes the namespace and the pair, named after this process's id, and checks them.
    ///
    /// # Errors
    ///
    /// One line saying why not (not root, no `ip`, a command refused); whatever was made
    /// before the failure is removed.
    pub(crate) fn create() -> Result<Veth, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: network namespaces need CAP_SYS_ADMIN".into());
        }
        if quiet("ip", &["-V"]).is_err() {
            return Err("the `ip` command (iproute2) is not installed".into());
        }
        let pid = std::process::id();
        // Several pairs per process get their own names and /30s (k = 0, 1, ...).
        let k = MADE_HERE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let netns = format!("spbench-{pid}-{k}");
        let host_if = format!("spb{pid}{k}h");
        let ns_if = format!("spb{pid}{k}n");
        if host_if.len() > 15 {
            return Err(format!("interface name {host_if} is too long"));
        }
        let base = BENCH_NET + (pid.wrapping_mul(8).wrapping_add(k) % BLOCKS) * 4;
        let host_addr = Ipv4Addr::from(base + 1);
        let ns_addr = Ipv4Addr::from(base + 2);
        if std::path::Path::new("/run/netns").join(&netns).exists() {
            return Err(format!(
                "a namespace named {netns} exists already; not touching it"
            ));
        }
        let made = Arc::new(Mutex::new(Made::default()));
        if let Ok(mut l) = LIVE.lock() {
            l.push(made.clone());
        }
        let fail = |e: String| {
            if let Ok(mut m) = made.lock() {
                m.remove();
            }
            forget(&made);
            e
        };
        let step =
            |args: &[&str]| quiet("ip", args).map_err(|e| format!("ip {}: {e}", args.join(" ")));
        if let Err(e) = step(&["netns", "add", &netns]) {
            return Err(fail(e));
        }
        set_made(&made, |m| m.netns = Some(netns.clone()));
        if let Err(e) = step(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &netns,
        ]) {
            return Err(fail(e));
        }
        set_made(&made, |m| m.link = Some(host_if.clone()));
        let mtu = VETH_MTU.to_string();
        let host_cidr = format!("{host_addr}/30");
        let ns_cidr = format!("{ns_addr}/30");
        let steps: [&[&str]; 5] = [
            &["addr", "add", &host_cidr, "dev", &host_if],
            &["link", "set", &host_if, "mtu", &mtu, "up"],
            &["-n", &netns, "addr", "add", &ns_cidr, "dev", &ns_if],
            &["-n", &netns, "link", "set", &ns_if, "mtu", &mtu, "up"],
            &["-n", &netns, "link", "set", "lo", "up"],
        ];
        for args in steps {
            if let Err(e) = step(args) {
                return Err(fail(e));
            }
        }
        let ns_file = match File::open(format!("/run/netns/{netns}")) {
            Ok(f) => Arc::new(f),
            Err(e) => return Err(fail(format!("/run/netns/{netns}: {e}"))),
        };
        let v = Veth {
            netns,
            host_if,
            ns_if,
            host_addr,
            ns_addr,
            ns_file,
            made,
        };
        v.check()?;
        Ok(v)
    }

    /// Checks, before any traffic, that the namespace and both ends exist with their addresses
    /// and that the route to the namespace's address leaves through the host end.
    fn check(&self) -> Result<(), String> {
        let out = |args: &[&str]| -> Result<String, String> {
            let o = Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!("ip {} failed", args.join(" ")));
            }
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let host = out(&["-o", "addr", "show", "dev", &self.host_if])?;
        let ns = out(&["-n", &self.netns, "-o", "addr", "show", "dev", &self.ns_if])?;
        let route = out(&["-o", "route", "get", &self.ns_addr.to_string()])?;
        let mtu = format!("mtu {VETH_MTU}");
        let link = out(&["-o", "link", "show", "dev", &self.host_if])?;
        let ok = host.contains(&format!("{}/30", self.host_addr))
            && ns.contains(&format!("{}/30", self.ns_addr))
            && route.contains(&format!("dev {}", self.host_if))
            && link.contains(&mtu);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the veth pair {}/{} did not come up as made",
                self.host_if, self.ns_if
            ))
        }
    }

    /// Starts a thread that joins the namespace and runs `f`.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<JoinHandle<io::Result<T>>> {
        let ns = self.ns_file.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                enter(&ns)?;
                f()
            })
    }

    /// A command that runs inside the namespace (`ip netns exec NAME program`).
    pub(crate) fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns]).arg(program);
        c
    }

    /// Puts a `tbf` rate limit (`rate`, as `tc` spells it: `1gbit`, `500mbit`) on the host end,
    /// so the link, not the CPU, is the limit; removed by [`Veth::unshape`] or with the pair.
    pub(crate) fn shape(&self, rate: &str) -> io::Result<()> {
        quiet(
            "tc",
            &[
                "qdisc",
                "replace",
                "dev",
                &self.host_if,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "256kb",
                "latency",
                "50ms",
            ],
        )?;
        set_made(&self.made, |m| m.qdisc = Some(self.host_if.clone()));
        Ok(())
    }

    /// Removes the rate limit.
    pub(crate) fn unshape(&self) {
        let dev = self.made.lock().ok().and_then(|mut m| m.qdisc.take());
        if let Some(dev) = dev {
            let _ = quiet("tc", &["qdisc", "del", "dev", &dev, "root"]);
        }
    }

    /// The qdisc on the host end, as `tc` shows it (for the report).
    pub(crate) fn qdisc(&self) -> String {
        Command::new("tc")
            .args(["qdisc", "show", "dev", &self.host_if])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// One line for the report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "veth pair {} (host, {}/30) ↔ {} (namespace {}, {}/30), MTU {VETH_MTU}, offloads as \
             the kernel sets them",
            self.host_if, self.host_addr, self.ns_if, self.netns, self.ns_addr
        )
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        if let Ok(mut m) = self.made.lock() {
            m.remove();
        }
        forget(&self.made);
    }
}

fn set_made(made: &Arc<Mutex<Made>>, f: impl FnOnce(&mut Made)) {
    if let Ok(mut m) = made.lock() {
        f(&mut m);
    }
}

/// Drops a pair from [`LIVE`] once it is removed.
fn forget(made: &Arc<Mutex<Made>>) {
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|m| !Arc::ptr_eq(m, made));
    }
}

/// Moves the calling thread into the namespace open as `ns`.
fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open /run/netns file; setns only changes this thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs a command with its output discarded; an error unless it exits 0.
fn quiet(program: &str, args: &[&str]) -> io::Result<()> {
    let st = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if st.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(
            String::from_utf8_lossy(&st.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root with `ip`: the pair is made, a receiver inside the namespace gets every byte
    /// sent to the namespace's address, and dropping the guard removes the namespace and both
    /// ends. Elsewhere it says why it did nothing.
    #[test]
    fn veth_carries_bytes_and_is_removed() {
        use std::io::{Read, Write};
        let v = match Veth::create() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let (ns, host_if) = (v.netns.clone(), v.host_if.clone());
        assert!(std::path::Path::new("/run/netns").join(&ns).exists());
        let path = Path::Veth(&v);
        let ip = path.receiver_ip();
        let listener = path
            .run_in(move || std::net::TcpListener::bind((ip, 0)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(v.ns_addr));
        let rx = path
            .spawn("rx", move || {
                let (mut s, peer) = listener.accept()?;
                let mut got = Vec::new();
                s.read_to_end(&mut got)?;
                Ok((got, peer))
            })
            .unwrap();
        let mut tx = std::net::TcpStream::connect(addr).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).unwrap();
        drop(tx);
        let (got, peer) = rx.join().unwrap().unwrap();
        assert_eq!(got, data);
        assert_eq!(peer.ip(), IpAddr::V4(v.host_addr));
        drop(v);
        assert!(!std::path::Path::new("/run/netns").join(&ns).exists());
        assert!(quiet("ip", &["link", "show", "dev", &host_if]).is_err());
    }

    #[test]
    fn addresses_stay_in_the_bench_range() {
        for pid in [0u32, 1, 4095, 16383, 16384, 4_194_303] {
            let base = BENCH_NET + (pid.wrapping_mul(8) % BLOCKS) * 4;
            let [a, b, _, d] = Ipv4Addr::from(base + 2).octets();
            assert_eq!((a, b), (198, 18));
            assert_eq!(d % 4, 2);
        }
    }
}
