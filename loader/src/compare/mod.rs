//! `allocshim compare`: the same command under each backend (and any extra variants),
//! interleaved, with medians, ranges and ratios, as a table, JSON and an SVG chart.
//! `scripts/bench` drives this same engine; `--load` turns it to servers (`server`).
mod cleanup;
pub mod figures;
pub mod measure;
pub mod server;
pub mod summarize;
pub mod svg;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use allocshim_select::preset::Preset;
use allocshim_select::vars::ALLOCSHIM_PRESET;

use crate::{elf, launch, locate, probe};
use figures::Comparison;
use measure::Variant;

#[derive(clap::Args)]
pub struct Args {
    /// Backends to compare, comma-separated (default: all that the library has, system first).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    backends: Option<Vec<String>>,
    /// An extra variant outside liballocshim: LABEL=LIBRARY preloads LIBRARY instead;
    /// LABEL= preloads nothing. Repeatable.
    #[arg(long = "variant", value_name = "LABEL=LIBRARY")]
    variants: Vec<String>,
    /// For each liballocshim backend variant, also BACKEND+PRESET with ALLOCSHIM_PRESET=PRESET
    /// (comma-separated presets, e.g. low-memory).
    #[arg(long = "preset", value_delimiter = ',', value_name = "LIST")]
    presets: Vec<String>,
    /// A variant that is another variant plus environment variables:
    /// LABEL=BASE:VAR=VALUE[ VAR=VALUE...], e.g. 'arena2=none:MALLOC_ARENA_MAX=2'
    /// (BASE is another variant's label or a backend of the library). Repeatable.
    #[arg(long = "env-variant", value_name = "LABEL=BASE:VAR=VALUE")]
    env_variants: Vec<String>,
    /// Run only these of the variants the options above define, comma-separated labels
    /// (e.g. `--only arena2,system+low-memory`: a variant can be the base of another
    /// without running itself).
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    only: Option<Vec<String>>,
    /// Server mode: CMD is a server that listens on 127.0.0.1:$PORT (or a worker, see
    /// --ready); per variant and round it is started, this load command runs against it
    /// (`sh -c`, with the same PORT; `wrk` output and `allocshim-metric` lines are
    /// read), the RSS of its process group is sampled, and it is stopped (SIGTERM, then
    /// SIGKILL).
    #[arg(long, value_name = "COMMAND")]
    load: Option<String>,
    /// Server mode: the server is ready when this command exits 0 (`sh -c`, with PORT;
    /// polled), instead of when it accepts connections on 127.0.0.1:$PORT. For workers
    /// that listen on no port, e.g. a job processor that marks itself ready in Redis.
    #[arg(long, value_name = "COMMAND", requires = "load")]
    ready: Option<String>,
    /// Server mode: seconds the server may take to be ready.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    start_timeout: f64,
    /// Server mode: seconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    grace: f64,
    /// Server mode: seconds between RSS samples.
    #[arg(long, default_value_t = 0.5, value_name = "SECONDS")]
    interval: f64,
    /// Measured runs per variant.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Unmeasured runs per variant first (caches, page cache, CPU frequency).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// The variant the ratios are relative to (default: system, else the first).
    #[arg(long, value_name = "LABEL")]
    baseline: Option<String>,
    /// A run (server mode: a load command) taking longer than this many seconds is
    /// killed and counted as failed.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Also write every sample and summary as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a chart as SVG: time and peak RSS per variant (server mode: RSS over time).
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
    let outcomes = match &a.load {
        None => measure::run(&measure::Plan {
            variants: &variants,
            cmd: &a.cmd,
            runs: a.runs,
            warmup: a.warmup,
            timeout: Duration::from_secs(a.timeout),
        })?,
        Some(load) => {
            let secs = |name: &str, v: f64| match Duration::try_from_secs_f64(v) {
                Ok(d) if v > 0.0 => Ok(d),
                _ => Err(anyhow::anyhow!("--{name} {v}: expected a number of seconds above 0")),
            };
            server::run(&server::Plan {
                variants: &variants,
                cmd: &a.cmd,
                load,
                ready: a.ready.as_deref(),
                runs: a.runs,
                warmup: a.warmup,
                start_timeout: secs("start-timeout", a.start_timeout)?,
                load_timeout: Duration::from_secs(a.timeout),
                grace: secs("grace", a.grace)?,
                interval: secs("interval", a.interval)?,
            })?
        }
    };
    let command = a.cmd.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let mut c = Comparison::new(command, a.runs, a.warmup, &baseline, variants.into_iter().zip(outcomes).collect());
    if let Some(load) = &a.load {
        server::finish(&mut c, load.clone());
    }

