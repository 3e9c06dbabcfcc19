//! What a list must put on the wire, computed the simple way (each file read directly): the
//! one model every test compares with, shared by the integration tests (`util`) and the
//! library's own unit tests (`src/tests`, through `#[path]`).
// Inside the library `Payload` is exhaustive and these items are crate-local.
#![allow(unreachable_patterns, unreachable_pub, dead_code)]

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use sendpackets::{Element, FileRange, Payload};

/// The bytes of `list`, in order.
pub fn model(list: &[Element]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for e in list {
        match &e.payload {
            Payload::Memory(b) => out.extend_from_slice(b),
            Payload::Path { path, range } => {
                let data = fs::read(path)?;
                out.extend_from_slice(slice(&data, *range)?);
            }
            Payload::Handle { file, range } => {
                let f = fs::File::from(file.as_fd().try_clone_to_owned()?);
                let len = f.metadata()?.len();
                let mut data = vec![0u8; len as usize];
                f.read_exact_at(&mut data, 0)?;
                out.extend_from_slice(slice(&data, *range)?);
            }
            _ => unreachable!("no other payloads"),
        }
    }
    Ok(out)
}

fn slice(data: &[u8], r: FileRange) -> io::Result<&[u8]> {
    let start = r.offset as usize;
    let end = r.len.map_or(data.len(), |l| start + l as usize);
    data.get(start..end)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range out of file"))
}

/// What each datagram of `list` must hold (elements up to an end-of-packet mark; trailing
/// elements form a last datagram if they hold bytes).
pub fn model_datagrams(list: &[Element]) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for e in list {
        let bytes = model(std::slice::from_ref(e))?;
        if !bytes.is_empty() || e.end_of_packet {
            cur.get_or_insert_with(Vec::new).extend_from_slice(&bytes);
        }
        if e.end_of_packet {
            out.push(cur.take().unwrap_or_default());
        }
    }
    out.extend(cur.filter(|c| !c.is_empty()));
    Ok(out)
}

/// Whether `TCP_CORK` is set on `s`.
pub fn cork_on(s: &std::net::TcpStream) -> bool {
    rustix::net::sockopt::tcp_cork(s).expect("TCP_CORK")
}
