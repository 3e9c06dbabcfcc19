//! The responders of the `rr` workload: one process per mechanism, one thread each, answering
//! `GET /NAME` with the file `NAME` of one folder (an HTTP/1.1 200 header padded to
//! [`HEADER_LEN`] bytes, then the whole file), keep-alive, in order.
//!
//! Every mechanism but the library's runs in one edge-triggered epoll loop written here (the
//! shape of `shared/limits/rr/limit.c`, but serving by path):
//! - `mem`: header and body from one buffer in memory (`send` until done);
//! - `cork`: `TCP_CORK` on, `send(header)`, `sendfile` until done, `TCP_CORK` off;
//! - `more`: `send(header, MSG_MORE)`, `sendfile` until done;
//! - `copy`: `pread` into a [`COPY_CHUNK`] buffer (the first one after the header), `send`;
//! - `splice`: `send(header, MSG_MORE)`, then file → pipe → socket with `splice`
//!   (`SPLICE_F_MORE` while more of the file follows).
//!
//! `lib` is the library's choice: a current-thread tokio runtime, one task per connection, each
//! response one `sendpackets::tokio::Connection::send` of `[header, file range]` with default
//! options.
//!
//! Each process prints `listening on http://ADDR/` on standard error when it is ready.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Every response header is padded to this many bytes (blank line included), about the size of
/// nginx's (Server, Date, Content-Type, Content-Length, Last-Modified, ETag, Accept-Ranges).
pub(crate) const HEADER_LEN: usize = 240;
/// The read/send chunk of `copy` (the library's `COPY_CHUNK`).
const COPY_CHUNK: usize = 128 * 1024;
/// The pipe of `splice` (1 MiB, the default `pipe-max-size`).
const PIPE_SIZE: i32 = 1 << 20;
/// Listen backlog (1,000 connections arrive at once).
const BACKLOG: i32 = 4096;

/// A mechanism of the epoll responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Mem,
    Cork,
    More,
    Copy,
    Splice,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "mem" => Mode::Mem,
            "cork" => Mode::Cork,
            "more" => Mode::More,
            "copy" => Mode::Copy,
            "splice" => Mode::Splice,
            _ => return None,
        })
    }
}

/// The response header for a body of `len` bytes, padded to [`HEADER_LEN`].
pub(crate) fn header(len: u64) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 200 OK\r\nServer: rr\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nAccept-Ranges: bytes\r\n"
    );
    let pad = HEADER_LEN.saturating_sub(h.len() + 2 + "X-Pad: \r\n".len());
    if pad > 0 {
        h.push_str("X-Pad: ");
        h.push_str(&"x".repeat(pad));
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

#[derive(Debug)]
struct Entry {
    file: std::fs::File,
    len: u64,
    header: Vec<u8>,
    /// `mem`: header and body.
    whole: Vec<u8>,
}

fn load(dir: &Path, mode: Option<Mode>) -> io::Result<HashMap<String, Entry>> {
    let mut files = HashMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let file = std::fs::File::open(e.path())?;
        let len = file.metadata()?.len();
        let header = header(len);
        let whole = if mode == Some(Mode::Mem) {
            let mut w = header.clone();
            w.extend(std::fs::read(e.path())?);
            w
        } else {
            Vec::new()
        };
        files.insert(
            format!("/{name}"),
            Entry {
                file,
                len,
                header,
                whole,
            },
        );
    }
    Ok(files)
}

/// The process's main: `mode` is one of [`Mode`]'s names or `lib`.
pub(crate) fn main(mode: &str, dir: &Path, listen: SocketAddr) -> i32 {
    let r = if mode == "lib" {
        lib_main(dir, listen)
    } else {
        match Mode::parse(mode) {
            Some(m) => epoll_main(m, dir, listen),
            None => Err(io::Error::other(format!("unknown mode {mode}"))),
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rr-server {mode}: {e}");
            1
        }
    }
}

fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(listen)?;
    // SAFETY: `l` is a bound socket; listen only changes its backlog.
    if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    l.set_nonblocking(true)?;
    eprintln!("listening on http://{}/", l.local_addr()?);
    Ok(l)
}

