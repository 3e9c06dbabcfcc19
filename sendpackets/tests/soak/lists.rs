//! Random lists: the pool of files and buffers they draw from, and lists for stream and
//! datagram sockets, with a description of each element.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sendpackets::{Element, FileHandle, FileRange};

use crate::harness::Rng;
use crate::util;

/// Files (and open handles to them) the random lists draw from; never changed.
pub(crate) struct Pool {
    pub(crate) _dir: util::Files,
    pub(crate) files: Vec<PoolFile>,
    /// Random bytes memory elements are sliced from.
    pub(crate) blob: Bytes,
}

pub(crate) struct PoolFile {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    /// One shared handle, used by many elements.
    pub(crate) shared: FileHandle,
    /// A second descriptor of the same file.
    pub(crate) arc: Arc<File>,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        let dir = util::Files::new();
        let mut rng = Rng::for_case("pool", 0);
        let sizes: [usize; 12] = [
            0, 0, 1, 100, 4095, 4096, 65_535, 65_536, 70_001, 300_000, 1_100_000, 3_000_000,
        ];
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let name = format!("pool{i}-{len}.bin");
                let path = dir.make(&name, len, rng.below(256) as u8);
                PoolFile {
                    name,
                    len: len as u64,
                    shared: FileHandle::new(File::open(&path).unwrap()),
                    arc: Arc::new(File::open(&path).unwrap()),
                    path,
                }
            })
            .collect();
        let blob: Vec<u8> = (0..(4 << 20) / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        Pool {
            _dir: dir,
            files,
            blob: Bytes::from(blob),
        }
    }

    pub(crate) fn memory(&self, rng: &mut Rng, n: u64) -> Bytes {
        let n = n.min(self.blob.len() as u64) as usize;
        let start = rng.upto((self.blob.len() - n) as u64) as usize;
        self.blob.slice(start..start + n)
    }
}

/// A generated list, with a description of each element.
#[derive(Default)]
pub(crate) struct Gen {
    pub(crate) list: Vec<Element>,
    pub(crate) desc: Vec<String>,
    /// A note on the whole list (its shape).
    pub(crate) shape: String,
}

impl Gen {
    pub(crate) fn push(&mut self, e: Element, d: String) {
        self.list.push(e);
        self.desc.push(d);
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = format!("{} elements{}: ", self.list.len(), self.shape);
        const SHOWN: usize = 40;
        for (i, (d, e)) in self.desc.iter().zip(&self.list).enumerate().take(SHOWN) {
            let eop = if e.end_of_packet { "+eop" } else { "" };
            s += &format!("[{i}] {d}{eop}; ");
        }
        if self.list.len() > SHOWN {
            s += &format!("... ({} more)", self.list.len() - SHOWN);
        }
        s
    }

    /// Puts a large element (a big file range or buffer) at a random place.
    pub(crate) fn add_bulk(&mut self, rng: &mut Rng, pool: &Pool) {
        let (e, d) = if rng.chance(40) {
            let n = rng.between(300_000, 2_000_000);
            (
                Element::memory(pool.memory(rng, n)),
                format!("bulk mem({n})"),
            )
        } else {
            let big: Vec<&PoolFile> = pool.files.iter().filter(|f| f.len > 1 << 20).collect();
            let f = big[rng.below(big.len() as u64) as usize];
            let o = rng.below(f.len / 2);
            let (e, how) = file_element(rng, f, FileRange::from(o..));
            (e, format!("bulk {how}({}, {o}..)", f.name))
        };
        let at = rng.upto(self.list.len() as u64) as usize;
        self.list.insert(at, e);
        self.desc.insert(at, d);
    }

    /// Puts 1 or 2 elements whose range lies outside their file at random places.
    fn spoil(&mut self, rng: &mut Rng, pool: &Pool) {
        for _ in 0..rng.between(1, 2) {
            let f = &pool.files[rng.below(pool.files.len() as u64) as usize];
            let (range, rd) = bad_range(rng, f.len);
            let (e, how) = file_element(rng, f, range);
            let at = rng.upto(self.list.len() as u64) as usize;
            self.list.insert(at, e);
            self.desc
                .insert(at, format!("OUT OF RANGE {how}({}, {rd})", f.name));
        }
    }
}

/// An element of `f` with `range`, by path or by one of its two handles.
fn file_element(rng: &mut Rng, f: &PoolFile, range: FileRange) -> (Element, &'static str) {
    match rng.below(3) {
        0 => (Element::file(&f.path, range), "path"),
        1 => (Element::shared_handle(f.shared.clone(), range), "handle"),
        _ => (Element::handle(Arc::clone(&f.arc), range), "arc-handle"),
    }
}

