//! `allocshim doctor`: is the library really serving this shell, process or program,
//! and if not, why, with a one-line fix for each finding.
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use allocshim_select::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::{self, Preset};
use allocshim_select::rules::{self, Warning};
use allocshim_select::scope::{self, Lists};
use allocshim_select::vars::{
    ALLOCSHIM_BACKEND, ALLOCSHIM_LIB, ALLOCSHIM_ONLY, ALLOCSHIM_PRESET, ALLOCSHIM_STATS, ALLOCSHIM_VERBOSE, LD_PRELOAD,
};
use allocshim_select::{Backend, ALL};
use anyhow::Result;

use crate::{elf, locate, names, preload, probe};

#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Level {
    Ok,
    Note,
    Problem,
}

struct Finding {
    level: Level,
    text: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, text: impl Into<String>, fix: Option<String>) {
        self.0.push(Finding { level, text: text.into(), fix });
    }
    fn ok(&mut self, text: impl Into<String>) {
        self.add(Level::Ok, text, None);
    }
    fn note(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.add(Level::Note, text, Some(fix.into()));
    }
    fn problem(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.add(Level::Problem, text, Some(fix.into()));
    }
}

/// What is being examined: its environment, what it has mapped, which program it runs.
struct Target {
    title: String,
    env: Option<Vec<(OsString, OsString)>>,
    maps: Option<String>,
    program: Option<PathBuf>,
    /// The names ALLOCSHIM_ONLY/EXCEPT judge it by, when it is one program.
    names: Option<names::Program>,
    secure: bool,
}

/// Shared libraries known to replace malloc themselves.
const OTHER_ALLOCATORS: [&str; 6] = ["libjemalloc", "libmimalloc", "libtcmalloc", "libsnmalloc", "libhoard", "libtbbmalloc"];

pub fn main(pid: Option<u32>, cmd: &[OsString]) -> Result<ExitCode> {
    let target = match pid {
        Some(pid) => process(pid)?,
        None => shell(cmd)?,
    };
    let mut f = Findings::default();
    let env = target.env.clone().unwrap_or_default();
    if target.env.is_none() {
        f.note("cannot read the process's environment", "run doctor as the process's user or as root");
    }
    let named = check_preload(&mut f, get(&env, LD_PRELOAD).as_deref());
    let lib = named.clone().filter(|p| p.is_file()).or_else(|| locate::library().ok().map(|l| l.path));

    match &target.maps {
        Some(maps) => check_maps(&mut f, maps, named.is_some(), &target),
        None => f.note("cannot read the process's memory map", "run doctor as the process's user or as root"),
    }
    if let Some(p) = &target.program {
        check_program(&mut f, p);
    }
    if target.secure {
        f.problem(
            "the process runs in secure mode (setuid/setgid): the library ignores its configuration and uses system",
            "run the program without setuid/setgid bits or capabilities",
        );
    }
    match (&lib, target.env.is_some()) {
        (Some(lib), true) => check_selection(&mut f, lib, &env, target.secure, target.names.as_ref()),
        (None, _) => f.problem(
            format!("cannot find {} to ask what this environment selects", locate::FILE_NAME),
            format!("set {ALLOCSHIM_LIB}=/path/to/{}", locate::FILE_NAME),
        ),
        _ => {}
    }

    println!("allocshim doctor: {}", target.title);
    for x in &f.0 {
        let tag = match x.level {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Problem => "PROBLEM",
        };
        println!("  {tag:<8} {}", x.text);
        if let (Some(fix), true) = (&x.fix, x.level != Level::Ok) {
            println!("  {:<8} fix: {fix}", "");
        }
    }
    let problems = f.0.iter().filter(|x| x.level == Level::Problem).count();
    if problems == 0 {
        println!("healthy");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{problems} problem{} found", if problems == 1 { "" } else { "s" });
        Ok(ExitCode::FAILURE)
    }
}

