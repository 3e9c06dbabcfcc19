//! The raw C harness of `../shared/limits`: found, built when needed (into a copy next to this
//! binary, never in its own read-only folder), run as a contender, its line parsed.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{External, Outcome};

/// A run of the harness is ended after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A built harness binary.
#[derive(Clone, Debug)]
pub(crate) struct Harness {
    pub(crate) bin: PathBuf,
    pub(crate) source: PathBuf,
}

/// Where the harness's sources are: `SENDPACKETS_LIMITS_DIR`, else `shared/limits` beside the
/// workspace (`../shared/limits` from the workspace root), else relative to the current folder.
pub(crate) fn locate() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SENDPACKETS_LIMITS_DIR") {
        return Some(PathBuf::from(d));
    }
    let beside_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/limits");
    [beside_workspace, PathBuf::from("../shared/limits")]
        .into_iter()
        .find(|d| d.join("limits.c").is_file())
}

/// Finds the harness, building it when no up-to-date binary exists. With `install`, a missing
/// liburing header is installed with `apt-get` (root only), as the harness's README says.
pub(crate) fn prepare(install: bool) -> Result<Harness, String> {
    let dir = locate()
        .ok_or("the C harness (shared/limits) was not found; set SENDPACKETS_LIMITS_DIR")?;
    let source = dir.join("limits.c");
    let source = std::fs::canonicalize(&source).unwrap_or(source);
    let prebuilt = dir.join("limits");
    if is_fresh(&prebuilt, &source) {
        return Ok(Harness {
            bin: prebuilt,
            source,
        });
    }
    let build_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("limits-harness")))
        .unwrap_or_else(|| std::env::temp_dir().join("sendpackets-bench-limits"));
    let bin = build_dir.join("limits");
    if is_fresh(&bin, &source) {
        return Ok(Harness { bin, source });
    }
    std::fs::create_dir_all(&build_dir).map_err(|e| format!("{}: {e}", build_dir.display()))?;
    for f in ["limits.c", "build.sh"] {
        std::fs::copy(dir.join(f), build_dir.join(f)).map_err(|e| format!("copy {f}: {e}"))?;
    }
    let build = || {
        Command::new("sh")
            .arg(build_dir.join("build.sh"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if build() {
        return Ok(Harness { bin, source });
    }
    let header_missing = !Path::new("/usr/include/liburing.h").exists();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if install && header_missing && root {
        eprintln!("building the C harness needs liburing-dev: apt-get install -y liburing-dev");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !apt(&["install", "-y", "liburing-dev"]) {
            let _ = apt(&["update"]);
            let _ = apt(&["install", "-y", "liburing-dev"]);
        }
        if build() {
            return Ok(Harness { bin, source });
        }
    }
    Err(format!(
        "could not build the C harness in {} (it needs gcc and liburing-dev)",
        build_dir.display()
    ))
}

fn is_fresh(bin: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(bin), modified(source)) {
        (Some(b), Some(s)) => b >= s,
        _ => false,
    }
}

impl Harness {
    /// Runs one mode and returns its figures as an outcome measured by the harness.
    pub(crate) fn run(&self, mode: &str, args: &[String]) -> io::Result<Outcome> {
        let mut child = Command::new(&self.bin)
            // Its buffers placed as the bench's own (`--buf-offset`).
            .env("LIMITS_BUF_OFFSET", crate::buf::offset().to_string())
            .arg(mode)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("limits {mode} ran over {RUN_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "limits {mode}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_line(&String::from_utf8_lossy(&out.stdout))
            .ok_or_else(|| io::Error::other(format!("limits {mode}: unreadable output")))
    }
}

/// Reads `key=value` fields of the harness's line: bytes, wall, msgs/s, cpu_send, cpu_recv.
pub(crate) fn parse_line(line: &str) -> Option<Outcome> {
    let field = |key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let wall = field("wall")?;
    let bytes = field("bytes")? as u64;
    let msgs = field("msgs/s").unwrap_or(0.0);
    let cpu = field("cpu_send")? + field("cpu_recv")?;
    Some(Outcome {
        bytes,
        items: (msgs * wall).round() as u64,
        external: Some(External { wall, cpu }),
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_harness_line() {
        let line = "m-naive       tcp bytes=254800000 wall=1.200 GB/s=0.212 msgs/s=166667 \
                    cpu_send=0.900 cpu_recv=0.500 cpu_s_per_GB=5.494\n";
        let o = parse_line(line).unwrap();
        assert_eq!(o.bytes, 254_800_000);
        assert_eq!(o.items, 200_000);
        let x = o.external.unwrap();
        assert!((x.wall - 1.2).abs() < 1e-9);
        assert!((x.cpu - 1.4).abs() < 1e-9);
        assert!(parse_line("garbage").is_none());
    }
}
