//! The targets of issue 6, checked against the run's own figures.

use crate::Section;
use crate::measure::Kind;
use crate::table::{Metric, Table, best, fmt_mib, fmt_rate, fmt_ratio, named};

const AUTO: &str = "sendpackets Auto";

/// One row per target whose figures the run has.
pub(crate) fn targets(sections: &[Section]) -> Table {
    let mut t = Table::new(&[
        "target",
        "sendpackets Auto",
        "reference",
        "ratio",
        "goal",
        "met",
    ]);
    let find = |key: &str| sections.iter().find(|s| s.key == key);
    for (key, name) in [("bulk-tcp", "Bulk, TCP"), ("bulk-unix", "Bulk, Unix")] {
        let Some(s) = find(key) else { continue };
        let m = Metric::Bytes;
        let ours = named(&s.series, AUTO, m);
        if let Some((i, r)) = best(&s.series, Kind::Raw, m) {
            ratio_row(
                &mut t,
                format!("{name}: ÷ best raw C mode"),
                ours,
                &s.series[i].name,
                r,
                m,
                0.95,
            );
        }
        if let Some(r) = named(&s.series, "read/write loop, 64 KiB", m) {
            ratio_row(
                &mut t,
                format!("{name}: ÷ read/write loop, 64 KiB"),
                ours,
                "read/write 64 KiB",
                r,
                m,
                1.5,
            );
        }
    }
    for size in crate::http::SIZES {
        let label = crate::size_name(size);
        let m = Metric::Items("msg");
        if let Some(s) = find(&format!("http-{size}-msg")) {
            let ours = named(&s.series, AUTO, m);
            if let Some((i, r)) = best(&s.series, Kind::Raw, m) {
                ratio_row(
                    &mut t,
                    format!("HTTP-like {label}, op per message: ÷ best raw C mode"),
                    ours,
                    &s.series[i].name,
                    r,
                    m,
                    1.0,
                );
            }
            if size == 1024 {
                if let Some(r) = named(&s.series, "per-element loop (write, sendfile, write)", m) {
                    ratio_row(
                        &mut t,
                        format!("HTTP-like {label}, op per message: ÷ per-element loop"),
                        ours,
                        "per-element loop",
                        r,
                        m,
                        2.0,
                    );
                }
            }
        }
        if let Some(s) = find(&format!("http-{size}-batch")) {
            let ours = named(&s.series, &format!("{AUTO}, 1,000 msgs/op"), m);
            if let Some(r) = named(&s.series, "m-batch", m) {
                ratio_row(
                    &mut t,
                    format!("HTTP-like {label}, 1,000 msgs per op: ÷ raw C m-batch"),
                    ours,
                    "m-batch",
                    r,
                    m,
                    0.9,
                );
            }
        }
    }
    if let Some(s) = find("sparse") {
        for series in s.series.iter().filter(|x| x.kind == Kind::Ours) {
            let growth = series.max_of(|x| x.rss_growth);
            t.row(vec![
                format!("Sparse file: peak RSS growth, {}", series.name),
                growth.map_or("–".into(), fmt_mib),
                "–".into(),
                "–".into(),
                "< 16 MiB".into(),
                growth.map_or("–".into(), |g| yes_no(g < 16 << 20)),
            ]);
        }
    }
    t
}

fn ratio_row(
    t: &mut Table,
    what: String,
    ours: Option<f64>,
    ref_name: &str,
    reference: f64,
    m: Metric,
    goal: f64,
) {
    let ratio = ours.map(|o| o / reference);
    t.row(vec![
        what,
        ours.map_or("–".into(), |o| fmt_rate(o, m)),
        format!("{} ({ref_name})", fmt_rate(reference, m)),
        ratio.map_or("–".into(), fmt_ratio),
        format!("≥ {goal:.2}x"),
        ratio.map_or("–".into(), |r| yes_no(r >= goal)),
    ]);
}

fn yes_no(ok: bool) -> String {
    if ok { "yes".into() } else { "**no**".into() }
}
