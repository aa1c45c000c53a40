//! Build-time only (the build script runs it as a wrapper around the linker, see
//! build.rs): leaves each allocator's relocated data to the library itself.
//!
//! The allocators' pointer tables (jemalloc's `mallctl` tree, mimalloc's static heaps
//! and options, snmalloc's) need some 1 600 relocations, and ld.so applies every
//! relocation it is given at load: writing them turned 11 pages of the library into
//! private memory in every process it was preloaded into, `system` mode included,
//! where no allocator of ours ever runs (docs/benchmarks.md, "Start-up RSS").
//!
//! The linker script (build.rs) puts each allocator's relocated data in page-aligned
//! sections of its own, `.data.allocshim.<name>.ro` (its pointer tables) and
//! `.data.allocshim.<name>`. Here, once the library is linked, the relocations that
//! target those sections are moved to the end of the table, past
//! DT_RELASZ (and out of DT_RELACOUNT's relative ones), where ld.so does not look, and
//! their number is written in the `.allocshim.withheld` section. Each keeps its offset
//! and addend and, for the one absolute relocation against a symbol (a pointer to
//! libc's `abort`), its symbol; its type becomes NONE, so that anything that does read
//! the whole section skips it. `src/relocate.rs` applies the chosen allocator's, before
//! it starts.
//!
//! If the file is not what this expects, it is left as the linker wrote it: ld.so then
//! applies everything, as before (relocate.rs makes every allocator's tables read-only),
//! and the library is only larger at start-up.
use std::{fs, path::Path};

use object::elf::{self, Dyn64, FileHeader64, Rela64};
use object::read::elf::{FileHeader, SectionHeader};
use object::{LittleEndian as LE, U64};

/// The prefix of the linker script's per-allocator data sections (build.rs).
pub const SECTION_PREFIX: &str = ".data.allocshim.";
/// The linker script's 8-byte section for the number of relocations withheld.
pub const COUNTER: &str = ".allocshim.withheld";

/// What `patch` did: how many relocations it left to the library, and to ld.so.
pub struct Withheld {
    pub count: usize,
    pub kept: usize,
}

/// Rewrites the linked library at `path` in place (through a temporary file and a
/// rename, so a failure leaves the linker's output). Err says why it left it alone.
pub fn patch(path: &Path) -> Result<Withheld, String> {
    let mut data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let withheld = rewrite(&mut data)?;
    let tmp = path.with_extension("so.relink");
    fs::write(&tmp, &data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::metadata(path).map_err(|e| e.to_string())?.permissions()).map_err(|e| e.to_string())?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(withheld)
}

