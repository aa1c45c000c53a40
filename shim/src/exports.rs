//! The exported C ABI: glibc's malloc family with glibc's documented behaviour,
//! whatever the backend does natively, plus the `allocshim_*` query functions.
//!
//! The common path of each function is one relaxed load of the dispatch table, a
//! branch that is never taken in practice, and the call into the backend. Everything
//! that normalises behaviour (NULL, size 0, overflow, alignment rules, errno) sits on
//! paths the hot path does not take.
//!
//! Not exported, on purpose (see README, "Exported functions"): the `__libc_*`
//! aliases (callers use them to reach glibc itself), `mallinfo`/`mallinfo2`/`mallopt`/
//! `malloc_info` (glibc's answers about its own, nearly empty heap are harmless).
use core::ffi::{c_char, c_int, c_void};
use core::ptr::null_mut;

use crate::backend::{Backend, BackendExt, ALL};
use crate::bootstrap;
use crate::init::{self, ops};

/// What malloc guarantees for any size: as glibc on 64-bit, for every backend.
const MIN_ALIGN: usize = core::mem::size_of::<usize>();
/// Larger objects cannot exist (pointer differences would overflow).
const MAX_SIZE: usize = isize::MAX as usize;

#[inline(always)]
fn set_errno(e: c_int) {
    unsafe { *libc::__errno_location() = e }
}

#[cold]
fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    null_mut()
}

#[cold]
fn einval() -> *mut c_void {
    set_errno(libc::EINVAL);
    null_mut()
}

fn page_size() -> usize {
    unsafe { libc::getauxval(libc::AT_PAGESZ) as usize }.max(4096)
}

// malloc, free and calloc end in a tail call (`jmp`) into the backend: no frame of
// their own, nothing done after the backend returns. That is why they neither check
// for NULL nor touch errno afterwards: every backend sets ENOMEM itself when it
// returns NULL and accepts free(NULL), which tests/c/api.c and rlimit.c check for each
// one. Saving and restoring errno around free (so that a backend's failing madvise
// could never leak into it) cost 2.5-3 ns of a 15-20 ns malloc+free pair in
// scripts/bench, more than everything else the shim adds; standalone allocators do
// not do it either, and backends only set errno when a system call fails.

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    (ops().malloc)(size)
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if bootstrap::contains(p) {
        return bootstrap::release();
    }
    (ops().free)(p)
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) if total <= MAX_SIZE => {}
        _ => return enomem(),
    }
    (ops().calloc)(n, size)
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // glibc frees and returns NULL (some backends return a minimal block instead).
        free(p);
        return null_mut();
    }
    if size > MAX_SIZE {
        return enomem();
    }
    if bootstrap::contains(p) {
        let q = malloc(size);
        if !q.is_null() {
            bootstrap::release();
            core::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), bootstrap::usable_size(p).min(size));
        }
        return q;
    }
    let q = (ops().realloc)(p, size);
    if q.is_null() {
        return enomem();
    }
    q
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc(p, total),
        None => enomem(),
    }
}

/// The shared aligned path: `align` is a power of two.
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if size > MAX_SIZE || align > MAX_SIZE / 2 + 1 {
        return enomem();
    }
    let p = (ops().memalign)(align, size);
    if p.is_null() {
        return enomem();
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % MIN_ALIGN != 0 {
        return libc::EINVAL; // *out untouched
    }
    // The result is the return value, but like glibc's, a failure also leaves errno at
    // ENOMEM (set by `aligned` or the backend), and programs check it (glibc's own
    // tst-malloc-thread-fail does); tests/c/errno.c compares every entry point with glibc.
    let p = aligned(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    *out = p;
    0
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // glibc >= 2.38: EINVAL unless the alignment is a power of two.
    if !align.is_power_of_two() {
        return einval();
    }
    aligned(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // glibc: alignments that are no power of two are rounded up to one.
    if align > MAX_SIZE / 2 + 1 {
        return einval();
    }
    aligned(align.max(1).next_power_of_two(), size)
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned(page_size(), size)
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_add(page - 1) {
        Some(s) => aligned(page, s & !(page - 1)),
        None => enomem(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    if bootstrap::contains(p) {
        return bootstrap::usable_size(p);
    }
    (ops().usable_size)(p)
}

/// Old name of free, still called by very old programs.
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    free(p)
}

/// C23; glibc 2.43 adds it. The size is a hint a caller may get wrong, so it is not
/// passed on to backends that would trust it.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    free(p)
}

#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    free(p)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_trim(pad: usize) -> c_int {
    init::chosen().trim(pad) as c_int
}

#[no_mangle]
pub unsafe extern "C" fn malloc_stats() {
    init::chosen().print_stats()
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
    static mut TEXT: [u8; 512] = [0; 512];
    let r = init::reason();
    unsafe {
        let text = &mut *core::ptr::addr_of_mut!(TEXT);
        let n = r.len().min(text.len() - 1);
        text[..n].copy_from_slice(&r[..n]);
        text[n] = 0;
        text.as_ptr().cast()
    }
}

/// The preset in force (`ALLOCSHIM_PRESET`): "default" or "low-memory".
#[no_mangle]
pub extern "C" fn allocshim_preset() -> *const c_char {
    crate::preset::preset().name().as_ptr()
}

/// The active backend's options that a preset may set, their effective values (read
/// back from the backend where it can tell) and where each came from, e.g.
/// "narenas=2 (preset low-memory), dirty_decay_ms=5000 (MALLOC_CONF), ...".
#[no_mangle]
pub extern "C" fn allocshim_options() -> *const c_char {
    crate::preset::options_c()
}

/// The active backend's own figures: bytes allocated and resident, as it counts them
/// (mimalloc: neither; snmalloc: current usage, resident unknown; system:
/// glibc's mallinfo2). A figure the backend cannot give is written as SIZE_MAX.
#[no_mangle]
pub unsafe extern "C" fn allocshim_usage(allocated: *mut usize, resident: *mut usize) {
    let u = init::chosen().usage();
    if !allocated.is_null() {
        *allocated = u.allocated.unwrap_or(usize::MAX);
    }
    if !resident.is_null() {
        *resident = u.resident.unwrap_or(usize::MAX);
    }
}

fn nth(i: c_int) -> Option<Backend> {
    usize::try_from(i).ok().and_then(|i| ALL.get(i).copied())
}
