//! Workload 5: 1,000 concurrent tokio connections, each sending one response of a 200 B header
//! and a 64 KiB file range, on a 2-worker multi-thread runtime, on both paths (the receivers'
//! sockets are made in the path's namespace).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sendpackets::{Element, Engine, FileHandle, SendOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

use crate::baseline;
use crate::buf::AlignedBuf;
use crate::fixture::Fixture;
use crate::http::HEADER;
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::netpath::Path;
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

/// File bytes per response.
const BODY: u64 = 64 << 10;
/// A whole round (connections excluded) is given up after this long.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// How one connection sends its response.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// `sendpackets::tokio::send_with`.
    Ours(Engine),
    /// `write_all(header)`, then `sendfile` each time the socket is writable.
    PerElement,
    /// `write_all(header)`, `pread` 64 KiB (on the runtime thread), `write_all`.
    ReadWrite,
    /// `write_all(header)`, then `tokio::io::copy` from a `tokio::fs::File` (seek + take).
    TokioCopy,
}

#[derive(Debug)]
struct Ctx {
    handle: FileHandle,
    file: Arc<std::fs::File>,
    path: PathBuf,
    len: u64,
}

impl Ctx {
    fn offset(&self, i: usize) -> u64 {
        ((i as u64 * BODY) % (self.len - BODY + 1)) & !4095
    }
}

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    cfg.paths()
        .into_iter()
        .filter_map(|p| one(cfg, fx, p))
        .collect()
}

fn one(cfg: &Config<'_>, fx: &Fixture, path: Path<'_>) -> Option<Section> {
    let conns: usize = if cfg.quick { 200 } else { 1000 };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async: cannot build the runtime: {e}");
            return None;
        }
    };
    let ctx = Arc::new(Ctx {
        handle: fx.handle.clone(),
        file: fx.file.clone(),
        path: fx.big.clone(),
        len: fx.big_len,
    });
    let total = conns as u64 * (HEADER.len() as u64 + BODY);
    let ways = [
        (
            "sendpackets::tokio Auto",
            Kind::Ours,
            Way::Ours(Engine::Auto),
        ),
        (
            "sendpackets::tokio ZeroCopy",
            Kind::Ours,
            Way::Ours(Engine::ZeroCopy),
        ),
        (
            "sendpackets::tokio Portable",
            Kind::Ours,
            Way::Ours(Engine::Portable),
        ),
        (
            "per-element (write_all, sendfile on readiness)",
            Kind::Baseline,
            Way::PerElement,
        ),
        (
            "read/write, 64 KiB (pread + write_all)",
            Kind::Baseline,
            Way::ReadWrite,
        ),
        (
            "tokio::io::copy from tokio::fs::File",
            Kind::Baseline,
            Way::TokioCopy,
        ),
    ];
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, kind, way) in ways {
        let rt = &rt;
        let ctx = ctx.clone();
        cs.push(Contender::new(name, kind, move |clock| {
            let (servers, clients) = rt.block_on(connect(path, conns))?;
            clock.start();
            let calls = rt.block_on(round(way, ctx.clone(), servers, clients, total))?;
            Ok(Outcome {
                bytes: total,
                items: conns as u64,
                calls,
                ..Outcome::default()
            })
        }));
    }
    let key = crate::section_key("async", Some(path.name()));
    let series = interleave(&key, cfg.plan, &mut cs);
    Some(Section {
        key,
        group: "async".into(),
        path: Some(path.name()),
        title: format!(
            "Async: {conns} concurrent tokio connections, each one response of 200 B header + \
             64 KiB file range (TCP over {}, 2 runtime workers)",
            path.name()
        ),
        notes: vec![
            "Connections are made before the clock starts; timed from spawning the senders until \
             every receiver task (same runtime, 16 KiB buffer each) has read to end of stream. \
             Throughput counts responses. sendpackets runs with its default FileIo (files read \
             on the runtime thread; the file is in the page cache)."
                .into(),
        ],
        spec: Spec {
            metric: Metric::Items("resp"),
            calls_per: CallsPer::Item,
            datagrams: false,
        },
        series,
    })
}

