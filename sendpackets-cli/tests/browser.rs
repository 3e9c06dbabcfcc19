//! `sendpackets serve` seen by a real browser. Headless Chromium loads a page with a stylesheet,
//! a script, an image and a video, then the page reloads itself once (`location.reload()`, a
//! normal reload). The access log tells which requests each load made:
//!
//! - with `--cache-control no-cache --cache-control-for 'assets/**=public, max-age=31536000,
//!   immutable'` the reload revalidates the page and makes no request for any asset;
//! - with `--cache-control no-cache` alone (the control case) the reload revalidates every
//!   asset (304), so the first case is not vacuous.
//!
//! Chromium does not implement `immutable` (MDN's browser-compat-data: crbug.com/41253661; Firefox
//! and Safari do). A normal reload in Chromium revalidates the page and requests a subresource
//! again only when its cached copy is stale or `no-cache`, so what keeps it from asking is the
//! long `max-age` of the same rule. The first case fails when the assets' rule is not applied
//! (they fall back to `no-cache`), and the control case shows what the log looks like when a
//! reload does ask for them.
//!
//! The assertions count requests per path over the whole log rather than cutting it at the
//! first report: a log line is written after its response was sent, so its place among
//! concurrent responses is not the order of the requests. A 304 can only answer the reload
//! (the first load has nothing cached to revalidate).
//!
//! The page reports what the browser saw (charset, title, computed style, image and video
//! sizes, navigation type, Resource Timing transfer sizes) by requesting `/report?...` after
//! each load; that request also tells the test that a load is over.
//!
//! Runs when `chromium`, `chromium-browser` or `google-chrome` is on PATH; otherwise it prints
//! one line and passes. Chromium is kept on loopback: HTTP to any other host goes to a proxy
//! address on 127.0.0.1 where nothing listens, host names do not resolve, and background
//! services are off. (It still `connect`s a UDP socket to a public IPv6 address to learn
//! whether IPv6 is routed; a UDP `connect` sends no packet.)

mod serve_util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serve_util::{LIMIT, Raw, Server, wait_for};
use sha2::{Digest, Sha256};
use wait_timeout::ChildExt;

/// The assets' Cache-Control in the first case.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page's script: after the load event (and the video's first frame), report, then reload
/// once. `sessionStorage` survives the reload, so the second load knows it is the second.
const SCRIPT: &str = r#"(function () {
  var load = sessionStorage.getItem('loaded') ? 2 : 1;
  sessionStorage.setItem('loaded', '1');
  function facts() {
    var v = document.getElementById('video');
    var img = document.getElementById('img');
    var nav = performance.getEntriesByType('navigation')[0];
    var f = {
      load: load,
      nav: nav ? nav.type : '-',
      charset: document.characterSet,
      title: document.title,
      css: getComputedStyle(document.querySelector('h1')).color,
      img: img.naturalWidth + 'x' + img.naturalHeight,
      video: v.readyState + ' ' + v.videoWidth + 'x' + v.videoHeight +
        (v.error ? ' error ' + v.error.code : '')
    };
    performance.getEntriesByType('resource').forEach(function (e) {
      f['transfer ' + new URL(e.name).pathname] = e.transferSize;
    });
    return f;
  }
  function videoReady(then) {
    var v = document.getElementById('video');
    var done = false;
    function go() { if (!done) { done = true; then(); } }
    if (v.readyState >= 2 || v.error) { go(); return; }
    v.addEventListener('loadeddata', go);
    v.addEventListener('error', go);
    setTimeout(go, 10000);
  }
  window.addEventListener('load', function () {
    videoReady(function () {
      var q = new URLSearchParams(facts()).toString();
      fetch('/report?' + q, { cache: 'no-store' }).finally(function () {
        if (load === 1) { location.reload(); }
      });
    });
  });
})();
"#;

// ---------------------------------------------------------------------------------------------
// The site: index.html and four content-hashed assets.

