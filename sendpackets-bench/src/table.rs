//! Markdown tables, number formatting, kernel-call counts and the choice of the ratio's
//! reference (the best baseline, the best raw mode).

use std::fmt::Write as _;

use crate::measure::{Kind, Series};

/// Kernel calls made by one run, summed over its operations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Calls {
    /// Operations (sendpackets calls, or the baseline's unit of work).
    pub(crate) ops: u64,
    /// `write`, `writev`, `send`, `sendmsg` (sendpackets: vectored `sendmsg`).
    pub(crate) writes: u64,
    /// `sendfile` calls.
    pub(crate) sendfile: u64,
    /// `pread`/`read` calls.
    pub(crate) reads: u64,
    /// `TCP_CORK` toggles.
    pub(crate) cork: u64,
    /// Waits for writability.
    pub(crate) waits: u64,
}

impl Calls {
    /// Adds what one sendpackets operation reported.
    pub(crate) fn add_report(&mut self, r: &sendpackets::SendReport) {
        self.ops += 1;
        self.writes += r.calls.gather_writes;
        self.sendfile += r.calls.sendfile;
        self.reads += r.calls.file_reads;
        self.cork += r.calls.cork_toggles;
        self.waits += r.calls.waits;
    }

    /// "write 1.00, pread 1.00" per `div` units, zero counts left out.
    pub(crate) fn describe(&self, div: f64) -> String {
        let mut out = String::new();
        for (name, n) in [
            ("write", self.writes),
            ("sendfile", self.sendfile),
            ("pread", self.reads),
            ("cork", self.cork),
            ("wait", self.waits),
        ] {
            if n == 0 {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "{name} {}", fmt_count(n as f64 / div.max(1e-12)));
        }
        if out.is_empty() {
            out.push('0');
        }
        out
    }
}

/// What a table's throughput counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Payload bytes, shown as GB/s.
    Bytes,
    /// Items (messages, elements, datagrams), shown as `k <unit>/s`.
    Items(&'static str),
}

/// What the kernel-call column is counted per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallsPer {
    /// Per item (message, datagram).
    Item,
    /// Per operation.
    Op,
    /// Per run.
    Run,
}

/// How to turn a workload's series into a table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) metric: Metric,
    pub(crate) calls_per: CallsPer,
    /// Adds the datagram columns (arrived per second, loss).
    pub(crate) datagrams: bool,
}

/// The throughput of a series at its median wall time, in the metric's units per second.
pub(crate) fn throughput(s: &Series, metric: Metric) -> Option<f64> {
    let wall = s.median_wall()?;
    let o = s.last()?;
    let units = match metric {
        Metric::Bytes => o.bytes,
        Metric::Items(_) => o.items,
    };
    (wall > 0.0).then(|| units as f64 / wall)
}

