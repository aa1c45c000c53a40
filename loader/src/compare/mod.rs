//! `allocshim compare`: the same command under each backend (and any extra variants),
//! interleaved, with medians, ranges and ratios, as a table, JSON and an SVG chart.
//! `scripts/bench` drives this same engine.
pub mod measure;
pub mod summarize;
pub mod summary;
pub mod svg;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{elf, launch, locate, probe};
use measure::Variant;
use summary::Comparison;

#[derive(clap::Args)]
pub struct Args {
    /// Backends to compare, comma-separated (default: all that the library has, system first).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    backends: Option<Vec<String>>,
    /// An extra variant outside liballocshim: LABEL=LIBRARY preloads LIBRARY instead;
    /// LABEL= preloads nothing. Repeatable.
    #[arg(long = "variant", value_name = "LABEL=LIBRARY")]
    variants: Vec<String>,
    /// Measured runs per variant.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Unmeasured runs per variant first (caches, page cache, CPU frequency).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// The variant the ratios are relative to (default: system, else the first).
    #[arg(long, value_name = "LABEL")]
    baseline: Option<String>,
    /// A run taking longer than this many seconds is killed and counted as failed.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Also write every sample and summary as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a chart (time and peak RSS per variant) as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    #[arg(required = true, last = true, value_name = "CMD")]
    cmd: Vec<OsString>,
}

pub fn main(a: Args) -> Result<ExitCode> {
    if elf::which(Path::new(&a.cmd[0])).is_none() {
        bail!("command not found: {}", a.cmd[0].to_string_lossy());
    }
    let variants = variants(&a)?;
    let baseline = match &a.baseline {
        Some(b) if variants.iter().any(|v| &v.label == b) => b.clone(),
        Some(b) => bail!("--baseline {b} is not one of the variants: {}", labels(&variants)),
        None => variants.iter().find(|v| v.label == "system").unwrap_or(&variants[0]).label.clone(),
    };
    let plan = measure::Plan { variants: &variants, cmd: &a.cmd, runs: a.runs, warmup: a.warmup, timeout: Duration::from_secs(a.timeout) };
    let outcomes = measure::run(&plan)?;
    let command = a.cmd.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let c = Comparison::new(command, a.runs, a.warmup, &baseline, variants.into_iter().zip(outcomes).collect());

    print!("{}", c.table());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&c)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.svg {
        std::fs::write(p, svg::render(&c)).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(if c.any_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn variants(a: &Args) -> Result<Vec<Variant>> {
    let mut out = Vec::new();
    if a.backends.is_some() || a.variants.is_empty() {
        let lib = locate::library()?.path;
        let report = probe::ask(&lib, None, &[])?;
        let names: Vec<String> = match &a.backends {
            Some(list) => list.iter().map(|b| launch::check_backend(&report, b)).collect::<Result<_>>()?,
            None => {
                let mut all: Vec<String> = report.names().iter().map(|s| s.to_string()).collect();
                all.sort_by_key(|n| n != "system");
                all
            }
        };
        for name in names {
            let version = &report.backends.iter().find(|b| b.name == name).expect("checked above").version;
            out.push(Variant {
                label: name.clone(),
                allocator: format!("{name} {version} (liballocshim)"),
                preload: Some(lib.clone()),
                backend: Some(name),
            });
        }
    }
    for spec in &a.variants {
        let Some((label, lib)) = spec.split_once('=') else {
            bail!("--variant {spec}: expected LABEL=LIBRARY (or LABEL= for nothing preloaded)");
        };
        if label.is_empty() {
            bail!("--variant {spec}: the label is empty");
        }
        let (preload, allocator) = if lib.is_empty() {
            (None, "glibc (nothing preloaded)".to_string())
        } else {
            let p = PathBuf::from(lib).canonicalize().with_context(|| format!("--variant {spec}: {lib} does not exist"))?;
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (Some(p), format!("{name} (preloaded directly)"))
        };
        out.push(Variant { label: label.to_string(), allocator, preload, backend: None });
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|v| !seen.insert(v.label.clone())) {
        bail!("two variants are labelled {}; labels must differ", dup.label);
    }
    Ok(out)
}

fn labels(v: &[Variant]) -> String {
    v.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", ")
}