/// One asset of the page.
struct Asset {
    /// URL path, e.g. `/assets/app.0123abcd.css`.
    url: String,
    /// The Content-Type serve should give it.
    content_type: &'static str,
}

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    assets: Vec<Asset>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    let mut assets = Vec::new();
    let mut add = |stem: &str, ext: &str, bytes: &[u8], content_type| {
        let hash: String = Sha256::digest(bytes)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let rel = format!("assets/{stem}.{hash}.{ext}");
        std::fs::write(root.join(&rel), bytes).unwrap();
        assets.push(Asset {
            url: format!("/{rel}"),
            content_type,
        });
        rel
    };
    let css = add(
        "app",
        "css",
        b"h1 { color: rgb(1, 2, 3); }\n",
        "text/css; charset=utf-8",
    );
    let js = add(
        "app",
        "js",
        SCRIPT.as_bytes(),
        "text/javascript; charset=utf-8",
    );
    let img = add("dot", "png", &png(8, 8, [200, 30, 30]), "image/png");
    let video = add("clip", "webm", &webm(), "video/webm");
    // No <meta charset>: the document's encoding comes from the Content-Type header, and the
    // title's 'é' (UTF-8) reads back as "café" only if that header says utf-8. The data: icon
    // keeps the browser from asking for /favicon.ico.
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>café</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"{css}\">\n\
         <script src=\"{js}\" defer></script>\n\
         </head><body>\n<h1>A page</h1>\n\
         <img id=\"img\" src=\"{img}\" alt=\"a red square\">\n\
         <video id=\"video\" src=\"{video}\" preload=\"auto\" muted></video>\n\
         </body></html>\n"
    );
    std::fs::write(root.join("index.html"), html).unwrap();
    Site {
        _dir: dir,
        root,
        assets,
    }
}

