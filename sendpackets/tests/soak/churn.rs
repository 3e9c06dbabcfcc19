//! Files that change around a send: during it (held after its checks, or at a random moment)
//! and between two sends of the same list.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sendpackets::{Element, Engine, ErrorKind, FileIo, FileRange, Payload};

use crate::checks::{check_observed, expect_exact, model_of};
use crate::fronts::{How, Outcome, VIAS, Via, Watch, send_through};
use crate::harness::{CaseLog, Rng, Stats};
use crate::peers::{STREAM_SOCKS, StreamPeer, receive_stream, stream_pair};
use crate::random::send_to_fresh_stream;
use crate::util::{self, ReceiverEnd};

/// A change to a file.
#[derive(Clone, Copy, Debug)]
enum Churn {
    /// Cut to this length.
    Truncate(u64),
    /// Append this many bytes.
    Grow(u64),
    /// A new file with other bytes renamed over it.
    RenameOver { len: u64, seed: u8 },
    /// Deleted, then created again with other bytes.
    Recreate { len: u64, seed: u8 },
}

impl Churn {
    pub(crate) fn random(rng: &mut Rng, len: u64, seed: u8) -> Churn {
        let other = seed ^ 0x5a;
        let new_len = if rng.chance(50) {
            len
        } else {
            rng.between(16, len.max(16) * 2)
        };
        match rng.below(4) {
            0 => Churn::Truncate(rng.below(len)),
            1 => Churn::Grow(rng.between(1, 50_000)),
            2 => Churn::RenameOver {
                len: new_len,
                seed: other,
            },
            _ => Churn::Recreate {
                len: new_len,
                seed: other,
            },
        }
    }

    fn replaces(self) -> bool {
        matches!(self, Churn::RenameOver { .. } | Churn::Recreate { .. })
    }

    fn apply(self, path: &Path) -> io::Result<()> {
        match self {
            Churn::Truncate(len) => OpenOptions::new().write(true).open(path)?.set_len(len),
            Churn::Grow(n) => OpenOptions::new()
                .append(true)
                .open(path)?
                .write_all(&util::pattern(n as usize, 0xee)),
            Churn::RenameOver { len, seed } => {
                let tmp = path.with_extension("new");
                fs::write(&tmp, util::pattern(len as usize, seed))?;
                fs::rename(&tmp, path)
            }
            Churn::Recreate { len, seed } => {
                fs::remove_file(path)?;
                fs::write(path, util::pattern(len as usize, seed))
            }
        }
    }
}

/// The soft descriptor limit during the churn test: low enough that a send of ~200 files keeps
/// only some of them open between its checks and their use (the library keeps a share of the
/// limit) and reopens the rest by path.
pub(crate) const CHURN_NOFILE: u64 = 256;

/// How many descriptors of this process have `path` open.
pub(crate) fn opened(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|p| p == path)
                .count()
        })
        .unwrap_or(0)
}

/// A directory of files for one churn case, some with an open handle too.
struct ChurnFiles {
    pub(crate) _dir: util::Files,
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) lens: Vec<u64>,
    pub(crate) seeds: Vec<u8>,
    pub(crate) handles: Vec<Option<Arc<File>>>,
}

impl ChurnFiles {
    pub(crate) fn new(rng: &mut Rng, n: u64, handle_percent: u64) -> ChurnFiles {
        let dir = util::Files::new();
        let (mut paths, mut lens, mut seeds, mut handles) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let len = if rng.chance(10) {
                rng.between(65_536, 300_000)
            } else {
                rng.between(16, 40_000)
            };
            let seed = (i % 200) as u8 + 1;
            let path = dir.make(&format!("f{i:04}.bin"), len as usize, seed);
            let handle = rng
                .chance(handle_percent)
                .then(|| Arc::new(File::open(&path).unwrap()));
            paths.push(path);
            lens.push(len);
            seeds.push(seed);
            handles.push(handle);
        }
        ChurnFiles {
            _dir: dir,
            paths,
            lens,
            seeds,
            handles,
        }
    }

    /// A list naming every file in order (by path, some by handle as well), each element
    /// described; `owner[e]` is the file element `e` reads.
    pub(crate) fn list(
        &self,
        rng: &mut Rng,
        list: &mut Vec<Element>,
        owner: &mut Vec<Option<usize>>,
    ) {
        for (i, path) in self.paths.iter().enumerate() {
            if rng.chance(50) {
                list.push(Element::memory(format!("<{i}>")));
                owner.push(None);
            }
            let len = self.lens[i];
            let o = rng.upto(len);
            let range = match rng.below(10) {
                0..=4 => FileRange::from(..),
                5..=6 => FileRange::from_dotnet_count_or_to_end(o, 0),
                _ => FileRange::from(o..o + rng.upto(len - o)),
            };
            list.push(Element::file(path, range));
            owner.push(Some(i));
            if let Some(h) = &self.handles[i] {
                let o = rng.upto(len);
                list.push(Element::handle(Arc::clone(h), o..));
                owner.push(Some(i));
            }
        }
    }
}

