//! The names `ALLOCSHIM_ONLY`/`ALLOCSHIM_EXCEPT` match a program by
//! (`allocshim_select::scope`), which the library reads in-process at start: read here
//! for a running process (`doctor PID`) or worked out for a command about to run
//! (`info -- CMD`, `doctor -- CMD`), so that the command judges it with the same rules.
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use allocshim_select::preset::Preset;
use allocshim_select::scope::{self, Lists, Names};
use allocshim_select::vars::{ALLOCSHIM_EXCEPT, ALLOCSHIM_ONLY};
use allocshim_select::Backend;
use anyhow::{Context, Result};
use serde::Serialize;

use crate::{elf, probe};

/// What a program's names are made of: the path it was started by, the file running,
/// its arguments after `argv[0]`.
#[derive(Debug, Default)]
pub struct Program {
    started: Vec<u8>,
    binary: Vec<u8>,
    args: Vec<Vec<u8>>,
    /// How `started` was found, when it is not what the library read.
    pub caveat: Option<&'static str>,
}

impl Program {
    pub fn names(&self) -> Names<'_> {
        Names::new(&self.started, &self.binary, self.args.iter().map(Vec::as_slice))
    }

    /// The names as they are matched, empty when not known.
    pub fn shown(&self) -> Shown {
        let n = self.names();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Shown { program: text(n.program), binary: text(n.binary), script: text(n.script) }
    }

    /// "program node (binary nodejs, script app.js)".
    pub fn describe(&self) -> String {
        let mut l = allocshim_select::line::Line::new();
        self.names().describe(&mut l);
        String::from_utf8_lossy(l.as_bytes()).into_owned()
    }
}

/// A program's names, for `info --json`.
#[derive(Serialize, Debug)]
pub struct Shown {
    pub program: String,
    pub binary: String,
    pub script: String,
}

/// A running process's names. `AT_EXECFN` is read from its memory where this user
/// may (root, or a ptrace-able process of the same user); otherwise `argv[0]` stands
/// in for it, which is the same name unless the program was started by another path.
pub fn of_process(proc: &Path) -> Program {
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let binary = std::fs::read_link(proc.join("exe")).map(|p| p.into_os_string().into_vec()).unwrap_or_default();
    let args = scope::arguments(&cmdline, false).map(<[u8]>::to_vec).collect();
    match execfn(proc) {
        Some(started) => Program { started, binary, args, caveat: None },
        None => {
            let argv0 = cmdline.split(|&c| c == 0).next().unwrap_or_default().to_vec();
            Program { started: argv0, binary, args, caveat: Some("its start path is not readable here, so argv[0] stands in for it") }
        }
    }
}

/// The process's `AT_EXECFN` string, read through `/proc/PID/auxv` and `/proc/PID/mem`.
fn execfn(proc: &Path) -> Option<Vec<u8>> {
    const AT_EXECFN: u64 = 31;
    let auxv = std::fs::read(proc.join("auxv")).ok()?;
    let words: Vec<u64> = auxv.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default())).collect();
    let addr = words.chunks_exact(2).find(|kv| kv[0] == AT_EXECFN).map(|kv| kv[1]).filter(|&a| a != 0)?;
    let mut mem = std::fs::File::open(proc.join("mem")).ok()?;
    mem.seek(SeekFrom::Start(addr)).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = mem.read(&mut buf).ok()?;
    let end = buf[..n].iter().position(|&c| c == 0)?;
    buf.truncate(end);
    Some(buf)
}

/// The names of the process that `cmd` ends up as: found on PATH, and for a `#!`
/// script its interpreter as the kernel starts it (`AT_EXECFN` the script, the script's
/// path in the arguments), through `/usr/bin/env NAME` (or `env -S NAME ARGS`) too.
pub fn of_command(cmd: &[OsString]) -> Result<Program> {
    let first = cmd.first().context("no command given")?;
    let path = elf::which(Path::new(first)).with_context(|| format!("command not found: {}", first.to_string_lossy()))?;
    let mut args: Vec<Vec<u8>> = cmd[1..].iter().map(|a| a.as_bytes().to_vec()).collect();
    let started = path.as_os_str().as_bytes().to_vec();
    let Some((interp, arg)) = shebang(&path)? else {
        return Ok(Program { started, binary: real(&path), args, caveat: None });
    };
    // The kernel runs `interp [arg] SCRIPT ARGS...`, with the script as AT_EXECFN.
    args.insert(0, started.clone());
    if Path::new(&interp).file_name().is_some_and(|n| n == "env") {
        // env runs its program by PATH lookup with the rest: that process is the one
        // that lasts, started by the program's path.
        let words: Vec<&str> = match arg.as_deref() {
            Some(a) if a.starts_with("-S") => a[2..].split_whitespace().collect(),
            Some(a) => vec![a],
            None => vec![],
        };
        let name = words.first().with_context(|| format!("{}: #!{interp} names no program", path.display()))?;
        let found = elf::which(Path::new(name)).with_context(|| format!("{}'s interpreter {name} is not on PATH", path.display()))?;
        let mut all: Vec<Vec<u8>> = words[1..].iter().map(|w| w.as_bytes().to_vec()).collect();
        all.append(&mut args);
        return Ok(Program { started: found.as_os_str().as_bytes().to_vec(), binary: real(&found), args: all, caveat: None });
    }
    if let Some(a) = arg {
        args.insert(0, a.into_bytes());
    }
    Ok(Program { started, binary: real(Path::new(&interp)), args, caveat: None })
}

