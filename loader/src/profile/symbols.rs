//! Symbolizing a dump's addresses against the files its process had mapped (the
//! dump's own copy of /proc/PID/maps), not against anything in this process.
//!
//! An address is turned into a file offset with the mapping it falls in, into the
//! ELF's virtual address with the file's `PT_LOAD` segments, then into frames: with
//! DWARF (addr2line; the file's own, or a separate debug file found by build ID or
//! `.gnu_debuglink` under /usr/lib/debug) a function, file and line per frame,
//! inlined ones included; without, the function from the symbol table (`.symtab`,
//! or `.dynsym` of a stripped file: exported names only), or `object+0xADDR`.
//!
//! A file that is not the one the process mapped (missing, another inode, deleted
//! since, or whose segments do not match the recorded offsets) would give wrong
//! names silently, so it is an error naming the file and what differs.
use std::borrow::Cow;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use object::{Object, ObjectSegment, ObjectSymbol};

use super::heap::{Dump, Map};

/// One function in a stack (several per address when functions were inlined).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The mapped file's name (`libc.so.6`), or `[vdso]`, or empty for anonymous memory.
    pub object: String,
    /// Named from debug information or a symbol table (not `object+0xADDR`).
    pub named: bool,
}

/// What one address resolved to: its mapping and frames (innermost first).
pub struct Resolved {
    /// Index into the dump's maps; None: in no mapping.
    pub map: Option<usize>,
    pub frames: Vec<Frame>,
}

pub struct Symbolizer {
    /// Where copies of the mapped files are (`--binaries`): DIR/usr/lib/x.so.
    binaries: Option<PathBuf>,
    objects: HashMap<(String, u64), Result<Elf, String>>,
    /// Which files had debug information: for the summary line.
    pub with_debug: Vec<String>,
    pub without_debug: Vec<String>,
}

struct Elf {
    /// PT_LOAD segments: (file offset, file size, virtual address).
    segments: Vec<(u64, u64, u64)>,
    /// (start, end, name), sorted.
    symbols: Vec<(u64, u64, String)>,
    dwarf: Option<addr2line::Loader>,
}

impl Symbolizer {
    pub fn new(binaries: Option<PathBuf>) -> Symbolizer {
        Symbolizer { binaries, objects: HashMap::new(), with_debug: Vec::new(), without_debug: Vec::new() }
    }

    /// The mapping of `dump` that holds `addr`.
    pub fn map_of(dump: &Dump, addr: u64) -> Option<usize> {
        dump.maps.iter().position(|m| m.start <= addr && addr < m.end)
    }

    /// The frames of return address `addr` in `dump`'s process.
    pub fn resolve(&mut self, dump: &Dump, addr: u64) -> Result<Resolved> {
        let Some(i) = Self::map_of(dump, addr) else {
            return Ok(Resolved { map: None, frames: vec![unknown(format!("0x{addr:x}"), "")] });
        };
        let map = &dump.maps[i];
        let object = name_of(&map.path);
        if !map.is_file() {
            let what = if map.path.is_empty() { "anonymous memory" } else { &map.path };
            return Ok(Resolved { map: Some(i), frames: vec![unknown(format!("{what}+0x{:x}", addr - map.start), &object)] });
        }
        let key = (map.path.clone(), map.inode);
        if !self.objects.contains_key(&key) {
            let elf = self.open(dump, map).map_err(|e| e.to_string());
            if let Ok(elf) = &elf {
                let list = if elf.dwarf.is_some() { &mut self.with_debug } else { &mut self.without_debug };
                list.push(map.path.clone());
            }
            self.objects.insert(key.clone(), elf);
        }
        let elf = match &self.objects[&key] {
            Ok(elf) => elf,
            Err(e) => bail!("{e}"),
        };
        // A return address: the call is the instruction before it.
        let offset = (addr - map.start + map.offset).saturating_sub(1);
        let Some(vaddr) =
            elf.segments.iter().find(|(off, size, _)| *off <= offset && offset < off + size).map(|(off, _, va)| offset - off + va)
        else {
            bail!(
                "{}: {} has no segment holding file offset 0x{offset:x}, where the process had it mapped: it is not the file the process mapped",
                dump.path.display(),
                map.path
            );
        };
        let mut frames = Vec::new();
        if let Some(dwarf) = &elf.dwarf {
            if let Ok(mut it) = dwarf.find_frames(vaddr) {
                while let Ok(Some(f)) = it.next() {
                    let Some(name) = f.function.as_ref().and_then(|n| n.demangle().ok()) else { continue };
                    let (file, line) = match f.location {
                        Some(l) => (l.file.map(str::to_owned), l.line),
                        None => (None, None),
                    };
                    frames.push(Frame { function: name.into_owned(), file, line, object: object.clone(), named: true });
                }
            }
        }
        if frames.is_empty() {
            let i = elf.symbols.partition_point(|(start, _, _)| *start <= vaddr);
            let name = i.checked_sub(1).map(|i| &elf.symbols[i]).filter(|(_, end, _)| vaddr < *end).map(|(_, _, n)| n.clone());
            let named = name.is_some();
            frames.push(Frame { function: name.unwrap_or_else(|| format!("{object}+0x{vaddr:x}")), file: None, line: None, object, named });
        }
        Ok(Resolved { map: Some(i), frames })
    }

