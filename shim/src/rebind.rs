//! Binding the process's PLT calls of the entry points (`entry::NAMES`: malloc, free,
//! calloc, realloc, posix_memalign, aligned_alloc, malloc_usable_size) straight to the
//! functions the exported ones jump to (`entry`), so that after start-up the shim adds
//! no instruction to them.
//!
//! Objects call these through a PLT stub and its `JUMP_SLOT` GOT slot. Once the
//! backend is chosen and the entries published, from the library's initialiser, each
//! `JUMP_SLOT` of the objects loaded at start-up that would reach one of our exported
//! functions gets that function's entry target written into it instead. A slot qualifies
//! when
//! * it already holds our exported function (bound at relocation: BIND_NOW objects, or
//!   a lazy slot some earlier call resolved), or
//! * it is a lazy `JUMP_SLOT` not yet resolved (it still points into the object's own
//!   PLT), its symbol is one of the names, the object is in the main namespace and not
//!   `DT_SYMBOLIC`, the symbol is not a protected definition of its own, and the global
//!   lookup finds our definition first (the selection checked that for malloc:
//!   `init::interposed`; no object ahead of us defines the name): ld.so's lazy
//!   resolution would then write our exported function there, so writing its target
//!   directly is the same binding, minus one indirection.
//!
//! `GLOB_DAT` slots are never touched: they hold the function's address as the program
//! sees it (`&malloc`, which C requires to be one address in every object, equal to
//! `dlsym(RTLD_DEFAULT, "malloc")`), and code built with `-fno-plt`, or calls the linker
//! routes through the same slot (`.plt.got`), keep the exported function's single jump.
//! A PLT slot is only ever called through, so rewriting it changes no address a program
//! can observe: in a non-PIE executable that takes `&malloc`, the canonical address is
//! its PLT stub, which then leads to the target.
//!
//! Slots inside the object's RELRO region (BIND_NOW objects) are made writable for the
//! write and read-only again right after. Anything unexpected (a failing `mprotect`, a
//! sealed mapping, an unknown relocation format) leaves that slot as it is: it keeps
//! reaching our exported function, which stays correct. So do objects loaded later
//! (dlopen).
//!
//! Runs once, from the initialiser, outside any ld.so lock except the one
//! `dl_iterate_phdr` takes for its walk. No allocation, no std: raw reads of the
//! loaded images and two `mprotect` calls per object with RELRO slots to write.
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::entry::NAMES;
use crate::exports::ENTRY;

use crate::elf::{
    dyn_ptr, each_dynamic, Dyn, Rela, Sym, DF_SYMBOLIC, DT_FLAGS, DT_GNU_HASH, DT_JMPREL, DT_PLTREL, DT_PLTRELSZ, DT_RELA, DT_STRTAB,
    DT_SYMBOLIC, DT_SYMTAB, PF_X, PT_DYNAMIC, PT_GNU_RELRO, PT_LOAD, R_JUMP_SLOT, STV_PROTECTED,
};

/// The public head of glibc's `struct link_map` (<link.h>).
#[repr(C)]
struct LinkMap {
    addr: usize,
    _name: *const c_char,
    ld: *const Dyn,
    next: *const LinkMap,
    prev: *const LinkMap,
}

const N: usize = NAMES.len();

struct Plan {
    /// Our exported functions: a slot holding one of these is bound to us.
    ours: [usize; N],
    /// What to write instead: each entry's target.
    target: [usize; N],
    /// Unresolved lazy slots of each name may be pre-bound (our definition wins the
    /// global lookup).
    lazy: [bool; N],
    /// Head of the main namespace's list of objects.
    main_ns: *const LinkMap,
    /// Our own dynamic section: our own slots stay as they are (they are only used to
    /// take the exported functions' addresses, and the shim's code must see ours).
    own: *const Dyn,
    page: usize,
}

/// Set once rebinding ran, so that it runs once.
static DONE: AtomicBool = AtomicBool::new(false);

