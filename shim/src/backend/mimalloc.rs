//! `mimalloc` (2.x by default, 3.x with the `mimalloc3` feature), from libmimalloc-sys.
//!
//! Its load-time constructor is compiled out (MI_PRIM_HAS_PROCESS_ATTACH, see
//! .cargo/config.toml); `start` and `at_exit` run the same process init/done, but
//! only in processes that chose mimalloc. mimalloc reads its `MIMALLOC_*` options
//! itself during that init, exactly as a standalone mimalloc does.
use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mi;

use super::{system, Ops, Refusal, Usage};

extern "C" {
    // What mimalloc's own constructor/destructor call (src/init.c).
    fn _mi_auto_process_init();
    fn _mi_auto_process_done();
}

pub static OPS: Ops = Ops {
    malloc: mi::mi_malloc,
    calloc: mi::mi_calloc,
    realloc,
    free,
    memalign,
    usable_size,
};

// mimalloc crashes on a pointer it did not allocate, but can tell which ones are its
// own (mi_is_in_heap_region checks its segment map before touching the pointer), so
// foreign pointers (glibc's, e.g. from a RTLD_DEEPBIND library) go back to glibc.
unsafe extern "C" fn free(p: *mut c_void) {
    if mi::mi_is_in_heap_region(p) {
        mi::mi_free(p)
    } else {
        system::free(p)
    }
}

unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if mi::mi_is_in_heap_region(p) {
        mi::mi_realloc(p, size)
    } else {
        (system::OPS.realloc)(p, size)
    }
}

unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    if mi::mi_is_in_heap_region(p) {
        mi::mi_usable_size(p)
    } else {
        system::usable_size(p)
    }
}

unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    mi::mi_malloc_aligned(size, align)
}

static STARTED: AtomicBool = AtomicBool::new(false);

pub unsafe fn start() -> Result<(), Refusal> {
    _mi_auto_process_init();
    STARTED.store(true, Ordering::Relaxed);
    Ok(())
}

pub unsafe fn at_exit() {
    if STARTED.load(Ordering::Relaxed) {
        _mi_auto_process_done();
    }
}

pub fn version() -> &'static CStr {
    // MI_MALLOC_VERSION is major*10000 + minor*100 + patch (mimalloc.h).
    static mut TEXT: [u8; 16] = [0; 16];
    let v = unsafe { mi::mi_version() } as u32;
    let mut l = crate::report::Line::new();
    l.num((v / 10000) as u64).str(".").num((v / 100 % 100) as u64).str(".").num((v % 100) as u64);
    unsafe {
        let text = &mut *core::ptr::addr_of_mut!(TEXT);
        let n = l.as_bytes().len().min(text.len() - 1);
        text[..n].copy_from_slice(&l.as_bytes()[..n]);
        CStr::from_bytes_until_nul(text).unwrap_or(c"?")
    }
}

pub unsafe fn trim() -> bool {
    mi::mi_collect(true);
    true
}

pub unsafe fn print_stats() {
    mi::mi_stats_print(core::ptr::null_mut());
}

/// mimalloc gives no figure that tracks live allocations here: on Linux its
/// process info reports committed memory (its whole reserved arena) as RSS.
pub unsafe fn usage() -> Usage {
    Usage::default()
}
