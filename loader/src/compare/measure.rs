//! Running one command many times under several variants, interleaved, and measuring
//! each run with `wait4`: wall time, CPU time and peak RSS of the process tree.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use allocshim_select::vars::{ALLOCSHIM_BACKEND, ALLOCSHIM_STATS, ALLOCSHIM_VERBOSE, LD_PRELOAD};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// One way of running the command.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Variant {
    pub label: String,
    /// What serves malloc, for people: "jemalloc 5.3.1", "glibc (nothing preloaded)".
    pub allocator: String,
    /// The library to preload, if any (replaces LD_PRELOAD for the run).
    pub preload: Option<PathBuf>,
    /// For liballocshim variants: the backend to force.
    pub backend: Option<String>,
    /// Variables set for this variant only (`--preset`, `--env-variant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// Sets up `cmd`'s environment for this variant: what is preloaded, the backend,
    /// the variant's own variables.
    pub fn apply(&self, cmd: &mut Command) {
        match &self.preload {
            Some(lib) => cmd.env(LD_PRELOAD, lib),
            None => cmd.env_remove(LD_PRELOAD),
        };
        if let Some(b) = &self.backend {
            cmd.env(ALLOCSHIM_BACKEND, b).env(ALLOCSHIM_VERBOSE, "1").env_remove(ALLOCSHIM_STATS);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Sample {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    /// The largest resident set of any one process in the tree, in bytes.
    pub peak_rss: u64,
    /// Figures the command measured itself (see `METRIC`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Server mode: the server tree's RSS over time, as (seconds since the load
    /// started, bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rss_series: Vec<(f64, u64)>,
}

/// A command may report its own figures, e.g. time per operation excluding its
/// start-up, by printing `allocshim-metric NAME VALUE [UNIT]` lines on stdout; the
/// rest of its stdout is discarded.
pub const METRIC: &str = "allocshim-metric ";

/// Reads the metric lines of one run's stdout; lines that do not parse are ignored
/// (and so show up as missing samples rather than as made-up values).
pub fn parse_metrics(stdout: &str, units: &mut BTreeMap<String, String>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(METRIC) else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if !value.is_finite() {
            continue;
        }
        units.entry(name.to_string()).or_insert_with(|| words.next().unwrap_or("").to_string());
        out.insert(name.to_string(), value);
    }
    out
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Failure {
    pub status: String,
    pub stderr_tail: String,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
    /// For liballocshim variants, the backend the library itself reported serving
    /// (ALLOCSHIM_VERBOSE), which may differ from the one asked for (a refusal).
    pub served_by: Option<String>,
    /// The unit of each metric the command reported, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metric_units: BTreeMap<String, String>,
}

pub struct Plan<'a> {
    pub variants: &'a [Variant],
    pub cmd: &'a [OsString],
    pub runs: u32,
    pub warmup: u32,
    pub timeout: Duration,
}

/// Runs the plan: rounds of every variant in turn, in a new order each round (see
/// [`order`]), so slow drift of the machine spreads over all variants instead of
/// biasing one.
pub fn run(plan: &Plan) -> Result<Vec<Outcome>> {
    let tmp = |what: &str| std::env::temp_dir().join(format!("allocshim-compare-{}.{what}", std::process::id()));
    let (stdout_file, stderr_file) = (tmp("stdout"), tmp("stderr"));
    let outcomes = rounds(plan.variants, plan.runs, plan.warmup, false, |v, units| once(v, plan, &stdout_file, &stderr_file, units));
    let _ = std::fs::remove_file(&stdout_file);
    let _ = std::fs::remove_file(&stderr_file);
    outcomes
}

/// `warmup + runs` rounds of `once` over every variant, interleaved, with a progress
/// bar; the warm-up rounds' samples are dropped, their failures kept. With `log_lines`
/// (runs of minutes), a line per finished run goes to stderr when it is not a
/// terminal, where the bar is not drawn: a soak's log shows how far it got.
pub fn rounds(
    variants: &[Variant],
    runs: u32,
    warmup: u32,
    log_lines: bool,
    mut once: impl FnMut(&Variant, &mut BTreeMap<String, String>) -> Result<Once>,
) -> Result<Vec<Outcome>> {
    let rounds = warmup + runs;
    let total = u64::from(rounds) * variants.len() as u64;
    let log_lines = log_lines && !std::io::stderr().is_terminal();
    let started = Instant::now();
    // indicatif draws nothing when stderr is not a terminal.
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} runs, {eta} left, now: {msg}").expect("static template").progress_chars("=> "),
    );
    let mut outcomes: Vec<Outcome> = variants.iter().map(|_| Outcome::default()).collect();
    for round in 0..rounds {
        for i in order(variants.len(), round) {
            let (v, out) = (&variants[i], &mut outcomes[i]);
            bar.set_message(format!("{} ({})", v.label, if round < warmup { "warm-up" } else { "measured" }));
            let (result, served_by) = once(v, &mut out.metric_units)?;
            if out.served_by.is_none() {
                out.served_by = served_by;
            }
            if round >= warmup {
                match result {
                    Ok(s) => out.samples.push(s),
                    Err(f) => out.failures.push(f),
                }
            } else if let Err(f) = result {
                out.failures.push(f);
            }
            bar.inc(1);
            if log_lines {
                let done = bar.position();
                let left = started.elapsed().mul_f64((total - done) as f64 / done as f64);
                eprintln!(
                    "allocshim compare: {done} of {total} done, about {} left (last: {}, {})",
                    minutes(left),
                    v.label,
                    if round < warmup { "warm-up" } else { "measured" }
                );
            }
        }
    }
    bar.finish_and_clear();
    Ok(outcomes)
}