fn process(pid: u32) -> Result<Target> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        anyhow::bail!("no process with PID {pid}");
    }
    let exe = std::fs::read_link(proc.join("exe")).ok();
    let env = std::fs::read(proc.join("environ")).ok().map(|raw| {
        raw.split(|&b| b == 0)
            .filter_map(|kv| {
                let i = kv.iter().position(|&b| b == b'=')?;
                Some((OsStr::from_bytes(&kv[..i]).to_owned(), OsStr::from_bytes(&kv[i + 1..]).to_owned()))
            })
            .collect()
    });
    Ok(Target {
        title: format!("process {pid} ({})", exe.as_deref().map_or("?".into(), |p| p.display().to_string())),
        env,
        maps: std::fs::read_to_string(proc.join("maps")).ok(),
        // Read through /proc so a program replaced on disk since it started is still examined.
        program: exe.is_some().then(|| proc.join("exe")),
        names: Some(names::of_process(&proc)),
        secure: at_secure(&proc),
    })
}

fn shell(cmd: &[OsString]) -> Result<Target> {
    let program = match cmd.first() {
        Some(c) => Some(elf::resolve_program(Path::new(c))?),
        None => None,
    };
    let title = match &program {
        Some(p) => format!("this shell's environment, and the program {}", p.display()),
        None => "this shell's environment".to_string(),
    };
    // This process inherited the shell's LD_PRELOAD, so its own map shows what ld.so
    // made of it.
    Ok(Target {
        title,
        env: Some(std::env::vars_os().collect()),
        maps: std::fs::read_to_string("/proc/self/maps").ok(),
        names: if cmd.is_empty() { None } else { Some(names::of_command(cmd)?) },
        program,
        secure: false,
    })
}

/// `AT_SECURE` from the process's auxiliary vector: what ld.so and libc decided.
fn at_secure(proc: &Path) -> bool {
    const AT_SECURE: u64 = 23;
    let Ok(raw) = std::fs::read(proc.join("auxv")) else { return false };
    let words: Vec<u64> = raw.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
    words.chunks_exact(2).any(|kv| kv[0] == AT_SECURE && kv[1] != 0)
}

fn get(env: &[(OsString, OsString)], key: &str) -> Option<OsString> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Checks every LD_PRELOAD entry; returns the entry that names the library, if any.
fn check_preload(f: &mut Findings, preload: Option<&OsStr>) -> Option<PathBuf> {
    let entries: Vec<String> = preload::entries(preload.unwrap_or_default()).map(|e| e.to_string_lossy().into_owned()).collect();
    let how_to_enable = format!(
        "start the program with `allocshim run -- CMD`, or set {LD_PRELOAD}=/path/to/{} \
         (the buildpack's .profile.d script does this in dyno shells; one-off shells that skip it do not have it)",
        locate::FILE_NAME
    );
    if entries.is_empty() {
        f.problem(format!("{LD_PRELOAD} is not set: the library is not preloaded"), how_to_enable);
        return None;
    }
    let mut ours = None;
    let mut misseparated = false;
    let mut seen = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let name = Path::new(e).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if seen.contains(&e) {
            f.note(format!("{LD_PRELOAD} lists {e} twice"), "list each library once");
            continue;
        }
        seen.push(e);
        if e.contains([';', ',']) {
            // One bad name to ld.so; what the user meant is clear, so say that instead
            // of judging the pieces.
            misseparated = true;
            f.problem(
                format!("{LD_PRELOAD} entry \"{e}\" contains ';' or ',': ld.so reads it as one file name and cannot load it"),
                format!("separate entries with ':' or spaces: {LD_PRELOAD}=\"{}\"", entries.join(":").replace([';', ','], ":")),
            );
            continue;
        } else if !Path::new(e).exists() {
            f.problem(
                format!("{LD_PRELOAD} entry {e} does not exist: ld.so prints \"cannot be preloaded\" and skips it"),
                "correct the path (it must be absolute, as seen by the process)",
            );
        } else if !e.starts_with('/') {
            f.note(
                format!("{LD_PRELOAD} entry {e} is relative: it only works from the directory it is relative to"),
                "use an absolute path",
            );
        }
        if preload::is_library(OsStr::new(e)) {
            if ours.is_none() {
                ours = Some(PathBuf::from(e));
                if i == 0 {
                    f.ok(format!("{LD_PRELOAD} names {e}"));
                }
            }
        } else if let Some(other) = OTHER_ALLOCATORS.iter().find(|a| name.starts_with(*a)) {
            f.problem(
                format!("{LD_PRELOAD} also preloads {e} ({other}): whichever allocator comes first serves malloc, and both initialise"),
                format!("remove {e} from {LD_PRELOAD}; choose the allocator with allocshim's variables instead"),
            );
        }
    }
    match (&ours, entries.iter().position(|e| preload::is_library(OsStr::new(e)))) {
        (None, _) if !misseparated => f.problem(format!("{LD_PRELOAD} does not name {}", locate::FILE_NAME), how_to_enable),
        (Some(p), Some(i)) if i > 0 => f.note(
            format!("{LD_PRELOAD} names {} but not first", p.display()),
            "put liballocshim.so first, so that no library before it can define malloc",
        ),
        _ => {}
    }
    ours
}

