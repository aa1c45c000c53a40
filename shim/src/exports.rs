//! The exported C ABI: glibc's malloc family with glibc's documented behaviour,
//! whatever the backend does natively, plus the `allocshim_*` query functions.
//!
//! malloc, free, calloc, realloc, posix_memalign, aligned_alloc and
//! malloc_usable_size are one indirect jump through their entry ([`ENTRY`], see
//! `entry.rs`): to the backend's own function where it behaves as glibc's, to the
//! smallest wrapper where it does not, or to the shim's own implementation ([`own`]),
//! where everything that normalises behaviour (NULL, size 0, overflow, alignment
//! rules, errno, the bootstrap arena) sits on paths the common case does not take.
//!
//! Not exported, on purpose (see README, "Exported functions"): the `__libc_*`
//! aliases (callers use them to reach glibc itself), `mallinfo`/`mallinfo2`/`mallopt`/
//! `malloc_info` (glibc's answers about its own, nearly empty heap are harmless).
//!
//! The `# Safety` sections state each function's C contract as glibc's manual does;
//! a C caller that breaks it gets undefined behaviour, as it would from glibc.
use core::ffi::{c_char, c_int, c_void};
use core::ptr::null_mut;

use crate::backend::descriptor::{AlignedAllocFn, CallocFn, FreeFn, MallocFn, PosixMemalignFn, ReallocFn, UsableSizeFn};
use crate::backend::{Backend, BackendExt, ALL};
use crate::bootstrap;
use crate::entry::{Entries, Entry};
use crate::init::{self, ops};
use crate::sys::{einval, enomem, page_size};

/// What malloc guarantees for any size: as glibc on 64-bit, for every backend.
const MIN_ALIGN: usize = core::mem::size_of::<usize>();
/// Larger objects cannot exist (pointer differences would overflow).
const MAX_SIZE: usize = isize::MAX as usize;

/// Where the entry points most programs call jump: first to the shim's own
/// implementations ([`own`]), then to what the chosen backend offers
/// (`Entries::publish`, from the library's initialiser).
pub static ENTRY: Entries = Entries {
    malloc: Entry::new(own::malloc as MallocFn as *mut ()),
    free: Entry::new(own::free as FreeFn as *mut ()),
    calloc: Entry::new(own::calloc as CallocFn as *mut ()),
    realloc: Entry::new(own::realloc as ReallocFn as *mut ()),
    posix_memalign: Entry::new(own::posix_memalign as PosixMemalignFn as *mut ()),
    aligned_alloc: Entry::new(own::aligned_alloc as AlignedAllocFn as *mut ()),
    malloc_usable_size: Entry::new(own::malloc_usable_size as UsableSizeFn as *mut ()),
};

// The entry points most programs call are one indirect jump through their entry: to
// the backend's own function where it does exactly what ours below would, or to a
// small wrapper of it, or to ours. No frame of their own, nothing done after the
// call: errno, NULL and the rest are whatever the function jumped to does, which
// tests/c/api.c, errno.c and rlimit.c check for every backend.

/// # Safety
/// None: any size. The result is NULL (errno ENOMEM) or a block of at least `size`
/// bytes, aligned for any type, that only this allocator's functions may release.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: every target of the entry takes any size (see `own::malloc`).
    unsafe { (ENTRY.malloc.get())(size) }
}

/// # Safety
/// `p` is NULL or a pointer returned by this allocator (malloc, calloc, realloc, the
/// aligned functions) and not yet freed; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: our caller's contract is every target's (see `own::free`).
    unsafe { (ENTRY.free.get())(p) }
}

/// # Safety
/// None: any count and size (a product that overflows or exceeds PTRDIFF_MAX gets
/// NULL and ENOMEM). A block from calloc is released like one from malloc.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: every target takes any count and size (see `own::calloc`).
    unsafe { (ENTRY.calloc.get())(n, size) }
}

/// # Safety
/// `p` is NULL or a pointer returned by this allocator and not yet freed. On success
/// (and for `size` 0) `p` is freed and must not be used afterwards; on failure (NULL,
/// errno ENOMEM) it stays valid and unchanged.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: our caller's contract is every target's (see `own::realloc`).
    unsafe { (ENTRY.realloc.get())(p, size) }
}

/// # Safety
/// As for [`realloc`]; an overflowing `n * size` gets NULL and ENOMEM, `p` untouched.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: our caller's contract is realloc's.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(),
    }
}

/// # Safety
/// `out` is valid for writing one pointer (written only on success). Any alignment
/// and size: an alignment that is not a power of two multiple of `sizeof(void *)`
/// gets EINVAL.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: our caller's contract is every target's (see `own::posix_memalign`).
    unsafe { (ENTRY.posix_memalign.get())(out, align, size) }
}

/// # Safety
/// None: any alignment and size (an alignment that is not a power of two gets EINVAL).
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: every target takes any alignment and size (see `own::aligned_alloc`).
    unsafe { (ENTRY.aligned_alloc.get())(align, size) }
}