    print!("{}", c.table());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&c)?).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.svg {
        let chart = svg::chart(&c);
        std::fs::write(p, chart).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(if c.any_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn variants(a: &Args) -> Result<Vec<Variant>> {
    let mut out = Vec::new();
    let mut library = Library::default();
    if a.backends.is_some() || a.variants.is_empty() {
        let names: Vec<String> = match &a.backends {
            Some(list) => list.iter().map(|b| launch::check_backend(library.report()?, b)).collect::<Result<_>>()?,
            None => {
                let mut all: Vec<String> = library.report()?.names().iter().map(|s| s.to_string()).collect();
                all.sort_by_key(|n| n != "system");
                all
            }
        };
        for name in names {
            out.push(library.variant(&name)?);
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
        out.push(Variant { label: label.to_string(), allocator, preload, backend: None, env: Vec::new() });
    }
    for p in &a.presets {
        let Some(preset) = Preset::from_name(p.as_bytes()) else {
            bail!("--preset {p}: unknown preset; expected one of {}", Preset::names().collect::<Vec<_>>().join(", "));
        };
        let name = preset.name().to_string_lossy().into_owned();
        let backends: Vec<Variant> = out.iter().filter(|v| v.backend.is_some() && v.env.is_empty()).cloned().collect();
        for v in backends {
            out.push(Variant {
                label: format!("{}+{name}", v.label),
                allocator: format!("{}, preset {name}", v.allocator),
                env: vec![(ALLOCSHIM_PRESET.to_string(), name.clone())],
                ..v
            });
        }
    }
    for spec in &a.env_variants {
        let parsed = spec.split_once('=').and_then(|(label, rest)| Some((label, rest.split_once(':')?)));
        let Some((label, (base, vars))) = parsed else {
            bail!("--env-variant {spec}: expected LABEL=BASE:VAR=VALUE[ VAR=VALUE...], e.g. arena2=none:MALLOC_ARENA_MAX=2");
        };
        if label.is_empty() {
            bail!("--env-variant {spec}: the label is empty");
        }
        // BASE: another variant, or a backend of the library that is not one itself
        // (`system+low-memory=system:...` without also running plain `system`).
        let base = match out.iter().find(|v| v.label == base) {
            Some(v) => v.clone(),
            None if library.report().is_ok_and(|r| r.names().contains(&base)) => library.variant(base)?,
            None => bail!("--env-variant {spec}: there is no variant labelled {base} (there are: {})", labels(&out)),
        };
        let mut env = base.env.clone();
        for assignment in vars.split_whitespace() {
            match assignment.split_once('=') {
                Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
                _ => bail!("--env-variant {spec}: {assignment} is not VAR=VALUE"),
            }
        }
        if env.len() == base.env.len() {
            bail!("--env-variant {spec}: no VAR=VALUE after {}:", base.label);
        }
        let extra: Vec<String> = env[base.env.len()..].iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(Variant { label: label.to_string(), allocator: format!("{}, {}", base.allocator, extra.join(" ")), env, ..base });
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|v| !seen.insert(v.label.clone())) {
        bail!("two variants are labelled {}; labels must differ", dup.label);
    }
    if let Some(only) = &a.only {
        if only.iter().any(|l| l.is_empty()) {
            bail!("--only {}: an empty label; expected labels of variants, comma-separated (there are: {})", only.join(","), labels(&out));
        }
        if let Some(unknown) = only.iter().find(|l| !out.iter().any(|v| &v.label == *l)) {
            bail!("--only {}: there is no variant labelled {unknown} (there are: {})", only.join(","), labels(&out));
        }
        out.retain(|v| only.contains(&v.label));
    }
    Ok(out)
}

/// The library the backend variants preload, asked about itself once, when first needed.
#[derive(Default)]
struct Library(Option<(PathBuf, probe::Report)>);

impl Library {
    fn found(&mut self) -> Result<&(PathBuf, probe::Report)> {
        if self.0.is_none() {
            let lib = locate::library()?.path;
            let report = probe::ask(&lib, None, &[])?;
            self.0 = Some((lib, report));
        }
        Ok(self.0.as_ref().expect("just set"))
    }

    fn report(&mut self) -> Result<&probe::Report> {
        Ok(&self.found()?.1)
    }

    /// The variant that runs under backend `name` of the library.
    fn variant(&mut self, name: &str) -> Result<Variant> {
        let (lib, report) = self.found()?;
        let Some(b) = report.backends.iter().find(|b| b.name == name) else {
            bail!("the library has no backend {name} (it has: {})", report.names().join(", "));
        };
        Ok(Variant {
            label: name.to_string(),
            allocator: format!("{name} {} (liballocshim)", b.version),
            preload: Some(lib.clone()),
            backend: Some(name.to_string()),
            env: Vec::new(),
        })
    }
}

fn labels(v: &[Variant]) -> String {
    v.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", ")
}