/// Complete requests in `buf` (up to a blank line each): their paths; consumed bytes removed.
fn take_requests(buf: &mut Vec<u8>, out: &mut VecDeque<String>) {
    let mut start = 0;
    while let Some(end) = buf[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
    {
        let req = &buf[start..end];
        let path = req
            .split(|&b| b == b' ')
            .nth(1)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        out.push_back(path);
        start = end;
    }
    buf.drain(..start);
}

// ---------------------------------------------------------------------------------------------
// The epoll responder.

#[derive(Debug)]
struct Resp {
    file: String,
    /// Response bytes sent (header included).
    sent: u64,
    total: u64,
    /// `copy`: the buffer's unsent part and file bytes read; `splice`: file bytes in the pipe
    /// and file bytes spliced into it.
    buf_pos: usize,
    buf_len: usize,
    file_read: u64,
    in_pipe: usize,
}

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    rbuf: Vec<u8>,
    queue: VecDeque<String>,
    cur: Option<Resp>,
    buf: Vec<u8>,
    pipe: Option<(OwnedFd, OwnedFd)>,
}

enum Progress {
    Done,
    Blocked,
    Failed,
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn send(fd: RawFd, b: &[u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `b` is a valid slice for the duration of the call.
    let n = unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), flags | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(last_err())
    } else {
        Ok(n as usize)
    }
}

fn sendfile(sock: RawFd, file: RawFd, off: u64, len: u64) -> io::Result<usize> {
    let mut o = off as libc::off_t;
    // SAFETY: `o` is a valid off_t that outlives the call.
    let n = unsafe { libc::sendfile(sock, file, &mut o, len.min(0x7fff_f000) as usize) };
    if n < 0 {
        Err(last_err())
    } else {
        Ok(n as usize)
    }
}

fn set_cork(fd: RawFd, on: bool) {
    let v: libc::c_int = on.into();
    // SAFETY: `v` is a valid c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn progress(mode: Mode, c: &mut Conn, files: &HashMap<String, Entry>) -> Progress {
    let fd = c.fd.as_raw_fd();
    let r = c.cur.as_mut().expect("a response");
    let Some(e) = files.get(&r.file) else {
        return Progress::Failed;
    };
    let h = e.header.len() as u64;
    let step = |res: io::Result<usize>| match res {
        Ok(0) => Err(Progress::Failed),
        Ok(n) => Ok(n),
        Err(e) if would_block(&e) => Err(Progress::Blocked),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(_) => Err(Progress::Failed),
    };
    macro_rules! go {
        ($e:expr) => {
            match step($e) {
                Ok(n) => n,
                Err(p) => return p,
            }
        };
    }
    match mode {
        Mode::Mem => {
            while r.sent < r.total {
                r.sent += go!(send(fd, &e.whole[r.sent as usize..], 0)) as u64;
            }
        }
        Mode::Cork | Mode::More => {
            if mode == Mode::Cork && r.sent == 0 {
                set_cork(fd, true);
            }
            let flags = if mode == Mode::More {
                libc::MSG_MORE
            } else {
                0
            };
            while r.sent < h {
                r.sent += go!(send(fd, &e.header[r.sent as usize..], flags)) as u64;
            }
            while r.sent < r.total {
                let off = r.sent - h;
                r.sent += go!(sendfile(fd, e.file.as_raw_fd(), off, e.len - off)) as u64;
            }
            if mode == Mode::Cork {
                set_cork(fd, false);
            }
        }
        Mode::Copy => {
            while r.sent < r.total {
                if r.buf_pos == r.buf_len {
                    let mut at = 0;
                    if r.sent == 0 {
                        c.buf[..e.header.len()].copy_from_slice(&e.header);
                        at = e.header.len();
                    }
                    let want = ((COPY_CHUNK - at) as u64).min(e.len - r.file_read) as usize;
                    let mut got = 0;
                    while got < want {
                        // SAFETY: the destination lies inside `c.buf` (COPY_CHUNK bytes).
                        let n = unsafe {
                            libc::pread(
                                e.file.as_raw_fd(),
                                c.buf[at + got..].as_mut_ptr().cast(),
                                want - got,
                                (r.file_read + got as u64) as libc::off_t,
                            )
                        };
                        if n <= 0 {
                            return Progress::Failed;
                        }
                        got += n as usize;
                    }
                    r.file_read += got as u64;
                    r.buf_pos = 0;
                    r.buf_len = at + got;
                }
                let n = go!(send(fd, &c.buf[r.buf_pos..r.buf_len], 0));
                r.buf_pos += n;
                r.sent += n as u64;
            }
        }
        Mode::Splice => {
            let (pr, pw) = c.pipe.as_ref().expect("a pipe");
            while r.sent < h {
                r.sent += go!(send(fd, &e.header[r.sent as usize..], libc::MSG_MORE)) as u64;
            }
            while r.sent < r.total {
                if r.in_pipe == 0 {
                    let mut off = r.file_read as libc::loff_t;
                    let want = (e.len - r.file_read).min(PIPE_SIZE as u64) as usize;
                    // SAFETY: `off` outlives the call; both descriptors are open.
                    let n = unsafe {
                        libc::splice(
                            e.file.as_raw_fd(),
                            &mut off,
                            pw.as_raw_fd(),
                            std::ptr::null_mut(),
                            want,
                            libc::SPLICE_F_MOVE,
                        )
                    };
                    if n <= 0 {
                        return Progress::Failed;
                    }
                    r.in_pipe = n as usize;
                    r.file_read += n as u64;
                }
                let more = if r.file_read < e.len {
                    libc::SPLICE_F_MORE
                } else {
                    0
                };
                // SAFETY: both descriptors are open; no offsets.
                let n = unsafe {
                    libc::splice(
                        pr.as_raw_fd(),
                        std::ptr::null_mut(),
                        fd,
                        std::ptr::null_mut(),
                        r.in_pipe,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK | more,
                    )
                };
                let n = go!(if n < 0 {
                    Err(last_err())
                } else {
                    Ok(n as usize)
                });
                r.in_pipe -= n;
                r.sent += n as u64;
            }
        }
    }
    Progress::Done
}