/// # Safety
/// None: any alignment and size (an alignment above PTRDIFF_MAX / 2 + 1 gets EINVAL).
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // glibc: alignments that are no power of two are rounded up to one.
    if align > MAX_SIZE / 2 + 1 {
        return einval();
    }
    // SAFETY: a power of two: `next_power_of_two` of at most 2^62 (just checked)
    // does not overflow.
    unsafe { own::aligned(align.max(1).next_power_of_two(), size) }
}

/// # Safety
/// None: any size.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: the page size is a power of two.
    unsafe { own::aligned(page_size(), size) }
}

/// # Safety
/// None: any size.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_add(page - 1) {
        // SAFETY: the page size is a power of two.
        Some(s) => unsafe { own::aligned(page, s & !(page - 1)) },
        None => enomem(),
    }
}

/// # Safety
/// `p` is NULL or a pointer returned by this allocator and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: our caller's contract is every target's (see `own::malloc_usable_size`).
    unsafe { (ENTRY.malloc_usable_size.get())(p) }
}

/// The shim's own implementations: glibc's contract over any backend's primitives
/// (`Ops`), and the bootstrap arena's blocks. Every entry starts here;
/// `Entries::publish` replaces the ones the chosen backend can serve directly.
mod own {
    use super::*;

    /// # Safety
    /// None: any size.
    pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
        // SAFETY: every table's malloc takes any size (the backends return NULL with
        // ENOMEM for what they cannot serve: tests/c/api.c, "huge").
        unsafe { (ops().malloc)(size) }
    }

    /// # Safety
    /// As the exported free.
    pub unsafe extern "C" fn free(p: *mut c_void) {
        if bootstrap::contains(p) {
            return bootstrap::release();
        }
        // SAFETY: `p` is not from the arena (just checked), and NULL or a live block of
        // the backend in force (our caller's contract; before the choice, `boot_free`
        // hands it to its owner). Every backend's free accepts NULL (tests/c/api.c).
        unsafe { (ops().free)(p) }
    }

    /// # Safety
    /// None: any count and size.
    pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        match n.checked_mul(size) {
            Some(total) if total <= MAX_SIZE => {}
            _ => return enomem(),
        }
        // SAFETY: `n * size` does not overflow (just checked), as `Ops::calloc` requires.
        unsafe { (ops().calloc)(n, size) }
    }

    /// # Safety
    /// As the exported realloc.
    pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        if p.is_null() {
            // SAFETY: malloc has no preconditions.
            return unsafe { super::malloc(size) };
        }
        if size == 0 {
            // glibc frees and returns NULL (some backends return a minimal block instead).
            // SAFETY: `p` is a live block of this allocator (our caller's contract).
            unsafe { super::free(p) };
            return null_mut();
        }
        if size > MAX_SIZE {
            return enomem();
        }
        if bootstrap::contains(p) {
            // SAFETY: malloc has no preconditions.
            let q = unsafe { super::malloc(size) };
            if !q.is_null() {
                bootstrap::release();
                // SAFETY: `p` is a live arena block (our caller's contract), so `alloc`
                // returned it, with `usable_size(p)` bytes; arena blocks are never reused,
                // so it stays readable after `release`. `q` is a new block of at least
                // `size` bytes from the backend, hence no overlap.
                unsafe { core::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), bootstrap::usable_size(p).min(size)) };
            }
            return q;
        }
        // SAFETY: `p` is non-NULL, not from the arena and a live block of the backend in
        // force (our caller's contract); 0 < size <= PTRDIFF_MAX: what `Ops::realloc` needs.
        let q = unsafe { (ops().realloc)(p, size) };
        if q.is_null() {
            return enomem();
        }
        q
    }

    /// The shared aligned path.
    ///
    /// # Safety
    /// `align` is a power of two.
    pub unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
        if align <= MIN_ALIGN {
            // SAFETY: malloc has no preconditions, and its blocks are aligned to MIN_ALIGN.
            return unsafe { super::malloc(size) };
        }
        if size > MAX_SIZE || align > MAX_SIZE / 2 + 1 {
            return enomem();
        }
        // SAFETY: `align` is a power of two (our caller's contract) above MIN_ALIGN (just
        // checked), as `Ops::memalign` requires.
        let p = unsafe { (ops().memalign)(align, size) };
        if p.is_null() {
            return enomem();
        }
        p
    }

    /// # Safety
    /// As the exported posix_memalign.
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
        if !align.is_power_of_two() || !align.is_multiple_of(MIN_ALIGN) {
            return libc::EINVAL; // *out untouched
        }
        // The result is the return value, but like glibc's, a failure also leaves errno
        // at ENOMEM (set by `aligned` or the backend), and programs check it (glibc's own
        // tst-malloc-thread-fail does); tests/c/errno.c compares every entry point with glibc.
        // SAFETY: `align` is a power of two (just checked).
        let p = unsafe { aligned(align, size) };
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: `out` is valid for writing a pointer (our caller's contract).
        unsafe { *out = p };
        0
    }

    /// # Safety
    /// None: any alignment and size.
    pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        // glibc >= 2.38: EINVAL unless the alignment is a power of two.
        if !align.is_power_of_two() {
            return einval();
        }
        // SAFETY: `align` is a power of two (just checked).
        unsafe { aligned(align, size) }
    }

    /// # Safety
    /// As the exported malloc_usable_size.
    pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
        if p.is_null() {
            return 0;
        }
        if bootstrap::contains(p) {
            // SAFETY: `p` is a live arena block (our caller's contract), so `alloc`
            // returned it.
            return unsafe { bootstrap::usable_size(p) };
        }
        // SAFETY: `p` is non-NULL, not from the arena and a live block of the backend in
        // force (our caller's contract), as `Ops::usable_size` requires.
        unsafe { (ops().usable_size)(p) }
    }
}

