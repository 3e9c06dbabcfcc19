//! Workload 1: one large file in the page cache, alone and as header + file + trailer, over TCP
//! on both paths (loopback, veth) and over a Unix stream.
//!
//! The rows that answer the policy question "ranges ≥ 1 MiB: `sendfile` or a 1 MiB copy?":
//! sendpackets `ZeroCopy` (always `sendfile`) against `Auto` (the library's rule) and
//! `Portable`, beside a raw `sendfile` loop and a raw 1 MiB read/write loop on identically
//! placed buffers; and for "cork or not": the corked, uncorked and `MSG_MORE` header + file +
//! trailer loops.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES, Piece};
use crate::buf::AlignedBuf;
use crate::fixture::Fixture;
use crate::http::{HEADER, TRAILER};
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::netpath::Path;
use crate::sink::{Drained, Stream, Transport, stream_run};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

/// Raw C modes that send a file (the memory-only modes are a different workload).
const RAW_TCP: [&str; 5] = ["rw64k", "rw1m", "sendfile", "splice", "uring-splice"];
const RAW_UNIX: [&str; 4] = ["rw64k", "rw1m", "sendfile", "splice"];
/// Raw C modes for header + file + trailer (its message modes with one message of the file).
const RAW_HTF: [&str; 3] = ["m-naive", "m-cork", "m-more"];

/// The copy loop's buffer: 1 MiB, the library's copy chunk for bulk ranges.
pub(crate) const COPY_BUF: usize = 1 << 20;

/// What one bulk table sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The whole file, one element.
    File,
    /// 200 B header + the whole file + 50 B trailer.
    HeaderFileTrailer,
}

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    let mut out = Vec::new();
    for path in cfg.paths() {
        out.push(one(cfg, fx, Transport::Tcp(path), Shape::File, fx.big_len));
    }
    for path in cfg.paths() {
        out.push(one(
            cfg,
            fx,
            Transport::Tcp(path),
            Shape::HeaderFileTrailer,
            fx.big_len,
        ));
    }
    out.push(one(cfg, fx, Transport::Unix, Shape::File, fx.big_len));
    out
}