/// The `#!` line of `path`, if it has one: the interpreter and its one argument (the
/// rest of the line, as Linux passes it).
fn shebang(path: &Path) -> Result<Option<(String, Option<String>)>> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(line) = head[..n].strip_prefix(b"#!") else { return Ok(None) };
    let line = String::from_utf8_lossy(line.split(|&b| b == b'\n').next().unwrap_or_default()).trim().to_string();
    let (interp, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i.to_string(), Some(a.trim().to_string()).filter(|a| !a.is_empty())),
        None => (line, None),
    };
    Ok((!interp.is_empty()).then_some((interp, arg)))
}

/// The file really running for `path` (symlinks resolved), as `/proc/self/exe` shows it.
fn real(path: &Path) -> Vec<u8> {
    std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)).into_os_string().into_vec()
}

/// Whether a process with this report (the library's answer for the environment,
/// without the lists: see `probe::ask`) reads the lists at all: it asks for a backend
/// or a preset.
fn asks(report: &probe::Report) -> bool {
    report.active.name != "system" || report.preset != Preset::Default.name().to_string_lossy()
}

/// `ALLOCSHIM_ONLY`/`ALLOCSHIM_EXCEPT` of `env` applied to `program` as the library
/// applies them to itself: `report` becomes what that program gets (backend and
/// reason, in the library's words). Returns the variable that decided and whether it
/// left the program on `system`, if one did.
pub fn judge<'e>(report: &mut probe::Report, lists: &Lists<'e>, program: &Program) -> Option<(&'static str, bool)> {
    if !asks(report) {
        return None;
    }
    let names = program.names();
    let verdict = lists.judge(&names);
    let backend = Backend::from_name(report.active.name.as_bytes()).unwrap_or(Backend::System);
    let preset = Preset::from_name(report.preset.as_bytes()).unwrap_or(Preset::Default);
    let reason = lists.reason(&verdict, &names, backend, preset, report.reason.as_bytes());
    report.reason = String::from_utf8_lossy(reason.as_bytes()).into_owned();
    if verdict.left_on_system() {
        let system = Backend::System.name().to_string_lossy();
        if let Some(b) = report.backends.iter().find(|b| b.name == system) {
            report.active = b.clone();
        }
        report.preset = Preset::Default.name().to_string_lossy().into_owned();
        report.options = "none: the library is dormant in this program".into();
    }
    verdict.var().map(|v| (v, verdict.left_on_system()))
}

/// The lists in words: "only ruby, puma* (ALLOCSHIM_ONLY); never node* (ALLOCSHIM_EXCEPT);
/// every other program stays on system", or that every program is served.
pub fn describe_lists(lists: &Lists, report: &probe::Report) -> String {
    let words = |v: &[u8]| scope::entries(v).map(|e| String::from_utf8_lossy(e).into_owned()).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if let Some(only) = lists.only {
        parts.push(format!("only {} ({ALLOCSHIM_ONLY})", words(only)));
    }
    if let Some(except) = lists.except {
        parts.push(format!("never {} ({ALLOCSHIM_EXCEPT})", words(except)));
    }
    if parts.is_empty() {
        return format!("every program ({ALLOCSHIM_ONLY} and {ALLOCSHIM_EXCEPT} unset)");
    }
    let rest = if lists.only.is_some() { "every other program stays on system" } else { "the others are served" };
    let note = if asks(report) { "" } else { " (nothing is asked for, so the lists do nothing)" };
    format!("{}; {rest}{note}", parts.join("; "))
}
