//! Applying the relocations of the chosen allocator's data, which ld.so left to us.
//!
//! Every allocator's pointer tables need relocating (their pointers hold the load
//! address), and ld.so writing them at load made 11 pages of the library private
//! memory in every process, though only one allocator, or none, ever runs there. So
//! the build (`shim/relink.rs`) moves the relocations that target an allocator's data
//! section past the end of the table ld.so reads (DT_RELASZ), as NONE entries with
//! offset, addend and symbol kept, and counts them in `.allocshim.withheld`. Here the
//! chosen allocator's are applied, by the selecting thread, before the allocator starts
//! and before anything can run its code, and its pointer tables are then made
//! read-only, as ld.so leaves RELRO. The others' pages are never written, and stay the
//! file's.
//!
//! A library linked without that step (a count of 0) has nothing to apply: ld.so did
//! it all, and every allocator's tables are made read-only.
use core::ffi::c_char;
use core::ptr::addr_of;

use allocshim_select::Backend;

use crate::elf::{
    dyn_ptr, each_dynamic, Dyn, Rela, Sym, Vernaux, Verneed, DT_RELA, DT_RELASZ, DT_STRTAB, DT_SYMTAB, DT_VERNEED, DT_VERNEEDNUM,
    DT_VERSYM, R_NONE,
};

extern "C" {
    // Defined by the linker: the library's ELF header (at its load address) and its
    // dynamic section.
    static __ehdr_start: u8;
    static _DYNAMIC: Dyn;
    // Defined by build.rs's linker script: how many relocations relink.rs withheld.
    static __allocshim_withheld: u64;
}

/// The bounds build.rs's linker script defines around allocator `$name`'s data
/// sections (`__allocshim_data_<name>_start`, `_ro_end`, `_end`), as a [`Data`].
macro_rules! data_of {
    ($name:literal) => {{
        extern "C" {
            #[link_name = concat!("__allocshim_data_", $name, "_start")]
            static START: u8;
            #[link_name = concat!("__allocshim_data_", $name, "_ro_end")]
            static RO_END: u8;
            #[link_name = concat!("__allocshim_data_", $name, "_end")]
            static END: u8;
        }
        Data { start: addr_of!(START) as usize, ro_end: addr_of!(RO_END) as usize, end: addr_of!(END) as usize }
    }};
}

/// Where an allocator's data sections are: its pointer tables from `start` to
/// `ro_end` (page-aligned), then its writable data up to `end`.
struct Data {
    start: usize,
    ro_end: usize,
    end: usize,
}

impl Data {
    fn of(backend: Backend) -> Option<Data> {
        match backend {
            Backend::System => None,
            Backend::Jemalloc => Some(data_of!("jemalloc")),
            Backend::Mimalloc => Some(data_of!("mimalloc")),
            Backend::Snmalloc => Some(data_of!("snmalloc")),
        }
    }

    /// Makes the pointer tables read-only, as ld.so leaves RELRO: their whole pages
    /// (with pages larger than the linker script's 4 KiB alignment, the tables may share
    /// one with writable data, which then stays writable).
    fn protect(&self) {
        let page = crate::sys::page_size();
        let (start, end) = ((self.start + page - 1) & !(page - 1), self.ro_end & !(page - 1));
        if start < end {
            // SAFETY: whole pages of this library's mapping that hold only one
            // allocator's relocated tables, which nothing writes once relocated (a
            // failure leaves them writable, as they were).
            unsafe { libc::mprotect(start as *mut core::ffi::c_void, end - start, libc::PROT_READ) };
        }
    }
}

