//! The permanent seeded soak (issue 11): random lists through every front end, socket kind and
//! peer behaviour, checked byte for byte against a model of what the list must put on the wire,
//! with byte-exact resumes from `remaining()`; and files that change under a running send.
//!
//! Bounded by the wall clock: about 60 s for the whole target by default, longer with
//! `SENDPACKETS_SOAK_SECS=<seconds>`. The seed comes from `SENDPACKETS_SOAK_SEED` or the clock;
//! every failure names the seed, the test, the case and its parameters, and the command that
//! replays that case alone (`SENDPACKETS_SOAK_CASE=<index>`). A test goes on after a failing
//! case and reports up to 5 of them (`SENDPACKETS_SOAK_MAX_FAILURES=<n>`). A case that hangs
//! aborts the process after printing the same. With `-- --nocapture`, each test prints what it
//! covered (front ends, sockets, peers, outcomes, resumes, changes to files).
//!
//! ```sh
//! cargo test -p sendpackets --test soak                                  # about a minute
//! SENDPACKETS_SOAK_SECS=1800 cargo test -p sendpackets --test soak -- --nocapture
//! SENDPACKETS_SOAK_SEED=123 SENDPACKETS_SOAK_CASE=45 cargo test -p sendpackets --test soak soak_random_lists
//! ```
//!
//! A replayed case has the same list, front end, socket, peer and options; what depends on
//! timing (where a reset or a cancel lands) may differ.
//!
//! The tests of this target run one at a time (they count this process's descriptors, and two of
//! them lower its descriptor limit).
//!
//! What a send must deliver comes from the one model the other tests use (`util::model`).
//! The modules: `harness` (seeds, replay, the hang watch, the case loop and its per-case
//! descriptor check), `peers` (socket pairs and what the receiving end does), `limits`
//! (descriptor limits lowered and filled), `fronts` (one send through any front end, and what it
//! returned), `checks` (received bytes and progress against the model), `lists` (random lists),
//! and one module per kind of case: `random` (random lists to every peer), `churn` (files that
//! change around a send).

#[path = "../util/mod.rs"]
mod util;

mod checks;
mod churn;
mod fronts;
mod harness;
mod limits;
mod lists;
mod peers;
mod random;

use std::os::fd::AsFd;
use std::thread;

use sendpackets::{Element, Engine, SendOptions};

use checks::{expect_exact, expect_prefix, model_of};
use churn::{CHURN_NOFILE, churn_between_case, churn_during_case, stall_bytes};
use fronts::{VIAS, Via};
use harness::{
    SHARE_CHURN_BETWEEN, SHARE_CHURN_DURING, SHARE_RANDOM, Stats, serial, soak_loop, verdict,
};
use limits::{LowLimit, Squeeze};
use lists::Pool;
use peers::{Sock, StreamPeer, receive_stream, stream_pair};
use random::{combinations, random_case, warm_up};

// The tests live here, at the root, so that their names (what CI and the replay lines name)
// stay `soak_random_lists`, `churn_during_sends`, `churn_between_sends` and
// `descriptor_shortage_mid_send`.

/// Random lists through every front end, socket kind and peer behaviour, byte for byte against
/// the model, with resumes from what a failed or dropped send left.
#[test]
fn soak_random_lists() {
    let _serial = serial();
    let pool = Pool::new();
    warm_up(&pool);
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let combos = combinations().len() as u64;
    let result = soak_loop(
        "soak_random_lists",
        SHARE_RANDOM,
        combos.min(20),
        |index, log| random_case(index, &pool, log, &mut stats),
    );
    stats.print("soak_random_lists");
    eprintln!("soak_random_lists: {combos} combinations of front end, socket and peer");
    verdict(result, fds_before);
}

