//! The ELF structures the library reads in loaded images (its own and the process's
//! other objects): <elf.h>'s 64-bit forms, as both supported architectures are LP64
//! and use RELA relocations.

pub const DT_NULL: i64 = 0;
pub const DT_PLTRELSZ: i64 = 2;
pub const DT_STRTAB: i64 = 5;
pub const DT_SYMTAB: i64 = 6;
/// Also the DT_PLTREL value saying the PLT relocations are RELA.
pub const DT_RELA: i64 = 7;
pub const DT_RELASZ: i64 = 8;
pub const DT_SYMBOLIC: i64 = 16;
pub const DT_PLTREL: i64 = 20;
pub const DT_JMPREL: i64 = 23;
pub const DT_FLAGS: i64 = 30;
pub const DT_GNU_HASH: i64 = 0x6fff_fef5;
pub const DT_VERSYM: i64 = 0x6fff_fff0;
pub const DT_VERNEED: i64 = 0x6fff_fffe;
pub const DT_VERNEEDNUM: i64 = 0x6fff_ffff;
pub const DF_SYMBOLIC: u64 = 2;
pub const STV_PROTECTED: u8 = 3;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
pub const PF_X: u32 = 1;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const R_JUMP_SLOT: u32 = 7; // R_X86_64_JUMP_SLOT
}
#[cfg(target_arch = "aarch64")]
mod arch {
    pub const R_JUMP_SLOT: u32 = 1026; // R_AARCH64_JUMP_SLOT
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("elf.rs knows the relocation types of x86_64 and aarch64 only");
pub use arch::R_JUMP_SLOT;
/// R_X86_64_NONE and R_AARCH64_NONE: an entry ld.so skips.
pub const R_NONE: u32 = 0;

#[repr(C)]
pub struct Dyn {
    pub tag: i64,
    pub val: u64,
}

#[repr(C)]
pub struct Rela {
    pub offset: u64,
    /// The symbol's index in the high 32 bits, the relocation type in the low ones.
    pub info: u64,
    pub addend: i64,
}

#[repr(C)]
pub struct Sym {
    pub name: u32,
    pub info: u8,
    pub other: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

/// One object whose versions a library needs (Elf64_Verneed); offsets are in bytes
/// from this entry.
#[repr(C)]
pub struct Verneed {
    pub version: u16,
    pub cnt: u16,
    pub file: u32,
    pub aux: u32,
    pub next: u32,
}

/// One version needed of that object (Elf64_Vernaux); `other` is the number DT_VERSYM
/// entries use for it, `name` its offset in the string table.
#[repr(C)]
pub struct Vernaux {
    pub hash: u32,
    pub flags: u16,
    pub other: u16,
    pub name: u32,
    pub next: u32,
}

/// Calls `f` with the tag and value of each entry of the dynamic section at `d`, up to
/// its DT_NULL one.
///
/// # Safety
/// `d` is a loaded object's dynamic section, which stays mapped for the call.
#[inline(always)]
pub unsafe fn each_dynamic(mut d: *const Dyn, mut f: impl FnMut(i64, u64)) {
    // SAFETY: a dynamic section is entries up to a DT_NULL one (our caller's contract).
    unsafe {
        while (*d).tag != DT_NULL {
            f((*d).tag, (*d).val);
            d = d.add(1);
        }
    }
}

/// A pointer read from a dynamic section: ld.so has usually relocated it in place
/// already, except where the section is read-only (vDSO, some linkers' output).
pub fn dyn_ptr(base: usize, v: u64) -> usize {
    let v = v as usize;
    if v < base {
        v.wrapping_add(base)
    } else {
        v
    }
}
