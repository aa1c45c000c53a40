//! Starting programs with the library preloaded.
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Result};

use crate::{locate, probe};

/// `LD_PRELOAD` with `lib` first and everything already there kept, in order, except
/// other copies of the library (ld.so splits the list on spaces and colons).
pub fn preload_list(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut out = OsString::from(lib);
    for entry in existing.map(OsStr::as_bytes).unwrap_or_default().split(|&b| b == b' ' || b == b':') {
        let entry = OsStr::from_bytes(entry);
        if entry.is_empty() || Path::new(entry).file_name() == Some(OsStr::new(locate::FILE_NAME)) {
            continue;
        }
        out.push(":");
        out.push(entry);
    }
    out
}

/// `cmd` set up to run with the library and, if given, a fixed backend.
pub fn command(lib: &Path, backend: Option<&str>, cmd: &[OsString]) -> Command {
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("LD_PRELOAD", preload_list(lib, std::env::var_os("LD_PRELOAD").as_deref()));
    if let Some(b) = backend {
        c.env("ALLOCSHIM_BACKEND", b);
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
        c.env("ALLOCSHIM_VERBOSE", "1");
    }
    if stats {
        c.env("ALLOCSHIM_STATS", "1");
    }
    let err = c.exec();
    eprintln!("allocshim: error: cannot run {}: {err}", Path::new(&cmd[0]).display());
    // The shell's convention: 127 for a command not found, 126 for one that cannot run.
    Ok(ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepends_and_drops_other_copies() {
        let lib = Path::new("/opt/a/liballocshim.so");
        let got = |s: Option<&str>| preload_list(lib, s.map(OsStr::new)).into_string().unwrap();
        assert_eq!(got(None), "/opt/a/liballocshim.so");
        assert_eq!(got(Some("")), "/opt/a/liballocshim.so");
        assert_eq!(got(Some("/x/libfoo.so /y/libbar.so ")), "/opt/a/liballocshim.so:/x/libfoo.so:/y/libbar.so");
        assert_eq!(got(Some("/old/liballocshim.so:/x/libfoo.so")), "/opt/a/liballocshim.so:/x/libfoo.so");
    }
}
