//! snmalloc through its Rust entry points, which take the alignment and (for free
//! and realloc) the size, so it never has to look the size class up.
use core::alloc::{GlobalAlloc, Layout};

use snmalloc_sys as sn;

use crate::Usage;

/// snmalloc as the global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: allocshim::SnMalloc = allocshim::SnMalloc;
///
/// let v: Vec<u64> = (0..100_000).collect();
/// assert!(allocshim::SnMalloc::usage().resident.unwrap() > 0);
/// # drop(v);
/// ```
#[derive(Clone, Copy, Default, Debug)]
pub struct SnMalloc;

// SAFETY: snmalloc's Rust entry points are made for this trait: they take the
// layout's alignment and size, return NULL on failure, and are handed back only
// blocks of this type, i.e. of snmalloc, with the layout they were made with, as the
// trait's callers guarantee.
unsafe impl GlobalAlloc for SnMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: a valid layout (power-of-two alignment, non-zero size: the caller's
        // contract), which is all `sn_rust_alloc` asks.
        unsafe { sn::sn_rust_alloc(l.align(), l.size()).cast() }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { sn::sn_rust_alloc_zeroed(l.align(), l.size()).cast() }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` is a live snmalloc block made with layout `l` (caller's
        // contract), so alignment and size name its size class.
        unsafe { sn::sn_rust_dealloc(p.cast(), l.align(), l.size()) };
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc` for `p` and `l`; `new_size` is non-zero and valid
        // with `l.align()` (caller's contract).
        unsafe { sn::sn_rust_realloc(p.cast(), l.align(), l.size(), new_size).cast() }
    }
}

impl SnMalloc {
    /// snmalloc's version: that of snmalloc-sys, which follows upstream's numbering
    /// (snmalloc has no version API), as `allocshim_backends::snmalloc::VERSION` reads
    /// it from the build's Cargo.lock.
    pub fn version() -> &'static str {
        allocshim_backends::snmalloc::VERSION.to_str().unwrap_or("unknown")
    }

    /// snmalloc counts memory it holds from the OS, not live bytes: `resident` is its
    /// current usage (`sn_rust_statistics`), `allocated` None.
    pub fn usage() -> Usage {
        allocshim_backends::snmalloc::usage()
    }
}
