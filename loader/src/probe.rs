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

use allocshim_select::vars::{LD_PRELOAD, PER_PROGRAM, PRINT_ONLY};
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

/// What `lib` reports when started with this process's environment (`env: None`) or
/// with exactly `env`, plus `set` on top.
pub fn ask(lib: &Path, env: Option<&[(OsString, OsString)]>, set: &[(&str, &str)]) -> Result<Report> {
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__probe").arg(lib);
    if let Some(vars) = env {
        cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
    }
    // Only what the library selects matters here, not what it would print; and what
    // it selects for the environment, not for this probe program: the caller judges
    // ALLOCSHIM_ONLY/EXCEPT for the program in question (`names::judge`).
    for v in PRINT_ONLY.iter().chain(&PER_PROGRAM) {
        cmd.env_remove(v);
    }
    cmd.env(LD_PRELOAD, lib).envs(set.iter().copied());
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot start a process to query {}", lib.display()))?;
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
    // SAFETY: `__probe` is started only by `ask`, with `lib` in LD_PRELOAD: it is the
    // library ld.so preloaded into this process (the child fails earlier if not).
    let report = unsafe { read(lib) }.with_context(|| format!("cannot query {}", lib.display()))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// The library's answers, through its query API (`allocshim_*` in shim/src/exports.rs).
///
/// # Safety
/// `lib` is liballocshim.so and is already loaded into this process (preloaded), so
/// opening it runs no initialiser, and its `allocshim_*` functions have the types
/// declared here: no arguments or a `c_int`, returning a `c_int` or NULL or a C string
/// that lives as long as the library.
unsafe fn read(lib: &Path) -> Result<Report> {
    type Text = unsafe extern "C" fn() -> *const c_char;
    type Nth = unsafe extern "C" fn(c_int) -> *const c_char;
    type Int = unsafe extern "C" fn() -> c_int;
    // SAFETY: already loaded by ld.so (our caller's contract), so this only takes
    // another reference to it: no initialiser runs.
    let l = unsafe { libloading::Library::new(lib) }?;
    // SAFETY: each symbol has the type given (our caller's contract), and the symbols
    // are used only while `l` keeps the library loaded.
    let (version, count, name, backend_version, active, reason) = unsafe {
        (
            l.get::<Text>(b"allocshim_version\0")?,
            l.get::<Int>(b"allocshim_backend_count\0")?,
            l.get::<Nth>(b"allocshim_backend_name\0")?,
            l.get::<Nth>(b"allocshim_backend_version\0")?,
            l.get::<Int>(b"allocshim_active\0")?,
            l.get::<Text>(b"allocshim_reason\0")?,
        )
    };
    // SAFETY: as above.
    let (preset, options) = unsafe { (l.get::<Text>(b"allocshim_preset\0")?, l.get::<Text>(b"allocshim_options\0")?) };

    // SAFETY: the functions have these types (our caller's contract), take no
    // pointers, and return NULL (an index out of range) or C strings that live as
    // long as the library, which `text` copies at once.
    let backend = |i: c_int| unsafe { Backend { name: text(name(i)), version: text(backend_version(i)) } };
    // SAFETY: as for `backend`.
    let (version, count, active, reason, preset, options) =
        unsafe { (text(version()), count(), active(), text(reason()), text(preset()), text(options())) };
    Ok(Report {
        version,
        backends: (0..count).map(backend).collect(),
        active: backend(active),
        reason,
        malloc_from: malloc_from(),
        preset,
        options,
        warnings: Vec::new(),
    })
}

/// A copy of the C string at `p` ("" for NULL).
///
/// # Safety
/// `p` is NULL or points at a NUL-terminated string that stays valid during the call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL, so a NUL-terminated string valid for now (caller's contract).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The file name of the object that defines the `malloc` the global lookup finds.
fn malloc_from() -> String {
    // SAFETY: a lookup of a NUL-terminated name in the global scope; dlsym reads
    // nothing of ours but the name.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    // SAFETY: Dl_info is plain C data (pointers and integers), for which all zeroes
    // is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only writes `info`, a live local; `sym` is non-NULL here.
    if sym.is_null() || unsafe { libc::dladdr(sym, &mut info) } == 0 {
        return String::new();
    }
    // SAFETY: dladdr succeeded, so `dli_fname` is NULL or the path of the object
    // (ld.so's copy), valid while that object, the one defining malloc, stays loaded.
    unsafe { text(info.dli_fname) }
}