/// "1h05m", "12m", "40s": a time left, to the minute past a minute.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// The order of the variants in round `round`: a permutation of `0..n` that changes
/// from round to round (Fisher-Yates over a fixed pseudo-random sequence: the same
/// for every run of `compare`). In a fixed order each variant always runs right after
/// the same one, and what that one leaves behind biases it: after a run that freed
/// hundreds of MiB in 4 KiB pages, the next run's transparent huge pages took several
/// times as long on a VM that hands free memory back to its host
/// (docs/benchmarks.md, "frag").
pub fn order(n: usize, round: u32) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    // splitmix64, seeded by the round.
    let mut state = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(u64::from(round) + 1);
    for i in (1..n).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
    v
}

/// One run's sample or failure, and the backend the library said it served.
pub type Once = (std::result::Result<Sample, Failure>, Option<String>);

fn once(v: &Variant, plan: &Plan, stdout_path: &Path, stderr_path: &Path, units: &mut BTreeMap<String, String>) -> Result<Once> {
    let mut cmd = Command::new(&plan.cmd[0]);
    let stdout = File::create(stdout_path).with_context(|| format!("cannot create {}", stdout_path.display()))?;
    cmd.args(&plan.cmd[1..]).stdin(Stdio::null()).stdout(stdout);
    v.apply(&mut cmd);
    let stderr = File::create(stderr_path).with_context(|| format!("cannot create {}", stderr_path.display()))?;
    cmd.stderr(stderr);

    // Traced, so that the child stops once more just before it exits: see `wait_traced`.
    // If tracing is not allowed here, the child runs untraced and only rusage is used.
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed: it makes one ptrace(2) system call, whose
    // result it ignores (the pointer arguments are unused by PTRACE_TRACEME), and
    // allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            libc::ptrace(libc::PTRACE_TRACEME, 0, std::ptr::null_mut::<libc::c_void>(), std::ptr::null_mut::<libc::c_void>());
            Ok(())
        });
    }
    let floor = own_hwm();
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot run {}", plan.cmd[0].to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    // A watchdog turns a hang into a failed run; it is told when the run ends.
    let (done, wait_done) = mpsc::channel::<()>();
    let timeout = plan.timeout;
    let watchdog = std::thread::spawn(move || {
        let expired = wait_done.recv_timeout(timeout).is_err();
        if expired {
            // SAFETY: kill(2) takes integers and touches no memory of ours; `pid` is
            // our child, not reaped yet unless it ended just as the timeout expired.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        expired
    });
    let (r, status, ru, top_hwm) = wait_traced(pid);
    let wall = start.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    drop(child);
    if r != pid {
        anyhow::bail!("waiting for {pid} failed: {}", std::io::Error::last_os_error());
    }

    let text = read_capped(File::open(stderr_path)?);
    let served_by = served_by(&text);

    let status = std::process::ExitStatus::from_raw(status);
    if timed_out || !status.success() {
        let why = if timed_out { format!("timed out after {} s", timeout.as_secs()) } else { describe(status) };
        return Ok((Err(Failure { status: why, stderr_tail: stderr_tail(&text) }), served_by));
    }
    let out = read_capped(File::open(stdout_path)?);
    let metrics = parse_metrics(&out, units);
    Ok((
        Ok(Sample {
            wall_s: wall.as_secs_f64(),
            user_s: secs(ru.ru_utime),
            sys_s: secs(ru.ru_stime),
            peak_rss: peak_rss(ru.ru_maxrss.max(0) as u64 * 1024, top_hwm, floor),
            metrics,
            rss_series: Vec::new(),
        }),
        served_by,
    ))
}

/// The backend the library reported serving (its ALLOCSHIM_VERBOSE line), if any.
pub fn served_by(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| l.strip_prefix("allocshim: backend ")).and_then(|r| r.split_whitespace().next()).map(String::from)
}

