//! `mimalloc` (2.x by default, 3.x with the `mimalloc3` feature), from libmimalloc-sys.
//!
//! Its load-time constructor is compiled out (MI_PRIM_HAS_PROCESS_ATTACH, see
//! .cargo/config.toml); `start` and `at_exit` run the same process init/done, but
//! only in processes that chose mimalloc. mimalloc reads its `MIMALLOC_*` options
//! itself during that init, exactly as a standalone mimalloc does; the low-memory
//! preset only changes their defaults first ([`LOW_MEMORY`]).
use core::ffi::{c_int, c_long, c_void, CStr};
use core::sync::atomic::{AtomicBool, Ordering};

use allocshim_backends::mimalloc;
use allocshim_select::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::Preset;
use allocshim_select::usage::Usage;
use allocshim_select::vars;
use libmimalloc_sys as mi;

use super::descriptor::{Descriptor, Direct, Ops, Refusal, UsableSizeFn};
use crate::options;
use crate::sys::{einval, enomem, errno, set_errno};

extern "C" {
    // What mimalloc's own constructor/destructor call (src/init.c).
    fn _mi_auto_process_init();
    fn _mi_auto_process_done();
    // src/os.c: counts NUMA nodes once (probing /sys/devices/system/node/nodeN with
    // access(2)) and caches the answer.
    fn _mi_os_numa_node_count() -> c_int;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    version,
    ops: Ops { malloc: mi::mi_malloc, calloc: mi::mi_calloc, realloc: mi::mi_realloc, free: mi::mi_free, memalign, usable_size },
    start,
    on_load: None,
    at_exit,
    trim,
    print_stats,
    usage,
    describe,
    direct,
};

/// mimalloc's own posix_memalign (its failures reach `on_error`, which sets ENOMEM)
/// and malloc_usable_size (0 for NULL); the smallest wrappers for the three that
/// differ from glibc in its release build: calloc returns NULL for an overflowing
/// product without setting errno, realloc(p, 0) returns a block, and aligned_alloc
/// returns NULL without EINVAL for an alignment that is no power of two.
///
/// # Safety
/// None beyond the field's (mimalloc started).
unsafe fn direct() -> Direct {
    Direct {
        free_ignores_foreign: false,
        calloc: Some(calloc_enomem),
        realloc: Some(realloc_frees_on_zero),
        posix_memalign: Some(mi::mi_posix_memalign),
        aligned_alloc: Some(aligned_alloc_einval),
        // SAFETY: the same function type but for `const` on the pointer, which the C
        // ABI does not see; mimalloc's returns 0 for NULL.
        usable_size: Some(unsafe {
            core::mem::transmute::<unsafe extern "C" fn(*const c_void) -> usize, UsableSizeFn>(mi::mi_usable_size)
        }),
    }
}

/// # Safety
/// None: any count and size.
unsafe extern "C" fn calloc_enomem(n: usize, size: usize) -> *mut c_void {
    if n.checked_mul(size).is_none() {
        return enomem();
    }
    // SAFETY: mimalloc's calloc takes any count and size (above PTRDIFF_MAX it fails
    // through `on_error`, with ENOMEM).
    unsafe { mi::mi_calloc(n, size) }
}

/// # Safety
/// As the exported realloc: `p` NULL or a live mimalloc block.
unsafe extern "C" fn realloc_frees_on_zero(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: `p` is a live mimalloc block (our contract).
        unsafe { mi::mi_free(p) };
        return core::ptr::null_mut();
    }
    // SAFETY: as above; mimalloc's realloc takes NULL and any size.
    unsafe { mi::mi_realloc(p, size) }
}

/// # Safety
/// None: any alignment and size.
unsafe extern "C" fn aligned_alloc_einval(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return einval();
    }
    // SAFETY: a power-of-two alignment, any size.
    unsafe { mi::mi_aligned_alloc(align, size) }
}

// No ownership check (mi_is_in_heap_region) before mi_free: it cost 3.8 ns of a 22 ns
// malloc+free pair in scripts/bench, and standalone mimalloc does not check either
// (only its debug and secure builds do). A pointer from glibc's own heap, which only
// RTLD_DEEPBIND libraries produce, is therefore as fatal here as under a standalone
// mimalloc; the README says so, next to jemalloc's identical limit.

/// # Safety
/// `p` a live block of this mimalloc (`Ops::usable_size`).
unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    // SAFETY: our caller's contract.
    unsafe { mi::mi_usable_size(p) }
}

/// # Safety
/// `align` a power of two (`Ops::memalign`).
unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: a power-of-two alignment, as mi_malloc_aligned requires; NULL on failure.
    unsafe { mi::mi_malloc_aligned(size, align) }
}

