//! `allocshim profile --dump PID`: asks a running process for a heap profile now,
//! with the real-time signal its own `ALLOCSHIM_PROFILE` names, and waits for the
//! file. A real-time signal nobody handles ends a process, so it is sent only after
//! /proc/PID/status shows the process catching it.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allocshim_select::profile::{self, Settings};
use allocshim_select::vars::ALLOCSHIM_PROFILE;
use anyhow::{bail, Context, Result};

pub fn dump(pid: u32, timeout: u64) -> Result<PathBuf> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).with_context(|| format!("cannot read the environment of process {pid}"))?;
    let prefix = format!("{ALLOCSHIM_PROFILE}=");
    let raw = environ.split(|&b| b == 0).find_map(|e| e.strip_prefix(prefix.as_bytes())).with_context(|| {
        format!("process {pid} was started without {ALLOCSHIM_PROFILE}: it writes no heap profiles (set it and restart it)")
    })?;
    let settings: Settings = profile::parse(raw, &mut |_| {})
        .with_context(|| format!("process {pid} has {ALLOCSHIM_PROFILE}={}: profiling off", String::from_utf8_lossy(raw)))?;
    let Some(signal) = settings.signal else {
        bail!("process {pid} has {ALLOCSHIM_PROFILE}=...,signal=none: it takes no requests (its profiles come at exit, on growth, or with every=)");
    };
    let mut name = allocshim_select::line::Line::new();
    signal.describe(&mut name);
    let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
    let number = signal.number().with_context(|| format!("signal {name} is not a real-time signal here"))?;
    if !catches(pid, number)? {
        bail!(
            "process {pid} does not catch signal {number} ({name}): heap profiling is not running in it (is liballocshim.so preloaded with jemalloc? see `allocshim doctor {pid}`), or the program took that signal for itself; not sending it, since by default it ends the process"
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(settings.dir).into_owned());
    let dir = if dir.is_absolute() { dir } else { Path::new(&format!("/proc/{pid}/cwd")).join(dir) };
    let before = ours(&dir, pid);
    // SAFETY: kill only sends a signal; the process was checked to catch it.
    if unsafe { libc::kill(pid as libc::pid_t, number) } != 0 {
        bail!("cannot signal process {pid}: {}", std::io::Error::last_os_error());
    }
    eprintln!("allocshim profile: asked process {pid} for a heap profile (signal {name}); waiting for it in {}", dir.display());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(timeout) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(new) = ours(&dir, pid).difference(&before).max() {
            return Ok(new.clone());
        }
    }
    bail!(
        "process {pid} wrote no heap profile into {} within {timeout} s (see its stderr: an unwritable directory or a full disk is reported there)",
        dir.display()
    )
}

/// Whether /proc/PID/status lists `signal` among the caught ones (`SigCgt`, a hex mask).
fn catches(pid: u32, signal: i32) -> Result<bool> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("cannot read the status of process {pid}"))?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).map(str::trim).context("no SigCgt line in /proc/PID/status")?;
    let mask = u64::from_str_radix(mask, 16).context("SigCgt is not a hexadecimal mask")?;
    Ok(signal >= 1 && mask & (1u64 << (signal - 1)) != 0)
}

/// The on-demand profiles of `pid` in `dir`: NAME.PID.SEQ.signal.heap.
fn ours(dir: &Path, pid: u32) -> HashSet<PathBuf> {
    let needle = format!(".{pid}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return HashSet::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(&needle) && n.ends_with(".signal.heap")))
        .collect()
}