/// A range inside a file of `len` bytes, at most `room` bytes long, in one of the spellings a
/// caller uses; returns it, its description and its length.
fn good_range(rng: &mut Rng, len: u64, room: u64) -> (FileRange, String, u64) {
    // An offset from which the rest of the file fits the room.
    let suffix_start = len - rng.skewed(len.min(room));
    let o = rng.upto(len);
    let c = rng.skewed((len - o).min(room));
    match rng.below(8) {
        0 if len <= room => (FileRange::from(..), "..".into(), len),
        1 => (
            FileRange::from(suffix_start..),
            format!("{suffix_start}.."),
            len - suffix_start,
        ),
        2 => (
            FileRange::from_dotnet_count_or_to_end(suffix_start, 0),
            format!("({suffix_start}, count 0 = to the end)"),
            len - suffix_start,
        ),
        3 => (FileRange::from(o..o), format!("{o}..{o}"), 0),
        4 if c > 0 => (
            FileRange::from_dotnet_count_or_to_end(o, c),
            format!("({o}, count {c})"),
            c,
        ),
        5 if c > 0 => (
            FileRange::from(o..=o + c - 1),
            format!("{o}..={}", o + c - 1),
            c,
        ),
        _ => (FileRange::from(o..o + c), format!("{o}..{}", o + c), c),
    }
}

/// A range that does not lie inside a file of `len` bytes.
fn bad_range(rng: &mut Rng, len: u64) -> (FileRange, String) {
    let o = rng.upto(len);
    match rng.below(5) {
        0 => {
            let past = len + 1 + rng.below(1000);
            (FileRange::from(past..), format!("{past}.."))
        }
        1 => {
            let c = len - o + 1 + rng.below(100);
            (
                FileRange::from_dotnet_count_or_to_end(o, c),
                format!("({o}, count {c})"),
            )
        }
        2 => (
            FileRange::from_dotnet_count_or_to_end(len + 1, 0),
            format!("({}, count 0)", len + 1),
        ),
        3 => {
            let start = u64::MAX - rng.below(10);
            let c = 1 + rng.below(10);
            (
                FileRange::new(start, Some(c)),
                format!("({start}, count {c})"),
            )
        }
        _ => {
            let c = u64::MAX - o / 2;
            (FileRange::new(o, Some(c)), format!("({o}, count {c})"))
        }
    }
}