/// mimalloc refuses impossible sizes (EOVERFLOW) before any system call, so nothing
/// would set errno; the exported malloc leaves errno to the backend (it ends in a tail
/// call), so mimalloc's error callback sets what glibc's malloc would. Runs inside
/// the failing allocation: it only stores to errno.
///
/// # Safety
/// None beyond being called as mimalloc's error handler (any thread, any time).
unsafe extern "C" fn on_error(code: c_int, _arg: *mut c_void) {
    if code == libc::ENOMEM || code == libc::EOVERFLOW {
        set_errno(libc::ENOMEM);
    }
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// # Safety
/// From the selecting thread, once, before the choice is published.
unsafe fn start(_env: &Env, preset: Preset) -> Result<(), Refusal> {
    // SAFETY: before mimalloc's init (which reads MIMALLOC_* over these defaults),
    // from the selecting thread: our own contract.
    unsafe { preset_defaults(preset) };
    // SAFETY: mimalloc's process init, run once (our contract), as its constructor would.
    unsafe { _mi_auto_process_init() };
    // mimalloc counts NUMA nodes lazily, in the first allocation that needs an arena,
    // and its last failing access(2) probe left ENOENT in the errno of that successful
    // malloc (tests/c/errno.c). Counting here, with errno kept, caches the answer first.
    let saved = errno();
    // SAFETY: _mi_os_numa_node_count only probes and caches, after mimalloc's init.
    unsafe { _mi_os_numa_node_count() };
    set_errno(saved);
    // SAFETY: `on_error` may run in any thread at any time: it only writes errno; no argument.
    unsafe { mi::mi_register_error(Some(on_error), core::ptr::null_mut()) };
    STARTED.store(true, Ordering::Relaxed);
    Ok(())
}

/// # Safety
/// Once, at exit.
unsafe fn at_exit() {
    if STARTED.load(Ordering::Relaxed) {
        // SAFETY: mimalloc was initialised (STARTED) and this runs once, at exit, as
        // its own destructor would.
        unsafe { _mi_auto_process_done() };
    }
}

fn version() -> &'static CStr {
    mimalloc::VERSION
}

/// # Safety
/// For the started mimalloc (`Descriptor`).
unsafe fn trim(_pad: usize) -> bool {
    // SAFETY: mi_collect takes no pointer; mimalloc is initialised.
    unsafe { mi::mi_collect(true) };
    true
}

/// # Safety
/// For the started mimalloc (`Descriptor`).
unsafe fn print_stats() {
    // SAFETY: NULL: mimalloc's default output (stderr).
    unsafe { mi::mi_stats_print(core::ptr::null_mut()) };
}

/// # Safety
/// For the started mimalloc (`Descriptor`).
unsafe fn usage() -> Usage {
    mimalloc::usage()
}

// ---------------------------------------------------------------------------------
// The low-memory preset and the options report

/// The low-memory preset: (option name as `MIMALLOC_<NAME>` spells it, its legacy
/// name, index in `mi_option_t` (the same in 2.x and 3.x for these), value).
const LOW_MEMORY: &[(&str, Option<&str>, c_int, c_long)] =
    &[("purge_delay", Some("reset_delay"), 15, 0), ("arena_purge_mult", None, 24, 1)];

/// `MIMALLOC_<NAME>` (upper case) for an option name, in `buf`.
fn var<'a>(buf: &'a mut [u8; 64], name: &str) -> &'a [u8] {
    let prefix = vars::MIMALLOC_OPTION_PREFIX.as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    for (i, c) in name.bytes().enumerate() {
        buf[prefix.len() + i] = c.to_ascii_uppercase();
    }
    &buf[..prefix.len() + name.len()]
}

/// The variable that sets mimalloc option `name` (or its legacy name), if any: those
/// win over the preset because mimalloc reads them after `mi_option_set_default`.
fn user(env: &Env, name: &str, legacy: Option<&str>) -> Option<Line> {
    for n in core::iter::once(name).chain(legacy) {
        let mut buf = [0u8; 64];
        let var = var(&mut buf, n);
        if env.get(var).is_some() {
            let mut l = Line::new();
            l.bytes(var);
            return Some(l);
        }
    }
    None
}

/// Sets the preset's values as mimalloc's defaults. Must run before mimalloc's process
/// init, which reads `MIMALLOC_*` and so lets every variable the user set win.
///
/// # Safety
/// Before mimalloc is initialised, from the selecting thread.
unsafe fn preset_defaults(preset: Preset) {
    if preset == Preset::LowMemory {
        for &(_, _, index, value) in LOW_MEMORY {
            // SAFETY: `index` is a valid `mi_option_t` (the table's); before mimalloc
            // is initialised, in the selecting thread (our caller's contract), nothing
            // else reads or writes the option meanwhile.
            unsafe { mi::mi_option_set_default(index, value) };
        }
    }
}

/// mimalloc's effective values of the preset's options, read back with `mi_option_get`.
#[inline(never)]
#[link_section = ".allocshim.mimalloc"] // with mimalloc's own code: shim/build.rs
fn describe(env: &Env, preset: Preset, out: &mut Line) {
    for &(name, legacy, index, _) in LOW_MEMORY {
        options::name(out, name);
        // SAFETY: `index` is a valid `mi_option_t` (the table's, the same in mimalloc
        // 2.x and 3.x); mi_option_get only reads the option (reading it from the
        // environment first if that has not happened yet).
        options::signed(out, unsafe { mi::mi_option_get(index) } as i64);
        options::source(out, user(env, name, legacy).as_ref().map(Line::as_bytes), preset);
    }
}
