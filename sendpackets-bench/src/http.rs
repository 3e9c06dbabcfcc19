//! Workload 2: HTTP-like messages on one TCP connection: a 200 B header, S bytes of a file and
//! a 50 B trailer, one after another; one operation per message, or one per 1,000 messages; on
//! both paths (loopback, veth).
//!
//! The raw modes of the C harness (loopback only) are written in the bench too — per-element,
//! corked, `MSG_MORE`, copy into one buffer, `pread` + `writev` — so that every path has its
//! ceiling on identically placed buffers.

use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES, Piece};
use crate::buf::{AlignedBuf, Placed};
use crate::fixture::{Fixture, msg_offset};
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::netpath::Path;
use crate::sink::{Transport, stream_run};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

/// A message's header (memory), placed as every bench buffer is.
pub(crate) static HEADER: Placed = Placed::new(&[b'H'; 200]);
/// A message's trailer (memory).
pub(crate) static TRAILER: Placed = Placed::new(&[b'T'; 50]);

/// Messages in one batched operation.
pub(crate) const BATCH: u64 = 1000;

/// File bytes per message.
pub(crate) const SIZES: [u64; 3] = [1024, 16 << 10, 256 << 10];

/// Raw C modes sending one message at a time.
const RAW_PER_MESSAGE: [&str; 5] = ["m-naive", "m-cork", "m-more", "m-copy", "m-writev"];

/// Messages per run: about 0.2–0.4 s of sending, a multiple of [`BATCH`] (both paths, about
/// 15 contenders and 5 rounds each keep the whole `all` well under 30 minutes).
pub(crate) fn count(size: u64, quick: bool) -> u64 {
    let n = if size <= 4096 {
        60_000
    } else if size <= 65536 {
        20_000
    } else {
        2_000
    };
    if quick { n / 10 } else { n }
}

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    let mut out = Vec::new();
    for s in SIZES {
        for batched in [false, true] {
            for path in cfg.paths() {
                out.push(one(cfg, fx, path, s, batched));
            }
        }
    }
    out
}