    fn open(&self, dump: &Dump, map: &Map) -> Result<Elf> {
        let d = dump.path.display();
        let local = match &self.binaries {
            Some(dir) => dir.join(map.path.trim_start_matches('/')),
            None => PathBuf::from(&map.path),
        };
        let hint = "render the dump on the machine that wrote it (allocshim profile there), or pass --binaries DIR with copies of the files it mapped";
        if map.deleted && self.binaries.is_none() {
            bail!("{d}: {} was deleted or replaced after the process mapped it, so its symbols cannot be read here; {hint}", map.path);
        }
        let meta = std::fs::metadata(&local).map_err(|e| anyhow!("{d}: the process had {} mapped, which cannot be read here ({e}): the dump comes from another machine or the file was removed; {hint}", local.display()))?;
        if self.binaries.is_none() && map.inode != 0 && meta.ino() != map.inode {
            bail!(
                "{d}: {} is not the file the process mapped (inode {} here, {} in the dump): the dump comes from another machine, or the file was replaced since; {hint}",
                map.path,
                meta.ino(),
                map.inode
            );
        }
        let data = std::fs::read(&local).map_err(|e| anyhow!("{d}: cannot read {}: {e}", local.display()))?;
        let file = object::File::parse(&*data)
            .map_err(|e| anyhow!("{d}: {} is not an ELF file the process could have mapped ({e})", local.display()))?;
        let segments = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let table: Vec<_> = if file.symbol_table().is_some() { file.symbols().collect() } else { file.dynamic_symbols().collect() };
        let mut symbols: Vec<(u64, u64, String)> = table
            .iter()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.address() + s.size().max(1), demangled(s.name().ok()?))))
            .collect();
        symbols.sort();
        symbols.dedup_by_key(|s| s.0);
        let dwarf = if file.section_by_name(".debug_info").is_some() {
            addr2line::Loader::new(&local).ok()
        } else {
            debug_file(&file).and_then(|p| addr2line::Loader::new(p).ok())
        };
        Ok(Elf { segments, symbols, dwarf })
    }
}

fn demangled(name: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned()
}

fn unknown(function: String, object: &str) -> Frame {
    Frame { function, file: None, line: None, object: object.to_owned(), named: false }
}

/// The last part of a path: `libc.so.6`.
pub fn name_of(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_owned())
}

/// A separate debug file for `file` (Debian's -dbg/-dbgsym packages, debuginfod's
/// cache layout): by build ID, then by `.gnu_debuglink` name.
fn debug_file(file: &object::File) -> Option<PathBuf> {
    let root = Path::new("/usr/lib/debug");
    if let Ok(Some(id)) = file.build_id() {
        if id.len() > 1 {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let p = root.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        for dir in ["/usr/lib/debug/usr/lib", "/usr/lib/debug/usr/bin", "/usr/lib/debug/lib"] {
            let p = Path::new(dir).join(&name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}