fn check_maps(f: &mut Findings, maps: &str, named: bool, target: &Target) {
    let mapped: Vec<&str> = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).collect();
    if let Some(p) = mapped.iter().find(|p| p.ends_with(&format!("/{}", locate::FILE_NAME))) {
        f.ok(format!("the library is loaded in the process: {p}"));
    } else if named {
        let why = if target.secure {
            "the process is in secure mode, where ld.so ignores preload paths outside the system library directories"
        } else {
            "see the findings about the preload list and the program"
        };
        f.problem(
            format!("{LD_PRELOAD} names the library but the process has not loaded it: {why}"),
            "fix the causes listed here, then restart the process",
        );
    }
    let mut others: Vec<&&str> =
        mapped.iter().filter(|p| OTHER_ALLOCATORS.iter().any(|a| p.rsplit('/').next().unwrap_or("").starts_with(a))).collect();
    others.dedup();
    for o in others {
        f.note(
            format!("another allocator is loaded in the process: {o}"),
            "if the program links it directly, it may serve some allocations; prefer one allocator",
        );
    }
}

fn check_program(f: &mut Findings, path: &Path) {
    match elf::check_program(path) {
        Err(e) => f.note(format!("cannot examine the program: {e:#}"), "check that it is a 64-bit ELF program"),
        Ok(p) => {
            let shown = std::fs::read_link(&p.path).unwrap_or(p.path.clone());
            let shown = shown.display();
            if p.statically_linked {
                f.problem(
                    format!("{shown} is statically linked: ld.so never runs for it, so LD_PRELOAD is ignored"),
                    "use a dynamically linked build of the program (or, for Rust programs, the allocator as #[global_allocator])",
                );
            } else if p.own_malloc {
                f.problem(
                    format!("{shown} defines its own malloc, which wins over any preloaded one (the library then passes through to glibc)"),
                    "build the program without its bundled allocator (e.g. redis: make MALLOC=libc), or leave allocshim out for it",
                );
            } else {
                f.ok(format!("{shown} is dynamically linked and takes malloc from the libraries it loads"));
            }
            if p.setuid {
                f.problem(
                    format!("{shown} is setuid/setgid: it runs in secure mode, where LD_PRELOAD paths are restricted and the configuration is ignored"),
                    "remove the setuid/setgid bit, or accept glibc's malloc for it",
                );
            }
        }
    }
}

