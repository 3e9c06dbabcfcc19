//! The hand-written loops sendpackets is compared with, and the sendpackets calls themselves.
//!
//! Every baseline counts its own kernel calls, so the tables can show them beside the library's.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use sendpackets::{Element, Engine, SendOptions};

use crate::table::Calls;

/// The sendpackets engines, with their row names. `Auto` is the library's policy (today: copy
/// ranges of 1 MiB and up on loopback TCP, no cork there); `ZeroCopy` always `sendfile`s and
/// corks remote TCP; `Portable` always copies — the rows that answer the policy questions of
/// issue 12 side by side.
pub(crate) const ENGINES: [(&str, Engine); 3] = [
    ("sendpackets Auto", Engine::Auto),
    ("sendpackets ZeroCopy", Engine::ZeroCopy),
    ("sendpackets Portable", Engine::Portable),
];

/// One sendpackets operation; the report's calls are added to `calls`.
pub(crate) fn ours(
    sock: BorrowedFd<'_>,
    list: &[Element],
    engine: Engine,
    calls: &mut Calls,
) -> io::Result<u64> {
    let opts = SendOptions::new().engine(engine);
    match sendpackets::send_with(sock, list, &opts) {
        Ok(r) => {
            calls.add_report(&r);
            Ok(r.bytes_sent)
        }
        Err(e) => Err(io::Error::other(format!("sendpackets: {e}"))),
    }
}

/// One piece of what a baseline sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Piece<'a> {
    Mem(&'a [u8]),
    File {
        fd: BorrowedFd<'a>,
        offset: u64,
        len: u64,
    },
}

/// `write` until all of `buf` went out.
pub(crate) fn write_all(sock: BorrowedFd<'_>, mut buf: &[u8], calls: &mut Calls) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes; the fd is open.
        let n = unsafe { libc::write(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        calls.writes += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `writev` (at most `IOV_MAX` = 1024 buffers a call) until every buffer went out.
pub(crate) fn writev_all(
    sock: BorrowedFd<'_>,
    mut bufs: &mut [IoSlice<'_>],
    calls: &mut Calls,
) -> io::Result<()> {
    while !bufs.is_empty() {
        let cnt = bufs.len().min(1024);
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (std guarantees it); the
        // first `cnt` entries are live and point at live buffers.
        let n = unsafe {
            libc::writev(
                sock.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                cnt as libc::c_int,
            )
        };
        calls.writes += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        IoSlice::advance_slices(&mut bufs, n as usize);
    }
    Ok(())
}

/// `sendfile` from `offset` until `len` bytes went out (each call capped as Linux caps it).
pub(crate) fn sendfile_all(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    calls: &mut Calls,
) -> io::Result<()> {
    let mut off = offset as libc::off_t;
    let end = offset + len;
    while (off as u64) < end {
        let chunk = (end - off as u64).min(0x7fff_f000) as usize;
        // SAFETY: `off` is a live, writable off_t; both fds are open.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) };
        calls.sendfile += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sendfile: file truncated",
            ));
        }
    }
    Ok(())
}

/// `pread` until `buf` is full.
pub(crate) fn pread_exact(
    file: BorrowedFd<'_>,
    mut buf: &mut [u8],
    mut offset: u64,
    calls: &mut Calls,
) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes; the fd is open.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as libc::off_t,
            )
        };
        calls.reads += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "pread: file truncated",
            ));
        }
        offset += n as u64;
        buf = &mut buf[n as usize..];
    }
    Ok(())
}

