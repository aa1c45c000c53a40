//! glibc's own functions that the library's exports of the same name shadow, found
//! with `dlsym(RTLD_NEXT)` on first use and cached (glibc has no `__libc_` name for
//! these), and `mallopt`, which the library does not export.
use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::backend::descriptor::{AlignedAllocFn, PosixMemalignFn, UsableSizeFn};

extern "C" {
    // glibc's; the shim does not define mallopt, so this binds to glibc.
    pub fn mallopt(param: c_int, value: c_int) -> c_int;
}

/// glibc's definition of `name`, the one our own export of the same name shadows,
/// or NULL; cached in `cache`.
fn next(cache: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let mut f = cache.load(Ordering::Relaxed);
    if f.is_null() {
        // SAFETY: a lookup of a NUL-terminated name; dlsym keeps no pointer to it.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
        cache.store(f, Ordering::Relaxed);
    }
    f
}

static USABLE_SIZE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static POSIX_MEMALIGN: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static ALIGNED_ALLOC: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static TRIM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static STATS: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static MALLINFO2: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

pub fn posix_memalign() -> Option<PosixMemalignFn> {
    let f = next(&POSIX_MEMALIGN, c"posix_memalign");
    // SAFETY: glibc's posix_memalign has this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, PosixMemalignFn>(f) })
}

pub fn usable_size() -> Option<UsableSizeFn> {
    let f = next(&USABLE_SIZE, c"malloc_usable_size");
    // SAFETY: glibc's malloc_usable_size has this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, UsableSizeFn>(f) })
}

/// glibc's aligned_alloc; before glibc 2.38, `memalign` under that name.
pub fn aligned_alloc() -> Option<AlignedAllocFn> {
    let f = next(&ALIGNED_ALLOC, c"aligned_alloc");
    // SAFETY: glibc's aligned_alloc (or memalign) has this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, AlignedAllocFn>(f) })
}

/// glibc's `malloc_trim(pad)`; false if it is missing or returned nothing.
pub fn malloc_trim(pad: usize) -> bool {
    let f = next(&TRIM, c"malloc_trim");
    if f.is_null() {
        return false;
    }
    // SAFETY: glibc's malloc_trim has this type and takes any pad.
    unsafe {
        let f: unsafe extern "C" fn(usize) -> c_int = core::mem::transmute(f);
        f(pad) != 0
    }
}

/// glibc's `malloc_stats()`, if there is one.
pub fn malloc_stats() {
    let f = next(&STATS, c"malloc_stats");
    if !f.is_null() {
        // SAFETY: glibc's malloc_stats has this type and takes nothing.
        unsafe {
            let f: unsafe extern "C" fn() = core::mem::transmute(f);
            f()
        }
    }
}

/// glibc's `mallinfo2()` (2.33+), if there is one.
pub fn mallinfo2() -> Option<libc::mallinfo2> {
    let f = next(&MALLINFO2, c"mallinfo2");
    if f.is_null() {
        return None;
    }
    // SAFETY: glibc's mallinfo2 has this type: it takes nothing and returns `struct
    // mallinfo2` (libc's declaration of it) by value.
    Some(unsafe {
        let f: unsafe extern "C" fn() -> libc::mallinfo2 = core::mem::transmute(f);
        f()
    })
}
