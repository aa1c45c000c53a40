//! Starting programs with the library preloaded.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Result};

use allocshim_select::vars::{ALLOCSHIM_BACKEND, ALLOCSHIM_STATS, ALLOCSHIM_VERBOSE, LD_PRELOAD};

use crate::{locate, preload, probe};

/// `cmd` set up to run with the library and, if given, a fixed backend.
pub fn command(lib: &Path, backend: Option<&str>, cmd: &[OsString]) -> Command {
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env(LD_PRELOAD, preload::prepend(lib, std::env::var_os(LD_PRELOAD).as_deref()));
    if let Some(b) = backend {
        c.env(ALLOCSHIM_BACKEND, b);
    }
    c
}

/// The backend name as the library spells it, or an error listing what it accepts.
pub fn check_backend(report: &probe::Report, name: &str) -> Result<String> {
    let wanted = name.trim().to_ascii_lowercase();
    if report.names().contains(&wanted.as_str()) {
        return Ok(wanted);
    }
    bail!("unknown backend '{name}'; this library has: {}", report.names().join(", "))
}

/// `allocshim run`: replaces this process with CMD, so its exit status and any signal
/// that ends it reach the caller unchanged.
pub fn run(backend: Option<&str>, verbose: bool, stats: bool, cmd: &[OsString]) -> Result<ExitCode> {
    let lib = locate::library()?.path;
    // Only a named backend needs the library's list; otherwise go straight to exec.
    let backend = match backend {
        Some(b) => Some(check_backend(&probe::ask(&lib, None, &[])?, b)?),
        None => None,
    };
    let mut c = command(&lib, backend.as_deref(), cmd);
    if verbose {
        c.env(ALLOCSHIM_VERBOSE, "1");
    }
    if stats {
        c.env(ALLOCSHIM_STATS, "1");
    }
    let err = c.exec();
    eprintln!("allocshim: error: cannot run {}: {err}", Path::new(&cmd[0]).display());
    // The shell's convention: 127 for a command not found, 126 for one that cannot run.
    Ok(ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }))
}