fn one(cfg: &Config<'_>, fx: &Fixture, path: Path<'_>, size: u64, batched: bool) -> Section {
    let t = Transport::Tcp(path);
    let n = count(size, cfg.quick);
    let per_msg = HEADER.len() as u64 + size + TRAILER.len() as u64;
    let total = n * per_msg;
    let file_len = fx.big_len;
    let group = if batched { BATCH } else { 1 };
    let done = move |calls: Calls| Outcome {
        bytes: total,
        items: n,
        calls: Some(calls),
        ..Outcome::default()
    };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        let name = if batched {
            format!("{name}, 1,000 msgs/op")
        } else {
            name.to_string()
        };
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, total, |tx| {
                let mut list = Vec::with_capacity(3 * group as usize);
                let mut i = 0;
                while i < n {
                    list.clear();
                    for k in i..(i + group).min(n) {
                        push_message(&mut list, fx, k, size, file_len);
                    }
                    baseline::ours(tx.as_fd(), &list, engine, &mut calls)?;
                    i += group;
                }
                Ok(())
            })?;
            Ok(done(calls))
        }));
    }
    if !batched {
        // The same sends through one `Connection` (the socket checked once per connection).
        cs.push(Contender::new(
            "sendpackets Auto, one Connection",
            Kind::Ours,
            move |clock| {
                let mut calls = Calls::default();
                stream_run(t, clock, total, |tx| {
                    let mut conn = sendpackets::Connection::new(tx.as_fd())
                        .map_err(|e| std::io::Error::other(format!("sendpackets: {e}")))?;
                    let mut list = Vec::with_capacity(3);
                    for k in 0..n {
                        list.clear();
                        push_message(&mut list, fx, k, size, file_len);
                        let r = conn
                            .send(&list)
                            .map_err(|e| std::io::Error::other(format!("sendpackets: {e}")))?;
                        calls.add_report(&r);
                    }
                    Ok(())
                })?;
                Ok(done(calls))
            },
        ));
    }
    cs.push(Contender::new(
        "per-element loop (write, sendfile, write)",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, total, |tx| {
                for k in 0..n {
                    let p = pieces(fx, k, size, file_len);
                    baseline::per_element(tx.as_fd(), &p, &mut calls)?;
                }
                Ok(())
            })?;
            Ok(done(calls))
        },
    ));
    if !batched {
        // The raw C harness's message modes, written in the bench (both paths).
        cs.push(Contender::new(
            "corked per-element (cork, write, sendfile, write, uncork)",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                stream_run(t, clock, total, |tx| {
                    for k in 0..n {
                        let p = pieces(fx, k, size, file_len);
                        baseline::corked(tx.as_fd(), &p, &mut calls)?;
                    }
                    Ok(())
                })?;
                Ok(done(calls))
            },
        ));
        cs.push(Contender::new(
            "MSG_MORE header, sendfile, write",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                stream_run(t, clock, total, |tx| {
                    for k in 0..n {
                        let p = pieces(fx, k, size, file_len);
                        baseline::msg_more(tx.as_fd(), &p, &mut calls)?;
                    }
                    Ok(())
                })?;
                Ok(done(calls))
            },
        ));
        let whole = per_msg as usize;
        cs.push(Contender::new(
            "copy into one buffer (pread), one write",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                let mut buf = AlignedBuf::new(whole);
                stream_run(t, clock, total, |tx| {
                    for k in 0..n {
                        let p = pieces(fx, k, size, file_len);
                        baseline::read_write(tx.as_fd(), &p, &mut buf, &mut calls)?;
                    }
                    Ok(())
                })?;
                Ok(done(calls))
            },
        ));
        cs.push(Contender::new(
            "pread + writev(header, range, trailer)",
            Kind::Baseline,
            move |clock| {
                let mut calls = Calls::default();
                let mut buf = AlignedBuf::new(size as usize);
                stream_run(t, clock, total, |tx| {
                    for k in 0..n {
                        let p = pieces(fx, k, size, file_len);
                        baseline::pread_writev(tx.as_fd(), &p, &mut buf, &mut calls)?;
                    }
                    Ok(())
                })?;
                Ok(done(calls))
            },
        ));
    }
    let rw_name = if batched {
        "read/write loop, 64 KiB, flushed per 1,000 msgs"
    } else {
        "read/write loop, 64 KiB, flushed per msg"
    };
    cs.push(Contender::new(rw_name, Kind::Baseline, move |clock| {
        let mut calls = Calls::default();
        let mut buf = AlignedBuf::new(64 << 10);
        stream_run(t, clock, total, |tx| {
            let mut list = Vec::with_capacity(3 * group as usize);
            let mut i = 0;
            while i < n {
                list.clear();
                for k in i..(i + group).min(n) {
                    list.extend(pieces(fx, k, size, file_len));
                }
                baseline::read_write(tx.as_fd(), &list, &mut buf, &mut calls)?;
                i += group;
            }
            Ok(())
        })?;
        Ok(done(calls))
    }));
    if let (Some(h), Path::Loopback) = (&cfg.raw, path) {
        let modes: &[&str] = if batched {
            &["m-batch"]
        } else {
            &RAW_PER_MESSAGE
        };
        for &mode in modes {
            let args = vec![
                "--file".to_string(),
                fx.big.display().to_string(),
                "--msg".into(),
                size.to_string(),
                "--count".into(),
                n.to_string(),
            ];
            cs.push(Contender::new(mode, Kind::Raw, move |_| h.run(mode, &args)));
        }
    }
    let group = format!("http-{size}-{}", if batched { "batch" } else { "msg" });
    let key = crate::section_key(&group, Some(path.name()));
    let title = if batched {
        format!(
            "HTTP-like, S = {}: one operation per 1,000 messages ({}, {n} messages)",
            crate::size_name(size),
            t.name()
        )
    } else {
        format!(
            "HTTP-like, S = {}: one operation per message ({}, {n} messages)",
            crate::size_name(size),
            t.name()
        )
    };
    let series = interleave(&key, cfg.plan, &mut cs);
    let mut notes = vec![format!(
        "Each message: 200 B header (memory) + S bytes of the {} file at a page-aligned offset \
         walking the file (the C harness's formula) + 50 B trailer (memory); no end-of-packet \
         marks. File ranges are open-handle elements (`Element::shared_handle`); building the \
         element list is inside the timed region.",
        crate::size_name(file_len)
    )];
    if batched {
        notes.push(
            "The raw C `m-batch` mode puts 64 messages in one writev (not 1,000); the per-element \
             loop has no notion of a batch and is the same loop as in the per-message table."
                .into(),
        );
    }
    Section {
        key,
        group,
        path: Some(path.name()),
        title,
        notes,
        spec: Spec {
            metric: Metric::Items("msg"),
            calls_per: CallsPer::Item,
            datagrams: false,
        },
        series,
    }
}

fn pieces(fx: &Fixture, k: u64, size: u64, file_len: u64) -> [Piece<'_>; 3] {
    [
        Piece::Mem(HEADER.get()),
        Piece::File {
            fd: fx.file.as_fd(),
            offset: msg_offset(k, size, file_len),
            len: size,
        },
        Piece::Mem(TRAILER.get()),
    ]
}

/// Message `k` as sendpackets elements: header, a range of the big file, trailer.
fn push_message(list: &mut Vec<Element>, fx: &Fixture, k: u64, size: u64, file_len: u64) {
    let off = msg_offset(k, size, file_len);
    list.push(Element::memory(HEADER.get()));
    list.push(Element::shared_handle(fx.handle.clone(), off..off + size));
    list.push(Element::memory(TRAILER.get()));
}