/// Rewrites the slots (once per process). `interposed`: the selection found our
/// `malloc` first in the global lookup.
///
/// # Safety
/// Call after the entries are published (`Entries::publish`), from the library
/// initialiser (no ld.so lock held by this thread), with no other thread able to
/// unload objects.
pub unsafe fn rebind(interposed: bool) {
    if DONE.swap(true, Relaxed) {
        return;
    }
    let target = ENTRY.targets();

    // The main namespace's list: walk back from our own entry (we are preloaded into it).
    const RTLD_DL_LINKMAP: c_int = 2; // <dlfcn.h>

    // SAFETY: Dl_info is plain C data (pointers and integers): all zeroes is valid.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut map: *const LinkMap = core::ptr::null();
    // SAFETY: with RTLD_DL_LINKMAP, dladdr1 writes `info` and one `struct link_map *`
    // into `map`, both live locals of those types; the address is one of ours.
    let found =
        unsafe { libc::dladdr1(core::ptr::addr_of!(DONE).cast(), &mut info, (&mut map as *mut *const LinkMap).cast(), RTLD_DL_LINKMAP) };
    if found == 0 || map.is_null() {
        return;
    }
    // SAFETY: `map` is ld.so's link_map for this library, whose public head `LinkMap`
    // mirrors. Objects loaded at start-up are never unloaded and no other thread can
    // unload any (our caller's contract), so it and the list it is in stay valid.
    let (own, addr) = unsafe { ((*map).ld, (*map).addr) };
    // Our exported functions' own addresses, from our dynamic symbol table: taking
    // `exports::malloc`'s address in Rust goes through our GOT, which holds whatever
    // the global lookup found, i.e. the program's malloc when it brings its own.
    // SAFETY: `addr` and `own` are this library's load bias and dynamic section, as
    // ld.so recorded them.
    let Some(ours) = (unsafe { Tables::of(addr, own) }).and_then(|t| {
        let mut ours = [0usize; N];
        for (k, name) in NAMES.iter().enumerate() {
            // SAFETY: `t` describes this library's tables, mapped for good.
            ours[k] = unsafe { t.defined(name) }?;
        }
        Some(ours)
    }) else {
        return;
    };
    // The objects ahead of us in the global lookup (the executable, earlier preloads):
    // a name one of them defines resolves there, so its lazy slots are not ours to bind.
    let mut lazy = [interposed; N];
    // SAFETY: as above: `prev` links valid link_maps, up to the head's NULL.
    unsafe {
        while !(*map).prev.is_null() {
            map = (*map).prev;
            if let Some(t) = Tables::of((*map).addr, (*map).ld) {
                for (k, name) in NAMES.iter().enumerate() {
                    lazy[k] &= t.defined(name).is_none();
                }
            } else {
                lazy = [false; N]; // cannot tell what it defines
            }
        }
    }

    let mut plan = Plan { ours, target, lazy, main_ns: map, own, page: crate::sys::page_size() };
    // SAFETY: `each_object` gets each loaded object's description and this `plan`,
    // a live local for the whole call, as the `data` it expects.
    unsafe { libc::dl_iterate_phdr(Some(each_object), (&mut plan as *mut Plan).cast()) };
}

/// An object's dynamic symbol table, string table and GNU hash table.
struct Tables {
    base: usize,
    symtab: *const Sym,
    strtab: *const u8,
    hash: *const u32,
}

impl Tables {
    /// The tables of the object whose load bias and dynamic section are these; None
    /// without a GNU hash table.
    ///
    /// # Safety
    /// `base` and `dynamic` are a loaded object's load bias and dynamic section, as
    /// ld.so recorded them; the object stays loaded while the result is used.
    unsafe fn of(base: usize, dynamic: *const Dyn) -> Option<Tables> {
        let (mut symtab, mut strtab, mut hash) = (0usize, 0usize, 0usize);
        // SAFETY: `dynamic` is a loaded object's dynamic section (caller's contract).
        unsafe {
            each_dynamic(dynamic, |tag, v| match tag {
                DT_SYMTAB => symtab = dyn_ptr(base, v),
                DT_STRTAB => strtab = dyn_ptr(base, v),
                DT_GNU_HASH => hash = dyn_ptr(base, v),
                _ => {}
            })
        };
        if symtab == 0 || strtab == 0 || hash == 0 {
            return None;
        }
        Some(Tables { base, symtab: symtab as *const Sym, strtab: strtab as *const u8, hash: hash as *const u32 })
    }

