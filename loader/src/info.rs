//! `allocshim info`: which library, what is in it, is the binary sound, and what this
//! environment would select.
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::{elf, locate, probe};

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
    warnings: Vec<String>,
}

pub fn main(json: bool) -> Result<ExitCode> {
    let found = locate::library()?;
    let report = probe::ask(&found.path, None, &[])?;
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
    println!("selected     {} {} ({})", i.selected.name, i.selected.version, i.reason);
    println!("preset       {} (ALLOCSHIM_PRESET)", i.preset);
    println!("options      {}", i.options);
    for w in &i.warnings {
        println!("warning      {w}");
    }
}
