//! `system`: glibc's own allocator, reached through its `__libc_*` entry points
//! (which the shim deliberately does not export, so these always bind to glibc).
//! The few functions glibc has no `__libc_` name for are looked up once, lazily,
//! with `dlsym(RTLD_NEXT)`.
use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use allocshim_backends::system;

use super::{AlignedAllocFn, Descriptor, Direct, Ops, PosixMemalignFn, Refusal, UsableSizeFn, Usage};
use crate::env::Env;
use allocshim_select::preset::Preset;

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    version,
    ops: Ops {
        malloc: __libc_malloc,
        calloc: __libc_calloc,
        realloc: __libc_realloc,
        free: __libc_free,
        memalign: __libc_memalign,
        usable_size,
    },
    start,
    at_exit: super::nothing,
    trim,
    print_stats,
    usage,
    describe: crate::preset::describe_glibc,
    direct,
};

/// glibc's own functions are glibc's contract, with one exception: glibc before 2.38
/// has no `aligned_alloc` of its own (it is `memalign`, which rounds an alignment that
/// is no power of two up where 2.38 and the shim return EINVAL); there, the smallest
/// wrapper adds that check.
///
/// # Safety
/// From the library's initialiser (`dlsym`).
unsafe fn direct() -> Direct {
    let (posix_memalign, aligned_alloc, usable_size) = (next_posix_memalign(), next(&ALIGNED_ALLOC, c"aligned_alloc"), next_usable_size());
    let aligned_alloc: Option<AlignedAllocFn> = if aligned_alloc.is_null() {
        None
    } else if core::ptr::eq(aligned_alloc.cast_const().cast::<()>(), __libc_memalign as *const ()) {
        Some(aligned_alloc_before_2_38)
    } else {
        // SAFETY: glibc's aligned_alloc has this type.
        Some(unsafe { core::mem::transmute::<*mut c_void, AlignedAllocFn>(aligned_alloc) })
    };
    Direct {
        free_ignores_foreign: false,
        calloc: Some(__libc_calloc),
        realloc: Some(__libc_realloc),
        posix_memalign,
        aligned_alloc,
        usable_size,
    }
}

/// glibc 2.38's aligned_alloc over an older glibc's memalign.
///
/// # Safety
/// None: any alignment and size.
unsafe extern "C" fn aligned_alloc_before_2_38(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return crate::sys::einval();
    }
    // SAFETY: glibc's memalign takes any alignment and size.
    unsafe { __libc_memalign(align, size) }
}

/// glibc needs no start; a preset's options are set now, at load time, before the
/// program starts any thread (crate::preset).
///
/// # Safety
/// From the selecting thread, before the choice is published.
unsafe fn start(env: &Env, preset: Preset) -> Result<(), Refusal> {
    // SAFETY: we are the selecting thread (our contract), as glibc_apply asks.
    unsafe { crate::preset::glibc_apply(env, preset) };
    Ok(())
}

fn version() -> &'static CStr {
    system::version()
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

fn next_posix_memalign() -> Option<PosixMemalignFn> {
    let f = next(&POSIX_MEMALIGN, c"posix_memalign");
    // SAFETY: glibc's posix_memalign has this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, PosixMemalignFn>(f) })
}

fn next_usable_size() -> Option<UsableSizeFn> {
    let f = next(&USABLE_SIZE, c"malloc_usable_size");
    // SAFETY: glibc's malloc_usable_size has this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, UsableSizeFn>(f) })
}
static TRIM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static STATS: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static MALLINFO2: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// # Safety
/// `p` a live block of glibc's malloc (`Ops::usable_size`).
unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    // SAFETY: glibc's malloc_usable_size, and `p` is a live glibc block (our contract).
    next_usable_size().map_or(0, |f| unsafe { f(p) })
}

/// # Safety
/// For glibc's malloc (always started).
unsafe fn trim(pad: usize) -> bool {
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

/// # Safety
/// For glibc's malloc (always started).
unsafe fn print_stats() {
    let f = next(&STATS, c"malloc_stats");
    if !f.is_null() {
        // SAFETY: glibc's malloc_stats has this type and takes nothing.
        unsafe {
            let f: unsafe extern "C" fn() = core::mem::transmute(f);
            f()
        }
    }
}

/// # Safety
/// For glibc's malloc (always started).
unsafe fn usage() -> Usage {
    let f = next(&MALLINFO2, c"mallinfo2");
    if f.is_null() {
        return Usage::default();
    }
    // SAFETY: glibc's mallinfo2 (2.33+) has this type: it takes nothing and returns
    // `struct mallinfo2` (libc's declaration of it) by value.
    let m = unsafe {
        let f: unsafe extern "C" fn() -> libc::mallinfo2 = core::mem::transmute(f);
        f()
    };
    system::usage(&m)
}