    /// The address of the object's own definition of `name`, looked up in its GNU
    /// hash table, if it defines one.
    ///
    /// # Safety
    /// `self` describes a loaded object's tables (`of`); `name` holds no NUL.
    unsafe fn defined(&self, name: &[u8]) -> Option<usize> {
        let table = self.hash;
        // The GNU hash table: nbuckets, symoffset, bloom size (in 64-bit words), bloom
        // shift, the bloom words, the buckets, then one chain word per hashed symbol.
        // SAFETY: DT_GNU_HASH locates the object's GNU hash table as the linker wrote
        // it, in mapped, read-only memory, beginning with these four header words.
        let (nbuckets, symoffset, bloom_words) = unsafe { (*table as usize, *table.add(1) as usize, *table.add(2) as usize) };
        if nbuckets == 0 {
            return None;
        }
        // SAFETY: the buckets follow the 4 header words and the bloom words (two u32
        // each), and the chains follow the `nbuckets` buckets, all inside the table.
        let (buckets, chains) = unsafe {
            let buckets = table.add(4 + 2 * bloom_words);
            (buckets, buckets.add(nbuckets))
        };
        let h = name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32));
        // SAFETY: `h % nbuckets` indexes the bucket array.
        let mut i = unsafe { *buckets.add(h as usize % nbuckets) } as usize;
        if i < symoffset {
            return None; // an empty bucket
        }
        loop {
            // SAFETY: `i` (>= symoffset) indexes a hashed symbol: it has a chain word at
            // `i - symoffset` and a symbol-table entry at `i`. The walk starts at the
            // bucket's first symbol and stops at the chain word with the low bit set
            // (the end of the chain), so it never leaves the table.
            let (chain, sym) = unsafe { (*chains.add(i - symoffset), &*self.symtab.add(i)) };
            // SAFETY: a symbol's name is an offset into the string table of
            // NUL-terminated names; `name` holds no NUL (our contract).
            if chain | 1 == h | 1 && sym.shndx != 0 && unsafe { c_name_is(self.strtab.add(sym.name as usize), name) } {
                return Some(self.base.wrapping_add(sym.value as usize));
            }
            if chain & 1 != 0 {
                return None;
            }
            i += 1;
        }
    }
}

/// Whether the NUL-terminated string at `s` is `name`.
///
/// # Safety
/// `s` points at a NUL-terminated string.
unsafe fn c_name_is(s: *const u8, name: &[u8]) -> bool {
    for (k, &c) in name.iter().enumerate() {
        // SAFETY: s[..k] matched `name`, which holds no NUL (all of [`NAMES`]), so the
        // string's NUL is at k or later: s[k] is within it (caller's contract).
        if unsafe { *s.add(k) } != c {
            return false;
        }
    }
    // SAFETY: as above, for k = name.len().
    unsafe { *s.add(name.len()) == 0 }
}

/// The `dl_iterate_phdr` callback of [`rebind`].
///
/// # Safety
/// Called only by `dl_iterate_phdr` on behalf of [`rebind`]: `info` describes a loaded
/// object and `data` is `rebind`'s `Plan`, borrowed by nothing else for the call.
unsafe extern "C" fn each_object(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info for a loaded object and our Plan
    // (our caller's contract), and holds ld.so's load lock, so the object and the
    // namespace list stay put.
    let (info, plan) = unsafe { (&*info, &mut *(data as *mut Plan)) };
    // SAFETY: a loaded, relocated object (dl_iterate_phdr lists only those), with
    // ld.so's lock held for the duration of this callback.
    unsafe { object(info, plan) };
    0
}

