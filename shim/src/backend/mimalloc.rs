//! `mimalloc` (2.x by default, 3.x with the `mimalloc3` feature), from libmimalloc-sys.
//!
//! Its load-time constructor is compiled out (MI_PRIM_HAS_PROCESS_ATTACH, see
//! .cargo/config.toml); `start` and `at_exit` run the same process init/done, but
//! only in processes that chose mimalloc. mimalloc reads its `MIMALLOC_*` options
//! itself during that init, exactly as a standalone mimalloc does.
use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mi;

use super::{Ops, Refusal, Usage};
use allocshim_select::preset::Preset;

extern "C" {
    // What mimalloc's own constructor/destructor call (src/init.c).
    fn _mi_auto_process_init();
    fn _mi_auto_process_done();
    // src/os.c: counts NUMA nodes once (probing /sys/devices/system/node/nodeN with
    // access(2)) and caches the answer.
    fn _mi_os_numa_node_count() -> c_int;
}

pub static OPS: Ops = Ops {
    malloc: mi::mi_malloc,
    calloc: mi::mi_calloc,
    realloc: mi::mi_realloc,
    free: mi::mi_free,
    memalign,
    usable_size,
};

// No ownership check (mi_is_in_heap_region) before mi_free: it cost 3.8 ns of a 22 ns
// malloc+free pair in scripts/bench, and standalone mimalloc does not check either
// (only its debug and secure builds do). A pointer from glibc's own heap, which only
// RTLD_DEEPBIND libraries produce, is therefore as fatal here as under a standalone
// mimalloc; the README says so, next to jemalloc's identical limit.

unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    mi::mi_usable_size(p)
}

unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    mi::mi_malloc_aligned(size, align)
}

/// mimalloc refuses impossible sizes (EOVERFLOW) before any system call, so nothing
/// would set errno; the exported malloc leaves errno to the backend (it ends in a tail
/// call), so mimalloc's error callback sets what glibc's malloc would. Runs inside
/// the failing allocation: it only stores to errno.
unsafe extern "C" fn on_error(code: c_int, _arg: *mut c_void) {
    if code == libc::ENOMEM || code == libc::EOVERFLOW {
        *libc::__errno_location() = libc::ENOMEM;
    }
}

static STARTED: AtomicBool = AtomicBool::new(false);

pub unsafe fn start(preset: Preset) -> Result<(), Refusal> {
    // Before the init, which reads MIMALLOC_* over these defaults.
    crate::preset::mimalloc_defaults(preset);
    _mi_auto_process_init();
    // mimalloc counts NUMA nodes lazily, in the first allocation that needs an arena,
    // and its last failing access(2) probe left ENOENT in the errno of that successful
    // malloc (tests/c/errno.c). Counting here, with errno kept, caches the answer first.
    let errno = *libc::__errno_location();
    _mi_os_numa_node_count();
    *libc::__errno_location() = errno;
    mi::mi_register_error(Some(on_error), core::ptr::null_mut());
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
