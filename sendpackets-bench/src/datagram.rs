//! Workload 4: datagrams of 1,200 B (32 B header in memory + 1,168 B file slice) over connected
//! UDP loopback; what arrived at the receiver is counted too.

use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES};
use crate::fixture::Fixture;
use crate::measure::{Clock, Contender, Kind, Outcome, interleave};
use crate::sink::{UDP_IDLE, UdpSink};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

static HEADER: [u8; 32] = [b'D'; 32];
const SLICE: u64 = 1168;
const DATAGRAM: usize = HEADER.len() + SLICE as usize;
/// Receive buffer asked for (granted past `rmem_max` only with CAP_NET_ADMIN).
const RCVBUF: usize = 512 << 20;

pub(crate) fn run(cfg: &Config, fx: &Fixture) -> Vec<Section> {
    let n: u64 = if cfg.quick { 5_000 } else { 50_000 };
    let file_len = fx.big_len;
    let offset = move |i: u64| (i * SLICE) % (file_len - SLICE);
    let granted = std::cell::Cell::new(0usize);
    let granted = &granted;
    let measured =
        move |clock: &mut Clock,
              send: &mut dyn FnMut(&std::net::UdpSocket, &mut Calls) -> std::io::Result<()>|
              -> std::io::Result<Outcome> {
            let sink = UdpSink::start(RCVBUF, DATAGRAM)?;
            granted.set(sink.rcvbuf);
            let tx = sink.connected_sender()?;
            let mut calls = Calls::default();
            clock.start();
            let start = clock.started_at();
            let sent = send(&tx, &mut calls);
            clock.stop_wall();
            let arrivals = sink.finish()?;
            sent?;
            if arrivals.wrong_size > 0 {
                return Err(std::io::Error::other(format!(
                    "{} datagrams arrived with the wrong size",
                    arrivals.wrong_size
                )));
            }
            let secs = arrivals
                .last
                .map_or(0.0, |l| l.duration_since(start).as_secs_f64());
            Ok(Outcome {
                bytes: n * DATAGRAM as u64,
                items: n,
                arrived: Some((arrivals.datagrams, secs)),
                calls: Some(calls),
                external: None,
            })
        };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            measured(clock, &mut |tx, calls| {
                let mut list = Vec::with_capacity(2 * n as usize);
                for i in 0..n {
                    let off = offset(i);
                    list.push(Element::memory(&HEADER[..]));
                    list.push(
                        Element::shared_handle(fx.handle.clone(), off..off + SLICE).end_of_packet(),
                    );
                }
                baseline::ours(tx.as_fd(), &list, engine, calls).map(drop)
            })
        }));
    }
    cs.push(Contender::new(
        "pread + sendmsg(iovec) per datagram",
        Kind::Baseline,
        move |clock| {
            let mut buf = vec![0u8; SLICE as usize];
            measured(clock, &mut |tx, calls| {
                for i in 0..n {
                    calls.ops += 1;
                    baseline::datagram_pread_sendmsg(
                        tx.as_fd(),
                        &HEADER,
                        fx.file.as_fd(),
                        offset(i),
                        &mut buf,
                        calls,
                    )?;
                }
                Ok(())
            })
        },
    ));
    let series = interleave("datagram", cfg.reps, cfg.budget, &mut cs);
    vec![Section {
        key: "datagram".into(),
        title: format!(
            "Datagrams: {n} datagrams of {DATAGRAM} B (32 B header + {SLICE} B file slice) in \
             one operation, connected UDP over 127.0.0.1"
        ),
        notes: vec![format!(
            "Wall time is the sender's (until the send returned); \"arrived/s\" is datagrams \
                 received divided by the time from the start to the last arrival; the receiver \
                 thread (SO_RCVBUF granted: {} MiB) stops {} ms after the sender finished and \
                 nothing more arrives. Ratios compare datagrams sent per second. The per-element \
                 loop does not apply (each element would be its own datagram); the raw C harness \
                 has no datagram mode.",
            granted.get() >> 20,
            UDP_IDLE.as_millis()
        )],
        spec: Spec {
            metric: Metric::Items("datagram"),
            calls_per: CallsPer::Item,
            datagrams: true,
        },
        series,
    }]
}