/// Rewrites the qualifying slots of one loaded object.
///
/// # Safety
/// `info` describes a loaded, relocated object, and ld.so's load lock is held
/// (we are inside `dl_iterate_phdr`), so its mappings and the namespace list stay put.
unsafe fn object(info: &libc::dl_phdr_info, plan: &mut Plan) {
    let base = info.dlpi_addr as usize;
    // SAFETY: `dlpi_phdr` points at the object's `dlpi_phnum` program headers, mapped
    // as long as the object is loaded (our caller's contract).
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut dynamic = 0usize;
    let (mut relro_start, mut relro_end) = (0usize, 0usize);
    let (mut text_start, mut text_end) = (usize::MAX, 0usize);
    for ph in phdrs {
        let start = base.wrapping_add(ph.p_vaddr as usize);
        match ph.p_type {
            PT_DYNAMIC => dynamic = start,
            // As ld.so protects it (_dl_protect_relro): whole pages only.
            PT_GNU_RELRO => {
                relro_start = start & !(plan.page - 1);
                relro_end = start.wrapping_add(ph.p_memsz as usize) & !(plan.page - 1);
            }
            PT_LOAD if ph.p_flags & PF_X != 0 => {
                text_start = text_start.min(start);
                text_end = text_end.max(start.wrapping_add(ph.p_memsz as usize));
            }
            _ => {}
        }
    }
    if dynamic == 0 || dynamic == plan.own as usize {
        return;
    }
    // Only objects of the main namespace (an LD_AUDIT module's own libc, say, is not
    // bound to us and must keep its own malloc).
    let mut l = plan.main_ns;
    // SAFETY: `main_ns` heads the main namespace's list of link_maps, which ld.so
    // changes only under the lock held around this call (our caller's contract); the
    // walk ends at the last entry's NULL `next`.
    unsafe {
        while !l.is_null() && (*l).ld as usize != dynamic {
            l = (*l).next;
        }
    }
    if l.is_null() {
        return;
    }

    let (mut strtab, mut symtab) = (0usize, 0usize);
    let (mut jmprel, mut pltrelsz, mut pltrel) = (0usize, 0usize, 0i64);
    let mut symbolic = false;
    // SAFETY: PT_DYNAMIC locates the object's dynamic section, mapped while the object
    // is loaded.
    unsafe {
        each_dynamic(dynamic as *const Dyn, |tag, v| match tag {
            DT_STRTAB => strtab = dyn_ptr(base, v),
            DT_SYMTAB => symtab = dyn_ptr(base, v),
            DT_JMPREL => jmprel = dyn_ptr(base, v),
            DT_PLTRELSZ => pltrelsz = v as usize,
            DT_PLTREL => pltrel = v as i64,
            DT_SYMBOLIC => symbolic = true,
            DT_FLAGS => symbolic |= v & DF_SYMBOLIC != 0,
            _ => {}
        })
    };
    if symtab == 0 || strtab == 0 {
        return;
    }
    let mut obj = Object {
        base,
        symtab: symtab as *const Sym,
        strtab: strtab as *const u8,
        text: (text_start, text_end),
        relro: (relro_start, relro_end),
        lazy: if symbolic { [false; N] } else { plan.lazy },
        unprotected: false,
        refused: false,
    };
    // JUMP_SLOT relocations are all in DT_JMPREL (the others hold GLOB_DAT and
    // relative ones, never touched).
    if jmprel != 0 && pltrel == DT_RELA {
        // SAFETY: DT_JMPREL and DT_PLTRELSZ locate this object's PLT relocations, in
        // RELA form (checked), whose symbols are in `obj`'s tables; lock still held.
        unsafe { obj.scan(plan, jmprel as *const Rela, pltrelsz / core::mem::size_of::<Rela>()) };
    }
    if obj.unprotected {
        // SAFETY: the whole pages of this object's RELRO segment that `scan` made
        // writable; read-only again as ld.so left them. No Rust reference covers them.
        unsafe { libc::mprotect(relro_start as *mut c_void, relro_end - relro_start, libc::PROT_READ) };
    }
}

