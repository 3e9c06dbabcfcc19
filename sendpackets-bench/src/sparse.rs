//! Workload 6: a large sparse file over a Unix stream to a receiver that discards; the figure
//! that matters is the peak RSS growth (goal: under 16 MiB).

use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES, Piece};
use crate::buf::AlignedBuf;
use crate::fixture::Fixture;
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::sink::{Transport, stream_run};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    let len: u64 = if cfg.quick { 256 << 20 } else { 4 << 30 };
    let path = match fx.sparse(len) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sparse: cannot create the sparse file: {e}");
            return Vec::new();
        }
    };
    // The first read of a hole fills the page cache with zero pages: done once here, so that the
    // first contender is not the only one to pay for it.
    eprintln!("reading the sparse file once ...");
    if let Err(e) = crate::fixture::warm(&path) {
        eprintln!("sparse: {e}");
        return Vec::new();
    }
    let file = match std::fs::File::open(&path) {
        Ok(f) => std::sync::Arc::new(f),
        Err(e) => {
            eprintln!("sparse: {e}");
            return Vec::new();
        }
    };
    let done = |calls: Calls| Outcome {
        bytes: len,
        items: 1,
        calls: Some(calls),
        ..Outcome::default()
    };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        let path = &path;
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            let mut calls = Calls::default();
            stream_run(Transport::Unix, clock, len, |tx| {
                let list = [Element::file(path.clone(), ..)];
                baseline::ours(tx.as_fd(), &list, engine, &mut calls).map(drop)
            })?;
            Ok(done(calls))
        }));
    }
    let f = &file;
    cs.push(Contender::new(
        "per-element loop (sendfile)",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            stream_run(Transport::Unix, clock, len, |tx| {
                let p = [Piece::File {
                    fd: f.as_fd(),
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
            let mut buf = AlignedBuf::new(64 << 10);
            stream_run(Transport::Unix, clock, len, |tx| {
                let p = [Piece::File {
                    fd: f.as_fd(),
                    offset: 0,
                    len,
                }];
                baseline::read_write(tx.as_fd(), &p, &mut buf, &mut calls)
            })?;
            Ok(done(calls))
        },
    ));
    let plan = crate::measure::Plan {
        reps: 1,
        ..cfg.plan
    };
    let series = interleave("sparse", plan, &mut cs);
    vec![Section {
        key: "sparse".into(),
        group: "sparse".into(),
        path: None,
        title: format!(
            "Sparse file: {} of holes (set_len) over a Unix stream, one run each",
            crate::size_name(len)
        ),
        notes: vec![
            "The goal is a peak RSS growth under 16 MiB for sendpackets. Growth = VmHWM after the \
             run − VmRSS at its start (VmHWM reset through /proc/self/clear_refs); it includes \
             the receiver thread's 1 MiB buffer and its stack. sendpackets gets the file by path."
                .into(),
        ],
        spec: Spec {
            metric: Metric::Bytes,
            calls_per: CallsPer::Run,
            datagrams: false,
        },
        series,
    }]
}