/// A `w`×`h` PNG of one colour: 8-bit RGB, the pixels in one stored (uncompressed) deflate
/// block.
fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    // Each row: filter type 0 (none), then the pixels.
    let row = [&[0][..], &rgb.repeat(w as usize)].concat();
    let raw = row.repeat(h as usize);
    let len = u16::try_from(raw.len()).expect("one stored block");
    // zlib header 78 01 (no compression; 0x7801 is a multiple of 31), then a final stored
    // block: LEN, NLEN, the bytes; then the Adler-32 of the bytes.
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &zlib), (b"IEND", &[])] {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

/// CRC-32 (IEEE, reflected), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One VP8 key frame of a 16×16 picture of one colour, as libvpx encodes it (`ffmpeg -f lavfi
/// -i color=c=0x3366cc:s=16x16:r=1 -frames:v 1 -c:v libvpx clip.webm`, the payload of its one
/// SimpleBlock): the frame tag, the start code 9d 01 2a, 16 and 16, then the compressed data.
const VP8_KEY_FRAME: [u8; 57] = [
    0xb0, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88,
    0x99, 0x84, 0x88, 0x02, 0x02, 0x02, 0x75, 0xaa, 0x03, 0xf8, 0x02, 0x0c, 0xfd, 0xfb, 0x00, 0xfe,
    0xf9, 0x36, 0xcf, 0xff, 0xad, 0x83, 0xfa, 0xd8, 0x3f, 0xad, 0x83, 0xff, 0xad, 0x83, 0xff, 0xef,
    0x3e, 0x7e, 0xe7, 0xcf, 0xdc, 0xf9, 0xff, 0x38, 0xc0,
];

/// A one-second WebM video: the EBML header, then a Segment with Info, one VP8 track of 16×16
/// and one Cluster of ten key frames 100 ms apart.
fn webm() -> Vec<u8> {
    let uint = |id: &[u8], v: u64| {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take(7).take_while(|&&b| b == 0).count();
        ebml(id, &bytes[skip..])
    };
    let header = [
        uint(&[0x42, 0x86], 1),       // EBMLVersion
        uint(&[0x42, 0xF7], 1),       // EBMLReadVersion
        uint(&[0x42, 0xF2], 4),       // EBMLMaxIDLength
        uint(&[0x42, 0xF3], 8),       // EBMLMaxSizeLength
        ebml(&[0x42, 0x82], b"webm"), // DocType
        uint(&[0x42, 0x87], 2),       // DocTypeVersion
        uint(&[0x42, 0x85], 2),       // DocTypeReadVersion
    ]
    .concat();
    let info = [
        uint(&[0x2A, 0xD7, 0xB1], 1_000_000),      // TimecodeScale: 1 ms
        ebml(&[0x4D, 0x80], b"sendpackets tests"), // MuxingApp
        ebml(&[0x57, 0x41], b"sendpackets tests"), // WritingApp
        ebml(&[0x44, 0x89], &1000f64.to_be_bytes()), // Duration (ms)
    ]
    .concat();
    let video = [
        uint(&[0xB0], 16), // PixelWidth
        uint(&[0xBA], 16), // PixelHeight
    ]
    .concat();
    let track = [
        uint(&[0xD7], 1),        // TrackNumber
        uint(&[0x73, 0xC5], 1),  // TrackUID
        uint(&[0x83], 1),        // TrackType: video
        ebml(&[0x86], b"V_VP8"), // CodecID
        ebml(&[0xE0], &video),   // Video
    ]
    .concat();
    let mut cluster = uint(&[0xE7], 0); // Timecode
    for i in 0..10u16 {
        // SimpleBlock: track 1 (as a 1-byte vint), timecode relative to the cluster, flags
        // (key frame), the frame.
        let mut block = vec![0x81];
        block.extend_from_slice(&(i * 100).to_be_bytes());
        block.push(0x80);
        block.extend_from_slice(&VP8_KEY_FRAME);
        cluster.extend(ebml(&[0xA3], &block));
    }
    let segment = [
        ebml(&[0x15, 0x49, 0xA9, 0x66], &info), // Info
        ebml(&[0x16, 0x54, 0xAE, 0x6B], &ebml(&[0xAE], &track)), // Tracks, TrackEntry
        ebml(&[0x1F, 0x43, 0xB6, 0x75], &cluster), // Cluster
    ]
    .concat();
    [
        ebml(&[0x1A, 0x45, 0xDF, 0xA3], &header),  // EBML
        ebml(&[0x18, 0x53, 0x80, 0x67], &segment), // Segment
    ]
    .concat()
}

/// One EBML element: its ID, its size as the shortest variable-length integer, its body.
fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
    let len = body.len() as u64;
    // n bytes hold sizes below 2^(7n) - 1 (all ones means "unknown").
    let n = (1..=8u32)
        .find(|&n| len < (1u64 << (7 * n)) - 1)
        .expect("a size");
    let mut out = id.to_vec();
    let marked = len | (1u64 << (7 * n));
    out.extend_from_slice(&marked.to_be_bytes()[8 - n as usize..]);
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// Chromium.

/// The first of `chromium`, `chromium-browser`, `google-chrome` on PATH that runs, with its
/// version line; `None` (after printing why) when there is none.
fn find_chromium() -> Option<(PathBuf, String)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join(name);
            if !bin.is_file() {
                continue;
            }
            // Some distributions ship a stub that only says how to install the real one.
            let Ok(mut child) = Command::new(&bin)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            else {
                continue;
            };
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                use std::io::Read;
                let _ = stdout.read_to_string(&mut out);
            }
            let ok = match child.wait_timeout(Duration::from_secs(20)) {
                Ok(Some(s)) => s.success(),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    false
                }
            };
            if ok && out.contains("Chrom") {
                return Some((bin, out.trim().to_string()));
            }
        }
    }
    eprintln!(
        "skipped: no chromium, chromium-browser or google-chrome on PATH \
         (install with apt-get install chromium)"
    );
    None
}

/// A headless Chromium showing one URL, in its own process group with a fresh profile; killed
/// with all its processes on drop.
struct Chromium {
    child: Child,
    profile: tempfile::TempDir,
    stderr: PathBuf,
}

impl Chromium {
    fn open(bin: &Path, url: &str, work: &Path) -> Chromium {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir_in(work).unwrap();
        let stderr = work.join("chromium.stderr");
        let child = Command::new(bin)
            .arg("--headless")
            // The sandbox needs user namespaces or a setuid helper, and refuses to run as root;
            // the only page shown is this test's own.
            .arg("--no-sandbox")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args([
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--no-pings",
                "--metrics-recording-only",
                "--mute-audio",
                // Loopback only: loopback bypasses the proxy, everything else goes to a port
                // on 127.0.0.1 that is not listened on; no host name resolves.
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ])
            .arg(url)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn chromium");
        Chromium {
            child,
            profile,
            stderr,
        }
    }