struct Object {
    base: usize,
    symtab: *const Sym,
    strtab: *const u8,
    /// The object's executable segments: an unresolved lazy slot points in here.
    text: (usize, usize),
    relro: (usize, usize),
    /// Per name: an unresolved lazy slot may be pre-bound.
    lazy: [bool; N],
    /// The RELRO pages are writable now (restored to read-only after the scan).
    unprotected: bool,
    /// mprotect refused to make them writable.
    refused: bool,
}

impl Object {
    /// Rewrites the qualifying slots among `n` relocations at `rels`.
    ///
    /// # Safety
    /// `rels` points at `n` relocations of this object, whose symbol and string
    /// tables are `self.symtab` / `self.strtab`; as for [`object`].
    unsafe fn scan(&mut self, plan: &mut Plan, rels: *const Rela, n: usize) {
        for i in 0..n {
            // SAFETY: i < n, so one of the `n` relocations at `rels` (caller's contract).
            let r = unsafe { &*rels.add(i) };
            let kind = r.info as u32;
            if kind != R_JUMP_SLOT {
                continue;
            }
            let slot = self.base.wrapping_add(r.offset as usize) as *mut usize;
            // SAFETY: a JUMP_SLOT relocation's offset names one of this object's GOT
            // slots: a pointer-sized, aligned word, mapped and readable
            // while the object is loaded (AtomicUsize has usize's size and alignment).
            // Other threads may load it and ld.so may store it (lazy binding) at the
            // same time, hence an atomic load; a Relaxed load may read read-only
            // (RELRO) memory.
            let now = unsafe { (*(slot as *const AtomicUsize)).load(Relaxed) };
            let which = match plan.ours.iter().position(|&f| f == now) {
                Some(k) => k,
                None if now >= self.text.0 && now < self.text.1 => {
                    // SAFETY: the symbol index of one of this object's relocations.
                    match unsafe { self.lazy_symbol((r.info >> 32) as usize) } {
                        Some(k) if self.lazy[k] => k,
                        _ => continue,
                    }
                }
                None => continue,
            };
            let target = plan.target[which];
            let at = slot as usize;
            if at >= self.relro.0 && at < self.relro.1 && !self.unprotected {
                if self.refused {
                    continue;
                }
                // SAFETY: whole pages of this object's RELRO segment (rounded as ld.so
                // protects it), which hold only relocated data such as GOT slots; made
                // writable too, and read-only again at the end of `object`.
                let rc =
                    unsafe { libc::mprotect(self.relro.0 as *mut c_void, self.relro.1 - self.relro.0, libc::PROT_READ | libc::PROT_WRITE) };
                if rc != 0 {
                    // Sealed or otherwise refused: leave this object's RELRO slots alone.
                    self.refused = true;
                    continue;
                }
                self.unprotected = true;
            }
            // A word-sized store: a thread calling through the slot meanwhile sees
            // either function, and both serve the same backend.
            // SAFETY: `slot` is the GOT word loaded above, now writable (outside RELRO,
            // or its pages made writable just above).
            unsafe { (*(slot as *const AtomicUsize)).store(target, Relaxed) };
        }
    }

    /// Which of [`NAMES`] symbol `index` is, if lazy resolution would bind it to us.
    ///
    /// # Safety
    /// `index` is a symbol index taken from one of this object's relocations.
    unsafe fn lazy_symbol(&self, index: usize) -> Option<usize> {
        // SAFETY: `index` comes from one of this object's relocations (caller's
        // contract), so it indexes its symbol table.
        let sym = unsafe { &*self.symtab.add(index) };
        if sym.shndx != 0 && sym.other & 3 == STV_PROTECTED {
            return None; // resolves to its own definition
        }
        // SAFETY: a symbol's name is an offset into the object's string table.
        let name = unsafe { self.strtab.add(sym.name as usize) };
        // SAFETY: `name` starts a NUL-terminated string of that table.
        NAMES.iter().position(|n| unsafe { c_name_is(name, n) })
    }
}
