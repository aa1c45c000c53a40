//! `allocshim compare --load 'LOAD' -- SERVER...`: long-running servers and workers.
//!
//! Per variant and round: the server starts in its own process group with `PORT` (a
//! free loopback port) in its environment; once it is ready (it accepts connections on
//! 127.0.0.1:PORT, or the `--ready` command succeeds: a worker listens on no port) the
//! load command runs (`sh -c`, same `PORT`) while the RSS of the server's process group
//! is sampled; then the server gets SIGTERM and, after a grace period, the whole group
//! SIGKILL. The figures go into the same `Sample` as a batch run (wall = load duration,
//! user/sys = the server's CPU time, peak RSS = the group's sampled peak), with the
//! server's own figures as metrics, so the summary, ratios, noise marks and JSON are
//! `compare`'s own.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::cleanup;
use super::figures::Comparison;
use super::measure::{self, describe, parse_metrics, Failure, Once, Outcome, Sample, Variant};

pub struct Plan<'a> {
    pub variants: &'a [Variant],
    pub cmd: &'a [OsString],
    pub load: &'a str,
    /// How the server says it is ready: this command exits 0 (`sh -c`, with `PORT`),
    /// polled; without it, the server accepts connections on 127.0.0.1:PORT.
    pub ready: Option<&'a str>,
    pub runs: u32,
    pub warmup: u32,
    /// How long the server may take to become ready.
    pub start_timeout: Duration,
    /// How long the load command may run.
    pub load_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Between two RSS samples.
    pub interval: Duration,
}

/// The metrics a server run adds, with their units. The RSS figures cover the last
/// third of the load: a server's start-up and warm-up are behind it, and what is left
/// is what a long-running process settles at (or keeps growing by).
pub const RSS_END: &str = "rss_end";
pub const RSS_LAST_THIRD: &str = "rss_mean_last_third";
pub const RSS_SLOPE: &str = "rss_slope_last_third";
/// Throughput and mean latency: a web server's as `wrk` prints them, a worker's as its
/// load command reports them (`allocshim-metric jobs_per_s` ...).
pub const REQUESTS: &str = "requests_per_s";
pub const JOBS: &str = "jobs_per_s";
pub const LATENCY: &str = "latency_avg_ms";
/// The server's CPU time per request or job: what each costs it in CPU, whatever else
/// the machine is doing (throughput on a shared machine moves with the load).
pub const CPU_PER_OP: &str = "cpu_ms_per_op";