/// Applies the withheld relocations of `backend`'s data sections, then makes its
/// pointer tables read-only; nothing for `system`. In a library linked without
/// relink.rs ld.so relocated every allocator's tables: all of them are made read-only.
///
/// # Safety
/// From the selecting thread, once, before `backend` starts: it writes the sections
/// without synchronisation. No other thread runs the allocator's code before the
/// choice is published: one that allocates meanwhile waits in `init::ensure` and sees
/// these writes through its Acquire load of the published state; one that first
/// reaches the allocator later, through an entry or PLT slot published from the
/// initialiser, relies on the same ordering as for the allocator's own start-up
/// writes (`start`), which come after these.
pub unsafe fn apply(backend: Backend) {
    // SAFETY: a read-only u64 in this library's image, written only by the build.
    let withheld = unsafe { core::ptr::read_volatile(addr_of!(__allocshim_withheld)) } as usize;
    if withheld == 0 {
        for b in [Backend::Jemalloc, Backend::Mimalloc, Backend::Snmalloc] {
            if let Some(d) = Data::of(b) {
                d.protect();
            }
        }
        return;
    }
    let Some(data) = Data::of(backend) else { return };
    let section = data.start..data.end;
    let base = addr_of!(__ehdr_start) as usize;
    let (mut table, mut size) = (0usize, 0usize);
    let mut names = Names { symtab: 0, strtab: 0, versym: 0, verneed: 0, verneednum: 0 };
    // SAFETY: _DYNAMIC is this library's dynamic section, mapped as long as it is.
    unsafe {
        each_dynamic(addr_of!(_DYNAMIC), |tag, v| match tag {
            DT_RELA => table = dyn_ptr(base, v),
            DT_RELASZ => size = v as usize,
            DT_SYMTAB => names.symtab = dyn_ptr(base, v),
            DT_STRTAB => names.strtab = dyn_ptr(base, v),
            DT_VERSYM => names.versym = dyn_ptr(base, v),
            DT_VERNEED => names.verneed = dyn_ptr(base, v),
            DT_VERNEEDNUM => names.verneednum = v as usize,
            _ => {}
        })
    };
    if table == 0 {
        return;
    }
    // The withheld entries follow the DT_RELASZ bytes ld.so read (relink.rs).
    let first = size / core::mem::size_of::<Rela>();
    for i in first..first + withheld {
        // SAFETY: DT_RELA locates this library's relocation table, mapped read-only with
        // it, which relink.rs made DT_RELASZ bytes plus `withheld` entries long.
        let r = unsafe { &*(table as *const Rela).add(i) };
        let at = base.wrapping_add(r.offset as usize);
        if r.info as u32 != R_NONE || !section.contains(&at) {
            continue;
        }
        // Without a symbol, a relative relocation; with one, an absolute one.
        let symbol = (r.info >> 32) as usize;
        let value = if symbol == 0 {
            base
        } else {
            // SAFETY: `symbol` indexes this library's symbol table, as its relocation
            // was linked (relink.rs kept it).
            unsafe { names.lookup(symbol) }
        };
        // SAFETY: `at` is in `backend`'s data sections, writable and never RELRO
        // (build.rs); no other thread reads them yet (our caller's contract). A
        // relocation may sit at any byte offset, hence the unaligned write.
        unsafe { (at as *mut usize).write_unaligned(value.wrapping_add(r.addend as usize)) };
    }
    data.protect();
}

/// This library's symbol and version tables (dynamic section addresses, 0 if absent).
struct Names {
    symtab: usize,
    strtab: usize,
    versym: usize,
    verneed: usize,
    verneednum: usize,
}

impl Names {
    /// The address the symbol at `index` binds to in the global scope, in the version
    /// this library needs (as ld.so binds it), or 0 where nothing defines it.
    ///
    /// # Safety
    /// `index` is an entry of this library's symbol table.
    unsafe fn lookup(&self, index: usize) -> usize {
        if self.symtab == 0 || self.strtab == 0 {
            return 0;
        }
        // SAFETY: DT_SYMTAB and DT_STRTAB locate this library's tables, mapped with
        // it; `index` is an entry (our caller's contract) whose name is a NUL-terminated
        // string in the string table.
        let name = unsafe { (self.strtab + (*(self.symtab as *const Sym).add(index)).name as usize) as *const c_char };
        // SAFETY: as `name`; DT_VERSYM has one entry per symbol.
        let version = if self.versym == 0 { 0 } else { (unsafe { *(self.versym as *const u16).add(index) }) & 0x7fff };
        // SAFETY: DT_VERNEED and DT_VERNEEDNUM locate this library's version needs.
        match unsafe { self.needed(version) } {
            // SAFETY: NUL-terminated names; dlvsym and dlsym keep no pointer to them.
            Some(v) => unsafe { libc::dlvsym(libc::RTLD_DEFAULT, name, v) as usize },
            None => unsafe { libc::dlsym(libc::RTLD_DEFAULT, name) as usize },
        }
    }

    /// The name of the needed version numbered `version` (a DT_VERSYM value).
    ///
    /// # Safety
    /// The tables are this library's.
    unsafe fn needed(&self, version: u16) -> Option<*const c_char> {
        // 0 and 1: a local or global symbol of no particular version.
        if version < 2 || self.verneed == 0 {
            return None;
        }
        let mut need = self.verneed as *const Verneed;
        for _ in 0..self.verneednum {
            // SAFETY: DT_VERNEEDNUM entries chained by vn_next from DT_VERNEED, each
            // with vn_cnt auxiliary entries chained by vna_next from vn_aux.
            unsafe {
                let mut aux = (need as usize + (*need).aux as usize) as *const Vernaux;
                for _ in 0..(*need).cnt {
                    if (*aux).other == version {
                        return Some((self.strtab + (*aux).name as usize) as *const c_char);
                    }
                    aux = (aux as usize + (*aux).next as usize) as *const Vernaux;
                }
                need = (need as usize + (*need).next as usize) as *const Verneed;
            }
        }
        None
    }
}