/// Old name of free, still called by very old programs.
///
/// # Safety
/// As for [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: our caller's contract is free's.
    unsafe { free(p) }
}

/// C23; glibc 2.43 adds it. The size is a hint a caller may get wrong, so it is not
/// passed on to backends that would trust it.
///
/// # Safety
/// As for [`free`] (C23 also asks for the size `p` was allocated with; it is not used).
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: our caller's contract is free's.
    unsafe { free(p) }
}

/// # Safety
/// As for [`free`] (C23 also asks for the alignment and size `p` was allocated with;
/// they are not used).
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: our caller's contract is free's.
    unsafe { free(p) }
}

/// # Safety
/// None: any padding.
#[no_mangle]
pub unsafe extern "C" fn malloc_trim(pad: usize) -> c_int {
    // SAFETY: `chosen()` is the backend the selection started, or `system` (glibc,
    // always ready) while nothing is started: the backends' `trim` expects one of those.
    unsafe { init::chosen().trim(pad) as c_int }
}

/// # Safety
/// None.
#[no_mangle]
pub unsafe extern "C" fn malloc_stats() {
    // SAFETY: as in `malloc_trim`, for `print_stats`.
    unsafe { init::chosen().print_stats() }
}

// ---------------------------------------------------------------------------------
// Query API, for the allocshim CLI, tests, and programs that want to know. Backends
// are numbered 0..allocshim_backend_count() in precedence order.

/// Version of liballocshim itself.
#[no_mangle]
pub extern "C" fn allocshim_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn allocshim_backend_count() -> c_int {
    ALL.len() as c_int
}

/// Name of backend `i`, or NULL when out of range.
#[no_mangle]
pub extern "C" fn allocshim_backend_name(i: c_int) -> *const c_char {
    nth(i).map_or(core::ptr::null(), |b| b.name().as_ptr())
}

/// Version of the allocator compiled in as backend `i`, or NULL when out of range.
#[no_mangle]
pub extern "C" fn allocshim_backend_version(i: c_int) -> *const c_char {
    nth(i).map_or(core::ptr::null(), |b| b.version().as_ptr())
}

/// Index of the backend serving this process.
#[no_mangle]
pub extern "C" fn allocshim_active() -> c_int {
    init::chosen() as c_int
}

/// Why that backend serves this process, e.g. "JEMALLOC_ENABLED=true".
#[no_mangle]
pub extern "C" fn allocshim_reason() -> *const c_char {
    init::reason()
}

/// The preset in force (`ALLOCSHIM_PRESET`): "default" or "low-memory".
#[no_mangle]
pub extern "C" fn allocshim_preset() -> *const c_char {
    init::preset().name().as_ptr()
}

/// The active backend's options that a preset may set, their effective values (read
/// back from the backend where it can tell) and where each came from, e.g.
/// "narenas=2 (preset low-memory), dirty_decay_ms=5000 (MALLOC_CONF), ...".
#[no_mangle]
pub extern "C" fn allocshim_options() -> *const c_char {
    init::options()
}

/// The active backend's own figures: bytes allocated and resident, as it counts them
/// as `allocshim_select::usage` defines them (jemalloc: both; snmalloc: resident only;
/// mimalloc: neither; system: glibc's mallinfo2). A figure the backend cannot give is written as SIZE_MAX.
///
/// # Safety
/// `allocated` and `resident` are each NULL or valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn allocshim_usage(allocated: *mut usize, resident: *mut usize) {
    // SAFETY: as in `malloc_trim`, for `usage`.
    let u = unsafe { init::chosen().usage() };
    if !allocated.is_null() {
        // SAFETY: non-NULL, so valid for writing a size_t (our caller's contract).
        unsafe { *allocated = u.allocated.unwrap_or(usize::MAX) };
    }
    if !resident.is_null() {
        // SAFETY: as for `allocated`.
        unsafe { *resident = u.resident.unwrap_or(usize::MAX) };
    }
}

fn nth(i: c_int) -> Option<Backend> {
    usize::try_from(i).ok().and_then(|i| ALL.get(i).copied())
}
