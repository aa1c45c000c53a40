//! From samples to the figures people read: medians with ranges, ratios to the
//! baseline, and whether a difference stands out from the run-to-run noise.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::measure::{Outcome, Sample, Variant};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Interquartile range: the run-to-run noise of this variant.
    pub iqr: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl Iterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            // Linear interpolation between closest ranks.
            let x = p * (v.len() - 1) as f64;
            let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
        };
        Some(Spread { median: q(0.5), min: v[0], max: v[v.len() - 1], iqr: q(0.75) - q(0.25), n: v.len() })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
pub struct Ratio {
    pub value: f64,
    /// The medians differ by more than the larger of the two interquartile ranges.
    /// Never claimed with fewer than 3 runs, where there is no measure of noise.
    pub beyond_noise: bool,
}

pub const MIN_RUNS_FOR_NOISE: usize = 3;

pub fn ratio(x: &Spread, base: &Spread) -> Ratio {
    let enough = x.n.min(base.n) >= MIN_RUNS_FOR_NOISE;
    Ratio { value: x.median / base.median, beyond_noise: enough && (x.median - base.median).abs() > x.iqr.max(base.iqr) }
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Figures {
    pub wall_s: Spread,
    pub user_s: Spread,
    pub sys_s: Spread,
    pub peak_rss: Spread,
    /// The command's own figures (`allocshim-metric` lines), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Spread>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Row {
    #[serde(flatten)]
    pub variant: Variant,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// None when every run failed.
    pub figures: Option<Figures>,
    pub wall_ratio: Option<Ratio>,
    pub rss_ratio: Option<Ratio>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metric_ratios: BTreeMap<String, Ratio>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Comparison {
    pub command: Vec<String>,
    /// Server mode: the load command run against the server (`--load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<String>,
    pub runs: u32,
    pub warmup: u32,
    pub baseline: String,
    /// Every metric the command reported in any run, with its unit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metric_units: BTreeMap<String, String>,
    pub rows: Vec<Row>,
}

fn figures(samples: &[Sample]) -> Option<Figures> {
    let s = |f: fn(&Sample) -> f64| Spread::of(samples.iter().map(f));
    Some(Figures {
        wall_s: s(|x| x.wall_s)?,
        user_s: s(|x| x.user_s)?,
        sys_s: s(|x| x.sys_s)?,
        peak_rss: s(|x| x.peak_rss as f64)?,
        metrics: samples
            .iter()
            .flat_map(|x| x.metrics.keys())
            .map(|name| (name.clone(), Spread::of(samples.iter().filter_map(|x| x.metrics.get(name).copied())).expect("name seen")))
            .collect(),
    })
}

impl Comparison {
    pub fn new(command: Vec<String>, runs: u32, warmup: u32, baseline: &str, data: Vec<(Variant, Outcome)>) -> Comparison {
        let mut rows: Vec<Row> = data
            .into_iter()
            .map(|(variant, outcome)| {
                // A variant with any failed run has no figures: a failing allocator
                // must not look fast because its failures ended early.
                let figures = if outcome.failures.is_empty() { figures(&outcome.samples) } else { None };
                Row { variant, outcome, figures, wall_ratio: None, rss_ratio: None, metric_ratios: BTreeMap::new() }
            })
            .collect();
        let metric_units: BTreeMap<String, String> = rows.iter().flat_map(|r| r.outcome.metric_units.clone()).collect();
        let base = rows
            .iter()
            .find(|r| r.variant.label == baseline)
            .and_then(|r| r.figures.as_ref().map(|f| (f.wall_s, f.peak_rss, f.metrics.clone())));
        if let Some((wall, rss, metrics)) = base {
            for r in &mut rows {
                if let Some(f) = &r.figures {
                    r.wall_ratio = Some(ratio(&f.wall_s, &wall));
                    r.rss_ratio = Some(ratio(&f.peak_rss, &rss));
                    // A metric the baseline measured as 0 (frag's huge pages with THP off) has no ratio.
                    r.metric_ratios = f
                        .metrics
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), ratio(v, metrics.get(k).filter(|b| b.median != 0.0)?))))
                        .collect();
                }
            }
        }
        Comparison { command, load: None, runs, warmup, baseline: baseline.to_string(), metric_units, rows }
    }

    /// "5 measured runs per variant after 1 warm-up run, interleaved"
    pub fn plan_text(&self) -> String {
        let runs = |n: u32, what: &str| format!("{n} {what}run{}", if n == 1 { "" } else { "s" });
        format!("{} per variant after {}, interleaved", runs(self.runs, "measured "), runs(self.warmup, "warm-up "))
    }

    pub fn any_failed(&self) -> bool {
        self.rows.iter().any(|r| !r.outcome.failures.is_empty())
    }

    /// A Markdown table, readable in a terminal and pasteable into a README.
    pub fn table(&self) -> String {
        if self.load.is_some() {
            return self.server_table();
        }
        let mut t = String::new();
        let b = &self.baseline;
        let mut head =
            format!("| variant | allocator | wall s, median (min–max) | × {b} | user s | sys s | peak RSS MiB, median (min–max) | × {b} |");
        for (name, unit) in &self.metric_units {
            let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
            head.push_str(&format!(" {name}{unit}, median (min–max) | × {b} |"));
        }
        let columns = 8 + 2 * self.metric_units.len();
        t.push_str(&head);
        t.push('\n');
        t.push_str(&"|---".repeat(columns));
        t.push_str("|\n");
        for r in &self.rows {
            let alloc = self.allocator(r);
            match &r.figures {
                Some(f) => {
                    let mib = |x: f64| x / (1024.0 * 1024.0);
                    t.push_str(&format!(
                        "| {} | {} | {:.3} ({:.3}–{:.3}) | {} | {:.3} | {:.3} | {:.1} ({:.1}–{:.1}) | {} |\n",
                        r.variant.label,
                        alloc,
                        f.wall_s.median,
                        f.wall_s.min,
                        f.wall_s.max,
                        show(r.wall_ratio),
                        f.user_s.median,
                        f.sys_s.median,
                        mib(f.peak_rss.median),
                        mib(f.peak_rss.min),
                        mib(f.peak_rss.max),
                        show(r.rss_ratio),
                    ));
                    t.pop(); // the newline: metric columns follow
                    for name in self.metric_units.keys() {
                        match f.metrics.get(name) {
                            Some(m) => t.push_str(&format!(
                                " {} ({}–{}) | {} |",
                                num(m.median),
                                num(m.min),
                                num(m.max),
                                show(r.metric_ratios.get(name).copied())
                            )),
                            None => t.push_str(" not reported | |"),
                        }
                    }
                    t.push('\n');
                }
                None => t.push_str(&self.failed_row(r, columns)),
            }
        }
        t.push_str(&self.footnote());
        t
    }

    fn footnote(&self) -> String {
        format!("\n{}; `*` marks a difference from {} larger than the run-to-run noise (the larger interquartile range of the two; needs {MIN_RUNS_FOR_NOISE} or more runs).\n", self.plan_text(), self.baseline)
    }

    /// Server mode: what a server's operator reads, one row per variant: RSS over the
    /// last third of the load, at its end, its peak and slope; throughput and latency;
    /// the server's CPU time. Every metric of every run stays in the JSON.
    fn server_table(&self) -> String {
        use super::server::{CPU_PER_OP, JOBS, LATENCY, REQUESTS, RSS_END, RSS_LAST_THIRD, RSS_SLOPE};
        let b = &self.baseline;
        let throughput = [REQUESTS, JOBS].into_iter().find(|m| self.metric_units.contains_key(*m));
        let unit = throughput.and_then(|m| self.metric_units.get(m)).map(String::as_str).unwrap_or("");
        let op = if throughput == Some(JOBS) { "job" } else { "request" };
        let mut t = format!(
            "| variant | allocator | RSS last third MiB, median (min–max) | × {b} | RSS at end | peak | slope MiB/min | throughput {unit} | × {b} | latency ms | × {b} | server CPU s | CPU ms per {op} | × {b} |\n"
        );
        t.push_str(&"|---".repeat(14));
        t.push_str("|\n");
        for r in &self.rows {
            let Some(f) = &r.figures else {
                t.push_str(&self.failed_row(r, 14));
                continue;
            };
            let med = |name: &str| f.metrics.get(name).map(|m| num(m.median)).unwrap_or_else(|| "–".into());
            let q = |name: Option<&str>| show(name.and_then(|n| r.metric_ratios.get(n).copied()));
            let last = f.metrics.get(RSS_LAST_THIRD).map(|m| format!("{} ({}–{})", num(m.median), num(m.min), num(m.max)));
            let slope = f.metrics.get(RSS_SLOPE).map(|m| format!("{:+.1}", m.median)).unwrap_or_else(|| "–".into());
            t.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.1} | {slope} | {} | {} | {} | {} | {:.1} | {} | {} |\n",
                r.variant.label,
                self.allocator(r),
                last.unwrap_or_else(|| "–".into()),
                q(Some(RSS_LAST_THIRD)),
                med(RSS_END),
                f.peak_rss.median / (1024.0 * 1024.0),
                throughput.map(med).unwrap_or_else(|| "–".into()),
                q(throughput),
                med(LATENCY),
                q(Some(LATENCY)),
                f.user_s.median + f.sys_s.median,
                med(CPU_PER_OP),
                q(Some(CPU_PER_OP)),
            ));
        }
        t.push_str(&self.footnote());
        t
    }

    /// The allocator column: what serves the variant, and any refusal.
    fn allocator(&self, r: &Row) -> String {
        match (&r.outcome.served_by, &r.variant.backend) {
            (Some(s), Some(b)) if s != b => format!("{} (asked for {b}, served by {s})", r.variant.allocator),
            _ => r.variant.allocator.clone(),
        }
    }

    /// A row whose runs failed: the first failure's reason and stderr.
    fn failed_row(&self, r: &Row, columns: usize) -> String {
        let n = r.outcome.failures.len();
        let first = &r.outcome.failures[0];
        let tail = if first.stderr_tail.is_empty() { String::new() } else { format!("; stderr: {}", first.stderr_tail) };
        format!(
            "| {} | {} | FAILED: {n} of {} runs, {}{tail} |{}\n",
            r.variant.label,
            self.allocator(r),
            self.runs + self.warmup,
            first.status,
            " |".repeat(columns - 3),
        )
    }
}

