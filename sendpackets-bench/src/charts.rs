//! `sendpackets-bench charts`: SVG charts drawn from the bench's result files (the markdown it
//! prints), with `plotters`' SVG backend (text stays text, so no font is needed to draw).
//!
//! - `targets.svg`: every target ratio of the "Targets" table of `last-run.md`, one bar per
//!   target and path, on a log scale around the 1.0 line (right of it: ahead of the
//!   reference), green where the goal is met;
//! - `serve-vs-nginx.svg`: requests/s of each `sendpackets serve` setup and of nginx with its
//!   open-file cache on, divided by nginx's without, per file size, one panel per path
//!   (`serve-nginx-loopback.md`, `serve-nginx-veth.md`), with the 1.0 line.
//!
//! ```sh
//! cargo run --release -p sendpackets-bench -- charts   # reads sendpackets-bench/*.md, writes docs/charts/
//! ```

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

/// The workload's own options (after `charts`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    /// The folder holding `last-run.md` and `serve-nginx-{loopback,veth}.md`.
    #[arg(long, default_value = "sendpackets-bench")]
    from: PathBuf,
    /// The folder the SVG files are written to (made if missing).
    #[arg(long, default_value = "docs/charts")]
    out: PathBuf,
}

type Error = Box<dyn std::error::Error>;

/// Draws every chart whose result file exists; returns the exit code.
pub(crate) fn main(args: &Args) -> i32 {
    match draw_all(args) {
        Ok(written) if written.is_empty() => {
            eprintln!("no result file found in {}", args.from.display());
            1
        }
        Ok(written) => {
            for w in written {
                println!("{}", w.display());
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn draw_all(args: &Args) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(&args.out)?;
    let mut written = Vec::new();
    if let Ok(text) = std::fs::read_to_string(args.from.join("last-run.md")) {
        let rows = target_rows(&text);
        if !rows.is_empty() {
            let out = args.out.join("targets.svg");
            targets_chart(&rows, &out)?;
            written.push(out);
        }
    }
    let mut panels = Vec::new();
    for path in ["loopback", "veth"] {
        let file = args.from.join(format!("serve-nginx-{path}.md"));
        if let Ok(text) = std::fs::read_to_string(&file) {
            let sizes = serve_rows(&text);
            if !sizes.is_empty() {
                panels.push((path, sizes));
            }
        }
    }
    if !panels.is_empty() {
        let out = args.out.join("serve-vs-nginx.svg");
        serve_chart(&panels, &out)?;
        written.push(out);
    }
    Ok(written)
}

/// The cells of the markdown table that follows the first heading starting with `heading`:
/// one `Vec` per row, header and separator left out, `**` removed.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    if lines.next().is_none() {
        return Vec::new();
    }
    lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.replace("**", "").trim().to_string())
                .collect()
        })
        .collect()
}

/// One row of the targets table.
#[derive(Debug, PartialEq)]
struct TargetRow {
    label: String,
    ratio: f64,
    met: bool,
}

/// The rows of "Targets" that have a ratio (`0.92x`).
fn target_rows(text: &str) -> Vec<TargetRow> {
    table_after(text, "## Targets")
        .into_iter()
        .filter_map(|cells| {
            let [target, path, _, _, ratio, _, _, met, ..] = cells.as_slice() else {
                return None;
            };
            let ratio: f64 = ratio.strip_suffix('x')?.parse().ok()?;
            Some(TargetRow {
                label: format!("{target} ({path})"),
                ratio,
                met: met == "yes",
            })
        })
        .collect()
}

/// Requests/s of every server for one file size.
#[derive(Debug, PartialEq)]
struct SizeRow {
    file: String,
    /// (server, median requests/s)
    servers: Vec<(String, f64)>,
}