/// A memory element of at most `room` bytes.
fn memory_element(rng: &mut Rng, pool: &Pool, room: u64) -> (Element, String, u64) {
    match rng.below(12) {
        0 => (Element::memory(Bytes::new()), "mem(empty)".into(), 0),
        1 => {
            let n = rng.between(1, 64);
            let b = pool.memory(rng, n);
            let off = rng.upto(b.len() as u64) as usize;
            let e = Element::memory_range(b, off, 0).unwrap();
            (e, format!("mem_range(offset {off}, count 0)"), 0)
        }
        2 => {
            let n = rng.between(1, 5000).min(room);
            let extra = rng.below(100);
            let b = pool.memory(rng, n + extra);
            let off = rng.upto(b.len() as u64 - n) as usize;
            let e = Element::memory_range(b.to_vec(), off, n as usize).unwrap();
            (e, format!("mem_range(Vec, offset {off}, count {n})"), n)
        }
        3 => {
            let s = format!("<{}>", rng.next());
            let n = s.len() as u64;
            (Element::memory(s), format!("mem(String {n})"), n)
        }
        4..=7 => {
            let n = rng.upto(511).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
        8..=10 => {
            let n = rng.between(512, 70_000).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
        _ => {
            let n = rng.between(70_000, 1_500_000).min(room);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        }
    }
}

/// A list for a stream socket.
pub(crate) fn stream_list(rng: &mut Rng, pool: &Pool) -> Gen {
    let mut g = Gen::default();
    let max_total: u64 = if rng.chance(15) { 8 << 20 } else { 1 << 20 };
    let many = rng.chance(4);
    let n = if many {
        g.shape = " (many tiny elements)".into();
        rng.between(1025, 1300)
    } else {
        rng.skewed(24)
    };
    let mut total = 0u64;
    for _ in 0..n {
        let room = max_total.saturating_sub(total);
        let (e, d, len) = if many && rng.chance(90) {
            let n = rng.upto(8);
            (Element::memory(pool.memory(rng, n)), format!("mem({n})"), n)
        } else if rng.chance(45) && !many {
            memory_element(rng, pool, room)
        } else {
            let f = &pool.files[rng.below(pool.files.len() as u64) as usize];
            let room = if many { room.min(16) } else { room };
            let (range, rd, len) = good_range(rng, f.len, room);
            let (e, how) = file_element(rng, f, range);
            (e, format!("{how}({}, {rd})", f.name), len)
        };
        total += len;
        let e = if rng.chance(15) { e.end_of_packet() } else { e };
        g.push(e, d);
    }
    if n > 0 && rng.chance(7) {
        g.spoil(rng, pool);
    }
    g
}

/// An element of exactly `n` bytes (memory or a file range).
fn exact_element(rng: &mut Rng, pool: &Pool, n: u64) -> (Element, String) {
    if rng.chance(40) {
        if n == 0 && rng.chance(50) {
            return (Element::memory(""), "mem(empty)".into());
        }
        return (Element::memory(pool.memory(rng, n)), format!("mem({n})"));
    }
    let fitting: Vec<&PoolFile> = pool.files.iter().filter(|f| f.len >= n).collect();
    let f = fitting[rng.below(fitting.len() as u64) as usize];
    let o = rng.upto(f.len - n);
    let (range, rd) = match rng.below(4) {
        0 if o + n == f.len => (FileRange::from(o..), format!("{o}..")),
        1 if o + n == f.len => (
            FileRange::from_dotnet_count_or_to_end(o, 0),
            format!("({o}, count 0 = to the end)"),
        ),
        2 if n > 0 => (
            FileRange::from_dotnet_count_or_to_end(o, n),
            format!("({o}, count {n})"),
        ),
        _ => (FileRange::from(o..o + n), format!("{o}..{}", o + n)),
    };
    let (e, how) = file_element(rng, f, range);
    (e, format!("{how}({}, {rd})", f.name))
}

/// A list for a datagram socket: datagrams up to `limit` bytes, built from several elements,
/// end-of-packet marks between them, sometimes empty ones and trailing elements.
pub(crate) fn datagram_list(rng: &mut Rng, pool: &Pool, limit: u64, room: u64) -> Gen {
    let mut g = Gen::default();
    // What a datagram costs in the receiver's buffer, roughly: its bytes and its overhead.
    let cost = |size: u64| size + 2048;
    let mut spent = 0;
    if rng.chance(10) {
        // Runs of equal-size datagrams (the shape sent in bursts, on UDP with GSO), a shorter
        // and a longer one breaking the run.
        let size = rng.pick(&[200u64, 1000, 1200, 1400, 8000]);
        let count = rng.between(20, 300).min(room / cost(size * 2)).max(1);
        g.shape = format!(" ({count} datagrams of {size} bytes, some other sizes)");
        for i in 0..count {
            let size = match rng.below(40) {
                0 => rng.upto(size),
                1 => rng.between(size, (size * 2).min(limit)),
                _ => size,
            };
            let h = format!("{i:031}:").into_bytes();
            let h = &h[..32.min(size as usize)];
            let hn = h.len() as u64;
            g.push(Element::memory(h.to_vec()), format!("mem({hn})"));
            let (e, d) = exact_element(rng, pool, size - hn);
            g.push(e.end_of_packet(), d);
        }
    } else {
        let count = rng.skewed(40);
        for _ in 0..count {
            let size = match rng.below(20) {
                0..=1 => 0,
                2..=12 => rng.between(1, 1500),
                13..=18 => rng.between(1500, 16_000),
                _ => rng.between(16_000, limit),
            }
            .min(limit);
            spent += cost(size);
            if spent > room {
                break;
            }
            let parts = rng.between(1, 4);
            let mut filled = 0;
            for p in 0..parts {
                let want = if p + 1 == parts {
                    size - filled
                } else {
                    rng.upto(size - filled)
                };
                filled += want;
                let (e, d) = exact_element(rng, pool, want);
                let e = if p + 1 == parts { e.end_of_packet() } else { e };
                g.push(e, d);
            }
        }
        if rng.chance(30) {
            let mut tail = rng.upto(limit.min(20_000).min(room.saturating_sub(spent + cost(0))));
            for _ in 0..rng.between(1, 3) {
                let n = rng.upto(tail);
                tail -= n;
                let (e, d) = exact_element(rng, pool, n);
                g.push(e, format!("{d} (after the last mark)"));
            }
        }
    }
    if rng.chance(7) {
        g.spoil(rng, pool);
    }
    g
}