/// The last three lines of a failed run's stderr, without the library's verbose lines.
pub fn stderr_tail(stderr: &str) -> String {
    let tail: Vec<&str> =
        stderr.lines().filter(|l| !l.starts_with("allocshim: backend ") && !l.starts_with("allocshim: preset ")).collect();
    tail[tail.len().saturating_sub(3)..].join(" | ")
}

/// Waits for the child, letting it run through its ptrace stops (passing on any signal
/// it receives), and reads its own peak RSS (VmHWM) at the stop just before it exits.
/// Returns wait4's result, the status, the tree's rusage and that VmHWM, if read.
fn wait_traced(pid: libc::pid_t) -> (libc::pid_t, i32, libc::rusage, Option<u64>) {
    // SAFETY: rusage is plain C data (integers and timevals), for which all zeroes is
    // a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    let mut hwm = None;
    let null = std::ptr::null_mut::<libc::c_void>();
    loop {
        // std's Child is not used to wait: wait4 is what returns the tree's rusage.
        // SAFETY: wait4 on our own child; it writes only `status` and `ru`, live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r != pid || !libc::WIFSTOPPED(status) {
            return (r, status, ru, hwm);
        }
        let sig = libc::WSTOPSIG(status);
        let deliver = if status >> 16 == libc::PTRACE_EVENT_EXIT {
            hwm = vm_hwm(&format!("/proc/{pid}/status"));
            0
        } else if sig == libc::SIGTRAP && hwm.is_none() {
            // The stop after execve: from now on, stop once more at exit.
            // SAFETY: ptrace(2) on our own traced child, stopped (just checked); the
            // address is unused and the data an integer (the option flags): no memory
            // of ours is read or written.
            unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, null, libc::PTRACE_O_TRACEEXIT as usize as *mut libc::c_void) };
            0
        } else {
            sig
        };
        // SAFETY: ptrace(2) on our own traced child, stopped (checked above); the
        // address is unused and the data the number of the signal to deliver (or 0).
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, null, deliver as usize as *mut libc::c_void) };
    }
}

/// The peak RSS of the tree. rusage's figure cannot go below the RSS of this process
/// at the time of the fork (the kernel counts the image the child replaced at exec),
/// so for a command smaller than `allocshim` itself it would show our size, not the
/// command's. There, the command's own VmHWM read at its exit is the answer.
fn peak_rss(rusage: u64, top_hwm: Option<u64>, floor: Option<u64>) -> u64 {
    match (top_hwm, floor) {
        (Some(top), Some(floor)) if rusage <= floor => top,
        (Some(top), _) => rusage.max(top),
        (None, _) => rusage,
    }
}

fn own_hwm() -> Option<u64> {
    vm_hwm("/proc/self/status")
}

/// VmHWM from a /proc status file, in bytes.
fn vm_hwm(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let kib: u64 = text.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

pub fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => {
            // SAFETY: glibc's strsignal never returns NULL: a static description, or
            // for an unknown number a per-thread buffer that only a later strsignal
            // call in this thread rewrites; the text is copied at once.
            let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(s)) }.to_string_lossy().into_owned();
            format!("killed by signal {s} ({name})")
        }
        _ => status.to_string(),
    }
}

/// The first MiB of what a run wrote to `f` (lossy beyond that: only its end and its
/// metric lines are read).
pub(super) fn read_capped(f: File) -> String {
    let mut text = String::new();
    let _ = f.take(1 << 20).read_to_string(&mut text);
    text
}

/// A `timeval` (rusage's CPU times) in seconds.
pub(super) fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_round_runs_every_variant_once_in_changing_orders() {
        let n = 9;
        let rounds: Vec<Vec<usize>> = (0..12).map(|r| super::order(n, r)).collect();
        for r in &rounds {
            let mut sorted = r.clone();
            sorted.sort();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "not a permutation: {r:?}");
        }
        // No variant always follows the same one: over the rounds, each has several
        // different predecessors.
        for v in 0..n {
            let mut before: Vec<usize> =
                rounds.iter().filter_map(|r| r.iter().position(|&x| x == v).filter(|&p| p > 0).map(|p| r[p - 1])).collect();
            before.sort();
            before.dedup();
            assert!(before.len() >= 3, "variant {v} runs after only {before:?}");
        }
        assert_eq!(super::order(n, 5), super::order(n, 5), "the same order for the same round");
        assert_eq!(super::order(1, 3), vec![0]);
        assert!(super::order(0, 0).is_empty());
    }

    #[test]
    fn metric_lines_are_read_and_the_rest_ignored() {
        let mut units = Default::default();
        let m = super::parse_metrics(
            "hello\nallocshim-metric ns_per_op 23.5 ns\nallocshim-metric bad x\nallocshim-metric final_rss 1024\n",
            &mut units,
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m["ns_per_op"], 23.5);
        assert_eq!(units["ns_per_op"], "ns");
        assert_eq!(units["final_rss"], "");
    }
}
