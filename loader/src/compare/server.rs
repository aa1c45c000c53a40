//! `allocshim compare --load 'LOAD' -- SERVER...`: long-running servers.
//!
//! Per variant and round: the server starts in its own process group with `PORT` (a
//! free loopback port) in its environment; once it accepts connections on
//! 127.0.0.1:PORT the load command runs (`sh -c`, same `PORT`) while the RSS of the
//! server's process group is sampled; then the server gets SIGTERM and, after a grace
//! period, the whole group SIGKILL. The figures go into the same `Sample` as a batch
//! run (wall = load duration, user/sys = the server's CPU time, peak RSS = the
//! group's sampled peak), with the server's own figures as metrics, so the summary,
//! ratios, noise marks and JSON are `compare`'s own.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::measure::{self, describe, parse_metrics, Failure, Once, Outcome, Sample, Variant};
use super::summary::Comparison;

pub struct Plan<'a> {
    pub variants: &'a [Variant],
    pub cmd: &'a [OsString],
    pub load: &'a str,
    pub runs: u32,
    pub warmup: u32,
    /// How long the server may take to accept connections.
    pub start_timeout: Duration,
    /// How long the load command may run.
    pub load_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Between two RSS samples.
    pub interval: Duration,
}

/// The metrics a server run adds, with their units.
pub const RSS_END: &str = "rss_end";
pub const RSS_LAST_HALF: &str = "rss_mean_last_half";
pub const RSS_SLOPE: &str = "rss_slope_last_half";
pub const REQUESTS: &str = "requests_per_s";
pub const LATENCY: &str = "latency_avg_ms";

