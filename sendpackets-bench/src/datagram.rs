//! Workload 4: datagrams of 1,200 B (32 B header in memory + 1,168 B file slice) over connected
//! UDP, on both paths (loopback; veth, MTU 1500, where they fit one frame each); what arrived
//! at the receiver is counted too.

use std::os::fd::AsFd;

use sendpackets::Element;

use crate::baseline::{self, ENGINES};
use crate::buf::{AlignedBuf, Placed};
use crate::fixture::Fixture;
use crate::measure::{Clock, Contender, Kind, Outcome, interleave};
use crate::netpath::Path;
use crate::sink::{UDP_IDLE, UdpSink};
use crate::table::{Calls, CallsPer, Metric, Spec};
use crate::{Config, Section};

const HEADER_LEN: usize = 32;
static HEADER: Placed = Placed::new(&[b'D'; HEADER_LEN]);
const SLICE: u64 = 1168;
const DATAGRAM: usize = HEADER_LEN + SLICE as usize;
/// Receive buffer asked for (granted past `rmem_max` only with CAP_NET_ADMIN).
const RCVBUF: usize = 512 << 20;

pub(crate) fn run(cfg: &Config<'_>, fx: &Fixture) -> Vec<Section> {
    cfg.paths().into_iter().map(|p| one(cfg, fx, p)).collect()
}

fn one(cfg: &Config<'_>, fx: &Fixture, path: Path<'_>) -> Section {
    let n: u64 = if cfg.quick { 5_000 } else { 50_000 };
    let file_len = fx.big_len;
    let offset = move |i: u64| (i * SLICE) % (file_len - SLICE);
    let granted = std::cell::Cell::new(0usize);
    let granted = &granted;
    let measured =
        move |clock: &mut Clock,
              send: &mut dyn FnMut(&std::net::UdpSocket, &mut Calls) -> std::io::Result<()>|
              -> std::io::Result<Outcome> {
            let sink = UdpSink::start(path, RCVBUF, DATAGRAM)?;
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
                ..Outcome::default()
            })
        };
    let mut cs: Vec<Contender<'_>> = Vec::new();
    for (name, engine) in ENGINES {
        cs.push(Contender::new(name, Kind::Ours, move |clock| {
            measured(clock, &mut |tx, calls| {
                let mut list = Vec::with_capacity(2 * n as usize);
                for i in 0..n {
                    let off = offset(i);
                    list.push(Element::memory(HEADER.get()));
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
            let mut buf = AlignedBuf::new(SLICE as usize);
            measured(clock, &mut |tx, calls| {
                for i in 0..n {
                    calls.ops += 1;
                    baseline::datagram_pread_sendmsg(
                        tx.as_fd(),
                        HEADER.get(),
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
    let key = crate::section_key("datagram", Some(path.name()));
    let series = interleave(&key, cfg.plan, &mut cs);
    let over = match path {
        Path::Loopback => "127.0.0.1".to_string(),
        Path::Veth(v) => format!("veth to {}", v.ns_addr),
    };
    Section {
        key,
        group: "datagram".into(),
        path: Some(path.name()),
        title: format!(
            "Datagrams: {n} datagrams of {DATAGRAM} B (32 B header + {SLICE} B file slice) in \
             one operation, connected UDP over {over}"
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
    }
}
