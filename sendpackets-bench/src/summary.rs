//! The targets of issue 12, each row on loopback and on veth, checked against the run's own
//! figures.

use crate::Section;
use crate::measure::Kind;
use crate::table::{
    Metric, Table, best_raw, cpu_per_gb, fmt_mib, fmt_rate, fmt_ratio, named, throughput,
};

const AUTO: &str = "sendpackets Auto";
const CONNECTION: &str = "sendpackets Auto, one Connection";

/// Bulk: at least this share of the best raw mode's rate ...
const BULK_RATE: f64 = 0.95;
/// ... at no more than this share of its CPU per byte.
const BULK_CPU: f64 = 1.05;
/// HTTP-like, one operation per message: at least the best raw mode.
const HTTP_RATE: f64 = 1.0;
/// Datagrams: at least this multiple of the per-datagram loop ...
const DATAGRAM_RATE: f64 = 4.0;
/// Scale: 10,000 connections at least this share of 100's throughput.
const SCALE_RATE: f64 = 0.9;

/// One row per target (and path) whose figures the run has.
pub(crate) fn targets(sections: &[Section]) -> Table {
    let mut t = Table::new(&[
        "target",
        "path",
        "sendpackets",
        "reference",
        "ratio",
        "CPU s/GB (ours / ref)",
        "goal",
        "met",
    ]);
    let in_group = |group: &str| -> Vec<&Section> {
        sections
            .iter()
            .filter(|s| s.group == group && s.path.is_some())
            .collect()
    };
    for (group, what) in [
        ("bulk-tcp", "Bulk, one file"),
        ("bulk-htf", "Bulk, header + file + trailer"),
    ] {
        for s in in_group(group) {
            let m = Metric::Bytes;
            let ours_s = s.series.iter().find(|x| x.name == AUTO);
            let ours = ours_s.and_then(|x| throughput(x, m));
            let Some((i, r)) = best_raw(&s.series, m) else {
                continue;
            };
            let ours_cpu = ours_s.and_then(cpu_per_gb);
            let ref_cpu = cpu_per_gb(&s.series[i]);
            let ratio = ours.map(|o| o / r);
            let cpu_ratio = ours_cpu.zip(ref_cpu).map(|(a, b)| a / b);
            let met = ratio
                .zip(cpu_ratio)
                .map(|(r, c)| r >= BULK_RATE && c <= BULK_CPU);
            t.row(vec![
                format!("{what}: Auto ÷ best raw mode"),
                s.path.unwrap_or("").into(),
                ours.map_or("–".into(), |o| fmt_rate(o, m)),
                format!("{} ({})", fmt_rate(r, m), s.series[i].name),
                ratio.map_or("–".into(), fmt_ratio),
                match (ours_cpu, ref_cpu, cpu_ratio) {
                    (Some(a), Some(b), Some(c)) => format!("{a:.3} / {b:.3} = {c:.2}x"),
                    _ => "–".into(),
                },
                format!("≥ {BULK_RATE:.2}x at ≤ {BULK_CPU:.2}x CPU"),
                met.map_or("–".into(), yes_no),
            ]);
        }
    }
    for size in crate::http::SIZES {
        let label = crate::size_name(size);
        let m = Metric::Items("msg");
        for s in in_group(&format!("http-{size}-msg")) {
            let Some((i, r)) = best_raw(&s.series, m) else {
                continue;
            };
            for (front, name) in [("send_with", AUTO), ("Connection", CONNECTION)] {
                let ours_s = s.series.iter().find(|x| x.name == name);
                let ours = ours_s.and_then(|x| throughput(x, m));
                let ratio = ours.map(|o| o / r);
                t.row(vec![
                    format!("HTTP-like {label}, op per message, {front}: ÷ best raw mode"),
                    s.path.unwrap_or("").into(),
                    ours.map_or("–".into(), |o| fmt_rate(o, m)),
                    format!("{} ({})", fmt_rate(r, m), s.series[i].name),
                    ratio.map_or("–".into(), fmt_ratio),
                    cpu_pair(ours_s.and_then(cpu_per_gb), cpu_per_gb(&s.series[i])),
                    format!("≥ {HTTP_RATE:.2}x"),
                    ratio.map_or("–".into(), |x| yes_no(x >= HTTP_RATE)),
                ]);
            }
        }
    }
    for s in in_group("datagram") {
        let m = Metric::Items("datagram");
        let ours_s = s.series.iter().find(|x| x.name == AUTO);
        let ours = named(&s.series, AUTO, m);
        let base_name = "pread + sendmsg(iovec) per datagram";
        let Some(b) = named(&s.series, base_name, m) else {
            continue;
        };
        let loss = ours_s.and_then(|x| {
            x.median_of(|y| {
                let (n, _) = y.outcome.arrived?;
                (y.outcome.items > 0).then(|| 1.0 - n as f64 / y.outcome.items as f64)
            })
        });
        let ratio = ours.map(|o| o / b);
        let met = ratio.zip(loss).map(|(r, l)| r >= DATAGRAM_RATE && l <= 0.0);
        t.row(vec![
            format!(
                "Datagrams 1,200 B: ÷ per-datagram sendmsg (loss {})",
                loss.map_or("–".into(), |l| format!("{:.1} %", l * 100.0))
            ),
            s.path.unwrap_or("").into(),
            ours.map_or("–".into(), |o| fmt_rate(o, m)),
            fmt_rate(b, m),
            ratio.map_or("–".into(), fmt_ratio),
            cpu_pair(
                ours_s.and_then(cpu_per_gb),
                s.series
                    .iter()
                    .find(|x| x.name == base_name)
                    .and_then(cpu_per_gb),
            ),
            format!("≥ {DATAGRAM_RATE:.1}x, 0 % loss"),
            met.map_or("–".into(), yes_no),
        ]);
    }
    for s in in_group("scale") {
        let m = Metric::Bytes;
        let first = s.series.first();
        let last = s.series.last();
        let (Some(a), Some(z)) = (first, last) else {
            continue;
        };
        let (ta, tz) = (throughput(a, m), throughput(z, m));
        let ratio = ta.zip(tz).map(|(a, z)| z / a);
        let per_conn = z
            .max_of(|x| x.peak_rss)
            .zip(z.last().map(|o| o.items))
            .map(|(p, n)| p as f64 / n.max(1) as f64);
        t.row(vec![
            format!(
                "Scale: {} ÷ {} (peak RSS per connection at the top: {})",
                z.name,
                a.name,
                per_conn.map_or("–".into(), |b| format!("{:.1} KiB", b / 1024.0))
            ),
            s.path.unwrap_or("").into(),
            tz.map_or("–".into(), |v| fmt_rate(v, m)),
            ta.map_or("–".into(), |v| fmt_rate(v, m)),
            ratio.map_or("–".into(), fmt_ratio),
            cpu_pair(cpu_per_gb(z), cpu_per_gb(a)),
            format!("≥ {SCALE_RATE:.2}x, every byte verified"),
            ratio.map_or("–".into(), |r| yes_no(r >= SCALE_RATE)),
        ]);
    }
    for s in in_group("inflight") {
        for series in &s.series {
            let peak = series.max_of(|x| x.peak_rss);
            let n = series.last().map_or(1, |o| o.items.max(1));
            t.row(vec![
                format!(
                    "{n} concurrent async sends of {}: sender peak RSS, {}",
                    crate::size_name(
                        series.last().map_or(0, |o| (o.bytes / n)
                            .saturating_sub((crate::scale::HEAD + crate::scale::TAIL) as u64))
                    ),
                    series.name
                ),
                s.path.unwrap_or("").into(),
                peak.map_or("–".into(), fmt_mib),
                "–".into(),
                "–".into(),
                cpu_per_gb(series).map_or("–".into(), |c| format!("{c:.3}")),
                format!("< {}", fmt_mib(crate::scale::INFLIGHT_PEAK_GOAL)),
                peak.map_or("–".into(), |p| {
                    yes_no(p < crate::scale::INFLIGHT_PEAK_GOAL)
                }),
            ]);
        }
    }
    if let Some(s) = sections.iter().find(|s| s.key == "sparse") {
        for series in s.series.iter().filter(|x| x.kind == Kind::Ours) {
            let growth = series.max_of(|x| x.rss_growth);
            t.row(vec![
                format!("Sparse file: peak RSS growth, {}", series.name),
                "Unix".into(),
                growth.map_or("–".into(), fmt_mib),
                "–".into(),
                "–".into(),
                "–".into(),
                "< 16 MiB".into(),
                growth.map_or("–".into(), |g| yes_no(g < 16 << 20)),
            ]);
        }
    }
    t
}

