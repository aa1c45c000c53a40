//! `allocshim`: finds liballocshim.so, checks it, and runs programs with it.
//!
//! The command never reimplements the library's rules: what a given environment
//! selects, the list of backends and their versions all come from the library itself,
//! asked in a child process that has it preloaded (see `probe`).
mod compare;
mod doctor;
mod elf;
mod info;
mod launch;
mod locate;
mod probe;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// The library's path, versions, binary checks, and what this environment selects.
    Info {
        #[arg(long)]
        json: bool,
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
    /// Does this environment ask for an allocator? Prints the backend it selects (the
    /// library's rules, in-process) and exits 0, or 1 when it selects `system` with no
    /// preset (ALLOCSHIM_PRESET tunes glibc too, so it needs the library preloaded).
    /// For start-up scripts deciding whether to preload the library at all.
    Enabled {
        /// Print nothing; the exit status is the answer.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Internal: run with the library preloaded, report what it says about itself.
    #[command(name = "__probe", hide = true)]
    Probe { lib: PathBuf },
}

/// `allocshim enabled`: the shared rules (allocshim-select) on this process's own
/// environment, so a profile script decides exactly as the library would.
fn enabled(quiet: bool) -> anyhow::Result<ExitCode> {
    use allocshim_select::preset::{self, Preset};
    use allocshim_select::{env::Env, line, rules, Backend};
    let env = Env::from_libc().ok_or_else(|| anyhow::anyhow!("no environment"))?;
    let mut warn = |l: &line::Line| {
        if !quiet {
            line::warn(l)
        }
    };
    let choice = rules::decide(&env, &mut warn);
    let preset = preset::read(&env, &mut warn);
    if !quiet {
        let with = if preset == Preset::Default { String::new() } else { format!("; preset {}", preset.name().to_string_lossy()) };
        println!("{} ({}{with})", choice.backend.name().to_string_lossy(), String::from_utf8_lossy(choice.reason.as_bytes()));
    }
    Ok(if choice.backend == Backend::System && preset == Preset::Default { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { backend, verbose, stats, cmd } => launch::run(backend.as_deref(), verbose, stats, &cmd),
        Command::Info { json } => info::main(json),
        Command::Doctor { pid, cmd } => doctor::main(pid, &cmd),
        Command::Compare(args) => compare::main(args),
        Command::Summarize(args) => compare::summarize::main(args),
        Command::Enabled { quiet } => enabled(quiet),
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