fn rewrite(data: &mut [u8]) -> Result<Withheld, String> {
    let (lazy, rela, dynamic, withheld_at, types) = {
        let bytes: &[u8] = data;
        let header = FileHeader64::<LE>::parse(bytes).map_err(|e| e.to_string())?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        let types = match header.e_machine.get(endian) {
            elf::EM_X86_64 => (elf::R_X86_64_RELATIVE, elf::R_X86_64_64),
            elf::EM_AARCH64 => (elf::R_AARCH64_RELATIVE, elf::R_AARCH64_ABS64),
            other => return Err(format!("ELF machine {other}: only x86_64 and aarch64 are known")),
        };
        let sections = header.sections(endian, bytes).map_err(|e| e.to_string())?;
        let mut lazy = vec![];
        for s in sections.iter() {
            let name = sections.section_name(endian, s).map_err(|e| e.to_string())?;
            if name.starts_with(SECTION_PREFIX.as_bytes()) {
                let start = s.sh_addr(endian);
                lazy.push(start..start + s.sh_size(endian));
            }
        }
        let file_range = |name: &[u8]| {
            let (_, s) = sections.section_by_name(endian, name).ok_or(format!("no {} section", String::from_utf8_lossy(name)))?;
            Ok::<_, String>((s.sh_offset(endian) as usize, s.sh_size(endian) as usize))
        };
        (lazy, file_range(b".rela.dyn")?, file_range(b".dynamic")?, file_range(COUNTER.as_bytes())?, types)
    };
    if withheld_at.1 < 8 {
        return Err(format!("{COUNTER} has {} bytes, not 8", withheld_at.1));
    }
    let (relative, absolute) = types;
    if lazy.is_empty() {
        return Err(format!("no {SECTION_PREFIX}* section (the linker script was not applied)"));
    }

    // The dynamic entries to rewrite: DT_RELACOUNT counts the table's first entries,
    // which ld.so applies as relative ones without reading their type; DT_RELASZ
    // bounds what it reads.
    fn dyns(data: &mut [u8], (at, size): (usize, usize)) -> Result<&mut [Dyn64<LE>], String> {
        object::pod::slice_from_all_bytes_mut(&mut data[at..at + size]).map_err(|_| "bad .dynamic size".into())
    }
    let find = |data: &mut [u8], tag: u32| -> Result<(usize, usize), String> {
        let d = dyns(data, dynamic)?;
        let at = d.iter().position(|d| d.d_tag.get(LE) == u64::from(tag)).ok_or(format!("no dynamic entry {tag:#x}"))?;
        Ok((at, d[at].d_val.get(LE) as usize))
    };
    let (count_at, count) = find(data, elf::DT_RELACOUNT)?;
    let (size_at, size) = find(data, elf::DT_RELASZ)?;
    let entry = std::mem::size_of::<Rela64<LE>>();
    let counter = u64::from_le_bytes(data[withheld_at.0..withheld_at.0 + 8].try_into().unwrap());
    if counter != 0 {
        return Ok(Withheld { count: counter as usize, kept: size / entry }); // done already
    }

    let table: &mut [Rela64<LE>] =
        object::pod::slice_from_all_bytes_mut(&mut data[rela.0..rela.0 + rela.1]).map_err(|_| "bad .rela.dyn size")?;
    if size % entry != 0 || size / entry > table.len() || count > size / entry {
        return Err(format!("DT_RELASZ {size} and DT_RELACOUNT {count} do not fit .rela.dyn's {} entries", table.len()));
    }
    let (applied, beyond) = table.split_at(size / entry);
    let in_lazy = |r: &Rela64<LE>| lazy.iter().any(|s| s.contains(&r.r_offset.get(LE)));
    let (mut relatives, mut others, mut held) = (vec![], vec![], vec![]);
    for (i, r) in applied.iter().enumerate() {
        let kind = r.r_type(LE, false);
        if i < count && kind != relative {
            return Err(format!("entry of type {kind} among the DT_RELACOUNT relative ones"));
        }
        if !in_lazy(r) {
            if i < count { &mut relatives } else { &mut others }.push(*r);
            continue;
        }
        // NONE, with the symbol kept; relocate.rs reads one without a symbol as a
        // relative relocation, so an absolute one must have a symbol.
        let symbol = match (kind, r.r_sym(LE, false)) {
            (k, _) if k == relative => 0,
            (k, sym) if k == absolute && sym != 0 => u64::from(sym) << 32,
            _ => return Err(format!("a relocation of type {kind} in an allocator's data section")),
        };
        held.push(Rela64 { r_offset: r.r_offset, r_info: U64::new(LE, symbol), r_addend: r.r_addend });
    }
    let withheld = Withheld { count: held.len(), kept: relatives.len() + others.len() };
    let order: Vec<Rela64<LE>> = relatives.iter().chain(&others).chain(&held).chain(beyond).copied().collect();
    table.copy_from_slice(&order);
    dyns(data, dynamic)?[count_at].d_val = U64::new(LE, relatives.len() as u64);
    dyns(data, dynamic)?[size_at].d_val = U64::new(LE, (withheld.kept * entry) as u64);
    data[withheld_at.0..withheld_at.0 + 8].copy_from_slice(&(withheld.count as u64).to_le_bytes());
    Ok(withheld)
}