    /// Whether the browser's first process is still running.
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The last lines Chromium wrote on stderr.
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process, kill_process_group};
        // process_group(0) made the browser the leader of a group of its own, so its id is the
        // group's (never 1, which would mean "every process").
        if let Some(pgid) = i32::try_from(self.child.id())
            .ok()
            .filter(|&id| id > 1)
            .and_then(Pid::from_raw)
        {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait_timeout(Duration::from_secs(10));
        // Any helper process that left the group still names the profile on its command line.
        let marker = self.profile.path().as_os_str().as_encoded_bytes().to_vec();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            if cmdline.windows(marker.len()).any(|w| w == marker) {
                if let Some(pid) = Pid::from_raw(pid).filter(|_| pid > 1) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The access log.

/// One access-log line (Combined Log Format).
#[derive(Debug)]
struct Hit {
    target: String,
    status: u16,
    line: String,
}

fn parse_line(line: &str) -> Hit {
    // IP - - [TIME] "METHOD TARGET PROTOCOL" STATUS BYTES "REFERER" "AGENT" SECS OUTCOME
    let mut quoted = line.split('"');
    let request = quoted
        .nth(1)
        .unwrap_or_else(|| panic!("no request in {line:?}"));
    let after = quoted.next().unwrap_or_default();
    let target = request.split(' ').nth(1).unwrap_or_default().to_string();
    let status = after
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    assert!(
        line.ends_with(" complete"),
        "a response that did not complete: {line}"
    );
    Hit {
        target,
        status,
        line: line.to_string(),
    }
}

/// The fields of a `/report?...` target.
fn parse_report(target: &str) -> HashMap<String, String> {
    let query = target.strip_prefix("/report?").expect("a report");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (url_decode(k), url_decode(v)))
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: '+' is a space, %XX a byte.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// One load and reload.

/// What a run saw.
struct Run {
    site: Site,
    server: Server,
    /// The browser's requests, in log order.
    hits: Vec<Hit>,
    /// The two reports, in order.
    reports: Vec<HashMap<String, String>>,
}

/// Serves a fresh site with `cache_args`, lets Chromium load and reload it, and returns the
/// log; `None` when there is no Chromium.
fn load_and_reload(case: &str, cache_args: &[&str]) -> Option<Run> {
    let (bin, version) = find_chromium()?;
    let site = site();
    let mut args = vec!["--log"];
    args.extend_from_slice(cache_args);
    let server = Server::start(&site.root, &args);
    let work = tempfile::tempdir().unwrap();
    let mut browser = Chromium::open(&bin, &server.url(""), work.path());

    let mut lines = Vec::new();
    let mut exited = false;
    let reported = wait_for(LIMIT, || {
        lines.extend(server.log_lines());
        exited = !browser.running();
        exited || lines.iter().filter(|l| l.contains("/report?")).count() >= 2
    });
    assert!(
        reported && !exited,
        "{case}: no second report within {LIMIT:?} (browser exited: {exited}); log:\n{}\n\
         chromium stderr:\n{}",
        lines.join("\n"),
        browser.stderr_tail()
    );
    drop(browser);
    lines.extend(server.log_lines());

    eprintln!("{case}: {version}, serve {}", args.join(" "));
    let mut heading = "first load";
    for l in &lines {
        eprintln!("  [{heading}] {l}");
        if l.contains("/report?") {
            heading = "reload";
        }
    }
    let hits: Vec<Hit> = lines.iter().map(|l| parse_line(l)).collect();
    let reports: Vec<_> = hits
        .iter()
        .filter(|h| h.target.starts_with("/report?"))
        .map(|h| parse_report(&h.target))
        .collect();
    Some(Run {
        site,
        server,
        hits,
        reports,
    })
}

impl Run {
    /// Statuses of the requests for `target`, in log order.
    fn statuses(&self, target: &str) -> Vec<u16> {
        self.hits
            .iter()
            .filter(|h| h.target == target)
            .map(|h| h.status)
            .collect()
    }

    /// The log, for failure messages.
    fn log(&self) -> String {
        let lines: Vec<&str> = self.hits.iter().map(|h| h.line.as_str()).collect();
        lines.join("\n")
    }

    /// What holds in both cases: the browser asked only for the page, its assets and the two
    /// reports; both loads rendered everything, decoded the page as UTF-8, and the second was
    /// a reload; the page was fetched twice, the second time revalidated.
    fn check_common(&self) {
        let log = self.log();
        for h in &self.hits {
            let known = h.target == "/"
                || h.target.starts_with("/report?")
                || self.site.assets.iter().any(|a| a.url == h.target);
            assert!(known, "unexpected request {:?}:\n{log}", h.target);
        }
        assert_eq!(self.reports.len(), 2, "{log}");
        for (i, r) in self.reports.iter().enumerate() {
            let field = |k: &str| r.get(k).map(String::as_str).unwrap_or("");
            assert_eq!(field("load"), (i + 1).to_string(), "{log}");
            let nav = if i == 0 { "navigate" } else { "reload" };
            assert_eq!(field("nav"), nav, "{log}");
            assert_eq!(field("charset"), "UTF-8", "{log}");
            assert_eq!(field("title"), "café", "{log}");
            assert_eq!(field("css"), "rgb(1, 2, 3)", "{log}");
            assert_eq!(field("img"), "8x8", "{log}");
            // readyState 2 (HAVE_CURRENT_DATA) or more: the first frame was decoded.
            let video = field("video");
            let (state, size) = video.split_once(' ').unwrap_or(("", ""));
            assert!(
                state.parse::<u8>().is_ok_and(|s| s >= 2) && size == "16x16",
                "video {video:?}:\n{log}"
            );
        }
        // A fresh profile has nothing cached: the first request for the page is a 200. The
        // reload revalidates it (no-cache): 304, as nothing changed.
        assert_eq!(self.statuses("/"), [200, 304], "{log}");
    }

    /// The browser's own account of the reload: bytes transferred for `url` (0: from its
    /// cache without a request).
    fn reload_transfer(&self, url: &str) -> Option<u64> {
        self.reports[1]
            .get(&format!("transfer {url}"))
            .and_then(|v| v.parse().ok())
    }
}

/// A request on a fresh connection; returns the response.
fn get(server: &Server, path: &str, extra: &str) -> serve_util::Response {
    let mut c = Raw::connect(server.addr);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    );
    c.response(false)
}

#[test]
fn reload_requests_no_immutable_asset() {
    let rule = format!("assets/**={IMMUTABLE}");
    let Some(run) = load_and_reload(
        "immutable assets",
        &["--cache-control", "no-cache", "--cache-control-for", &rule],
    ) else {
        return;
    };
    run.check_common();
    let log = run.log();
    for a in &run.site.assets {
        // Fetched once, by the first load (the video with a Range request, 206); the reload
        // took it from the cache without asking.
        let s = run.statuses(&a.url);
        assert!(
            s.len() == 1 && (s[0] == 200 || s[0] == 206),
            "{}: {s:?}, expected one 200 or 206:\n{log}",
            a.url
        );
    }
    for a in run.site.assets.iter().filter(|a| !a.url.ends_with(".webm")) {
        assert_eq!(run.reload_transfer(&a.url), Some(0), "{}:\n{log}", a.url);
    }

    // The headers the browser got.
    let page = get(&run.server, "/", "");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page.header("etag").expect("an ETag").to_string();
    let again = get(&run.server, "/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(
        (again.status, again.header("cache-control")),
        (304, Some("no-cache"))
    );
    for a in &run.site.assets {
        let r = get(&run.server, &a.url, "");
        assert_eq!(
            (
                r.status,
                r.header("content-type"),
                r.header("cache-control")
            ),
            (200, Some(a.content_type), Some(IMMUTABLE)),
            "{}",
            a.url
        );
    }
}

#[test]
fn reload_revalidates_no_cache_assets() {
    // The control case: the same page with no-cache on everything. The reload must ask for
    // every asset again, so the log does show a reload's asset requests when there are any.
    let Some(run) = load_and_reload("no-cache assets", &["--cache-control", "no-cache"]) else {
        return;
    };
    run.check_common();
    let log = run.log();
    for a in &run.site.assets {
        let s = run.statuses(&a.url);
        // First load 200 (206 for the video); the reload's conditional request 304. A 304
        // needs a cached copy, so it can only come from the reload.
        assert!(
            s.len() == 2 && s.contains(&304) && (s.contains(&200) || s.contains(&206)),
            "{}: {s:?}, expected 200 or 206, and 304:\n{log}",
            a.url
        );
    }
    for a in run.site.assets.iter().filter(|a| !a.url.ends_with(".webm")) {
        assert!(
            run.reload_transfer(&a.url).is_some_and(|n| n > 0),
            "{}:\n{log}",
            a.url
        );
    }
    let r = get(&run.server, &run.site.assets[0].url, "");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}