/// The series of `kind` with the highest throughput: (index, throughput).
pub(crate) fn best(series: &[Series], kind: Kind, metric: Metric) -> Option<(usize, f64)> {
    series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == kind)
        .filter_map(|(i, s)| throughput(s, metric).map(|t| (i, t)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The best series that is not sendpackets (bench baselines and raw C modes): the ceiling of a
/// path. (index, throughput).
pub(crate) fn best_raw(series: &[Series], metric: Metric) -> Option<(usize, f64)> {
    series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != Kind::Ours)
        .filter_map(|(i, s)| throughput(s, metric).map(|t| (i, t)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Median CPU seconds per GB of a series.
pub(crate) fn cpu_per_gb(s: &Series) -> Option<f64> {
    s.median_of(|x| (x.outcome.bytes > 0).then(|| x.cpu / (x.outcome.bytes as f64 / 1e9)))
}

/// Median CPU microseconds per item of a series.
pub(crate) fn cpu_per_item(s: &Series) -> Option<f64> {
    s.median_of(|x| (x.outcome.items > 0).then(|| x.cpu / x.outcome.items as f64 * 1e6))
}

/// The CPU cell of a metric: s/GB for bytes, µs per item for items.
fn cpu_cell(s: &Series, metric: Metric) -> String {
    match metric {
        Metric::Bytes => cpu_per_gb(s).map_or("–".into(), |c| format!("{c:.3}")),
        Metric::Items(_) => cpu_per_item(s).map_or("–".into(), |c| format!("{c:.2}")),
    }
}

/// The CPU column's header for a metric.
pub(crate) fn cpu_header(metric: Metric) -> String {
    match metric {
        Metric::Bytes => "CPU s/GB".into(),
        Metric::Items(u) => format!("CPU µs/{u}"),
    }
}

/// One workload on several paths, side by side: a row per contender (by name), for each path
/// its rate, CPU per byte or per item, and the ratio to that path's best non-sendpackets row.
pub(crate) fn side_by_side(metric: Metric, paths: &[(&str, &[Series])]) -> Table {
    let mut headers: Vec<String> = vec!["contender".into()];
    for (p, _) in paths {
        headers.push(format!("{p}: rate"));
        headers.push(format!("{p}: {}", cpu_header(metric)));
        headers.push(format!("{p}: ÷ best raw"));
        headers.push(format!("{p}: RSS growth"));
    }
    headers.push("runs redone (gate)".into());
    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&h);
    let mut names: Vec<(String, Kind)> = Vec::new();
    for (_, ss) in paths {
        for s in ss.iter() {
            if !names.iter().any(|(n, _)| *n == s.name) {
                names.push((s.name.clone(), s.kind));
            }
        }
    }
    for (name, kind) in names {
        let mut row = vec![label(&Series {
            name: name.clone(),
            kind,
            samples: Vec::new(),
            error: None,
            redone: 0,
            kept_noisy: 0,
        })];
        let mut redone = Vec::new();
        for (_, ss) in paths {
            let best = best_raw(ss, metric).map(|b| b.1);
            match ss.iter().find(|s| s.name == name) {
                Some(s) if s.error.is_some() => {
                    row.extend(["failed".into(), "–".into(), "–".into(), "–".into()]);
                    redone.push(s.redone.to_string());
                }
                Some(s) => {
                    let tp = throughput(s, metric);
                    row.push(tp.map_or("–".into(), |v| fmt_rate(v, metric)));
                    row.push(cpu_cell(s, metric));
                    row.push(ratio_cell(tp, best));
                    row.push(s.max_of(|x| x.rss_growth).map_or("–".into(), fmt_mib));
                    redone.push(s.redone.to_string());
                }
                None => {
                    row.extend(["–".into(), "–".into(), "–".into(), "–".into()]);
                    redone.push("–".into());
                }
            }
        }
        row.push(redone.join(" / "));
        t.row(row);
    }
    t
}

/// The first series named `name` with a throughput.
pub(crate) fn named(series: &[Series], name: &str, metric: Metric) -> Option<f64> {
    series
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| throughput(s, metric))
}

/// A markdown table with padded columns (first column left-aligned, the others right-aligned).
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    pub(crate) headers: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = w - c.chars().count();
                if i == 0 {
                    let _ = write!(s, " {c}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(s, " {}{c} |", " ".repeat(pad));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.headers);
        out.push('|');
        for (i, w) in width.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, " {} |", "-".repeat(*w));
            } else {
                let _ = write!(out, " {}: |", "-".repeat(w.saturating_sub(1).max(1)));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// The standard table of a workload: one row per contender.
pub(crate) fn workload_table(spec: &Spec, series: &[Series]) -> Table {
    let has_raw = series.iter().any(|s| s.kind == Kind::Raw);
    let base = best(series, Kind::Baseline, spec.metric);
    let raw = best(series, Kind::Raw, spec.metric);
    let per = match spec.calls_per {
        CallsPer::Item => "kernel calls per item",
        CallsPer::Op => "kernel calls per op",
        CallsPer::Run => "kernel calls per run",
    };
    let rate_header = match spec.metric {
        Metric::Bytes => "throughput".to_string(),
        Metric::Items(u) => format!("{u}/s sent"),
    };
    let mut headers: Vec<&str> = vec!["contender", "median", "min–max", &rate_header];
    if spec.datagrams {
        headers.extend(["arrived/s", "loss"]);
    }
    headers.push("÷ best baseline");
    if has_raw {
        headers.push("÷ best raw C");
    }
    let cpu_item = match spec.metric {
        Metric::Items(u) => Some(format!("CPU µs/{u}")),
        Metric::Bytes => None,
    };
    headers.push("CPU s/GB");
    if let Some(h) = &cpu_item {
        headers.push(h);
    }
    headers.extend(["peak RSS", "RSS growth", per, "redone"]);
    let mut t = Table::new(&headers);
    for s in series {
        let mut row = vec![label(s)];
        if let Some(e) = &s.error {
            row.push(format!("failed: {e}"));
            t.row(row);
            continue;
        }
        let tp = throughput(s, spec.metric);
        row.push(s.median_wall().map_or("–".into(), fmt_secs));
        row.push(s.wall_range().map_or("–".into(), |(a, b)| fmt_range(a, b)));
        row.push(tp.map_or("–".into(), |v| fmt_rate(v, spec.metric)));
        if spec.datagrams {
            let arrived = s.median_of(|x| {
                x.outcome
                    .arrived
                    .and_then(|(n, secs)| (secs > 0.0).then(|| n as f64 / secs))
            });
            let loss = s.median_of(|x| {
                let (n, _) = x.outcome.arrived?;
                (x.outcome.items > 0).then(|| 1.0 - n as f64 / x.outcome.items as f64)
            });
            row.push(arrived.map_or("–".into(), fmt_si));
            row.push(loss.map_or("–".into(), |l| format!("{:.1} %", l * 100.0)));
        }
        row.push(ratio_cell(tp, base.map(|b| b.1)));
        if has_raw {
            row.push(ratio_cell(tp, raw.map(|b| b.1)));
        }
        row.push(cpu_per_gb(s).map_or("–".into(), |c| format!("{c:.3}")));
        if cpu_item.is_some() {
            row.push(cpu_per_item(s).map_or("–".into(), |c| format!("{c:.2}")));
        }
        row.push(s.max_of(|x| x.peak_rss).map_or("–".into(), fmt_mib));
        row.push(s.max_of(|x| x.rss_growth).map_or("–".into(), fmt_mib));
        let calls = s.last().and_then(|o| {
            let c = o.calls?;
            let div = match spec.calls_per {
                CallsPer::Item => o.items as f64,
                CallsPer::Op => c.ops as f64,
                CallsPer::Run => 1.0,
            };
            Some(c.describe(div))
        });
        row.push(calls.unwrap_or_else(|| "–".into()));
        row.push(if s.kept_noisy > 0 {
            format!("{} (+{} over)", s.redone, s.kept_noisy)
        } else {
            s.redone.to_string()
        });
        t.row(row);
    }
    t
}

fn label(s: &Series) -> String {
    match s.kind {
        Kind::Ours => format!("**{}**", s.name),
        Kind::Baseline => s.name.clone(),
        Kind::Raw => format!("raw C: {}", s.name),
    }
}

fn ratio_cell(v: Option<f64>, reference: Option<f64>) -> String {
    match (v, reference) {
        (Some(v), Some(r)) if r > 0.0 => fmt_ratio(v / r),
        _ => "–".into(),
    }
}

/// Seconds with three significant digits in s, ms or µs.
pub(crate) fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{} ms", sig3(s * 1e3))
    } else {
        format!("{} µs", sig3(s * 1e6))
    }
}

/// A range of seconds in the unit of its upper end: `405–430 ms`.
pub(crate) fn fmt_range(lo: f64, hi: f64) -> String {
    let (scale, unit) = if hi >= 1.0 {
        (1.0, "s")
    } else if hi >= 1e-3 {
        (1e3, "ms")
    } else {
        (1e6, "µs")
    };
    if unit == "s" {
        format!("{:.2}–{:.2} s", lo * scale, hi * scale)
    } else {
        format!("{}–{} {unit}", sig3(lo * scale), sig3(hi * scale))
    }
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A rate: `2.51 GB/s` or `487 k msg/s`.
pub(crate) fn fmt_rate(v: f64, metric: Metric) -> String {
    match metric {
        Metric::Bytes => format!("{:.2} GB/s", v / 1e9),
        Metric::Items(u) => format!("{} {u}/s", fmt_si(v)),
    }
}

/// `487 k`, `1.23 M`, `950`.
pub(crate) fn fmt_si(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", sig3(v / 1e3))
    } else {
        sig3(v)
    }
}

/// `1.23x`.
pub(crate) fn fmt_ratio(r: f64) -> String {
    format!("{r:.2}x")
}

/// Bytes as MiB with one decimal.
pub(crate) fn fmt_mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

/// A call count: integers as is (k/M when large), fractions under 0.1 as `1/N`, other
/// fractions with two decimals.
pub(crate) fn fmt_count(v: f64) -> String {
    if v >= 1e4 {
        fmt_si(v)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v < 0.1 {
        format!("1/{:.0}", 1.0 / v)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Outcome, Sample};

    fn series(name: &str, kind: Kind, walls: &[f64], bytes: u64) -> Series {
        Series {
            name: name.into(),
            kind,
            samples: walls
                .iter()
                .map(|&wall| Sample {
                    wall,
                    cpu: wall,
                    peak_rss: Some(4 << 20),
                    rss_growth: Some(1 << 20),
                    others_cpu: 0.0,
                    outcome: Outcome {
                        bytes,
                        items: bytes / 1000,
                        ..Outcome::default()
                    },
                })
                .collect(),
            error: None,
            redone: 0,
            kept_noisy: 0,
        }
    }

    #[test]
    fn best_baseline_ignores_ours_and_raw() {
        let s = vec![
            series("ours", Kind::Ours, &[0.1], 1_000_000),
            series("slow loop", Kind::Baseline, &[2.0, 1.0, 3.0], 1_000_000),
            series("fast loop", Kind::Baseline, &[0.5, 0.6, 0.4], 1_000_000),
            series("raw", Kind::Raw, &[0.2], 1_000_000),
        ];
        let (i, t) = best(&s, Kind::Baseline, Metric::Bytes).unwrap();
        assert_eq!(s[i].name, "fast loop");
        assert!((t - 2_000_000.0).abs() < 1e-6);
        assert_eq!(best(&s, Kind::Raw, Metric::Bytes).unwrap().0, 3);
        assert_eq!(best(&s[..1], Kind::Baseline, Metric::Bytes), None);
        assert_eq!(named(&s, "ours", Metric::Items("msg")), Some(10_000.0));
    }

    #[test]
    fn table_rows_and_ratios() {
        let s = vec![
            series("ours", Kind::Ours, &[0.25], 1_000_000_000),
            series("loop", Kind::Baseline, &[0.5], 1_000_000_000),
        ];
        let spec = Spec {
            metric: Metric::Bytes,
            calls_per: CallsPer::Run,
            datagrams: false,
        };
        let out = workload_table(&spec, &s).render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| contender"));
        assert!(lines[1].starts_with("| ---"));
        assert!(lines[2].contains("**ours**"));
        assert!(lines[2].contains("4.00 GB/s"));
        assert!(lines[2].contains("2.00x"));
        assert!(lines[3].contains("1.00x"));
        assert!(!out.contains("raw C"));
        // Every line has the same width: the columns are padded.
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
    }

    #[test]
    fn failed_contender_is_shown() {
        let mut s = series("broken", Kind::Ours, &[], 0);
        s.error = Some("connection reset".into());
        let spec = Spec {
            metric: Metric::Items("msg"),
            calls_per: CallsPer::Item,
            datagrams: true,
        };
        let out = workload_table(&spec, &[s]).render();
        assert!(out.contains("failed: connection reset"));
        assert!(out.contains("arrived/s"));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_secs(1.234), "1.23 s");
        assert_eq!(fmt_secs(0.4123), "412 ms");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_secs(0.000_05), "50.0 µs");
        assert_eq!(fmt_range(0.405, 0.43), "405–430 ms");
        assert_eq!(fmt_range(0.9, 1.5), "0.90–1.50 s");
        assert_eq!(fmt_rate(2.514e9, Metric::Bytes), "2.51 GB/s");
        assert_eq!(fmt_rate(487_000.0, Metric::Items("msg")), "487 k msg/s");
        assert_eq!(fmt_si(1_234_000.0), "1.23 M");
        assert_eq!(fmt_ratio(0.954), "0.95x");
        assert_eq!(fmt_mib(3 << 20), "3.0 MiB");
        assert_eq!(fmt_count(2.0), "2");
        assert_eq!(fmt_count(0.5), "0.50");
        assert_eq!(fmt_count(1.0 / 64.0), "1/64");
        assert_eq!(fmt_count(0.0002), "1/5000");
        assert_eq!(fmt_count(20_000.0), "20.0 k");
    }

    #[test]
    fn calls_description() {
        let c = Calls {
            ops: 2,
            writes: 4,
            sendfile: 1,
            ..Calls::default()
        };
        assert_eq!(c.describe(2.0), "write 2, sendfile 0.50");
        assert_eq!(Calls::default().describe(1.0), "0");
    }
}