/// The per-element loop (what .NET's Linux code does): `write` each buffer, `sendfile` each
/// file range.
pub(crate) fn per_element(
    sock: BorrowedFd<'_>,
    pieces: &[Piece<'_>],
    calls: &mut Calls,
) -> io::Result<()> {
    calls.ops += 1;
    for p in pieces {
        match *p {
            Piece::Mem(b) => write_all(sock, b, calls)?,
            Piece::File { fd, offset, len } => sendfile_all(sock, fd, offset, len, calls)?,
        }
    }
    Ok(())
}

/// The read/write loop: every piece goes through one buffer (memory copied, files `pread`),
/// written whenever it is full and at the end of the operation.
pub(crate) fn read_write(
    sock: BorrowedFd<'_>,
    pieces: &[Piece<'_>],
    buf: &mut [u8],
    calls: &mut Calls,
) -> io::Result<()> {
    calls.ops += 1;
    let mut used = 0usize;
    for p in pieces {
        match *p {
            Piece::Mem(mut b) => {
                while !b.is_empty() {
                    if used == buf.len() {
                        write_all(sock, &buf[..used], calls)?;
                        used = 0;
                    }
                    let n = b.len().min(buf.len() - used);
                    buf[used..used + n].copy_from_slice(&b[..n]);
                    used += n;
                    b = &b[n..];
                }
            }
            Piece::File {
                fd,
                mut offset,
                len,
            } => {
                let end = offset + len;
                while offset < end {
                    if used == buf.len() {
                        write_all(sock, &buf[..used], calls)?;
                        used = 0;
                    }
                    let n = ((end - offset) as usize).min(buf.len() - used);
                    pread_exact(fd, &mut buf[used..used + n], offset, calls)?;
                    used += n;
                    offset += n as u64;
                }
            }
        }
    }
    if used > 0 {
        write_all(sock, &buf[..used], calls)?;
    }
    Ok(())
}

/// `TCP_CORK` on or off.
pub(crate) fn set_cork(sock: BorrowedFd<'_>, on: bool, calls: &mut Calls) -> io::Result<()> {
    let v: libc::c_int = on.into();
    // SAFETY: `v` is a live c_int and the length is its size; the fd is an open socket.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    calls.cork += 1;
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The per-element loop inside `TCP_CORK` on/off (the raw C harness's `m-cork`): header,
/// file and trailer leave as full segments, the trailer without a Nagle wait.
pub(crate) fn corked(
    sock: BorrowedFd<'_>,
    pieces: &[Piece<'_>],
    calls: &mut Calls,
) -> io::Result<()> {
    set_cork(sock, true, calls)?;
    let r = per_element(sock, pieces, calls);
    set_cork(sock, false, calls)?;
    r
}

/// `send(MSG_MORE)` for every memory piece that has more after it, `sendfile` for files, a
/// plain `write` for the last piece (the raw C harness's `m-more`).
pub(crate) fn msg_more(
    sock: BorrowedFd<'_>,
    pieces: &[Piece<'_>],
    calls: &mut Calls,
) -> io::Result<()> {
    calls.ops += 1;
    for (i, p) in pieces.iter().enumerate() {
        let more = i + 1 < pieces.len();
        match *p {
            Piece::Mem(b) if more => send_all(sock, b, libc::MSG_MORE, calls)?,
            Piece::Mem(b) => write_all(sock, b, calls)?,
            Piece::File { fd, offset, len } => sendfile_all(sock, fd, offset, len, calls)?,
        }
    }
    Ok(())
}

/// `send(flags)` until all of `buf` went out.
pub(crate) fn send_all(
    sock: BorrowedFd<'_>,
    mut buf: &[u8],
    flags: libc::c_int,
    calls: &mut Calls,
) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes; the fd is open.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                flags | libc::MSG_NOSIGNAL,
            )
        };
        calls.writes += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// File pieces `pread` into `buf` (one after another), then one `writev` of every piece in
/// order (the raw C harness's `m-writev`). `buf` holds at least the file bytes.
pub(crate) fn pread_writev(
    sock: BorrowedFd<'_>,
    pieces: &[Piece<'_>],
    buf: &mut [u8],
    calls: &mut Calls,
) -> io::Result<()> {
    calls.ops += 1;
    let mut used = 0usize;
    let mut spans: Vec<(bool, usize, usize)> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match *p {
            Piece::Mem(b) => spans.push((false, 0, b.len())),
            Piece::File { fd, offset, len } => {
                let n = len as usize;
                if used + n > buf.len() {
                    return Err(io::Error::other("pread_writev: buffer too small"));
                }
                pread_exact(fd, &mut buf[used..used + n], offset, calls)?;
                spans.push((true, used, n));
                used += n;
            }
        }
    }
    let mut iov: Vec<IoSlice<'_>> = pieces
        .iter()
        .zip(&spans)
        .map(|(p, &(from_buf, at, n))| match *p {
            Piece::Mem(b) => IoSlice::new(b),
            Piece::File { .. } if from_buf => IoSlice::new(&buf[at..at + n]),
            Piece::File { .. } => IoSlice::new(&[]),
        })
        .collect();
    writev_all(sock, &mut iov, calls)
}

/// One datagram the classic way: `pread` the file slice, `sendmsg` header + slice.
pub(crate) fn datagram_pread_sendmsg(
    sock: BorrowedFd<'_>,
    header: &[u8],
    file: BorrowedFd<'_>,
    offset: u64,
    buf: &mut [u8],
    calls: &mut Calls,
) -> io::Result<()> {
    pread_exact(file, buf, offset, calls)?;
    let mut iov = [
        libc::iovec {
            iov_base: header.as_ptr() as *mut libc::c_void,
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: `msg` points at `iov`, whose entries point at live buffers; the fd is open.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        calls.writes += 1;
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn file_with(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn received(send: impl FnOnce(BorrowedFd<'_>)) -> Vec<u8> {
        let (a, mut b) = UnixStream::pair().unwrap();
        send(a.as_fd());
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn loops_send_the_same_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let f = file_with(&data);
        let pieces = [
            Piece::Mem(b"head"),
            Piece::File {
                fd: f.as_fd(),
                offset: 100,
                len: 5000,
            },
            Piece::Mem(b"tail"),
        ];
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[100..5100]);
        want.extend_from_slice(b"tail");
        let mut calls = Calls::default();
        assert_eq!(
            received(|s| per_element(s, &pieces, &mut calls).unwrap()),
            want
        );
        assert_eq!((calls.writes, calls.sendfile), (2, 1));
        let mut calls = Calls::default();
        let mut buf = vec![0u8; 1000];
        assert_eq!(
            received(|s| read_write(s, &pieces, &mut buf, &mut calls).unwrap()),
            want
        );
        assert_eq!(calls.writes, 6); // 5008 bytes through a 1000-byte buffer
    }
}
