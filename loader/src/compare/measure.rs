//! Running one command many times under several variants, interleaved, and measuring
//! each run with `wait4`: wall time, CPU time and peak RSS of the process tree.
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// One way of running the command.
#[derive(Serialize, Clone, Debug)]
pub struct Variant {
    pub label: String,
    /// What serves malloc, for people: "jemalloc 5.3.1", "glibc (nothing preloaded)".
    pub allocator: String,
    /// The library to preload, if any (replaces LD_PRELOAD for the run).
    pub preload: Option<PathBuf>,
    /// For liballocshim variants: the backend to force.
    pub backend: Option<String>,
}

#[derive(Serialize, Clone, Copy, Debug)]
pub struct Sample {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    /// The largest resident set of any one process in the tree, in bytes.
    pub peak_rss: u64,
}

#[derive(Serialize, Clone, Debug)]
pub struct Failure {
    pub status: String,
    pub stderr_tail: String,
}

#[derive(Serialize, Default, Debug)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
    /// For liballocshim variants, the backend the library itself reported serving
    /// (ALLOCSHIM_VERBOSE), which may differ from the one asked for (a refusal).
    pub served_by: Option<String>,
}

pub struct Plan<'a> {
    pub variants: &'a [Variant],
    pub cmd: &'a [OsString],
    pub runs: u32,
    pub warmup: u32,
    pub timeout: Duration,
}

/// Runs the plan: rounds of every variant in turn (A B C A B C ...), so slow drift
/// of the machine spreads over all variants instead of biasing one.
pub fn run(plan: &Plan) -> Result<Vec<Outcome>> {
    let rounds = plan.warmup + plan.runs;
    let total = u64::from(rounds) * plan.variants.len() as u64;
    // indicatif draws nothing when stderr is not a terminal.
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} runs, {eta} left, now: {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut outcomes: Vec<Outcome> = plan.variants.iter().map(|_| Outcome::default()).collect();
    let stderr_file = std::env::temp_dir().join(format!("allocshim-compare-{}.stderr", std::process::id()));
    for round in 0..rounds {
        for (v, out) in plan.variants.iter().zip(&mut outcomes) {
            bar.set_message(format!("{} ({})", v.label, if round < plan.warmup { "warm-up" } else { "measured" }));
            let (result, served_by) = once(v, plan, &stderr_file)?;
            if out.served_by.is_none() {
                out.served_by = served_by;
            }
            if round >= plan.warmup {
                match result {
                    Ok(s) => out.samples.push(s),
                    Err(f) => out.failures.push(f),
                }
            } else if let Err(f) = result {
                out.failures.push(f);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_file(&stderr_file);
    Ok(outcomes)
}

type Once = (std::result::Result<Sample, Failure>, Option<String>);

fn once(v: &Variant, plan: &Plan, stderr_path: &std::path::Path) -> Result<Once> {
    let mut cmd = Command::new(&plan.cmd[0]);
    cmd.args(&plan.cmd[1..]).stdin(Stdio::null()).stdout(Stdio::null());
    match &v.preload {
        Some(lib) => cmd.env("LD_PRELOAD", lib),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    if let Some(b) = &v.backend {
        cmd.env("ALLOCSHIM_BACKEND", b).env("ALLOCSHIM_VERBOSE", "1").env_remove("ALLOCSHIM_STATS");
    }
    let stderr = std::fs::File::create(stderr_path).with_context(|| format!("cannot create {}", stderr_path.display()))?;
    cmd.stderr(stderr);

    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot run {}", plan.cmd[0].to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    // A watchdog turns a hang into a failed run; it is told when the run ends.
    let (done, wait_done) = mpsc::channel::<()>();
    let timeout = plan.timeout;
    let watchdog = std::thread::spawn(move || {
        let expired = wait_done.recv_timeout(timeout).is_err();
        if expired {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        expired
    });
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // std's Child is not used to wait: wait4 is what returns the tree's rusage.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    drop(child);
    if r != pid {
        anyhow::bail!("waiting for {pid} failed: {}", std::io::Error::last_os_error());
    }

    let mut text = String::new();
    std::fs::File::open(stderr_path)?.take(1 << 20).read_to_string(&mut text).ok();
    let served_by = text.lines().find_map(|l| l.strip_prefix("allocshim: backend ")).and_then(|r| r.split_whitespace().next()).map(String::from);

    let status = std::process::ExitStatus::from_raw(status);
    if timed_out || !status.success() {
        let why = if timed_out { format!("timed out after {} s", timeout.as_secs()) } else { describe(status) };
        let tail: Vec<&str> = text.lines().filter(|l| !l.starts_with("allocshim: backend ")).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
        return Ok((Err(Failure { status: why, stderr_tail: tail }), served_by));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        Ok(Sample {
            wall_s: wall.as_secs_f64(),
            user_s: secs(ru.ru_utime),
            sys_s: secs(ru.ru_stime),
            peak_rss: ru.ru_maxrss.max(0) as u64 * 1024,
        }),
        served_by,
    ))
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => {
            let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(s)) }.to_string_lossy().into_owned();
            format!("killed by signal {s} ({name})")
        }
        _ => status.to_string(),
    }
}
