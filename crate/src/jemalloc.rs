//! jemalloc (tikv-jemalloc-sys, prefixed `_rjem_` build) through its extended API:
//! `mallocx` with alignment and zeroing flags, sized `sdallocx`, `rallocx`.
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_int;

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
    /// jemalloc's version, e.g. "5.3.1" (the header it was built with, as the library
    /// reports it).
    pub fn version() -> &'static str {
        allocshim_backends::jemalloc::VERSION.to_str().unwrap_or("unknown")
    }

    /// jemalloc's own counts: `stats.allocated` and `stats.resident`, refreshed.
    pub fn usage() -> Usage {
        allocshim_backends::jemalloc::usage()
    }
}
