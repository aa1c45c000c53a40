//! `jemalloc`, from tikv-jemalloc-sys in its prefixed (`_rjem_`) build.
//!
//! jemalloc's load-time constructor is dropped at link time (build.rs), so it stays
//! untouched in processes that did not choose it. When it is chosen, `start` points
//! jemalloc's compiled-in options at plain `MALLOC_CONF` (what users of standalone
//! jemalloc set) and initialises it right away, inside the selection, so that the
//! allocations of its own init (pthread_atfork, keys) come from the bootstrap arena.
// Until the crate root says it for the whole library.
#![deny(unsafe_op_in_unsafe_fn)]
use core::ffi::{c_char, c_int, c_void, CStr};

use tikv_jemalloc_sys as je;

use super::{Backend, Descriptor, Ops, Refusal, Usage};
use crate::env::Env;
use allocshim_select::preset::Preset;

extern "C" {
    // Defined in glue.c (overriding jemalloc's weak definition).
    static mut _rjem_malloc_conf: *const c_char;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    backend: Backend::Jemalloc,
    version,
    ops: Ops {
        malloc: je::malloc,
        calloc: je::calloc,
        realloc: je::realloc,
        free: je::free,
        memalign,
        usable_size,
    },
    start,
    at_exit: super::nothing,
    trim,
    print_stats,
    usage,
};

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
unsafe fn start(env: &Env, preset: Preset) -> Result<(), Refusal> {
    // MALLOC_CONF, after the preset's options when there is one (crate::preset).
    // SAFETY: we are the selecting thread, before the choice is published (our contract).
    if let Some(conf) = unsafe { crate::preset::jemalloc_conf(env, preset) } {
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
    const V: &str = concat!(env!("ALLOCSHIM_JEMALLOC_VERSION"), "\0");
    CStr::from_bytes_with_nul(V.as_bytes()).unwrap_or(c"?")
}

/// # Safety
/// For the started jemalloc (`Descriptor`).
unsafe fn trim(_pad: usize) -> bool {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": return dirty and muzzy pages of all arenas.
    // SAFETY: a NUL-terminated name of a control that reads and writes nothing (all NULL/0).
    unsafe { je::mallctl(c"arena.4096.purge".as_ptr(), core::ptr::null_mut(), core::ptr::null_mut(), core::ptr::null_mut(), 0) == 0 }
}

/// # Safety
/// For the started jemalloc (`Descriptor`).
unsafe fn print_stats() {
    // SAFETY: no callback (jemalloc writes to stderr), no opaque pointer, default options.
    unsafe { je::malloc_stats_print(None, core::ptr::null_mut(), core::ptr::null()) };
}

/// The `size_t` statistic `name`, or None if mallctl refuses it.
fn stat(name: &CStr) -> Option<usize> {
    let mut v: usize = 0;
    let mut len = core::mem::size_of::<usize>();
    // SAFETY: `name` is NUL-terminated; mallctl writes at most `len` bytes to `v`
    // whatever the name, and reads no new value (NULL, 0).
    let rc: c_int = unsafe { je::mallctl(name.as_ptr(), (&mut v as *mut usize).cast(), &mut len, core::ptr::null_mut(), 0) };
    (rc == 0).then_some(v)
}

/// # Safety
/// For the started jemalloc (`Descriptor`).
unsafe fn usage() -> Usage {
    // Statistics are cached; bumping the epoch refreshes them.
    let mut epoch: u64 = 1;
    let mut len = core::mem::size_of::<u64>();
    // SAFETY: "epoch" reads and writes a `uint64_t`: `epoch` is one, both lengths say
    // so, and mallctl is done with both pointers when it returns.
    unsafe { je::mallctl(c"epoch".as_ptr(), (&mut epoch as *mut u64).cast(), &mut len, (&mut epoch as *mut u64).cast(), len) };
    Usage { allocated: stat(c"stats.allocated"), resident: stat(c"stats.resident") }
}