fn new_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_err());
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETPIPE_SZ on a pipe this process owns; a refusal keeps the default size.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    Ok((r, w))
}

/// Answers what the connection asked; false when it is to be closed.
fn handle(mode: Mode, c: &mut Conn, files: &HashMap<String, Entry>) -> bool {
    let mut rb = [0u8; 16384];
    loop {
        loop {
            if c.cur.is_none() {
                let Some(path) = c.queue.pop_front() else {
                    break;
                };
                let Some(e) = files.get(&path) else {
                    return false;
                };
                c.cur = Some(Resp {
                    file: path,
                    sent: 0,
                    total: e.header.len() as u64 + e.len,
                    buf_pos: 0,
                    buf_len: 0,
                    file_read: 0,
                    in_pipe: 0,
                });
            }
            match progress(mode, c, files) {
                Progress::Done => c.cur = None,
                Progress::Blocked => return true,
                Progress::Failed => return false,
            }
        }
        // SAFETY: `rb` is a valid writable buffer of its length.
        let n = unsafe { libc::read(c.fd.as_raw_fd(), rb.as_mut_ptr().cast(), rb.len()) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return would_block(&last_err());
        }
        c.rbuf.extend_from_slice(&rb[..n as usize]);
        take_requests(&mut c.rbuf, &mut c.queue);
    }
}