/// Picks 1 to 3 distinct files to change; with many files, mostly in the second half (past
/// what a send keeps open under `CHURN_NOFILE`: reopened by path during the send).
fn pick_victims(rng: &mut Rng, files: &ChurnFiles) -> Vec<(usize, Churn)> {
    let n = files.paths.len() as u64;
    let mut victims: Vec<(usize, Churn)> = Vec::new();
    for _ in 0..rng.between(1, 3) {
        let i = if n > 100 && rng.chance(70) {
            rng.between(n / 2, n - 1)
        } else {
            rng.below(n)
        } as usize;
        if victims.iter().all(|(v, _)| *v != i) {
            victims.push((i, Churn::random(rng, files.lens[i], files.seeds[i])));
        }
    }
    victims
}

/// 2 MiB of memory at the head of a churn list: with small socket buffers and a peer that does
/// not read yet, the send is held inside it, after its checks and before any file is used.
pub(crate) fn stall_bytes() -> Bytes {
    static STALL: OnceLock<Bytes> = OnceLock::new();
    STALL
        .get_or_init(|| Bytes::from(util::pattern(2 << 20, 77)))
        .clone()
}

pub(crate) fn churn_during_case(index: u64, log: &CaseLog, stats: &mut Stats) {
    let test = "churn_during_sends";
    let mut rng = Rng::for_case(test, index);
    let many = rng.chance(50);
    let n = if many {
        rng.between(150, 220)
    } else {
        rng.between(2, 10)
    };
    let files = ChurnFiles::new(&mut rng, n, if many { 5 } else { 30 });
    let sock = rng.pick(&STREAM_SOCKS);
    let via = rng.pick(VIAS);
    let mut how = How::random(&mut rng, via);
    how.observe = true;
    // Held: the files change while the send is held in a first element of 2 MiB, after its
    // checks and before any file is read. Anywhere: at a random moment of a send to a slow
    // reader.
    let anywhere = rng.chance(35);
    let (mut list, mut owner) = if anywhere {
        (vec![], vec![])
    } else {
        (vec![Element::memory(stall_bytes())], vec![None])
    };
    files.list(&mut rng, &mut list, &mut owner);
    let mut victims = pick_victims(&mut rng, &files);
    // A page that `sendfile` handed to the socket is read when it goes out: cutting the file
    // then may zero the tail of that page on the wire (the documented hazard). So at a random
    // moment, files are cut only when no `sendfile` can be in flight.
    let async_front = !matches!(via, Via::Blocking | Via::Connection);
    let no_late_reads =
        how.engine == Engine::Portable || (async_front && how.file_io == FileIo::Offload);
    if anywhere && !no_late_reads {
        for (i, c) in &mut victims {
            if let Churn::Truncate(_) = c {
                *c = Churn::Recreate {
                    len: files.lens[*i],
                    seed: files.seeds[*i] ^ 0x5a,
                };
            }
        }
    }
    let delay = rng.duration_ms(0, 40);
    let m = model_of(&list);
    log.set(format!(
        "{n} files, {} elements, {} bytes, over {sock:?} via {}; changed {}: {}",
        list.len(),
        m.bytes.len(),
        how.describe(),
        if anywhere {
            format!("{delay:?} after the first bytes, the peer reading slowly")
        } else {
            "while the send is held after its checks".to_string()
        },
        victims
            .iter()
            .map(|(i, c)| format!(
                "file {i} ({} B, {} handle): {c:?}",
                files.lens[*i],
                if files.handles[*i].is_some() {
                    "with"
                } else {
                    "no"
                }
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));

    let (fd, end) = stream_pair(sock, true);
    // The churn thread watches the peer's receive queue: bytes there mean the checks are
    // behind the send (a blocking send may sit in one kernel call, publishing nothing).
    let peek = match &end {
        ReceiverEnd::Tcp(s) => s.as_fd().try_clone_to_owned(),
        ReceiverEnd::Unix(s) => s.as_fd().try_clone_to_owned(),
    }
    .expect("dup");
    let (go, go_rx) = mpsc::channel();
    let peer = if anywhere {
        StreamPeer::Slow
    } else {
        StreamPeer::WaitForGo(go_rx)
    };
    let reader = thread::spawn(move || receive_stream(end, peer));
    let watch = Watch::default();
    let done = Arc::new(AtomicBool::new(false));
    let churner = {
        let watch = watch.clone();
        let done = Arc::clone(&done);
        let targets: Vec<(PathBuf, Churn, bool)> = victims
            .iter()
            .map(|(i, c)| (files.paths[*i].clone(), *c, files.handles[*i].is_some()))
            .collect();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let queued = || rustix::io::ioctl_fionread(&peek).unwrap_or(0);
            let started = || queued() > 0 || watch.get().is_some_and(|p| p.bytes_sent > 0);
            while !started() && !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            // Held: give a send that is not blocked in a kernel call time to fill the buffers
            // and wait (so the published progress is the progress at the change).
            thread::sleep(if anywhere {
                delay
            } else {
                Duration::from_millis(5)
            });
            // Which of them the send holds open (beside the case's own handles).
            let kept: Vec<bool> = targets
                .iter()
                .map(|(path, _, handle)| opened(path) > usize::from(*handle))
                .collect();
            for (path, c, _) in &targets {
                c.apply(path).expect("changing a file");
            }
            let at = (queued(), watch.get(), kept);
            let _ = go.send(0);
            at
        })
    };
    let a = send_through(&how, fd.as_fd(), &list, Some(&watch));
    done.store(true, Ordering::SeqCst);
    drop(fd);
    let (queued, at, kept) = churner.join().expect("churn thread");
    let place = |file: usize| {
        let v = victims.iter().position(|(v, _)| *v == file);
        match v.map(|v| kept[v]) {
            Some(true) => "kept open",
            Some(false) => "reopened",
            None => "unchanged",
        }
    };
    let got = reader
        .join()
        .expect("receiver thread")
        .expect("receiver read");
    log.note(&format!(
        "when the files changed: {queued} bytes waiting at the peer, progress {at:?}, \
         held open by the send: {kept:?}"
    ));
    log.note(&format!("send: {:?}", a.outcome));
    let at = at.unwrap_or_default();
    assert!(
        anywhere || queued > 0 && queued < 1 << 20 && at.elements_completed == 0,
        "the files changed while the send was held in its first element \
         ({queued} bytes at the peer, progress {at:?})"
    );
    check_observed(&a, list.len(), "send");
    let op_name = |c: &Churn| {
        let op = format!("{c:?}");
        op.split([' ', '(']).next().unwrap_or_default().to_string()
    };
    for (i, c) in &victims {
        stats.bump(format!("change:{} of a {} file", op_name(c), place(*i)));
    }
    // The kind of element `e`: a file kept open or reopened, by path or handle, how changed.
    let class = |e: usize| match owner.get(e).copied().flatten() {
        None => "no file".to_string(),
        Some(file) => {
            let by = match &list[e].payload {
                Payload::Path { .. } => "by path",
                _ => "by handle",
            };
            let change = victims.iter().find(|(v, _)| *v == file);
            let op = change.map_or("unchanged".to_string(), |(_, c)| op_name(c));
            format!("a {} file {by} ({op})", place(file))
        }
    };
    // What element `e` reads, and what happened to that file.
    let element = |e: usize| match owner.get(e).copied().flatten() {
        None => format!("element {e} (memory)"),
        Some(file) => {
            let change = victims.iter().find(|(v, _)| *v == file);
            let by = match &list[e].payload {
                Payload::Path { .. } => "by path",
                _ => "by handle",
            };
            match change {
                Some((_, c)) => format!("element {e} (file {file} {by}, {}, {c:?})", place(file)),
                None => format!("element {e} (file {file} {by}, unchanged)"),
            }
        }
    };
    match &a.outcome {
        Outcome::Sent(r) => {
            // Never new bytes silently: a complete send carries the files as they were checked.
            if got != m.bytes {
                let at = got.iter().zip(&m.bytes).position(|(a, b)| a != b);
                let at = at.unwrap_or(got.len().min(m.bytes.len()));
                let e = m.element_at(at as u64);
                stats.bump(format!("outcome:NEW BYTES on the wire from {}", class(e)));
                panic!(
                    "new bytes on the wire, and the send reported success ({} of {} bytes \
                     received): first difference at byte {at}, in {}",
                    got.len(),
                    m.bytes.len(),
                    element(e)
                );
            }
            assert_eq!(r.bytes_sent, m.bytes.len() as u64);
            stats.bump("outcome:sent the bytes as checked");
        }
        Outcome::Failed(f) => {
            let e = f.element.unwrap_or(usize::MAX);
            stats.bump(format!("outcome:{:?} at {}", f.kind, class(e)));
            assert!(
                matches!(f.kind, ErrorKind::FileChanged | ErrorKind::FileTruncated),
                "a changed file gives FileChanged or FileTruncated, not: {}",
                f.text
            );
            let file = owner
                .get(e)
                .copied()
                .flatten()
                .unwrap_or_else(|| panic!("{} is not a file: {}", element(e), f.text));
            let (_, churn) = victims
                .iter()
                .find(|(v, _)| *v == file)
                .unwrap_or_else(|| panic!("{} was not changed: {}", element(e), f.text));
            if f.kind == ErrorKind::FileTruncated {
                assert!(
                    matches!(churn, Churn::Truncate(_)) || churn.replaces(),
                    "FileTruncated for {}: {}",
                    element(e),
                    f.text
                );
            }
            m.check_progress(&f.progress, "error progress");
            assert_eq!(
                f.progress.bytes_sent,
                got.len() as u64,
                "the error's progress is what the peer received"
            );
            if got[..] != m.bytes[..got.len()] {
                let at = got.iter().zip(&m.bytes).position(|(a, b)| a != b);
                let e = m.element_at(at.unwrap_or_default() as u64);
                stats.bump(format!("outcome:NEW BYTES on the wire from {}", class(e)));
                panic!(
                    "new bytes on the wire before the error ({}): first difference at byte \
                     {at:?}, in {}",
                    f.text,
                    element(e)
                );
            }
        }
        Outcome::Cancelled(..) => unreachable!("no cancel here"),
    }
    stats.bump(format!("front:{:?}", how.via));
    stats.bump(format!(
        "when:{}",
        if anywhere {
            "anywhere"
        } else {
            "held after the checks"
        }
    ));
}

