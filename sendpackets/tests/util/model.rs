//! What a list must put on the wire, computed the simple way (each file read directly): the
//! one model every test compares with, shared by the integration tests (`util`, the soak
//! included) and the library's own unit tests (`src/tests`, through `#[path]`).
// Inside the library `Payload` is exhaustive and these items are crate-local.
#![allow(unreachable_patterns, unreachable_pub, dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;
use sendpackets::{Element, FileRange, Payload, Progress};

/// The bytes of `list`, in order; an error if a file cannot be read or a range lies outside
/// its file.
pub fn model(list: &[Element]) -> io::Result<Vec<u8>> {
    Model::of(list)?.good().map(|m| m.bytes)
}

/// What each datagram of `list` must hold (see [`Model::datagrams`]); the same errors as
/// [`model`].
pub fn model_datagrams(list: &[Element]) -> io::Result<Vec<Vec<u8>>> {
    let m = Model::of(list)?.good()?;
    Ok(m.datagrams(list))
}

/// What a list must put on the wire, element by element.
#[derive(Debug)]
pub struct Model {
    /// Each element's bytes; `None` for an element whose range lies outside its file.
    pub parts: Vec<Option<Bytes>>,
    /// The first such element: a send must fail there with nothing sent.
    pub first_bad: Option<usize>,
    /// Each element's length (0 for bad ones).
    pub lens: Vec<u64>,
    /// Every byte, in order (of the good elements).
    pub bytes: Vec<u8>,
}

impl Model {
    /// The model of `list`, each file read once (by path, or by descriptor for a handle) as it
    /// is now. An error only if a file cannot be read.
    pub fn of(list: &[Element]) -> io::Result<Model> {
        let mut by_path: HashMap<PathBuf, Bytes> = HashMap::new();
        let mut by_fd: HashMap<RawFd, Bytes> = HashMap::new();
        let mut parts = Vec::with_capacity(list.len());
        for e in list {
            let part = match &e.payload {
                Payload::Memory(b) => Some(b.clone()),
                Payload::Path { path, range } => {
                    let data = match by_path.get(path) {
                        Some(d) => d.clone(),
                        None => {
                            let d = Bytes::from(fs::read(path)?);
                            by_path.insert(path.clone(), d.clone());
                            d
                        }
                    };
                    slice(data, *range)
                }
                Payload::Handle { file, range } => {
                    let fd = file.as_fd();
                    let data = match by_fd.get(&fd.as_raw_fd()) {
                        Some(d) => d.clone(),
                        None => {
                            let d = read_whole(fd)?;
                            by_fd.insert(fd.as_raw_fd(), d.clone());
                            d
                        }
                    };
                    slice(data, *range)
                }
                _ => unreachable!("no other payloads"),
            };
            parts.push(part);
        }
        let first_bad = parts.iter().position(Option::is_none);
        let lens = parts
            .iter()
            .map(|p| p.as_ref().map_or(0, |b| b.len() as u64))
            .collect();
        let bytes = parts
            .iter()
            .flatten()
            .flat_map(|b| b.iter().copied())
            .collect();
        Ok(Model {
            parts,
            first_bad,
            lens,
            bytes,
        })
    }

    /// This model if every range lies inside its file, else an error naming the first that
    /// does not.
    pub fn good(self) -> io::Result<Model> {
        match self.first_bad {
            None => Ok(self),
            Some(i) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("element {i}: range out of file"),
            )),
        }
    }

    /// The datagrams of the list on a datagram socket: elements up to an end-of-packet mark
    /// form one; a mark with no bytes since the last one is an empty datagram; elements after
    /// the last mark form a final one if they hold bytes.
    pub fn datagrams(&self, list: &[Element]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for (e, part) in list.iter().zip(&self.parts) {
            let bytes = part.as_deref().unwrap_or_default();
            if !bytes.is_empty() || e.end_of_packet {
                cur.get_or_insert_with(Vec::new).extend_from_slice(bytes);
            }
            if e.end_of_packet {
                out.push(cur.take().unwrap_or_default());
            }
        }
        out.extend(cur.filter(|c| !c.is_empty()));
        out
    }

    /// The element holding byte `at` of the stream (the list's length past the end).
    pub fn element_at(&self, at: u64) -> usize {
        let mut end = 0;
        for (i, &l) in self.lens.iter().enumerate() {
            end += l;
            if at < end {
                return i;
            }
        }
        self.lens.len()
    }

    /// Asserts that `p` is self-consistent for this list: the bytes of the completed elements
    /// plus the offset into the next are the bytes sent.
    pub fn check_progress(&self, p: &Progress, what: &str) {
        assert!(
            p.elements_completed <= self.lens.len(),
            "{what}: progress {p:?} past the end of a list of {}",
            self.lens.len()
        );
        let before: u64 = self.lens[..p.elements_completed].iter().sum();
        assert_eq!(
            before + p.offset_in_element,
            p.bytes_sent,
            "{what}: progress {p:?}: completed elements hold {before} bytes"
        );
        if let Some(&l) = self.lens.get(p.elements_completed) {
            assert!(
                p.offset_in_element <= l,
                "{what}: progress {p:?}: offset past the element's {l} bytes"
            );
        }
    }
}

/// Every byte of the file behind `fd`, read at explicit offsets (its cursor untouched).
fn read_whole(fd: BorrowedFd<'_>) -> io::Result<Bytes> {
    let f = fs::File::from(fd.try_clone_to_owned()?);
    let len = f.metadata()?.len();
    let mut data = vec![0u8; len as usize];
    f.read_exact_at(&mut data, 0)?;
    Ok(Bytes::from(data))
}

/// The bytes of `data` that `r` names; `None` if `r` does not lie inside it.
fn slice(data: Bytes, r: FileRange) -> Option<Bytes> {
    let len = data.len() as u64;
    if r.offset > len {
        return None;
    }
    let end = match r.len {
        None => len,
        Some(l) => r.offset.checked_add(l).filter(|&e| e <= len)?,
    };
    Some(data.slice(r.offset as usize..end as usize))
}

/// Whether `TCP_CORK` is set on `s`.
pub fn cork_on(s: &std::net::TcpStream) -> bool {
    rustix::net::sockopt::tcp_cork(s).expect("TCP_CORK")
}
