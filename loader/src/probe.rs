//! Asking the library about itself.
//!
//! The library cannot be dlopen'ed into a running program (its backends use
//! initial-exec TLS, which only preloading provides), and its answers depend on the
//! environment it starts in. So the question is asked in a child: this same binary,
//! started with the library preloaded and the environment under study, opens the
//! already-loaded library with libloading, reads its query API and prints JSON. The
//! choice, the reason and any warnings are therefore the library's own, exactly what a
//! real program started with that environment would get.
use std::ffi::{c_char, c_int, CStr, OsString};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Backend {
    pub name: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Report {
    /// The shim's own version.
    pub version: String,
    /// The compiled-in backends, in the library's precedence order.
    pub backends: Vec<Backend>,
    /// What this environment selects.
    pub active: Backend,
    /// Why, in the library's words.
    pub reason: String,
    /// The object that defines the `malloc` the probe process resolves: proof that the
    /// preload took effect.
    pub malloc_from: String,
    /// The preset in force (`ALLOCSHIM_PRESET`).
    #[serde(default)]
    pub preset: String,
    /// The selected backend's tunable options: effective value and where each came from.
    #[serde(default)]
    pub options: String,
    /// The library's `allocshim:` warnings for this environment.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Report {
    pub fn names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name.as_str()).collect()
    }
}

/// Variables that only change what the library prints, not what it selects.
const QUIET: [&str; 2] = ["ALLOCSHIM_VERBOSE", "ALLOCSHIM_STATS"];

/// What `lib` reports when started with this process's environment (`env: None`) or
/// with exactly `env`, plus `set` on top.
pub fn ask(lib: &Path, env: Option<&[(OsString, OsString)]>, set: &[(&str, &str)]) -> Result<Report> {
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__probe").arg(lib);
    if let Some(vars) = env {
        cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
    }
    for v in QUIET {
        cmd.env_remove(v);
    }
    cmd.env("LD_PRELOAD", lib).envs(set.iter().copied());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start a process to query {}", lib.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} could not be loaded into a process ({}): {}", lib.display(), out.status, stderr.trim());
    }
    let mut report: Report = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("unexpected answer from {}: {}", lib.display(), String::from_utf8_lossy(&out.stdout)))?;
    report.warnings = stderr.lines().filter_map(|l| l.strip_prefix("allocshim: ")).map(String::from).collect();
    Ok(report)
}

/// The child side: runs with `lib` preloaded.
pub fn child(lib: &Path) -> Result<ExitCode> {
    let report = unsafe { read(lib) }.with_context(|| format!("cannot query {}", lib.display()))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

unsafe fn read(lib: &Path) -> Result<Report> {
    type Text = unsafe extern "C" fn() -> *const c_char;
    type Nth = unsafe extern "C" fn(c_int) -> *const c_char;
    // Already loaded by ld.so, so this only takes another reference to it.
    let l = libloading::Library::new(lib)?;
    let version = l.get::<Text>(b"allocshim_version\0")?;
    let count = l.get::<unsafe extern "C" fn() -> c_int>(b"allocshim_backend_count\0")?;
    let name = l.get::<Nth>(b"allocshim_backend_name\0")?;
    let backend_version = l.get::<Nth>(b"allocshim_backend_version\0")?;
    let active = l.get::<unsafe extern "C" fn() -> c_int>(b"allocshim_active\0")?;
    let reason = l.get::<Text>(b"allocshim_reason\0")?;
    let preset = l.get::<Text>(b"allocshim_preset\0")?;
    let options = l.get::<Text>(b"allocshim_options\0")?;

    let backend = |i: c_int| Backend { name: text(name(i)), version: text(backend_version(i)) };
    Ok(Report {
        version: text(version()),
        backends: (0..count()).map(backend).collect(),
        active: backend(active()),
        reason: text(reason()),
        malloc_from: malloc_from(),
        preset: text(preset()),
        options: text(options()),
        warnings: Vec::new(),
    })
}

unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

unsafe fn malloc_from() -> String {
    let sym = libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
    let mut info: libc::Dl_info = std::mem::zeroed();
    if sym.is_null() || libc::dladdr(sym, &mut info) == 0 {
        return String::new();
    }
    text(info.dli_fname)
}
