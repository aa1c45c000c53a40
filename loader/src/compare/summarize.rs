//! `allocshim summarize`: several `compare --json` results (one per workload) in one
//! view: for chosen pairs of variants, the ratio of their medians per workload, for
//! time and for peak RSS, as Markdown tables and optionally one SVG chart.
//! `scripts/bench` uses it to show what the shim costs over standalone allocators.
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::figures::{ratio, Comparison, Ratio, Spread};

#[derive(clap::Args)]
pub struct Args {
    /// A pair of variant labels, NUMERATOR/DENOMINATOR: one ratio column. Repeatable.
    #[arg(long = "pair", value_name = "A/B")]
    pairs: Vec<String>,
    /// Use this metric the command reported (allocshim-metric) as its time, where it
    /// did, instead of the wall time of the whole process.
    #[arg(long, value_name = "NAME")]
    time_metric: Option<String>,
    /// Also write a chart of the ratios as SVG (with --table: redraw the one result's
    /// own chart, as `compare --svg` drew it).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print each result's own table (as `compare` printed it) instead of ratios.
    #[arg(long, conflicts_with_all = ["pairs"])]
    table: bool,
    /// Results of `allocshim compare --json`, each as FILE or NAME=FILE.
    #[arg(required = true, value_name = "RESULT")]
    results: Vec<String>,
}

pub struct Workload {
    pub name: String,
    pub comparison: Comparison,
}

/// One cell: a ratio with the absolute difference behind it.
#[derive(Clone, Copy)]
pub struct Cell {
    pub ratio: Ratio,
    pub delta: f64,
}

