//! `sendpackets demo`: fast enough, really verified.

mod util;

use std::time::{Duration, Instant};

use util::{bin, json, run, stderr, stdout};

#[test]
fn demo_runs_in_under_a_minute_and_verifies() {
    let start = Instant::now();
    let out = run(bin().args(["demo", "--json"]));
    let took = start.elapsed();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(took < Duration::from_secs(60), "demo took {took:?}");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    let transfers = v["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 4);
    for t in transfers {
        assert_eq!(t["verified"], true, "{t}");
        assert_eq!(t["expected_sha256"], t["received_sha256"]);
    }
    assert_eq!(transfers[1]["bytes"].as_u64().unwrap() >> 20, 256);
    assert_eq!(transfers[2]["datagrams_received"], 512);
}

#[test]
fn demo_table_for_people() {
    let out = run(bin().args(["demo", "--size", "8"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "throughput",
        "sendfile",
        "read/write loop",
        "every byte verified",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn a_corrupted_byte_fails_the_demo() {
    let out = run(bin()
        .args(["demo", "--size", "8"])
        .env("SENDPACKETS_DEMO_CORRUPT", "1"));
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    assert!(stdout(&out).contains("MISMATCH"), "{}", stdout(&out));
    assert!(stderr(&out).contains("verification failed"));

    let out = run(bin()
        .args(["demo", "--size", "8", "--json"])
        .env("SENDPACKETS_DEMO_CORRUPT", "1"));
    assert_eq!(out.status.code(), Some(6));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["transfers"][1]["verified"], false);
    assert_eq!(v["transfers"][0]["verified"], true);
}

#[test]
fn demo_cleans_up_its_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin()
        .args(["demo", "--size", "1", "--quiet"])
        .env("TMPDIR", tmp.path()));
    assert!(out.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn the_comparison_is_repeated_not_a_single_shot() {
    let out = run(bin().args(["demo", "--size", "8", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let cmp = &v["comparison"];
    let rounds = cmp["rounds"].as_u64().unwrap();
    assert!(rounds >= 5, "{cmp}");
    // The order alternates: each contender goes first in some rounds.
    let orders = cmp["order"].as_array().unwrap();
    assert_eq!(orders.len() as u64, rounds);
    assert_ne!(orders[0], orders[1]);
    for name in ["sendpackets", "read_write_loop"] {
        let c = &cmp[name];
        assert_eq!(
            c["bytes_per_sec"].as_array().unwrap().len() as u64,
            rounds,
            "{c}"
        );
        let (min, med, max) = (
            c["bytes_per_sec_min"].as_f64().unwrap(),
            c["bytes_per_sec_median"].as_f64().unwrap(),
            c["bytes_per_sec_max"].as_f64().unwrap(),
        );
        assert!(min <= med && med <= max, "{c}");
        assert!(c["sender_cpu_seconds_per_gb_median"].as_f64().unwrap() >= 0.0);
        assert_eq!(c["rounds_verified"].as_u64().unwrap(), rounds, "{c}");
    }

    let out = run(bin().args(["demo", "--size", "8"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("speedup"), "{text}");
    for needle in ["median", "min-max", "CPU", "sendpackets-bench"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}