/// What the library selects (asked in a child, see `probe`), and the rules' warnings
/// for this environment as typed values (the shared rules run here on the target's
/// environment: the child cannot report `ALLOCSHIM_VERBOSE`/`ALLOCSHIM_STATS`, which
/// it does not see), each with its fix.
fn check_selection(f: &mut Findings, lib: &Path, env: &[(OsString, OsString)], secure: bool, program: Option<&names::Program>) {
    let mut report = match probe::ask(lib, Some(env), &[]) {
        Ok(r) => r,
        Err(e) => return f.problem(format!("{e:#}"), "rebuild or reinstall the library for this machine"),
    };
    let block: Vec<CString> = env.iter().filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok()).collect();
    let entries: Vec<&CStr> = block.iter().map(CString::as_c_str).collect();
    let env = Env::from_entries(&entries);
    let mut warnings = Vec::new();
    // In secure mode the library reads nothing, so no value can be wrong.
    let asked = !secure && {
        let choice = rules::choose(&env, &mut |w| warnings.push(*w));
        for var in [ALLOCSHIM_VERBOSE, ALLOCSHIM_STATS] {
            rules::flag(&env, var, &mut |w| warnings.push(*w));
        }
        let chosen = preset::read(&env, &mut |w| warnings.push(*w));
        preset::trim_interval(&env, chosen, &mut |w| warnings.push(*w));
        !choice.reason.is_empty()
    };
    // The probe answered for the environment; ALLOCSHIM_ONLY/EXCEPT are judged here.
    let lists = if secure { Lists::default() } else { scope::lists(&env, &mut |w| warnings.push(*w)) };
    let judged = program.and_then(|p| names::judge(&mut report, &lists, p));
    let whom = if program.is_some() { "for this program" } else { "with this environment" };
    let text = format!("{whom} the library selects {} {} ({})", report.active.name, report.active.version, report.reason);
    if let (Some((var, true)), Some(p)) = (judged, program) {
        let caveat = p.caveat.map(|c| format!("; {c}")).unwrap_or_default();
        let fix = if var == ALLOCSHIM_ONLY {
            let names = p.names();
            let each: Vec<String> = names.each().map(|(kind, name)| format!("{kind} {}", String::from_utf8_lossy(name))).collect();
            format!("to serve it, add one of its names ({}) to {var}{caveat}", each.join(", "))
        } else {
            format!("to serve it, take the pattern that matches it out of {var}{caveat}")
        };
        f.note(format!("{text}: the library is loaded but dormant"), fix);
    } else if asked || secure {
        f.ok(text);
    } else {
        let switches: Vec<&str> = ALL.iter().filter_map(|b| b.enable_var()).collect();
        f.note(text, format!("set {ALLOCSHIM_BACKEND} or one of {} to true", switches.join(", ")));
    }
    if program.is_none() && !lists.is_empty() {
        f.ok(format!("programs served: {}", names::describe_lists(&lists, &report)));
    }
    let mut explained = Vec::new();
    for w in &warnings {
        let line = String::from_utf8_lossy(w.line().as_bytes()).into_owned();
        f.problem(format!("the library warns: {line}"), fix(w));
        explained.push(line);
    }
    // Anything else the library said (a backend it refused, ...), in its own words.
    for w in report.warnings.into_iter().filter(|w| !explained.contains(w)) {
        f.problem(format!("the library warns: {w}"), "see the README's section on this message");
    }
}

/// The fix for each warning of the rules.
fn fix(w: &Warning) -> String {
    match *w {
        Warning::UnknownBackend { .. } => {
            let names: Vec<String> = ALL.iter().map(|b| b.name().to_string_lossy().into_owned()).collect();
            format!("set {ALLOCSHIM_BACKEND} to one of {}, or unset it", names.join(", "))
        }
        Warning::NotASwitch { var, .. } => {
            format!("set {var} to one of {} (on) or {} (off), or unset it", rules::ON.join(", "), rules::OFF.join(", "))
        }
        Warning::SeveralEnabled { using, ignored } => {
            let vars: Vec<&str> = ignored.iter().filter_map(Backend::enable_var).collect();
            format!(
                "turn {} off to keep {}, or set {ALLOCSHIM_BACKEND} to the one you want",
                vars.join(", "),
                using.name().to_string_lossy()
            )
        }
        Warning::UnknownPreset { .. } => {
            format!("set {ALLOCSHIM_PRESET} to one of {}, or unset it", Preset::names().collect::<Vec<_>>().join(", "))
        }
        Warning::NotSeconds { var, min_ms, max_ms, .. } => {
            let seconds = |ms| String::from_utf8_lossy(Line::new().seconds(ms).as_bytes()).into_owned();
            format!("set {var} to seconds from {} to {} (e.g. 0.2), 0 for no trimming, or unset it", seconds(min_ms), seconds(max_ms))
        }
        Warning::NotAProgramList { var, .. } => {
            format!("set {var} to program names or patterns separated by commas ({}), or unset it", scope::EXAMPLE)
        }
    }
}