/// `n` connected pairs: (sender, receiver). The receivers are accepted by a listener in the
/// path's namespace; the senders connect to it from this one.
async fn connect(path: Path<'_>, n: usize) -> io::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let std_listener = crate::sink::listen(path, 4096)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(listener.accept().await?.0);
        }
        Ok::<_, io::Error>(v)
    });
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        senders.push(TcpStream::connect(addr).await?);
    }
    let receivers = tokio::time::timeout(ROUND_TIMEOUT, accept)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "accepting timed out"))?
        .map_err(io::Error::other)??;
    Ok((senders, receivers))
}

/// Every sender and receiver at once; returns the summed kernel calls of sendpackets.
async fn round(
    way: Way,
    ctx: Arc<Ctx>,
    servers: Vec<TcpStream>,
    clients: Vec<TcpStream>,
    total: u64,
) -> io::Result<Option<Calls>> {
    let work = async {
        let receivers: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut buf = AlignedBuf::new(16 << 10);
                    let mut got = 0u64;
                    loop {
                        let n = c.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, io::Error>(got);
                        }
                        got += n as u64;
                    }
                })
            })
            .collect();
        let senders: Vec<_> = servers
            .into_iter()
            .enumerate()
            .map(|(i, s)| tokio::spawn(respond(way, ctx.clone(), s, i)))
            .collect();
        let mut calls = Calls::default();
        for s in senders {
            if let Some(c) = s.await.map_err(io::Error::other)?? {
                calls.ops += c.ops;
                calls.writes += c.writes;
                calls.sendfile += c.sendfile;
                calls.reads += c.reads;
                calls.cork += c.cork;
                calls.waits += c.waits;
            }
        }
        let mut got = 0;
        for r in receivers {
            got += r.await.map_err(io::Error::other)??;
        }
        if got != total {
            return Err(io::Error::other(format!(
                "receivers got {got} bytes, {total} were sent"
            )));
        }
        Ok(matches!(way, Way::Ours(_)).then_some(calls))
    };
    tokio::time::timeout(ROUND_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "round timed out"))?
}

/// One connection's response, then end of stream.
async fn respond(way: Way, ctx: Arc<Ctx>, mut s: TcpStream, i: usize) -> io::Result<Option<Calls>> {
    let off = ctx.offset(i);
    let mut calls = None;
    match way {
        Way::Ours(engine) => {
            let list = [
                Element::memory(HEADER.get()),
                Element::shared_handle(ctx.handle.clone(), off..off + BODY),
            ];
            let opts = SendOptions::new().engine(engine);
            let r = sendpackets::tokio::send_with(&s, &list, &opts)
                .await
                .map_err(|e| io::Error::other(format!("sendpackets: {e}")))?;
            let mut c = Calls::default();
            c.add_report(&r);
            calls = Some(c);
        }
        Way::PerElement => {
            s.write_all(HEADER.get()).await?;
            sendfile_async(&s, &ctx.file, off, BODY).await?;
        }
        Way::ReadWrite => {
            s.write_all(HEADER.get()).await?;
            let mut buf = AlignedBuf::new(BODY as usize);
            baseline::pread_exact(ctx.file.as_fd(), &mut buf, off, &mut Calls::default())?;
            s.write_all(&buf).await?;
        }
        Way::TokioCopy => {
            s.write_all(HEADER.get()).await?;
            let mut f = tokio::fs::File::open(&ctx.path).await?;
            f.seek(io::SeekFrom::Start(off)).await?;
            let n = tokio::io::copy(&mut f.take(BODY), &mut s).await?;
            if n != BODY {
                return Err(io::Error::other(format!("copied {n} of {BODY} bytes")));
            }
        }
    }
    s.shutdown().await?;
    Ok(calls)
}

/// `sendfile` on a non-blocking tokio socket, waiting for writability between calls.
async fn sendfile_async(
    s: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut off = offset as libc::off_t;
    let end = (offset + len) as libc::off_t;
    while off < end {
        s.writable().await?;
        let r = s.try_io(Interest::WRITABLE, || {
            let chunk = (end - off) as usize;
            // SAFETY: `off` is a live, writable off_t; both descriptors are open.
            let n = unsafe { libc::sendfile(s.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n)
            }
        });
        match r {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "sendfile: file truncated",
                ));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
