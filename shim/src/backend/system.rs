//! `system`: glibc's own allocator, reached through its `__libc_*` entry points
//! (which the shim deliberately does not export, so these always bind to glibc).
//! The few functions glibc has no `__libc_` name for are looked up once, lazily,
//! with `dlsym(RTLD_NEXT)`.
use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{Ops, Usage};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn gnu_get_libc_version() -> *const c_char;
}

pub static OPS: Ops = Ops {
    malloc: __libc_malloc,
    calloc: __libc_calloc,
    realloc: __libc_realloc,
    free: __libc_free,
    memalign: __libc_memalign,
    usable_size,
};

/// glibc needs no start; a preset's options are set now, at load time, before the
/// program starts any thread (crate::preset).
///
/// # Safety
/// From the selecting thread, before the choice is published.
pub unsafe fn start(env: &crate::env::Env, preset: allocshim_select::preset::Preset) -> Result<(), super::Refusal> {
    crate::preset::glibc_apply(env, preset);
    Ok(())
}

pub fn version() -> &'static CStr {
    unsafe { CStr::from_ptr(gnu_get_libc_version()) }
}

/// glibc's definition of `name`, the one our own export of the same name shadows.
unsafe fn next(cache: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let mut f = cache.load(Ordering::Relaxed);
    if f.is_null() {
        f = libc::dlsym(libc::RTLD_NEXT, name.as_ptr());
        cache.store(f, Ordering::Relaxed);
    }
    f
}

static USABLE_SIZE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static TRIM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static STATS: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static MALLINFO2: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

pub unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    let f = next(&USABLE_SIZE, c"malloc_usable_size");
    if f.is_null() {
        return 0;
    }
    let f: unsafe extern "C" fn(*mut c_void) -> usize = core::mem::transmute(f);
    f(p)
}

pub unsafe fn trim(pad: usize) -> bool {
    let f = next(&TRIM, c"malloc_trim");
    if f.is_null() {
        return false;
    }
    let f: unsafe extern "C" fn(usize) -> c_int = core::mem::transmute(f);
    f(pad) != 0
}

pub unsafe fn print_stats() {
    let f = next(&STATS, c"malloc_stats");
    if !f.is_null() {
        let f: unsafe extern "C" fn() = core::mem::transmute(f);
        f()
    }
}

#[repr(C)]
struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

pub unsafe fn usage() -> Usage {
    let f = next(&MALLINFO2, c"mallinfo2");
    if f.is_null() {
        return Usage::default();
    }
    let f: unsafe extern "C" fn() -> Mallinfo2 = core::mem::transmute(f);
    let m = f();
    Usage { allocated: Some(m.uordblks + m.hblkhd), resident: Some(m.arena + m.hblkhd) }
}