/// Files truncated, grown, renamed over, deleted and re-created while a send is held after its
/// checks, or at a random moment: files the send keeps open and files past its open budget
/// (~200 files under a descriptor limit of 256, reopened by path). Never new bytes on the wire:
/// either the bytes as checked, or `FileChanged` / `FileTruncated` with exact progress.
#[test]
fn churn_during_sends() {
    let _serial = serial();
    let _ = stall_bytes();
    let _limit = LowLimit::to(CHURN_NOFILE);
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let result = soak_loop("churn_during_sends", SHARE_CHURN_DURING, 8, |index, log| {
        churn_during_case(index, log, &mut stats)
    });
    stats.print("churn_during_sends");
    verdict(result, fds_before);
}

/// Files changed between two sends of the same list: the second send sends them as they are
/// then, or fails its checks with nothing sent.
#[test]
fn churn_between_sends() {
    let _serial = serial();
    let fds_before = util::open_fds();
    let mut stats = Stats::default();
    let result = soak_loop(
        "churn_between_sends",
        SHARE_CHURN_BETWEEN,
        4,
        |index, log| churn_between_case(index, log, &mut stats),
    );
    stats.print("churn_between_sends");
    verdict(result, fds_before);
}

/// A send of 200 files (more than the open budget) with 2 free descriptors: the send must
/// close its other files and retry rather than fail (issue 11, item 2); if it does fail, its
/// progress must still be exact.
#[test]
fn descriptor_shortage_mid_send() {
    let _serial = serial();
    let files = util::Files::new();
    let list: Vec<Element> = (0..200)
        .flat_map(|i| {
            let path = files.make(&format!("f{i:03}.bin"), 20_000, i as u8);
            [Element::memory(format!("#{i}:")), Element::file(path, ..)]
        })
        .collect();
    let m = model_of(&list);
    let fds_before = util::open_fds();
    let mut failures = Vec::new();
    for (via, engine) in [
        (Via::Blocking, Engine::Auto),
        (Via::Connection, Engine::Portable),
        (Via::CurrentThread, Engine::Auto),
        (Via::MultiThread, Engine::ZeroCopy),
    ]
    .into_iter()
    .filter(|(via, _)| VIAS.contains(via))
    {
        let opts = SendOptions::new().engine(engine);
        let (fd, end) = stream_pair(Sock::Unix, false);
        let reader = thread::spawn(move || receive_stream(end, StreamPeer::ReadAll));
        let sock = fd.as_fd();
        let r = match via {
            Via::Blocking => {
                let _squeeze = Squeeze::leave(2);
                sendpackets::send_with(sock, &list, &opts)
            }
            Via::Connection => {
                let mut conn = sendpackets::Connection::new(sock).unwrap();
                conn.set_options(opts.clone());
                let _squeeze = Squeeze::leave(2);
                conn.send(&list)
            }
            #[cfg(feature = "tokio")]
            _ => fronts::asynch::send_squeezed(via, sock, &list, &opts, 2),
            #[cfg(not(feature = "tokio"))]
            _ => unreachable!(),
        };
        drop(fd);
        let got = reader
            .join()
            .expect("receiver thread")
            .expect("receiver read");
        match r {
            Ok(report) => {
                expect_exact(&got, &m.bytes, &m, &format!("{via:?} {engine:?}"));
                assert_eq!(report.bytes_sent, m.bytes.len() as u64);
            }
            Err(e) => {
                // Whatever the verdict, the progress is exact.
                assert_eq!(e.progress().bytes_sent, got.len() as u64, "{via:?}: {e}");
                expect_prefix(&got, &m, &format!("{via:?}"));
                m.check_progress(&e.progress(), &format!("{via:?}"));
                failures.push(format!("{via:?} {engine:?}: {e}"));
            }
        }
    }
    assert_eq!(util::open_fds(), fds_before, "every descriptor was closed");
    assert!(
        failures.is_empty(),
        "with 2 free descriptors, 200 files: the send failed instead of closing its other \
         files and retrying:\n  {}",
        failures.join("\n  ")
    );
}