pub fn run(plan: &Plan) -> Result<Vec<Outcome>> {
    let dir = std::env::temp_dir().join(format!("allocshim-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let outcomes = measure::rounds(plan.variants, plan.runs, plan.warmup, true, |v, units| once(v, plan, &dir, units));
    let _ = std::fs::remove_dir_all(&dir);
    outcomes
}

/// Marks the comparison as a server one. A ratio of two slopes means nothing (they
/// can be zero or negative): the slope is shown as it is, without one.
pub fn finish(c: &mut Comparison, load: String) {
    c.load = Some(load);
    for r in &mut c.rows {
        r.metric_ratios.remove(RSS_SLOPE);
    }
}

/// A process group that is SIGKILLed when this goes out of scope, whatever happened:
/// no server or load process outlives its run. Its leader is reaped with `wait4`
/// (which also gives the rusage), not by std.
struct Group(libc::pid_t);

impl Group {
    /// Starts `cmd` as the leader of a new process group.
    fn spawn(cmd: &mut Command, what: &str) -> Result<Group> {
        let child = cmd.process_group(0).spawn().with_context(|| format!("cannot run {what}"))?;
        let pgid = child.id() as libc::pid_t;
        cleanup::register(pgid);
        Ok(Group(pgid))
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a process group we created; no memory is involved.
        unsafe { libc::kill(-self.0, sig) };
    }

    /// The leader's exit, if it has exited.
    fn exited(&self) -> Option<(ExitStatus, libc::rusage)> {
        reap(self.0, false)
    }

    /// Waits up to `limit` for the leader to exit.
    fn wait(&self, limit: Duration) -> Option<(ExitStatus, libc::rusage)> {
        let t0 = Instant::now();
        loop {
            if let Some(done) = self.exited() {
                return Some(done);
            }
            if t0.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the group and reaps the leader.
    fn kill(&self) -> Option<(ExitStatus, libc::rusage)> {
        self.signal(libc::SIGKILL);
        reap(self.0, true)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        cleanup::forget(self.0);
    }
}

/// A child reaped with `wait4`, which also gives its (and its reaped children's) rusage.
fn reap(pid: libc::pid_t, block: bool) -> Option<(ExitStatus, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, if block { 0 } else { libc::WNOHANG }, &mut ru) };
    (r == pid).then(|| (ExitStatus::from_raw(status), ru))
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

/// The first MiB of a file the run wrote, or nothing if it cannot be read.
fn read_tail(path: &Path) -> String {
    File::open(path).map(measure::read_capped).unwrap_or_default()
}

/// A file of this run's output in the comparison's scratch directory.
fn create(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    let p = dir.join(name);
    let f = File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
    Ok((p, f))
}

/// `sh -c COMMAND` with `PORT` set: how the load and the readiness check run.
fn shell(command: &str, port: u16) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command).env("PORT", port.to_string()).stdin(Stdio::null());
    c
}

fn once(v: &Variant, plan: &Plan, dir: &Path, units: &mut BTreeMap<String, String>) -> Result<Once> {
    let (server_err_path, server_err) = create(dir, "server.stderr")?;
    let (_, server_out) = create(dir, "server.stdout")?;
    let port = free_port()?;
    let mut cmd = Command::new(&plan.cmd[0]);
    cmd.args(&plan.cmd[1..]).stdin(Stdio::null()).stdout(server_out).stderr(server_err).env("PORT", port.to_string());
    v.apply(&mut cmd);
    let server = Group::spawn(&mut cmd, &plan.cmd[0].to_string_lossy())?;
    let fail = |status: String| -> Result<Once> {
        let text = read_tail(&server_err_path);
        Ok((Err(Failure { status, stderr_tail: measure::stderr_tail(&text) }), measure::served_by(&text)))
    };
    if let Err(why) = wait_ready(&server, plan, port, dir) {
        return fail(why);
    }

    let sampler = Sampler::start(server.0, plan.interval);
    let (load_out_path, load_out) = create(dir, "load.stdout")?;
    let (load_err_path, load_err) = create(dir, "load.stderr")?;
    let load = Group::spawn(shell(plan.load, port).stdout(load_out).stderr(load_err), "sh -c for the load command")?;
    let load_status = match load.wait(plan.load_timeout) {
        Some((status, _)) => Some(status),
        None => {
            load.kill();
            None
        }
    };
    drop(load); // anything the load command left running
    let (load_wall, series) = sampler.stop();

    // Still alive? Then stop it: SIGTERM, a grace period, SIGKILL for the group.
    let died = server.exited();
    let ended = match died {
        Some(_) => None,
        None => {
            server.signal(libc::SIGTERM);
            server.wait(plan.grace).or_else(|| server.kill())
        }
    };
    drop(server);

    let load_stdout = read_tail(&load_out_path);
    let load_stderr = read_tail(&load_err_path);
    let served_by = measure::served_by(&read_tail(&server_err_path));
    if let Some((status, _)) = died {
        return fail(format!("server died during the load ({})", describe(status)));
    }
    let load_fail = |status: String| -> Result<Once> {
        let tail = measure::stderr_tail(if load_stderr.trim().is_empty() { &load_stdout } else { &load_stderr });
        Ok((Err(Failure { status, stderr_tail: tail }), served_by.clone()))
    };
    match load_status {
        None => return load_fail(format!("load command timed out after {} s", plan.load_timeout.as_secs())),
        Some(s) if !s.success() => return load_fail(format!("load command failed ({})", describe(s))),
        Some(_) => {}
    }
    let wrk = Wrk::parse(&load_stdout);
    if wrk.failed > 0 {
        return load_fail(format!("{} failed requests ({})", wrk.failed, wrk.failures.join(", ")));
    }

    let mut metrics = parse_metrics(&load_stdout, units);
    let mut add = |name: &str, unit: &str, value: f64| {
        units.entry(name.to_string()).or_insert_with(|| unit.to_string());
        metrics.insert(name.to_string(), value);
    };
    for (name, unit, value) in [(REQUESTS, "req/s", wrk.requests_per_s), (LATENCY, "ms", wrk.latency_avg_ms)] {
        if let Some(v) = value {
            add(name, unit, v);
        }
    }
    let rss = Rss::of(&series, load_wall);
    add(RSS_END, "MiB", rss.end);
    add(RSS_LAST_THIRD, "MiB", rss.mean_last_third);
    add(RSS_SLOPE, "MiB/min", rss.slope_last_third);
    let (user_s, sys_s) = ended.map(|(_, r)| (measure::secs(r.ru_utime), measure::secs(r.ru_stime))).unwrap_or((f64::NAN, f64::NAN));
    if let Some(per_s) = [REQUESTS, JOBS].iter().find_map(|m| metrics.get(*m)).filter(|r| **r > 0.0 && (user_s + sys_s).is_finite()) {
        let ops = per_s * load_wall;
        units.entry(CPU_PER_OP.to_string()).or_insert_with(|| "ms".to_string());
        metrics.insert(CPU_PER_OP.to_string(), (user_s + sys_s) * 1000.0 / ops);
    }
    let peak = series.iter().map(|s| s.1).max().unwrap_or(0);
    Ok((Ok(Sample { wall_s: load_wall, user_s, sys_s, peak_rss: peak, metrics, rss_series: series }), served_by))
}

/// Waits until the server is ready: it accepts connections on its port, or the
/// `--ready` command succeeds. Err: why it never was (it exited, or the time ran out),
/// with the server's group killed and reaped.
fn wait_ready(server: &Group, plan: &Plan, port: u16, dir: &Path) -> std::result::Result<(), String> {
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some((status, _)) = server.exited() {
            return Err(match plan.ready {
                None => format!("server exited before listening on port {port} ({})", describe(status)),
                Some(_) => format!("server exited before it was ready ({})", describe(status)),
            });
        }
        let left = plan.start_timeout.saturating_sub(started.elapsed());
        let ready = match plan.ready {
            None => TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            Some(check) => ready_check(check, port, left, dir),
        };
        if ready {
            return Ok(());
        }
        if started.elapsed() > plan.start_timeout {
            server.kill();
            let secs = plan.start_timeout.as_secs_f64();
            return Err(match plan.ready {
                None => format!("server did not accept connections on port {port} within {secs} s"),
                Some(check) => format!("server was not ready within {secs} s (the ready command never succeeded: {check})"),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One run of the `--ready` command, for at most `limit`: did it succeed?
fn ready_check(check: &str, port: u16, limit: Duration, dir: &Path) -> bool {
    let mut cmd = shell(check, port);
    let err = File::create(dir.join("ready.stderr")).map(Stdio::from).unwrap_or_else(|_| Stdio::null());
    cmd.stdout(Stdio::null()).stderr(err);
    let Ok(group) = Group::spawn(&mut cmd, "sh -c for the ready command") else { return false };
    let ok = group.wait(limit.max(Duration::from_millis(100))).is_some_and(|(s, _)| s.success());
    if !ok {
        group.kill();
    }
    ok
}

/// Samples the RSS of a process group in a thread, from the start of the load until
/// told to stop.
struct Sampler {
    t0: Instant,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<(f64, u64)>>,
    pgid: libc::pid_t,
}

impl Sampler {
    fn start(pgid: libc::pid_t, interval: Duration) -> Sampler {
        let t0 = Instant::now();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut series = Vec::new();
            loop {
                series.push((t0.elapsed().as_secs_f64(), group_rss(pgid)));
                if stopped.recv_timeout(interval).is_ok() {
                    return series;
                }
            }
        });
        Sampler { t0, stop, thread, pgid }
    }

    /// The seconds since the start and the series, with one last sample.
    fn stop(self) -> (f64, Vec<(f64, u64)>) {
        let wall = self.t0.elapsed().as_secs_f64();
        let _ = self.stop.send(());
        let mut series = self.thread.join().unwrap_or_default();
        series.push((self.t0.elapsed().as_secs_f64(), group_rss(self.pgid)));
        (wall, series)
    }
}

/// The summed resident set of every process in process group `pgid`, in bytes (read
/// from /proc/PID/stat; shared pages count once per process).
pub fn group_rss(pgid: libc::pid_t) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut total = 0;
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // After the command name (in parentheses, which may hold anything): state is
        // field 3, pgrp field 5, rss (pages) field 24.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 21 && f[2].parse() == Ok(pgid) {
            total += f[21].parse::<u64>().unwrap_or(0) * page;
        }
    }
    total
}