pub(crate) fn churn_between_case(index: u64, log: &CaseLog, stats: &mut Stats) {
    let mut rng = Rng::for_case("churn_between_sends", index);
    let n = if rng.chance(30) {
        rng.between(150, 220)
    } else {
        rng.between(2, 8)
    };
    let files = ChurnFiles::new(&mut rng, n, 30);
    let mut list = Vec::new();
    let mut owner = Vec::new();
    files.list(&mut rng, &mut list, &mut owner);
    let victims = pick_victims(&mut rng, &files);
    let sock = rng.pick(&STREAM_SOCKS);
    let (via1, via2) = (rng.pick(VIAS), rng.pick(VIAS));
    let first = How::random(&mut rng, via1);
    let second = How::random(&mut rng, via2);
    log.set(format!(
        "{n} files, {} elements over {sock:?}; first send via {}, then {victims:?}, then via {}",
        list.len(),
        first.describe(),
        second.describe()
    ));
    let m = model_of(&list);
    let (a, got) = send_to_fresh_stream(sock, &first, &list);
    assert!(
        matches!(a.outcome, Outcome::Sent(_)),
        "first send: {:?}",
        a.outcome
    );
    expect_exact(&got, &m.bytes, &m, "first send");
    for (i, c) in &victims {
        c.apply(&files.paths[*i]).expect("changing a file");
    }
    // The next send sees the files as they are now: paths name the new files, handles keep
    // the old ones (shorter if truncated).
    let m = model_of(&list);
    let (a, got) = send_to_fresh_stream(sock, &second, &list);
    log.note(&format!("second send: {:?}", a.outcome));
    check_observed(&a, list.len(), "second send");
    match (&a.outcome, m.first_bad) {
        (Outcome::Sent(r), None) => {
            expect_exact(&got, &m.bytes, &m, "second send");
            assert_eq!(r.bytes_sent, m.bytes.len() as u64);
        }
        (Outcome::Failed(f), Some(bad)) => {
            assert_eq!(f.kind, ErrorKind::RangeOutOfBounds, "{}", f.text);
            assert_eq!(f.element, Some(bad), "{}", f.text);
            assert_eq!(f.progress.bytes_sent, 0, "{}", f.text);
            assert!(got.is_empty());
        }
        (other, bad) => panic!("second send: {other:?}, expected a range error at {bad:?}"),
    }
    stats.bump(format!("outcome:{}", a.outcome.label()));
}