pub fn run(plan: &Plan) -> Result<Vec<Outcome>> {
    let dir = std::env::temp_dir().join(format!("allocshim-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let outcomes = measure::rounds(plan.variants, plan.runs, plan.warmup, |v, units| once(v, plan, &dir, units));
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
/// no server or load process outlives its run.
struct Group(libc::pid_t);

impl Group {
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a process group we created; no memory is involved.
        unsafe { libc::kill(-self.0, sig) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
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

fn once(v: &Variant, plan: &Plan, dir: &Path, units: &mut BTreeMap<String, String>) -> Result<Once> {
    let file = |name: &str| -> Result<(PathBuf, File)> {
        let p = dir.join(name);
        let f = File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok((p, f))
    };
    let (server_err_path, server_err) = file("server.stderr")?;
    let (_, server_out) = file("server.stdout")?;
    let port = free_port()?;
    let mut cmd = Command::new(&plan.cmd[0]);
    cmd.args(&plan.cmd[1..]).stdin(Stdio::null()).stdout(server_out).stderr(server_err).env("PORT", port.to_string());
    v.apply(&mut cmd);
    cmd.process_group(0);
    let server = cmd.spawn().with_context(|| format!("cannot run {}", plan.cmd[0].to_string_lossy()))?;
    let pid = server.id() as libc::pid_t;
    drop(server); // reaped with wait4 below, not by std
    let group = Group(pid);
    let fail = |status: String| -> Result<Once> {
        let text = read_tail(&server_err_path);
        Ok((Err(Failure { status, stderr_tail: measure::stderr_tail(&text) }), measure::served_by(&text)))
    };

    // Started: accepting connections on the port it was given.
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some((status, _)) = reap(pid, false) {
            return fail(format!("server exited before listening on port {port} ({})", describe(status)));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if started.elapsed() > plan.start_timeout {
            drop(group);
            reap(pid, true);
            return fail(format!("server did not accept connections on port {port} within {} s", plan.start_timeout.as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Sampling, in a thread, until told to stop.
    let t0 = Instant::now();
    let (stop, stopped) = mpsc::channel::<()>();
    let interval = plan.interval;
    let sampler = std::thread::spawn(move || {
        let mut series = Vec::new();
        loop {
            series.push((t0.elapsed().as_secs_f64(), group_rss(pid)));
            if stopped.recv_timeout(interval).is_ok() {
                return series;
            }
        }
    });

    // The load.
    let (load_out_path, load_out) = file("load.stdout")?;
    let (load_err_path, load_err) = file("load.stderr")?;
    let load = Command::new("sh")
        .arg("-c")
        .arg(plan.load)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(load_out)
        .stderr(load_err)
        .process_group(0)
        .spawn()
        .context("cannot run sh -c for the load command")?;
    let load_pid = load.id() as libc::pid_t;
    drop(load);
    let load_group = Group(load_pid);
    let load_status = loop {
        if let Some((status, _)) = reap(load_pid, false) {
            break Some(status);
        }
        if t0.elapsed() > plan.load_timeout {
            load_group.signal(libc::SIGKILL);
            reap(load_pid, true);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(load_group); // anything the load command left running
    let load_wall = t0.elapsed().as_secs_f64();
    let _ = stop.send(());
    let mut series = sampler.join().unwrap_or_default();
    series.push((t0.elapsed().as_secs_f64(), group_rss(pid)));

    // Still alive? Then stop it: SIGTERM, a grace period, SIGKILL for the group.
    let died = reap(pid, false);
    let mut ru = None;
    if died.is_none() {
        group.signal(libc::SIGTERM);
        let deadline = Instant::now() + plan.grace;
        while Instant::now() < deadline {
            if let Some((_, r)) = reap(pid, false) {
                ru = Some(r);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(group);
    if died.is_none() && ru.is_none() {
        ru = reap(pid, true).map(|(_, r)| r);
    }

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
    for (name, unit, value) in [(REQUESTS, "req/s", wrk.requests_per_s), (LATENCY, "ms", wrk.latency_avg_ms)] {
        if let Some(v) = value {
            units.entry(name.to_string()).or_insert_with(|| unit.to_string());
            metrics.insert(name.to_string(), v);
        }
    }
    let rss = Rss::of(&series, load_wall);
    for (name, unit, value) in
        [(RSS_END, "MiB", rss.end), (RSS_LAST_HALF, "MiB", rss.mean_last_half), (RSS_SLOPE, "MiB/min", rss.slope_last_half)]
    {
        units.entry(name.to_string()).or_insert_with(|| unit.to_string());
        metrics.insert(name.to_string(), value);
    }
    let (user_s, sys_s) = ru.map(|r| (measure::secs(r.ru_utime), measure::secs(r.ru_stime))).unwrap_or((f64::NAN, f64::NAN));
    let peak = series.iter().map(|s| s.1).max().unwrap_or(0);
    Ok((Ok(Sample { wall_s: load_wall, user_s, sys_s, peak_rss: peak, metrics, rss_series: series }), served_by))
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
    mean_last_half: f64,
    slope_last_half: f64,
}

impl Rss {
    fn of(series: &[(f64, u64)], duration: f64) -> Rss {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let half: Vec<(f64, f64)> = series.iter().filter(|s| s.0 >= duration / 2.0).map(|&(t, b)| (t / 60.0, mib(b))).collect();
        let n = half.len() as f64;
        let mean = half.iter().map(|s| s.1).sum::<f64>() / n.max(1.0);
        let mt = half.iter().map(|s| s.0).sum::<f64>() / n.max(1.0);
        let var: f64 = half.iter().map(|s| (s.0 - mt).powi(2)).sum();
        let cov: f64 = half.iter().map(|s| (s.0 - mt) * (s.1 - mean)).sum();
        Rss {
            end: series.last().map(|s| mib(s.1)).unwrap_or(0.0),
            mean_last_half: mean,
            slope_last_half: if var > 0.0 { cov / var } else { 0.0 },
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
    fn rss_over_the_last_half() {
        let mib = 1024 * 1024;
        // 10 MiB growing by 1 MiB every 6 s (10 MiB/min), over 60 s.
        let series: Vec<(f64, u64)> = (0..=10).map(|i| (i as f64 * 6.0, (10 + i) * mib)).collect();
        let r = Rss::of(&series, 60.0);
        assert_eq!(r.end, 20.0);
        assert_eq!(r.mean_last_half, 17.5);
        assert!((r.slope_last_half - 10.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn group_rss_counts_this_process() {
        // SAFETY: getpgrp has no preconditions.
        let own = group_rss(unsafe { libc::getpgrp() });
        assert!(own > 1 << 20, "{own}");
    }
}