/// The RSS figures of one run, in MiB (and MiB per minute).
#[derive(Debug, PartialEq)]
struct Rss {
    end: f64,
    mean_last_third: f64,
    slope_last_third: f64,
}

impl Rss {
    fn of(series: &[(f64, u64)], duration: f64) -> Rss {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let last: Vec<(f64, f64)> = series.iter().filter(|s| s.0 >= duration * 2.0 / 3.0).map(|&(t, b)| (t / 60.0, mib(b))).collect();
        let n = last.len() as f64;
        let mean = last.iter().map(|s| s.1).sum::<f64>() / n.max(1.0);
        let mt = last.iter().map(|s| s.0).sum::<f64>() / n.max(1.0);
        let var: f64 = last.iter().map(|s| (s.0 - mt).powi(2)).sum();
        let cov: f64 = last.iter().map(|s| (s.0 - mt) * (s.1 - mean)).sum();
        Rss {
            end: series.last().map(|s| mib(s.1)).unwrap_or(0.0),
            mean_last_third: mean,
            slope_last_third: if var > 0.0 { cov / var } else { 0.0 },
        }
    }
}

/// What `wrk` printed: throughput, mean latency, failed requests.
#[derive(Debug, Default)]
struct Wrk {
    requests_per_s: Option<f64>,
    latency_avg_ms: Option<f64>,
    failed: u64,
    failures: Vec<String>,
}

