//! jemalloc (tikv-jemalloc-sys, prefixed `_rjem_` build) through its extended API:
//! `mallocx` with alignment and zeroing flags, sized `sdallocx`, `rallocx`.
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, CStr};

use tikv_jemalloc_sys as je;

use crate::Usage;

/// jemalloc as the global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: allocshim::JeMalloc = allocshim::JeMalloc;
///
/// let v: Vec<u64> = (0..100_000).collect();
/// assert!(allocshim::JeMalloc::usage().allocated.unwrap() >= 800_000);
/// # drop(v);
/// ```
///
/// jemalloc reads its options from `_RJEM_MALLOC_CONF` here (the prefixed build),
/// not from `MALLOC_CONF`, which stays for a C jemalloc in the same process.
#[derive(Clone, Copy, Default, Debug)]
pub struct JeMalloc;

/// What every jemalloc block is aligned to without asking (max_align_t).
const MIN_ALIGN: usize = 16;

/// No flags for what plain malloc already guarantees; MALLOCX_ALIGN otherwise.
#[inline(always)]
fn flags(align: usize, size: usize) -> c_int {
    if align <= MIN_ALIGN && align <= size {
        0
    } else {
        je::MALLOCX_ALIGN(align)
    }
}

// SAFETY: every block comes from this jemalloc with at least the layout's size and
// alignment (plain malloc/calloc/realloc only where `flags` is 0, i.e. where their
// natural alignment already satisfies it; `MALLOCX_ALIGN` otherwise), NULL reports
// failure, and a block is freed or resized only with the layout it was made with, as
// the trait's callers guarantee.
unsafe impl GlobalAlloc for JeMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: `l.size()` is non-zero (the caller's `alloc` contract), as `mallocx`
        // requires; `f` is a valid MALLOCX_ALIGN of a power of two.
        unsafe {
            match flags(l.align(), l.size()) {
                0 => je::malloc(l.size()).cast(),
                f => je::mallocx(l.size(), f).cast(),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`; calloc(1, n) cannot overflow.
        unsafe {
            match flags(l.align(), l.size()) {
                0 => je::calloc(1, l.size()).cast(),
                f => je::mallocx(l.size(), f | je::MALLOCX_ZERO).cast(),
            }
        }
    }

    /// Sized: jemalloc skips looking up the size class of the block.
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` is a live block of this jemalloc allocated with layout `l`
        // (caller's contract), so `l.size()` lies within its size class and
        // `flags(l)` is the alignment it was made with, as `sdallocx` requires.
        unsafe { je::sdallocx(p.cast(), l.size(), flags(l.align(), l.size())) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` is a live block of this jemalloc with layout `l` and `new_size`
        // is non-zero (caller's contract); the flags keep `l.align()` for the new
        // size. On failure both return NULL and leave `p` allocated, as the trait says.
        unsafe {
            match flags(l.align(), new_size) {
                0 => je::realloc(p.cast(), new_size).cast(),
                f => je::rallocx(p.cast(), new_size, f).cast(),
            }
        }
    }
}

impl JeMalloc {
    /// jemalloc's version, e.g. "5.3.1".
    pub fn version() -> &'static str {
        let mut v: *const core::ffi::c_char = core::ptr::null();
        let mut len = core::mem::size_of::<*const core::ffi::c_char>();
        // SAFETY: "version" is a `const char *`: mallctl writes at most `len` (one
        // pointer's) bytes to `v`, and reads no new value (NULL, 0).
        let rc = unsafe { je::mallctl(c"version".as_ptr(), (&mut v as *mut *const core::ffi::c_char).cast(), &mut len, core::ptr::null_mut(), 0) };
        if rc != 0 || v.is_null() {
            return "unknown";
        }
        // "5.3.1-0-g81034ce...": the release, without the git suffix. Static in jemalloc.
        // SAFETY: `v` is non-NULL and points at jemalloc's NUL-terminated version
        // string, a constant that lives as long as the program.
        let full = unsafe { CStr::from_ptr(v) }.to_str().unwrap_or("unknown");
        full.split('-').next().unwrap_or(full)
    }

    /// jemalloc's own counts: bytes in live allocations and bytes resident in its
    /// pages (`stats.allocated`, `stats.resident`, refreshed through `epoch`).
    pub fn usage() -> Usage {
        let mut epoch: u64 = 1;
        let mut len = core::mem::size_of::<u64>();
        // SAFETY: "epoch" reads and writes a `uint64_t`: `epoch` is one, both lengths
        // say so, and mallctl is done with both pointers when it returns.
        unsafe {
            je::mallctl(c"epoch".as_ptr(), (&mut epoch as *mut u64).cast(), &mut len, (&mut epoch as *mut u64).cast(), len);
        }
        Usage { allocated: stat(c"stats.allocated"), resident: stat(c"stats.resident") }
    }
}

/// The `size_t` statistic `name`, or None if mallctl refuses it.
fn stat(name: &CStr) -> Option<usize> {
    let mut v: usize = 0;
    let mut len = core::mem::size_of::<usize>();
    // SAFETY: `name` is NUL-terminated; mallctl writes at most `len` bytes to `v`
    // whatever the name (on a size mismatch it copies that many and fails with
    // EINVAL: ctl.c `READ`), and reads no new value (NULL, 0).
    (unsafe { je::mallctl(name.as_ptr(), (&mut v as *mut usize).cast(), &mut len, core::ptr::null_mut(), 0) } == 0).then_some(v)
}
