//! Workload 1: one large file, in the page cache, over TCP loopback and a Unix stream.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES, Piece};
use crate::fixture::Fixture;
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::sink::{Stream, Transport, stream_run};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

/// Raw C modes that send a file (the memory-only modes are a different workload).
const RAW_TCP: [&str; 5] = ["rw64k", "rw1m", "sendfile", "splice", "uring-splice"];
const RAW_UNIX: [&str; 4] = ["rw64k", "rw1m", "sendfile", "splice"];

pub(crate) fn run(cfg: &Config, fx: &Fixture) -> Vec<Section> {
    [Transport::Tcp, Transport::Unix]
        .into_iter()
        .map(|t| one(cfg, fx, t))
        .collect()
}

fn one(cfg: &Config, fx: &Fixture, t: Transport) -> Section {
    let len = fx.big_len;
    let done = |calls: Calls| Outcome {
        bytes: len,
        items: 1,
        calls: Some(calls),
        ..Outcome::default()
    };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, len, |tx| {
                let list = [Element::shared_handle(fx.handle.clone(), 0..len)];
                baseline::ours(tx.as_fd(), &list, engine, &mut calls).map(drop)
            })?;
            Ok(done(calls))
        }));
    }
    cs.push(Contender::new(
        "per-element loop (sendfile)",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, len, |tx| {
                let p = [Piece::File {
                    fd: fx.file.as_fd(),
                    offset: 0,
                    len,
                }];
                baseline::per_element(tx.as_fd(), &p, &mut calls)
            })?;
            Ok(done(calls))
        },
    ));
    cs.push(Contender::new(
        "read/write loop, 64 KiB",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            let mut buf = vec![0u8; 64 << 10];
            stream_run(t, clock, len, |tx| {
                let p = [Piece::File {
                    fd: fx.file.as_fd(),
                    offset: 0,
                    len,
                }];
                baseline::read_write(tx.as_fd(), &p, &mut buf, &mut calls)
            })?;
            Ok(done(calls))
        },
    ));
    cs.push(Contender::new(
        "std::io::copy",
        Kind::Baseline,
        move |clock| {
            stream_run(t, clock, len, |tx| {
                let mut f = File::open(&fx.big)?;
                // The concrete socket types, so std's sendfile/splice specialisation applies.
                let n = match tx {
                    Stream::Tcp(s) => io::copy(&mut f, &mut &*s)?,
                    Stream::Unix(s) => io::copy(&mut f, &mut &*s)?,
                };
                check(n, len)
            })?;
            Ok(Outcome {
                bytes: len,
                items: 1,
                ..Outcome::default()
            })
        },
    ));
    cs.push(Contender::new(
        "tokio::io::copy",
        Kind::Baseline,
        move |clock| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            stream_run(t, clock, len, |tx| {
                rt.block_on(tokio_copy(tx, &fx.big))
                    .and_then(|n| check(n, len))
            })?;
            Ok(Outcome {
                bytes: len,
                items: 1,
                ..Outcome::default()
            })
        },
    ));
    if let Some(h) = &cfg.raw {
        let modes: &[&str] = match t {
            Transport::Tcp => &RAW_TCP,
            Transport::Unix => &RAW_UNIX,
        };
        for &mode in modes {
            let mut args = vec![
                "--file".to_string(),
                fx.big.display().to_string(),
                "--size".into(),
                len.to_string(),
            ];
            if t == Transport::Unix {
                args.push("--unix".into());
            }
            cs.push(Contender::new(mode, Kind::Raw, move |_| h.run(mode, &args)));
        }
    }
    let key = match t {
        Transport::Tcp => "bulk-tcp",
        Transport::Unix => "bulk-unix",
    };
    let title = format!("Bulk: one {} file over {}", crate::size_name(len), t.name());
    let series = interleave(key, cfg.reps, cfg.budget, &mut cs);
    Section {
        key: key.into(),
        title,
        notes: vec![
            "One element (the whole file, an open handle) per run; a fresh connection per run; \
             timed from the first send call until the receiver has read the last byte."
                .into(),
            "`std::io::copy` from a `File` to a socket is a plain 8 KiB read/write loop: std only \
             uses `sendfile` when the source cannot change under it (socket, pipe) or the \
             destination is a file. `tokio::io::copy` reads the `tokio::fs::File` in 8 KiB chunks \
             on the blocking pool (current-thread runtime)."
                .into(),
        ],
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