fn epoll_main(mode: Mode, dir: &Path, listen: SocketAddr) -> io::Result<()> {
    // SAFETY: ignoring SIGPIPE changes no memory; sends use MSG_NOSIGNAL anyway.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let files = load(dir, Some(mode))?;
    let l = bind(listen)?;
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(last_err());
    }
    // SAFETY: `ep` is a new descriptor nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    const LISTENER: u64 = u64::MAX;
    let ctl = |op: i32, fd: RawFd, events: u32, token: u64| {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the call.
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &mut ev) }
    };
    ctl(
        libc::EPOLL_CTL_ADD,
        l.as_raw_fd(),
        libc::EPOLLIN as u32,
        LISTENER,
    );
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let conn_events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
    loop {
        // SAFETY: `evs` has room for the number of events asked.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 256, -1) };
        if n < 0 {
            let e = last_err();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &evs[..n as usize] {
            let token = ev.u64;
            if token == LISTENER {
                // SAFETY: accept4 on the listener with no address out-parameters.
                while let fd @ 0.. = unsafe {
                    libc::accept4(
                        l.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    )
                } {
                    // SAFETY: accept4 returned a new descriptor nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    let one: libc::c_int = 1;
                    // SAFETY: `one` is a valid c_int of the size given.
                    unsafe {
                        libc::setsockopt(
                            fd.as_raw_fd(),
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        )
                    };
                    let pipe = if mode == Mode::Splice {
                        Some(new_pipe()?)
                    } else {
                        None
                    };
                    let c = Conn {
                        fd,
                        rbuf: Vec::new(),
                        queue: VecDeque::new(),
                        cur: None,
                        buf: if mode == Mode::Copy {
                            vec![0; COPY_CHUNK]
                        } else {
                            Vec::new()
                        },
                        pipe,
                    };
                    let idx = match free.pop() {
                        Some(i) => {
                            conns[i] = Some(c);
                            i
                        }
                        None => {
                            conns.push(Some(c));
                            conns.len() - 1
                        }
                    };
                    let raw = conns[idx].as_ref().expect("just put").fd.as_raw_fd();
                    ctl(libc::EPOLL_CTL_ADD, raw, conn_events, idx as u64);
                    let keep = handle(mode, conns[idx].as_mut().expect("just put"), &files);
                    if !keep {
                        conns[idx] = None;
                        free.push(idx);
                    }
                }
                continue;
            }
            let idx = token as usize;
            let Some(c) = conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if !handle(mode, c, &files) {
                // Closing the descriptor removes it from the epoll set.
                conns[idx] = None;
                free.push(idx);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The library's choice.

fn lib_main(dir: &Path, listen: SocketAddr) -> io::Result<()> {
    use std::sync::Arc;
    let files = load(dir, None)?;
    let table: Arc<HashMap<String, (bytes::Bytes, sendpackets::FileHandle, u64)>> = Arc::new(
        files
            .into_iter()
            .map(|(k, e)| {
                let h = bytes::Bytes::from(e.header);
                (k, (h, sendpackets::FileHandle::new(e.file), e.len))
            })
            .collect(),
    );
    let l = bind(listen)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::from_std(l)?;
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            let table = table.clone();
            tokio::spawn(async move {
                let _ = lib_conn(s, &table).await;
            });
        }
    })
}

async fn lib_conn(
    s: tokio::net::TcpStream,
    table: &HashMap<String, (bytes::Bytes, sendpackets::FileHandle, u64)>,
) -> io::Result<()> {
    use sendpackets::Element;
    use tokio::io::AsyncReadExt;
    let mut conn = sendpackets::tokio::Connection::new(s).map_err(io::Error::other)?;
    let mut rbuf = Vec::new();
    let mut queue = VecDeque::new();
    let mut rb = vec![0u8; 16384];
    loop {
        while let Some(path) = queue.pop_front() {
            let (h, f, len) = table
                .get(&path)
                .ok_or_else(|| io::Error::other("no such file"))?;
            let list = [
                Element::memory(h.clone()),
                Element::shared_handle(f.clone(), 0..*len),
            ];
            conn.send(&list).await.map_err(io::Error::other)?;
        }
        let n = conn.get_mut().read(&mut rb).await?;
        if n == 0 {
            return Ok(());
        }
        rbuf.extend_from_slice(&rb[..n]);
        take_requests(&mut rbuf, &mut queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded() {
        let h = header(1234);
        assert_eq!(h.len(), HEADER_LEN);
        assert!(h.ends_with(b"\r\n\r\n"));
        assert!(
            String::from_utf8(h)
                .unwrap()
                .contains("Content-Length: 1234\r\n")
        );
    }

    #[test]
    fn requests_are_split() {
        let mut b = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c".to_vec();
        let mut q = VecDeque::new();
        take_requests(&mut b, &mut q);
        assert_eq!(q, ["/a", "/b"]);
        assert_eq!(b, b"GET /c");
    }
}
