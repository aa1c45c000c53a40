//! `jemalloc`, from tikv-jemalloc-sys in its prefixed (`_rjem_`) build.
//!
//! jemalloc's load-time constructor is dropped at link time (build.rs), so it stays
//! untouched in processes that did not choose it. When it is chosen, `start` points
//! jemalloc's compiled-in options at plain `MALLOC_CONF` (what users of standalone
//! jemalloc set) and initialises it right away, inside the selection, so that the
//! allocations of its own init (pthread_atfork, keys) come from the bootstrap arena.
//! Its options (preset, profiler, user) are merged in `conf`; heap profiling is
//! `profile`.
use core::ffi::{c_char, c_int, c_void, CStr};

use allocshim_backends::jemalloc;
use allocshim_select::env::Env;
use allocshim_select::preset::Preset;
use allocshim_select::usage::Usage;
use tikv_jemalloc_sys as je;

use super::descriptor::{Descriptor, Direct, Ops, ReallocFn, Refusal, UsableSizeFn};

mod conf;
pub mod profile;

extern "C" {
    // Defined in glue.c (overriding jemalloc's weak definition).
    static mut _rjem_malloc_conf: *const c_char;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    version,
    ops: Ops { malloc: je::malloc, calloc: je::calloc, realloc: je::realloc, free: je::free, memalign, usable_size },
    start,
    on_load: Some(profile::on_load),
    at_exit: profile::at_exit,
    trim,
    print_stats,
    usage,
    describe: conf::describe,
    direct,
};

/// jemalloc's own calloc (it checks the product), aligned_alloc (glibc 2.38's EINVAL
/// and ENOMEM, errno set) and malloc_usable_size (0 for NULL); its realloc only with
/// its Linux default `zero_realloc:free`, which a user's MALLOC_CONF can change (the
/// smallest wrapper otherwise); posix_memalign through a wrapper, as its failures
/// leave errno alone where glibc's set ENOMEM (tests/c/errno.c).
///
/// # Safety
/// For the started jemalloc (its options are final).
unsafe fn direct() -> Direct {
    // SAFETY: jemalloc is started (our contract).
    let realloc = if unsafe { frees_on_zero_realloc() } { je::realloc as ReallocFn } else { realloc_frees_on_zero };
    Direct {
        free_ignores_foreign: false,
        calloc: Some(je::calloc),
        realloc: Some(realloc),
        posix_memalign: Some(posix_memalign_sets_errno),
        aligned_alloc: Some(je::aligned_alloc),
        // SAFETY: the same function type but for `const` on the pointer, which the C
        // ABI does not see; jemalloc's returns 0 for NULL.
        usable_size: Some(unsafe {
            core::mem::transmute::<unsafe extern "C" fn(*const c_void) -> usize, UsableSizeFn>(je::malloc_usable_size)
        }),
    }
}

/// realloc(p, 0) frees and returns NULL, as glibc's, under any `zero_realloc` option.
///
/// # Safety
/// As the exported realloc: `p` NULL or a live jemalloc block.
unsafe extern "C" fn realloc_frees_on_zero(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: `p` is a live jemalloc block (our contract).
        unsafe { je::free(p) };
        return core::ptr::null_mut();
    }
    // SAFETY: as above; jemalloc's realloc takes NULL and any size.
    unsafe { je::realloc(p, size) }
}

/// jemalloc's posix_memalign, with errno ENOMEM when it fails for lack of memory, as
/// glibc's (jemalloc returns the code but leaves errno as it was).
///
/// # Safety
/// As the exported posix_memalign: `out` is valid for writing a pointer.
unsafe extern "C" fn posix_memalign_sets_errno(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: our contract is jemalloc's.
    let rc = unsafe { je::posix_memalign(out, align, size) };
    if rc == libc::ENOMEM {
        crate::sys::set_errno(libc::ENOMEM);
    }
    rc
}

/// # Safety
/// `align` a power of two (`Ops::memalign`).
unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: a power-of-two alignment, which is all aligned_alloc asks; it returns
    // NULL on failure.
    unsafe { je::aligned_alloc(align, size) }
}

/// # Safety
/// `p` a live block of this jemalloc (`Ops::usable_size`).
unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    // SAFETY: our caller's contract.
    unsafe { je::malloc_usable_size(p) }
}

/// # Safety
/// From the selecting thread, once, before the choice is published.
#[inline(never)]
#[link_section = ".allocshim.jemalloc"] // with jemalloc's own code: shim/build.rs
unsafe fn start(env: &Env, preset: Preset) -> Result<(), Refusal> {
    // MALLOC_CONF, after the preset's and the profiler's options when there are some
    // (conf, profile).
    // SAFETY: we are the selecting thread, before the choice is published (our contract).
    let profiling = unsafe { profile::conf(env) };
    // SAFETY: as above.
    if let Some(conf) = unsafe { conf::merged(env, preset, profiling) } {
        // SAFETY: only the selecting thread writes it, once, and jemalloc reads it
        // only in the init just below, in this thread; it points into the environment
        // block (or the preset's buffer), both unchanged while jemalloc reads it.
        unsafe { *core::ptr::addr_of_mut!(_rjem_malloc_conf) = conf };
    }
    // SAFETY: nallocx computes a size class; its first call runs malloc_init().
    unsafe { je::nallocx(1, 0) };
    Ok(())
}

fn version() -> &'static CStr {
    jemalloc::VERSION
}

/// # Safety
/// For the started jemalloc (`Descriptor`).
unsafe fn trim(_pad: usize) -> bool {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": return dirty and muzzy pages of all arenas.
    jemalloc::run(c"arena.4096.purge")
}

/// # Safety
/// For the started jemalloc (`Descriptor`).
unsafe fn print_stats() {
    // SAFETY: no callback (jemalloc writes to stderr), no opaque pointer, default options.
    unsafe { je::malloc_stats_print(None, core::ptr::null_mut(), core::ptr::null()) };
}

/// # Safety
/// For the started jemalloc (`Descriptor`): reading statistics would start another.
unsafe fn usage() -> Usage {
    jemalloc::usage()
}

/// jemalloc's `opt.zero_realloc` is "free" (its Linux default) unless MALLOC_CONF
/// changed it; only then does its realloc(p, 0) match glibc's. Read from jemalloc's
/// option variable (linked in statically): asking `mallctl` would first build
/// jemalloc's whole control tree, 200 k instructions of start-up.
///
/// # Safety
/// jemalloc must have been initialised (its options parsed).
unsafe fn frees_on_zero_realloc() -> bool {
    extern "C" {
        // jemalloc.c `opt_zero_realloc_action`, a `zero_realloc_action_t`:
        // alloc = 0, free = 1, abort = 2 (jemalloc_internal_types.h, 5.3).
        static _rjem_je_opt_zero_realloc_action: core::ffi::c_int;
    }
    const ZERO_REALLOC_ACTION_FREE: core::ffi::c_int = 1;
    // SAFETY: an `int`-sized enum linked into this library; jemalloc wrote it while
    // parsing its options, which are final now (our caller's contract), so nothing
    // writes it concurrently. Volatile: the compiler must not assume its value.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(_rjem_je_opt_zero_realloc_action)) == ZERO_REALLOC_ACTION_FREE }
}