/// Four significant digits, whatever the metric's scale.
fn num(v: f64) -> String {
    let digits = if v == 0.0 { 0 } else { (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize };
    format!("{v:.digits$}")
}

fn show(r: Option<Ratio>) -> String {
    match r {
        Some(r) => format!("{:.2}{}", r.value, if r.beyond_noise { "*" } else { "" }),
        None => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles() {
        let s = Spread::of([5.0, 1.0, 3.0, 2.0, 4.0].into_iter()).unwrap();
        assert_eq!((s.median, s.min, s.max, s.iqr), (3.0, 1.0, 5.0, 2.0));
        let s = Spread::of([1.0, 2.0].into_iter()).unwrap();
        assert_eq!(s.median, 1.5);
        assert!(Spread::of(std::iter::empty()).is_none());
    }

    #[test]
    fn noise_decides_the_mark() {
        let base = Spread { median: 1.0, min: 0.9, max: 1.1, iqr: 0.1, n: 5 };
        assert!(!ratio(&Spread { median: 1.05, min: 1.0, max: 1.1, iqr: 0.05, n: 5 }, &base).beyond_noise);
        assert!(ratio(&Spread { median: 1.5, min: 1.4, max: 1.6, iqr: 0.05, n: 5 }, &base).beyond_noise);
        assert!(!ratio(&Spread { median: 1.5, min: 1.5, max: 1.5, iqr: 0.0, n: 1 }, &base).beyond_noise);
    }
}