pub struct Pair {
    pub num: String,
    pub den: String,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let workloads = a.results.iter().map(|r| load(r)).collect::<Result<Vec<_>>>()?;
    if a.table {
        for w in &workloads {
            print!("{}", w.comparison.table());
        }
        if let Some(p) = &a.svg {
            let [w] = &workloads[..] else { bail!("--table --svg redraws one result's chart; give one result") };
            let c = &w.comparison;
            let chart = super::svg::chart(c);
            std::fs::write(p, chart).with_context(|| format!("cannot write {}", p.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.pairs.is_empty() {
        bail!("give at least one --pair A/B (for example --pair jemalloc/system), or --table");
    }
    let pairs = a.pairs.iter().map(|p| pair(p, &workloads)).collect::<Result<Vec<_>>>()?;
    let tm = a.time_metric.as_deref();
    print!("{}", tables(&workloads, &pairs, tm));
    if let Some(p) = &a.svg {
        std::fs::write(p, chart(&workloads, &pairs, tm)).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn load(spec: &str) -> Result<Workload> {
    let (name, file) = match spec.split_once('=') {
        Some((n, f)) if !n.is_empty() => (n.to_string(), PathBuf::from(f)),
        _ => {
            let f = PathBuf::from(spec);
            (f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| spec.to_string()), f)
        }
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let comparison =
        serde_json::from_str(&text).with_context(|| format!("{} is not the JSON of `allocshim compare --json`", show(&file)))?;
    Ok(Workload { name, comparison })
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn pair(spec: &str, workloads: &[Workload]) -> Result<Pair> {
    let Some((num, den)) = spec.split_once('/') else {
        bail!("--pair {spec}: expected NUMERATOR/DENOMINATOR, two variant labels");
    };
    for label in [num, den] {
        if !workloads.iter().any(|w| w.comparison.rows.iter().any(|r| r.variant.label == label)) {
            let mut known: Vec<&str> = workloads.iter().flat_map(|w| w.comparison.rows.iter().map(|r| r.variant.label.as_str())).collect();
            known.sort();
            known.dedup();
            bail!("--pair {spec}: no result has a variant labelled {label} (there are: {})", known.join(", "));
        }
    }
    Ok(Pair { num: num.to_string(), den: den.to_string() })
}

/// Which time a workload is judged by: its own metric if it reported the one asked
/// for, else the wall time of the process. Returns the spread and its unit.
fn time_of<'a>(c: &'a Comparison, label: &str, metric: Option<&str>) -> Option<(Spread, &'a str)> {
    let f = c.rows.iter().find(|r| r.variant.label == label)?.figures.as_ref()?;
    if let Some(m) = metric {
        if let Some(s) = f.metrics.get(m) {
            return Some((*s, c.metric_units.get(m).map(String::as_str).unwrap_or("")));
        }
    }
    Some((f.wall_s, "s"))
}

fn rss_of(c: &Comparison, label: &str) -> Option<Spread> {
    c.rows.iter().find(|r| r.variant.label == label)?.figures.as_ref().map(|f| f.peak_rss)
}

pub fn time_cell(c: &Comparison, p: &Pair, metric: Option<&str>) -> Option<(Cell, &'static str)> {
    let (n, unit) = time_of(c, &p.num, metric)?;
    let (d, _) = time_of(c, &p.den, metric)?;
    // Whole-process times are small for start-up; show their difference in ms.
    let (scale, shown) = if unit == "s" {
        (1e3, "ms")
    } else if unit == "ns" {
        (1.0, "ns")
    } else {
        (1.0, "")
    };
    Some((Cell { ratio: ratio(&n, &d), delta: (n.median - d.median) * scale }, shown))
}

pub fn rss_cell(c: &Comparison, p: &Pair) -> Option<Cell> {
    let (n, d) = (rss_of(c, &p.num)?, rss_of(c, &p.den)?);
    Some(Cell { ratio: ratio(&n, &d), delta: (n.median - d.median) / 1024.0 })
}

fn tables(workloads: &[Workload], pairs: &[Pair], metric: Option<&str>) -> String {
    let mut t = String::new();
    let head = |t: &mut String, what: &str| {
        let _ = write!(t, "| {what} |");
        for p in pairs {
            let _ = write!(t, " {} / {} |", p.num, p.den);
        }
        t.push('\n');
        t.push_str(&"|---".repeat(pairs.len() + 1));
        t.push_str("|\n");
    };
    let blank = "–".to_string();
    head(&mut t, "time, ratio of medians (difference)");
    for w in workloads {
        let what = match metric.filter(|m| w.comparison.metric_units.contains_key(*m)) {
            Some(m) => format!("{} ({m})", w.name),
            None => format!("{} (wall)", w.name),
        };
        let _ = write!(t, "| {what} |");
        for p in pairs {
            let cell = time_cell(&w.comparison, p, metric)
                .map(|(c, unit)| {
                    format!("{:.3}{} ({:+.*} {unit})", c.ratio.value, mark(c.ratio), if unit == "ns" { 1 } else { 2 }, c.delta)
                })
                .unwrap_or_else(|| blank.clone());
            let _ = write!(t, " {cell} |");
        }
        t.push('\n');
    }
    t.push('\n');
    head(&mut t, "peak RSS, ratio of medians (difference)");
    for w in workloads {
        let _ = write!(t, "| {} |", w.name);
        for p in pairs {
            let cell = rss_cell(&w.comparison, p)
                .map(|c| format!("{:.3}{} ({:+.0} KiB)", c.ratio.value, mark(c.ratio), c.delta))
                .unwrap_or_else(|| blank.clone());
            let _ = write!(t, " {cell} |");
        }
        t.push('\n');
    }
    let plans: Vec<String> = workloads.iter().map(|w| format!("{}: {}", w.name, w.comparison.runs)).collect();
    let _ = writeln!(
        t,
        "\nMeasured runs per variant: {}. `*`: the difference is larger than the run-to-run noise (the larger interquartile range of the two). `–`: a variant failed or is missing.",
        plans.join(", ")
    );
    t
}

fn mark(r: Ratio) -> &'static str {
    if r.beyond_noise {
        "*"
    } else {
        ""
    }
}

fn chart(workloads: &[Workload], pairs: &[Pair], metric: Option<&str>) -> String {
    let rows: Vec<super::svg::ChartRow> = workloads
        .iter()
        .map(|w| {
            let time = pairs.iter().map(|p| time_cell(&w.comparison, p, metric).map(|(c, _)| c.ratio.value)).collect();
            let rss = pairs.iter().map(|p| rss_cell(&w.comparison, p).map(|c| c.ratio.value)).collect();
            (w.name.as_str(), time, rss)
        })
        .collect();
    let labels: Vec<String> = pairs.iter().map(|p| format!("{} / {}", p.num, p.den)).collect();
    super::svg::ratio_chart("allocshim: shim vs the same allocator preloaded directly", &labels, &rows)
}
