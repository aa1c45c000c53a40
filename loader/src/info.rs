//! `allocshim info`: which library, what is in it, is the binary sound, and what this
//! environment would select.
use std::ffi::OsString;
use std::process::ExitCode;

use allocshim_select::env::Env;
use allocshim_select::scope;
use anyhow::{Context, Result};
use serde::Serialize;

use crate::{elf, locate, names, probe};

#[derive(Serialize)]
struct Info {
    library: String,
    found_by: &'static str,
    version: String,
    backends: Vec<probe::Backend>,
    binary: elf::LibraryCheck,
    /// What a program started with this environment gets, and why.
    selected: probe::Backend,
    reason: String,
    /// The preset in force and the selected backend's options, with their sources.
    preset: String,
    options: String,
    /// Which programs the selection applies to (ALLOCSHIM_ONLY, ALLOCSHIM_EXCEPT), in words.
    programs: String,
    /// With `-- CMD`: the program's names, and the variable that leaves it on system
    /// (then `selected` and `reason` are that program's), if one does.
    names: Option<names::Shown>,
    #[serde(skip)]
    described: Option<String>,
    left_on_system_by: Option<&'static str>,
    warnings: Vec<String>,
}

pub fn main(json: bool, cmd: &[OsString]) -> Result<ExitCode> {
    let found = locate::library()?;
    let mut report = probe::ask(&found.path, None, &[])?;
    // The probe answers for the environment; the lists are judged here, for CMD.
    let env = Env::from_libc().context("no environment")?;
    let mut warnings = Vec::new();
    let lists = scope::lists(&env, &mut |w| warnings.push(String::from_utf8_lossy(w.line().as_bytes()).into_owned()));
    let programs = names::describe_lists(&lists, &report);
    let (mut program, mut left_on_system_by): (Option<(String, names::Shown)>, _) = (None, None);
    if !cmd.is_empty() {
        let p = names::of_command(cmd)?;
        if let Some((var, true)) = names::judge(&mut report, &lists, &p) {
            left_on_system_by = Some(var);
        }
        program = Some((p.describe(), p.shown()));
    }
    report.warnings.extend(warnings);
    let info = Info {
        library: found.path.display().to_string(),
        found_by: found.how,
        version: report.version,
        backends: report.backends,
        binary: elf::check_library(&found.path)?,
        selected: report.active,
        reason: report.reason,
        preset: report.preset,
        options: report.options,
        programs,
        described: program.as_ref().map(|(text, _)| text.clone()),
        names: program.map(|(_, shown)| shown),
        left_on_system_by,
        warnings: report.warnings,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print(&info);
    }
    Ok(if info.binary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(i: &Info) {
    let b = &i.binary;
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    println!("library      {} (found: {})", i.library, i.found_by);
    println!("version      {} for {}", i.version, b.arch);
    let backends: Vec<String> = i.backends.iter().map(|b| format!("{} {}", b.name, b.version)).collect();
    println!("backends     {}", backends.join(", "));
    let exports = if b.missing.is_empty() && b.leaked.is_empty() {
        "malloc, free, calloc and realloc exported; no Rust or backend symbols".to_string()
    } else {
        format!("PROBLEM: missing {}; leaked {}", list(&b.missing), list(&b.leaked))
    };
    println!("exports      {} symbols: {exports}", b.exported);
    println!(
        "glibc        needs {} or newer; NEEDED {}; C++ runtime needs: {}",
        b.glibc_floor.as_deref().unwrap_or("no versioned glibc symbol"),
        list(&b.needed),
        list(&b.cxx_needs)
    );
    if let Some(p) = &i.described {
        println!("judged       {p}");
    }
    println!("selected     {} {} ({})", i.selected.name, i.selected.version, i.reason);
    println!("programs     {}", i.programs);
    println!("preset       {} (ALLOCSHIM_PRESET)", i.preset);
    println!("options      {}", i.options);
    for w in &i.warnings {
        println!("warning      {w}");
    }
}
