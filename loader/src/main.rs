//! `allocshim`: finds liballocshim.so, checks it, and runs programs with it.
//!
//! What a given environment selects, the list of backends and their versions come
//! from the library itself, asked in a child process that has it preloaded (see
//! `probe`). Where the command needs the rules in-process (`enabled`, `preload
//! --if-enabled`, the typed warnings `doctor` explains), it runs the library's own
//! code, the shared `allocshim-select` crate, never a copy of it.
// Unsafe operations inside an `unsafe fn` need their own `unsafe {}` block and
// `SAFETY:` comment, as everywhere else.
#![deny(unsafe_op_in_unsafe_fn)]
mod compare;
mod doctor;
mod elf;
mod info;
mod launch;
mod locate;
mod names;
mod preload;
mod probe;
mod profile;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use allocshim_select::preset::{self, Preset};
use allocshim_select::{env::Env, rules, vars::LD_PRELOAD, Backend};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "allocshim", version, about = "Run programs with liballocshim.so, check that it works, compare its allocators")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD with the library preloaded (prepended to LD_PRELOAD).
    Run {
        /// Backend to use (overrides the environment); default: the usual environment rules.
        #[arg(long, short)]
        backend: Option<String>,
        /// Print the backend, its version and why it was chosen (ALLOCSHIM_VERBOSE=1).
        #[arg(long, short)]
        verbose: bool,
        /// Print peak RSS and the backend's own figures at exit (ALLOCSHIM_STATS=1).
        #[arg(long, short)]
        stats: bool,
        #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// The library's path, versions, binary checks, and what this environment selects
    /// (for the program CMD, when given: ALLOCSHIM_ONLY/EXCEPT may leave it on system).
    Info {
        #[arg(long)]
        json: bool,
        /// A program to judge by ALLOCSHIM_ONLY/ALLOCSHIM_EXCEPT, as it would start.
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// Diagnose this shell's environment, a running process (PID), or a program (-- CMD).
    Doctor {
        /// A running process to examine.
        pid: Option<u32>,
        /// A program to examine instead: is it dynamically linked, does it bring its own malloc?
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// Run CMD under each backend, interleaved, and compare time and peak RSS; with
    /// --load, CMD is a server: RSS over time under that load, throughput, latency.
    Compare(compare::Args),
    /// Several `compare --json` results side by side: ratios between pairs of variants.
    Summarize(compare::summarize::Args),
    /// Read a heap profile (ALLOCSHIM_PROFILE), or the growth between two: top
    /// allocation sites on stdout, a flame graph (.svg) and a pprof file (.pb.gz).
    Profile(profile::Args),
    /// Does this environment ask for an allocator? Prints the backend it selects (the
    /// library's rules, in-process) and exits 0, or 1 when it selects `system` with no
    /// preset (ALLOCSHIM_PRESET tunes glibc too, so it needs the library preloaded).
    /// For start-up scripts deciding whether to preload the library at all.
    Enabled {
        /// Print nothing; the exit status is the answer.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print LD_PRELOAD with the library first: what was there stays after it, in
    /// order, without other copies of the library (the rules `run` follows). For
    /// start-up scripts: `export LD_PRELOAD="$(allocshim preload)"`.
    Preload {
        /// The library to put first: an absolute path, used as given. Default: the
        /// library `info` finds.
        #[arg(long, value_name = "PATH")]
        lib: Option<PathBuf>,
        /// Only if this environment asks for an allocator (the answer of `enabled`);
        /// otherwise print nothing, only the rules' warnings, and exit 1.
        #[arg(long)]
        if_enabled: bool,
    },
    /// Internal: run with the library preloaded, report what it says about itself.
    #[command(name = "__probe", hide = true)]
    Probe { lib: PathBuf },
}

/// `allocshim enabled`: the shared rules (allocshim-select) on this process's own
/// environment, so a profile script decides exactly as the library would.
fn enabled(quiet: bool) -> anyhow::Result<ExitCode> {
    let env = Env::from_libc().ok_or_else(|| anyhow::anyhow!("no environment"))?;
    let mut warn = |w: &rules::Warning| {
        if !quiet {
            w.print()
        }
    };
    let (choice, preset) = wanted(&env, &mut warn);
    if !quiet {
        let with = if preset == Preset::Default { String::new() } else { format!("; preset {}", preset.name().to_string_lossy()) };
        println!("{} ({}{with})", choice.backend.name().to_string_lossy(), String::from_utf8_lossy(choice.reason.as_bytes()));
    }
    Ok(if needs_library(&choice, preset) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What this environment asks of the library: the backend (the shared rules) and the
/// preset.
fn wanted<'e>(env: &Env<'e>, warn: &mut dyn FnMut(&rules::Warning<'e>)) -> (rules::Choice, Preset) {
    let mut choice = rules::decide(env, warn);
    // As the library decides: ALLOCSHIM_PROFILE alone asks for jemalloc.
    allocshim_select::profile::imply(env, &mut choice);
    (choice, preset::read(env, warn))
}

/// Whether a process with this choice needs the library preloaded at all: for a
/// backend, or for a preset (ALLOCSHIM_PRESET tunes glibc too, in `system` mode).
fn needs_library(choice: &rules::Choice, preset: Preset) -> bool {
    choice.backend != Backend::System || preset != Preset::Default
}

/// `allocshim preload`: the one LD_PRELOAD editor (`preload`), for the buildpack's
/// `.profile.d` and `exec.d` scripts; with `--if-enabled` one call answers both
/// "preload at all?" and "the new value", so a dyno start costs one exec.
fn preload(lib: Option<&Path>, if_enabled: bool) -> anyhow::Result<ExitCode> {
    if if_enabled {
        let env = Env::from_libc().ok_or_else(|| anyhow::anyhow!("no environment"))?;
        let mut warnings = Vec::new();
        let (choice, preset) = wanted(&env, &mut |w| warnings.push(*w));
        if !needs_library(&choice, preset) {
            // A library that is loaded prints these itself, in every process; one
            // that is not would leave a misspelt switch unexplained.
            warnings.iter().for_each(rules::Warning::print);
            return Ok(ExitCode::FAILURE);
        }
    }
    let lib = match lib {
        Some(p) => locate::given(p)?,
        None => locate::library()?,
    };
    let mut value = preload::prepend(&lib.path, std::env::var_os(LD_PRELOAD).as_deref()).into_vec();
    value.push(b'\n');
    std::io::stdout().write_all(&value)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { backend, verbose, stats, cmd } => launch::run(backend.as_deref(), verbose, stats, &cmd),
        Command::Info { json, cmd } => info::main(json, &cmd),
        Command::Doctor { pid, cmd } => doctor::main(pid, &cmd),
        Command::Compare(args) => compare::main(args),
        Command::Summarize(args) => compare::summarize::main(args),
        Command::Profile(args) => profile::run(args).map(|()| ExitCode::SUCCESS),
        Command::Enabled { quiet } => enabled(quiet),
        Command::Preload { lib, if_enabled } => preload(lib.as_deref(), if_enabled),
        Command::Probe { lib } => probe::child(&lib),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("allocshim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
