//! `snmalloc`, from snmalloc-sys with its `libc-api` (`sn_*`) entry points.
//!
//! snmalloc is started only when chosen (see `start`), so it is dormant otherwise. Two
//! things needed work:
//! * fork: snmalloc's own fork protection is compiled in (.cargo/config.toml), so a
//!   fork waits until no thread is inside an snmalloc lock;
//! * address space: at first use it reserves its page map for the whole address space
//!   (about 256 GiB of virtual memory). Under a lower RLIMIT_AS it would abort the
//!   process, so `start` refuses it instead and the process runs on `system`.
use core::ffi::{c_int, c_void, CStr};

use allocshim_backends::snmalloc;
use allocshim_select::env::Env;
use allocshim_select::line::{warn, Line};
use allocshim_select::preset::Preset;
use allocshim_select::usage::Usage;
use snmalloc_sys as sn;

use super::descriptor::{cannot_trim, nothing, Descriptor, Direct, Ops, Refusal, UsableSizeFn};

extern "C" {
    // In the libc-api build but not declared by snmalloc-sys.
    fn sn_memalign(align: usize, size: usize) -> *mut c_void;
    fn sn_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn sn_aligned_alloc(align: usize, size: usize) -> *mut c_void;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    version,
    ops: Ops { malloc: sn::sn_malloc, calloc: sn::sn_calloc, realloc: sn::sn_realloc, free: sn::sn_free, memalign, usable_size },
    start,
    on_load: None,
    at_exit: nothing,
    // snmalloc returns memory to the OS by itself and has no call to ask it to.
    trim: cannot_trim,
    print_stats,
    usage,
    describe,
    direct,
};

/// snmalloc's own calloc, realloc and malloc_usable_size; its aligned functions
/// through the smallest wrappers, as for a size of 0 they ignore the alignment (see
/// `memalign`).
///
/// # Safety
/// None beyond the field's (snmalloc started).
unsafe fn direct() -> Direct {
    Direct {
        free_ignores_foreign: true,
        calloc: Some(sn::sn_calloc),
        realloc: Some(sn::sn_realloc),
        posix_memalign: Some(posix_memalign_nonzero),
        aligned_alloc: Some(aligned_alloc_nonzero),
        // SAFETY: the same function type but for `const` on the pointer, which the C
        // ABI does not see; snmalloc's returns 0 for NULL.
        usable_size: Some(unsafe {
            core::mem::transmute::<unsafe extern "C" fn(*const c_void) -> usize, UsableSizeFn>(sn::sn_malloc_usable_size)
        }),
    }
}

/// # Safety
/// As the exported posix_memalign: `out` is valid for writing a pointer.
unsafe extern "C" fn posix_memalign_nonzero(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: our contract is snmalloc's; it checks the alignment itself (EINVAL).
    unsafe { sn_posix_memalign(out, align, size.max(1)) }
}

/// # Safety
/// None: any alignment and size.
unsafe extern "C" fn aligned_alloc_nonzero(align: usize, size: usize) -> *mut c_void {
    // SAFETY: snmalloc's aligned_alloc takes any alignment (EINVAL unless a power of
    // two) and size.
    unsafe { sn_aligned_alloc(align, size.max(1)) }
}

// sn_memalign(align, 0) ignores the alignment (its rounding of the size to the
// alignment wraps at 0); asking for one byte gets a properly aligned minimal block.
// Safe to call with any arguments: snmalloc checks the alignment itself (EINVAL).
extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: snmalloc's libc `memalign`, which takes plain integers, refuses an
    // alignment that is 0 or not a power of two, and returns NULL on failure.
    unsafe { sn_memalign(align, size.max(1)) }
}

/// # Safety
/// `p` is a block this snmalloc returned and that is not freed yet (`Ops::usable_size`:
/// the shim passes no NULL and no bootstrap-arena block).
unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    // SAFETY: `p` is a live snmalloc block (our caller's contract), whose size class
    // snmalloc looks up in its page map.
    unsafe { sn::sn_malloc_usable_size(p) }
}

/// Address space snmalloc needs before it can serve anything (page map plus the
/// first chunks), with room to spare. Measured: see the README.
pub const RESERVE: usize = 260 << 30;

/// Starts snmalloc, unless the address-space limit is too low for it. Called by the
/// selection only, and only for snmalloc: this reserves its page map. snmalloc has
/// no run-time options: nothing to preset.
fn start(_env: &Env, _preset: Preset) -> Result<(), Refusal> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the `rlimit` it is given, a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
        && (lim.rlim_cur as usize) < RESERVE
    {
        return Err(Refusal {
            why: "RLIMIT_AS (ulimit -v) is below the ~256 GiB of address space snmalloc reserves at start",
            limit: lim.rlim_cur as usize,
        });
    }
    // Start it now, inside the selection: a `free` of a pointer snmalloc does not own
    // (glibc's) before its first allocation would otherwise trip its "page map not
    // initialised" check and abort.
    // SAFETY: sn_malloc takes any size; sn_free gets the block it returned (or NULL,
    // which it ignores), once.
    unsafe { sn::sn_free(sn::sn_malloc(1)) };
    Ok(())
}

fn version() -> &'static CStr {
    snmalloc::VERSION
}

fn print_stats() {
    // Both figures from the one call: `usage` has no peak to give.
    let (current, peak) = snmalloc::statistics();
    let mut l = Line::new();
    l.str("snmalloc: resident ").size(current as u64);
    l.str(", peak resident ").size(peak as u64);
    l.str(" (snmalloc has no detailed statistics report)");
    warn(&l);
}

fn usage() -> Usage {
    snmalloc::usage()
}

/// snmalloc has no run-time options: nothing to describe but that.
fn describe(_env: &Env, _preset: Preset, out: &mut Line) {
    out.str("none (snmalloc has no run-time options)");
}