/// The serve-vs-nginx table: file sizes in order, each with its servers.
fn serve_rows(text: &str) -> Vec<SizeRow> {
    let mut sizes: Vec<SizeRow> = Vec::new();
    for cells in table_after(text, "## sendpackets serve vs nginx") {
        let [file, server, rps, ..] = cells.as_slice() else {
            continue;
        };
        let Some(median) = rps
            .split_whitespace()
            .next()
            .and_then(|m| m.parse::<f64>().ok())
        else {
            continue;
        };
        if !file.is_empty() {
            sizes.push(SizeRow {
                file: file.clone(),
                servers: Vec::new(),
            });
        }
        if let Some(last) = sizes.last_mut() {
            last.servers.push((server.clone(), median));
        }
    }
    sizes
}

/// The server every ratio of the serve chart is taken against.
const NGINX_REFERENCE: &str = "nginx, open_file_cache off";

const GREEN: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
const ORANGE: RGBColor = RGBColor(0xe6, 0x7e, 0x22);
const PALETTE: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x6b, 0xae, 0xd6),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbd, 0xbd, 0xbd),
];

/// The x range of a log-scale ratio axis holding `ratios` and 1.0, with some room.
fn ratio_range(ratios: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = ratios.fold((1.0f64, 1.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    (lo / 1.15, hi * 1.15)
}

fn targets_chart(rows: &[TargetRow], out: &Path) -> Result<(), Error> {
    let height = 90 + 22 * rows.len() as u32;
    let root = SVGBackend::new(out, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = ratio_range(rows.iter().map(|r| r.ratio));
    let n = rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Targets: sendpackets ÷ reference (log scale; right of 1.0 is ahead; green: goal met)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(560)
        // Integer ranges are inclusive here: rows 0..=n-1.
        .build_cartesian_2d((lo..hi).log_scale(), (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_style(("sans-serif", 11))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => rows.get(*i).map_or(String::new(), |r| r.label.clone()),
            _ => String::new(),
        })
        .x_desc("ratio")
        .x_label_formatter(&|x| format!("{x:.2}x"))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let color = if r.met { GREEN } else { ORANGE };
        let mut bar = Rectangle::new(
            [
                (1.0, SegmentValue::Exact(i)),
                (r.ratio, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        Text::new(
            format!("{:.2}x", r.ratio),
            (r.ratio.max(1.0) * 1.01, SegmentValue::CenterOf(i)),
            ("sans-serif", 10).into_font(),
        )
    }))?;
    chart.draw_series(LineSeries::new(
        [(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
        BLACK.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

fn serve_chart(panels: &[(&str, Vec<SizeRow>)], out: &Path) -> Result<(), Error> {
    let root = SVGBackend::new(out, (560 * panels.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(30);
    title.titled(
        "sendpackets serve vs nginx: requests/s ÷ nginx (open_file_cache off), per file size",
        ("sans-serif", 16),
    )?;
    let areas = body.split_evenly((1, panels.len()));
    for ((path, sizes), area) in panels.iter().zip(areas.iter()) {
        serve_panel(path, sizes, area)?;
    }
    root.present()?;
    Ok(())
}

fn serve_panel<DB: DrawingBackend>(
    path: &str,
    sizes: &[SizeRow],
    area: &DrawingArea<DB, Shift>,
) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    // Per size: (server, ratio to the reference).
    let ratios: Vec<Vec<(String, f64)>> = sizes
        .iter()
        .map(|s| {
            let reference = s
                .servers
                .iter()
                .find(|(name, _)| name == NGINX_REFERENCE)
                .map_or(f64::NAN, |(_, r)| *r);
            s.servers
                .iter()
                .filter(|(name, _)| name != NGINX_REFERENCE)
                .map(|(name, r)| (name.clone(), r / reference))
                .collect()
        })
        .collect();
    let servers: Vec<String> = ratios
        .first()
        .map(|r| r.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let hi = ratios
        .iter()
        .flatten()
        .map(|(_, r)| *r)
        .filter(|r| r.is_finite())
        .fold(1.0f64, f64::max)
        * 1.4; // room for the legend above the bars
    let n = sizes.len();
    let mut chart = ChartBuilder::on(area)
        .caption(path, ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(50)
        // Integer ranges are inclusive here: sizes 0..=n-1.
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..hi)?;
    // Each size's segment is split into `k` bars, one per server, with a gap each side.
    let k = servers.len().max(1) as u32;
    let segment = chart.plotting_area().dim_in_pixel().0 / n as u32;
    let gap = segment / 8;
    let bar_width = (segment - 2 * gap) / k;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_style(("sans-serif", 11))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => sizes.get(*i).map_or(String::new(), |s| s.file.clone()),
            _ => String::new(),
        })
        .y_desc("requests/s ÷ nginx")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    for (si, server) in servers.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        chart
            .draw_series(ratios.iter().enumerate().filter_map(|(i, row)| {
                let r = row.get(si)?.1;
                if !r.is_finite() {
                    return None;
                }
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), r),
                    ],
                    color.filled(),
                );
                let si = si as u32;
                bar.set_margin(0, 0, gap + bar_width * si, gap + bar_width * (k - 1 - si));
                Some(bar)
            }))?
            .label(server.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart.draw_series(LineSeries::new(
        [(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
        BLACK.stroke_width(2),
    ))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: &str = "\
# run

## Targets of issue 12 (same run)

Text.

| target | path | sendpackets | reference | ratio | CPU | goal | met |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| Bulk: Auto | loopback | 1.92 GB/s | 2.10 GB/s | 0.92x | 1.17x | ≥ 0.95x | **no** |
| Bulk: Auto | veth | 1.97 GB/s | 2.02 GB/s | 0.97x | 1.03x | ≥ 0.95x | yes |
| RSS | loopback | 41.6 MiB | – | – | 0.703 | < 300 MiB | yes |

## Next
";

    const SERVE: &str = "\
## sendpackets serve vs nginx

| file | server | requests/s | CPU |
| --- | ---: | ---: | ---: |
| 1 KiB | **sendpackets serve** | 66000 (60807–71885) | 14.2 |
|  | nginx, open_file_cache off | 60000 (47740–62751) | 16.1 |
| 1 MiB | **sendpackets serve** | 2256 (2115–2583) | 399.9 |
|  | nginx, open_file_cache off | 2378 (2060–2503) | 378.0 |
";

    #[test]
    fn reads_the_targets_table() {
        let rows = target_rows(TARGETS);
        assert_eq!(
            rows,
            [
                TargetRow {
                    label: "Bulk: Auto (loopback)".into(),
                    ratio: 0.92,
                    met: false
                },
                TargetRow {
                    label: "Bulk: Auto (veth)".into(),
                    ratio: 0.97,
                    met: true
                },
            ]
        );
    }

    #[test]
    fn reads_the_serve_table() {
        let sizes = serve_rows(SERVE);
        assert_eq!(sizes.len(), 2);
        assert_eq!(sizes[0].file, "1 KiB");
        assert_eq!(
            sizes[0].servers,
            [
                ("sendpackets serve".to_string(), 66000.0),
                (NGINX_REFERENCE.to_string(), 60000.0)
            ]
        );
        assert_eq!(sizes[1].servers[1].1, 2378.0);
    }

    #[test]
    fn draws_svg_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("last-run.md"), TARGETS).unwrap();
        std::fs::write(dir.path().join("serve-nginx-loopback.md"), SERVE).unwrap();
        let args = Args {
            from: dir.path().to_path_buf(),
            out: dir.path().join("charts"),
        };
        let written = draw_all(&args).unwrap();
        assert_eq!(written.len(), 2);
        let targets = std::fs::read_to_string(&written[0]).unwrap();
        assert!(targets.starts_with("<svg") && targets.contains("Bulk: Auto (veth)"));
        assert!(targets.contains("0.92x"));
        let serve = std::fs::read_to_string(&written[1]).unwrap();
        assert!(serve.contains("1 MiB") && serve.contains("sendpackets serve"));
    }
}