/// One bulk table: every contender sends `len` bytes of the big file (alone or framed) over `t`.
pub(crate) fn one(
    cfg: &Config<'_>,
    fx: &Fixture,
    t: Transport<'_>,
    shape: Shape,
    len: u64,
) -> Section {
    let framed = shape == Shape::HeaderFileTrailer;
    let extra = if framed {
        (HEADER.len() + TRAILER.len()) as u64
    } else {
        0
    };
    let total = len + extra;
    let done = move |calls: Option<Calls>, d: Drained| Outcome {
        bytes: total,
        items: 1,
        calls,
        max_gap: Some(d.max_gap),
        ..Outcome::default()
    };
    let pieces = move || -> Vec<Piece<'_>> {
        let file = Piece::File {
            fd: fx.file.as_fd(),
            offset: 0,
            len,
        };
        if framed {
            vec![Piece::Mem(HEADER.get()), file, Piece::Mem(TRAILER.get())]
        } else {
            vec![file]
        }
    };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            let mut calls = Calls::default();
            let d = stream_run(t, clock, total, |tx| {
                let mut list = Vec::with_capacity(3);
                if framed {
                    list.push(Element::memory(HEADER.get()));
                }
                list.push(Element::shared_handle(fx.handle.clone(), 0..len));
                if framed {
                    list.push(Element::memory(TRAILER.get()));
                }
                baseline::ours(tx.as_fd(), &list, engine, &mut calls).map(drop)
            })?;
            Ok(done(Some(calls), d))
        }));
    }
    let per_element_name = if framed {
        "per-element loop (write, sendfile, write)"
    } else {
        "raw sendfile loop"
    };
    cs.push(Contender::new(
        per_element_name,
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            let d = stream_run(t, clock, total, |tx| {
                baseline::per_element(tx.as_fd(), &pieces(), &mut calls)
            })?;
            Ok(done(Some(calls), d))
        },
    ));
    if framed && matches!(t, Transport::Tcp(_)) {
        cs.push(Contender::new(
            "corked (TCP_CORK, write, sendfile, write, uncork)",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                let d = stream_run(t, clock, total, |tx| {
                    baseline::corked(tx.as_fd(), &pieces(), &mut calls)
                })?;
                Ok(done(Some(calls), d))
            },
        ));
        cs.push(Contender::new(
            "MSG_MORE header, sendfile, write",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                let d = stream_run(t, clock, total, |tx| {
                    baseline::msg_more(tx.as_fd(), &pieces(), &mut calls)
                })?;
                Ok(done(Some(calls), d))
            },
        ));
    }
    for (name, size) in [
        ("read/write loop, 64 KiB", 64usize << 10),
        ("read/write loop, 1 MiB (copy)", COPY_BUF),
    ] {
        cs.push(Contender::new(name, Kind::Baseline, move |clock| {
            let mut calls = Calls::default();
            let mut buf = AlignedBuf::new(size);
            let d = stream_run(t, clock, total, |tx| {
                baseline::read_write(tx.as_fd(), &pieces(), &mut buf, &mut calls)
            })?;
            Ok(done(Some(calls), d))
        }));
    }
    if !framed {
        cs.push(Contender::new(
            "std::io::copy",
            Kind::Baseline,
            move |clock| {
                let d = stream_run(t, clock, total, |tx| {
                    let mut f = File::open(&fx.big)?;
                    // The concrete socket types, so std's sendfile/splice specialisation applies.
                    let n = match tx {
                        Stream::Tcp(s) => io::copy(&mut f, &mut &*s)?,
                        Stream::Unix(s) => io::copy(&mut f, &mut &*s)?,
                    };
                    check(n, len)
                })?;
                Ok(done(None, d))
            },
        ));
        cs.push(Contender::new(
            "tokio::io::copy",
            Kind::Baseline,
            move |clock| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let d = stream_run(t, clock, total, |tx| {
                    rt.block_on(tokio_copy(tx, &fx.big))
                        .and_then(|n| check(n, len))
                })?;
                Ok(done(None, d))
            },
        ));
    }
    let raw_modes: &[&str] = match (t, framed) {
        (Transport::Tcp(Path::Loopback), false) => &RAW_TCP,
        (Transport::Tcp(Path::Loopback), true) => &RAW_HTF,
        (Transport::Unix, false) => &RAW_UNIX,
        _ => &[],
    };
    if let Some(h) = &cfg.raw {
        for &mode in raw_modes {
            let mut args = vec!["--file".to_string(), fx.big.display().to_string()];
            if framed {
                args.extend([
                    "--msg".into(),
                    len.to_string(),
                    "--count".into(),
                    "1".into(),
                ]);
            } else {
                args.extend(["--size".into(), len.to_string()]);
            }
            if matches!(t, Transport::Unix) {
                args.push("--unix".into());
            }
            cs.push(Contender::new(mode, Kind::Raw, move |_| h.run(mode, &args)));
        }
    }
    let (group, path) = match (t, framed) {
        (Transport::Unix, _) => ("bulk-unix".to_string(), None),
        (Transport::Tcp(p), false) => ("bulk-tcp".to_string(), Some(p.name())),
        (Transport::Tcp(p), true) => ("bulk-htf".to_string(), Some(p.name())),
    };
    let key = crate::section_key(&group, path);
    let what = if framed {
        format!(
            "200 B header + one {} file + 50 B trailer",
            crate::size_name(len)
        )
    } else {
        format!("one {} file", crate::size_name(len))
    };
    let title = format!("Bulk: {what} over {}", t.name());
    let series = interleave(&key, cfg.plan, &mut cs);
    let mut notes = vec![
        "A fresh connection per run; timed from the first send call until the receiver has read \
         the last byte. The file is one open-handle element (`Element::shared_handle`); header \
         and trailer are memory elements."
            .into(),
    ];
    if !framed {
        notes.push(
            "`std::io::copy` from a `File` to a socket is a plain 8 KiB read/write loop: std \
             only uses `sendfile` when the source cannot change under it (socket, pipe) or the \
             destination is a file. `tokio::io::copy` reads the `tokio::fs::File` in 8 KiB \
             chunks on the blocking pool (current-thread runtime)."
                .into(),
        );
    }
    Section {
        key,
        group,
        path,
        title,
        notes,
        spec: Spec {
            metric: Metric::Bytes,
            calls_per: CallsPer::Run,
            datagrams: false,
        },
        series,
    }
}

fn check(n: u64, len: u64) -> io::Result<()> {
    if n == len {
        Ok(())
    } else {
        Err(io::Error::other(format!("copied {n} of {len} bytes")))
    }
}

/// `tokio::io::copy` from a `tokio::fs::File` to the stream, on the current runtime.
async fn tokio_copy(tx: &Stream, path: &std::path::Path) -> io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::File::open(path).await?;
    match tx {
        Stream::Tcp(s) => {
            let std_sock = s.try_clone()?;
            std_sock.set_nonblocking(true)?;
            let mut s = tokio::net::TcpStream::from_std(std_sock)?;
            let n = tokio::io::copy(&mut f, &mut s).await?;
            s.flush().await?;
            Ok(n)
        }
        Stream::Unix(s) => {
            let std_sock = s.try_clone()?;
            std_sock.set_nonblocking(true)?;
            let mut s = tokio::net::UnixStream::from_std(std_sock)?;
            let n = tokio::io::copy(&mut f, &mut s).await?;
            s.flush().await?;
            Ok(n)
        }
    }
}
