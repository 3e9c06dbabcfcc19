//! Workload 3: 10,000 memory elements of 100 B in one operation, over TCP on both paths.

use std::io::IoSlice;
use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES, Piece};
use crate::buf::AlignedBuf;
use crate::measure::{Contender, Kind, Outcome, interleave};
use crate::netpath::Path;
use crate::sink::{Transport, stream_run};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

/// Elements per operation.
const ELEMENTS: usize = 10_000;
/// Bytes per element.
const ELEMENT_LEN: usize = 100;

pub(crate) fn run(cfg: &Config<'_>) -> Vec<Section> {
    // Distinct 100 B slices of one 1 MB buffer (placed as every bench buffer), alive for the
    // whole program.
    let data = AlignedBuf::leak_filled(ELEMENTS * ELEMENT_LEN, |i| (i % 251) as u8);
    cfg.paths().into_iter().map(|p| one(cfg, p, data)).collect()
}

fn one(cfg: &Config<'_>, path: Path<'_>, data: &'static [u8]) -> Section {
    let t = Transport::Tcp(path);
    let ops: u64 = if cfg.quick { 5 } else { 30 };
    let slices = || data.chunks_exact(ELEMENT_LEN);
    let total = ops * data.len() as u64;
    let done = move |calls: Calls| Outcome {
        bytes: total,
        items: ops * ELEMENTS as u64,
        calls: Some(calls),
        ..Outcome::default()
    };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, total, |tx| {
                for _ in 0..ops {
                    let list: Vec<Element> = slices().map(Element::memory).collect();
                    baseline::ours(tx.as_fd(), &list, engine, &mut calls)?;
                }
                Ok(())
            })?;
            Ok(done(calls))
        }));
    }
    cs.push(Contender::new(
        "per-element loop (a write per element)",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, total, |tx| {
                for _ in 0..ops {
                    let p: Vec<Piece<'_>> = slices().map(Piece::Mem).collect();
                    baseline::per_element(tx.as_fd(), &p, &mut calls)?;
                }
                Ok(())
            })?;
            Ok(done(calls))
        },
    ));
    cs.push(Contender::new(
        "copy into a 64 KiB buffer + write",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            let mut buf = AlignedBuf::new(64 << 10);
            stream_run(t, clock, total, |tx| {
                for _ in 0..ops {
                    let p: Vec<Piece<'_>> = slices().map(Piece::Mem).collect();
                    baseline::read_write(tx.as_fd(), &p, &mut buf, &mut calls)?;
                }
                Ok(())
            })?;
            Ok(done(calls))
        },
    ));
    cs.push(Contender::new(
        "writev, 1,024 buffers a call",
        Kind::Baseline,
        move |clock| {
            let mut calls = Calls::default();
            stream_run(t, clock, total, |tx| {
                for _ in 0..ops {
                    calls.ops += 1;
                    let mut v: Vec<IoSlice<'_>> = slices().map(IoSlice::new).collect();
                    baseline::writev_all(tx.as_fd(), &mut v, &mut calls)?;
                }
                Ok(())
            })?;
            Ok(done(calls))
        },
    ));
    let key = crate::section_key("small", Some(path.name()));
    let series = interleave(&key, cfg.plan, &mut cs);
    Section {
        key,
        group: "small".into(),
        path: Some(path.name()),
        title: format!(
            "Small elements: {ELEMENTS} memory elements of {ELEMENT_LEN} B per operation, \
             {ops} operations per run ({})",
            t.name()
        ),
        notes: vec![
            "Throughput counts elements. The list (or iovec array) is built inside the timed \
             region, once per operation."
                .into(),
        ],
        spec: Spec {
            metric: Metric::Items("elem"),
            calls_per: CallsPer::Op,
            datagrams: false,
        },
        series,
    }
}
