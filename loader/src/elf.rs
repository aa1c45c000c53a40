//! What the ELF files say: the library's exports and symbol-version needs, and whether
//! a program can be served by a preloaded malloc at all.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use object::elf;
use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};
use serde::Serialize;

/// The exports without which the library cannot take over allocation.
const ESSENTIAL: [&str; 4] = ["malloc", "free", "calloc", "realloc"];
/// Prefixes of symbols that must never leak from the library: Rust's manglings and the
/// backends' own entry points (mimalloc, jemalloc prefixed and not, snmalloc).
const PRIVATE: [&str; 9] = ["_ZN", "_R", "__rust", "rust_", "mi_", "_mi_", "je_", "_rjem_", "sn_"];

#[derive(Serialize, Debug)]
pub struct LibraryCheck {
    /// The machine it is built for, named as `uname -m` names it (x86_64, aarch64).
    pub arch: String,
    pub exported: usize,
    pub missing: Vec<String>,
    pub leaked: Vec<String>,
    /// The highest `GLIBC_x.y` the library needs: the oldest glibc it loads on.
    pub glibc_floor: Option<String>,
    /// Any `GLIBCXX_`/`CXXABI_` need (there should be none).
    pub cxx_needs: Vec<String>,
    pub needed: Vec<String>,
}

impl LibraryCheck {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.leaked.is_empty() && self.cxx_needs.is_empty()
    }
}

pub fn check_library(path: &Path) -> Result<LibraryCheck> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ElfFile64::<Endianness>::parse(&*data).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))?;
    let exports: Vec<String> =
        file.dynamic_symbols().filter(|s| s.is_definition() && s.is_global()).filter_map(|s| s.name().ok().map(String::from)).collect();
    let missing = ESSENTIAL.iter().filter(|e| !exports.iter().any(|x| x == *e)).map(|e| e.to_string()).collect();
    let leaked = exports.iter().filter(|x| PRIVATE.iter().any(|p| x.starts_with(p))).cloned().collect();

    let (endian, table) = (file.endian(), file.elf_section_table());
    let mut glibc: Vec<(Vec<u32>, String)> = Vec::new();
    let mut cxx_needs = Vec::new();
    if let Some((mut needs, link)) = table.gnu_verneed(endian, &*data)? {
        let strings = table.strings(endian, &*data, link)?;
        while let Some((_, mut auxs)) = needs.next()? {
            while let Some(aux) = auxs.next()? {
                let name = String::from_utf8_lossy(aux.name(endian, strings)?).into_owned();
                if let Some(v) = name.strip_prefix("GLIBC_") {
                    if let Ok(parts) = v.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>() {
                        glibc.push((parts, name.clone()));
                    }
                } else if name.starts_with("GLIBCXX_") || name.starts_with("CXXABI_") {
                    cxx_needs.push(name);
                }
            }
        }
    }
    Ok(LibraryCheck {
        arch: match file.architecture() {
            object::Architecture::X86_64 => "x86_64".into(),
            object::Architecture::Aarch64 => "aarch64".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        exported: exports.len(),
        missing,
        leaked,
        glibc_floor: glibc.into_iter().max().map(|(_, n)| n),
        cxx_needs,
        needed: needed(&file, &data)?,
    })
}

fn needed(file: &ElfFile64<Endianness>, data: &[u8]) -> Result<Vec<String>> {
    let (endian, table) = (file.endian(), file.elf_section_table());
    let mut out = Vec::new();
    if let Some((dyns, link)) = table.dynamic(endian, data)? {
        let strings = table.strings(endian, data, link)?;
        for d in dyns.iter().filter(|d| d.tag32(endian) == Some(elf::DT_NEEDED)) {
            if let Ok(name) = d.string(endian, strings) {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(out)
}

/// What decides whether a preloaded malloc can serve a program.
#[derive(Debug)]
pub struct Program {
    pub path: PathBuf,
    /// No program interpreter: ld.so never runs, so LD_PRELOAD is never read.
    pub statically_linked: bool,
    /// The executable exports its own `malloc`, which wins over any preload.
    pub own_malloc: bool,
    /// setuid/setgid: started in secure mode, where ld.so and the library ignore
    /// the configuration.
    pub setuid: bool,
}

pub fn check_program(path: &Path) -> Result<Program> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ElfFile64::<Endianness>::parse(&*data).with_context(|| format!("{} is not a 64-bit ELF program", path.display()))?;
    let endian = file.endian();
    let statically_linked = !file.elf_program_headers().iter().any(|h| h.p_type(endian) == elf::PT_INTERP);
    let own_malloc = file.dynamic_symbols().any(|s| s.is_definition() && s.name() == Ok("malloc"));
    let mode = std::fs::metadata(path)?.permissions().mode();
    Ok(Program { path: path.to_path_buf(), statically_linked, own_malloc, setuid: mode & 0o6000 != 0 })
}

/// The ELF file that actually runs for `cmd`: found on PATH, and for a `#!` script its
/// interpreter (through `/usr/bin/env NAME` too), since that is what loads malloc.
pub fn resolve_program(cmd: &Path) -> Result<PathBuf> {
    let mut path = which(cmd).with_context(|| format!("command not found: {}", cmd.display()))?;
    for _ in 0..4 {
        let head = {
            use std::io::Read;
            let mut buf = [0u8; 256];
            let n = std::fs::File::open(&path)?.read(&mut buf)?;
            buf[..n].to_vec()
        };
        let Some(line) = head.strip_prefix(b"#!") else { return Ok(path) };
        let line = String::from_utf8_lossy(line.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
        let mut words = line.split_whitespace();
        let interp = words.next().with_context(|| format!("{}: empty #! line", path.display()))?;
        path = if interp.ends_with("/env") {
            let name = words.find(|w| !w.starts_with('-')).with_context(|| format!("{}: #!{line} names no program", path.display()))?;
            which(Path::new(name)).with_context(|| format!("{}'s interpreter {name} is not on PATH", path.display()))?
        } else {
            PathBuf::from(interp)
        };
    }
    Ok(path)
}

/// `cmd` as the shell would find it.
pub fn which(cmd: &Path) -> Option<PathBuf> {
    if cmd.components().count() > 1 {
        return cmd.is_file().then(|| cmd.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}