fn cpu_pair(ours: Option<f64>, reference: Option<f64>) -> String {
    match (ours, reference) {
        (Some(a), Some(b)) if b > 0.0 => format!("{a:.3} / {b:.3} = {:.2}x", a / b),
        _ => "–".into(),
    }
}

fn yes_no(ok: bool) -> String {
    if ok { "yes".into() } else { "**no**".into() }
}

/// The policy questions of issue 12, each answered on both paths from this run: one row per
/// option, with rate, CPU per byte and memory (RSS growth of one run: memory per in-flight send
/// where one send is in flight).
pub(crate) fn policy(sections: &[Section]) -> Table {
    let mut t = Table::new(&[
        "question",
        "workload",
        "path",
        "option",
        "rate",
        "CPU s/GB",
        "RSS growth",
        "÷ best option",
    ]);
    let bulk_file: &[&str] = &[
        AUTO,
        "sendpackets ZeroCopy",
        "sendpackets Portable",
        "raw sendfile loop",
        "read/write loop, 1 MiB (copy)",
        "sendfile",
        "rw1m",
    ];
    let cork: &[&str] = &[
        AUTO,
        "sendpackets ZeroCopy",
        "per-element loop (write, sendfile, write)",
        "corked (TCP_CORK, write, sendfile, write, uncork)",
        "corked per-element (cork, write, sendfile, write, uncork)",
        "MSG_MORE header, sendfile, write",
        "m-naive",
        "m-cork",
        "m-more",
    ];
    let copy: &[&str] = &[
        AUTO,
        CONNECTION,
        "sendpackets ZeroCopy",
        "sendpackets Portable",
        "per-element loop (write, sendfile, write)",
        "copy into one buffer (pread), one write",
        "pread + writev(header, range, trailer)",
        "m-copy",
        "m-writev",
    ];
    let inflight: &[&str] = &[
        "sendpackets::tokio Auto",
        "sendpackets::tokio ZeroCopy",
        "sendpackets::tokio Portable",
    ];
    let questions: [(&str, &str, &[&str]); 7] = [
        (
            "(a) ranges ≥ 1 MiB: sendfile or 1 MiB copy",
            "bulk-tcp",
            bulk_file,
        ),
        (
            "(a) ranges ≥ 1 MiB: sendfile or 1 MiB copy",
            "inflight",
            inflight,
        ),
        ("(b) TCP_CORK, none or MSG_MORE", "bulk-htf", cork),
        ("(b) TCP_CORK, none or MSG_MORE", "http-16384-msg", cork),
        ("(b) TCP_CORK, none or MSG_MORE", "http-262144-msg", cork),
        ("(c) copy threshold (64 KiB)", "http-16384-msg", copy),
        ("(c) copy threshold (64 KiB)", "http-262144-msg", copy),
    ];
    for (q, group, options) in questions {
        for s in sections
            .iter()
            .filter(|s| s.group == group && s.path.is_some())
        {
            let m = s.spec.metric;
            let picked: Vec<&crate::measure::Series> = options
                .iter()
                .filter_map(|o| s.series.iter().find(|x| x.name == *o))
                .filter(|x| x.error.is_none())
                .collect();
            let best = picked
                .iter()
                .filter_map(|x| throughput(x, m))
                .fold(0.0f64, f64::max);
            for x in picked {
                let tp = throughput(x, m);
                let name = match x.kind {
                    Kind::Ours => format!("**{}**", x.name),
                    Kind::Raw => format!("raw C: {}", x.name),
                    Kind::Baseline => x.name.clone(),
                };
                t.row(vec![
                    q.into(),
                    group.into(),
                    s.path.unwrap_or("").into(),
                    name,
                    tp.map_or("–".into(), |v| fmt_rate(v, m)),
                    cpu_per_gb(x).map_or("–".into(), |c| format!("{c:.3}")),
                    x.max_of(|y| y.rss_growth).map_or("–".into(), fmt_mib),
                    tp.filter(|_| best > 0.0)
                        .map_or("–".into(), |v| fmt_ratio(v / best)),
                ]);
            }
        }
    }
    t
}