impl Wrk {
    fn parse(out: &str) -> Wrk {
        let mut w = Wrk::default();
        for line in out.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("Requests/sec:") {
                w.requests_per_s = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("Latency") {
                w.latency_avg_ms = v.split_whitespace().next().and_then(duration_ms);
            } else if let Some(v) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 5"
                for part in v.split(',') {
                    let mut it = part.split_whitespace();
                    if let (Some(kind), Some(Ok(n))) = (it.next(), it.next().map(str::parse::<u64>)) {
                        if n > 0 {
                            w.failed += n;
                            w.failures.push(format!("{n} socket {kind} errors"));
                        }
                    }
                }
            } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
                if let Ok(n) = v.trim().parse::<u64>() {
                    w.failed += n;
                    w.failures.push(format!("{n} non-2xx/3xx responses"));
                }
            }
        }
        w
    }
}

/// wrk's durations: "812.00us", "1.23ms", "2.01s", "1.5m".
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 10s test @ http://127.0.0.1:8080/\n  2 threads and 10 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   812.00us  456.00us   10.00ms   90.00%\n    Req/Sec     4.00k   200.00     4.50k    70.00%\n  80000 requests in 10.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 5\n  Non-2xx or 3xx responses: 12\nRequests/sec:   8000.50\nTransfer/sec:      1.00MB\n";
        let w = Wrk::parse(out);
        assert_eq!(w.requests_per_s, Some(8000.5));
        assert!((w.latency_avg_ms.unwrap() - 0.812).abs() < 1e-9);
        assert_eq!(w.failed, 19);
        assert_eq!(w.failures, ["2 socket read errors", "5 socket timeout errors", "12 non-2xx/3xx responses"]);
        let clean = Wrk::parse("    Latency     1.50ms\nRequests/sec: 10\n");
        assert_eq!((clean.failed, clean.latency_avg_ms), (0, Some(1.5)));
    }

    #[test]
    fn rss_over_the_last_third() {
        let mib = 1024 * 1024;
        // 10 MiB growing by 1 MiB every 6 s (10 MiB/min) over 54 s, then flat at 30 MiB
        // for the last 36 s: the last third (from 60 s) sees only the plateau.
        let series: Vec<(f64, u64)> = (0..=15).map(|i| (i as f64 * 6.0, (10 + i.min(9) * 2) * mib)).collect();
        let r = Rss::of(&series, 90.0);
        assert_eq!(r.end, 28.0);
        assert_eq!(r.mean_last_third, 28.0);
        assert_eq!(r.slope_last_third, 0.0, "{r:?}");
        // Growing all along: the slope of the last third is the growth rate.
        let growing: Vec<(f64, u64)> = (0..=10).map(|i| (i as f64 * 6.0, (10 + i) * mib)).collect();
        let r = Rss::of(&growing, 60.0);
        assert_eq!(r.mean_last_third, 18.5);
        assert!((r.slope_last_third - 10.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn group_rss_counts_this_process() {
        // SAFETY: getpgrp has no preconditions.
        let own = group_rss(unsafe { libc::getpgrp() });
        assert!(own > 1 << 20, "{own}");
    }
}
