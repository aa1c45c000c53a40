//! `jemalloc`, from tikv-jemalloc-sys in its prefixed (`_rjem_`) build.
//!
//! jemalloc's load-time constructor is dropped at link time (build.rs), so it stays
//! untouched in processes that did not choose it. When it is chosen, `start` points
//! jemalloc's compiled-in options at plain `MALLOC_CONF` (what users of standalone
//! jemalloc set) and initialises it right away, inside the selection, so that the
//! allocations of its own init (pthread_atfork, keys) come from the bootstrap arena.
use core::ffi::{c_char, c_int, c_void, CStr};

use tikv_jemalloc_sys as je;

use super::{Ops, Refusal, Usage};
use crate::env::Env;
use allocshim_select::preset::Preset;

extern "C" {
    // Defined in glue.c (overriding jemalloc's weak definition).
    static mut _rjem_malloc_conf: *const c_char;
}

pub static OPS: Ops = Ops {
    malloc: je::malloc,
    calloc: je::calloc,
    realloc: je::realloc,
    free: je::free,
    memalign,
    usable_size,
};

unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    je::aligned_alloc(align, size)
}

unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    je::malloc_usable_size(p)
}

pub unsafe fn start(env: &Env, preset: Preset) -> Result<(), Refusal> {
    // MALLOC_CONF, after the preset's options when there is one (crate::preset).
    if let Some(conf) = crate::preset::jemalloc_conf(env, preset) {
        // jemalloc reads it during the init just below, while the environment block
        // (or the preset's buffer) it points into is certainly unchanged.
        _rjem_malloc_conf = conf;
    }
    je::nallocx(1, 0); // runs malloc_init()
    Ok(())
}

pub fn version() -> &'static CStr {
    const V: &str = concat!(env!("ALLOCSHIM_JEMALLOC_VERSION"), "\0");
    CStr::from_bytes_with_nul(V.as_bytes()).unwrap_or(c"?")
}

pub unsafe fn trim() -> bool {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": return dirty and muzzy pages of all arenas.
    je::mallctl(c"arena.4096.purge".as_ptr(), core::ptr::null_mut(), core::ptr::null_mut(), core::ptr::null_mut(), 0) == 0
}

pub unsafe fn print_stats() {
    je::malloc_stats_print(None, core::ptr::null_mut(), core::ptr::null());
}

unsafe fn stat(name: &CStr) -> Option<usize> {
    let mut v: usize = 0;
    let mut len = core::mem::size_of::<usize>();
    let rc: c_int = je::mallctl(name.as_ptr(), (&mut v as *mut usize).cast(), &mut len, core::ptr::null_mut(), 0);
    (rc == 0).then_some(v)
}

pub unsafe fn usage() -> Usage {
    // Statistics are cached; bumping the epoch refreshes them.
    let mut epoch: u64 = 1;
    let mut len = core::mem::size_of::<u64>();
    je::mallctl(c"epoch".as_ptr(), (&mut epoch as *mut u64).cast(), &mut len, (&mut epoch as *mut u64).cast(), len);
    Usage { allocated: stat(c"stats.allocated"), resident: stat(c"stats.resident") }
}
