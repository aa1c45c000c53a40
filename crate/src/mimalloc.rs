//! mimalloc through its own aligned, zeroing and reallocating entry points.
use core::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

use crate::Usage;

/// mimalloc as the global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: allocshim::MiMalloc = allocshim::MiMalloc;
///
/// let v: Vec<u64> = (0..1000).collect();
/// // mimalloc keeps no figure that fits allocshim::Usage's definitions.
/// assert_eq!(allocshim::MiMalloc::usage(), allocshim::Usage::default());
/// # drop(v);
/// ```
#[derive(Clone, Copy, Default, Debug)]
pub struct MiMalloc;

/// The alignment every mimalloc block has anyway (MI_MAX_ALIGN_SIZE).
const MIN_ALIGN: usize = 16;

#[inline(always)]
fn plain(l: &Layout) -> bool {
    // Small alignments that the size class already guarantees take the fast path.
    l.align() <= MIN_ALIGN && l.align() <= l.size()
}

// SAFETY: every block comes from mimalloc with at least the layout's size and
// alignment (the plain entry points only where `plain` says their natural alignment
// suffices), NULL reports failure, and only blocks of this type, i.e. of mimalloc,
// reach `dealloc` and `realloc`, as the trait's callers guarantee.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions accept any size; `l.align()` is a
        // power of two, as `mi_malloc_aligned` requires.
        unsafe {
            if plain(&l) {
                mi::mi_malloc(l.size()).cast()
            } else {
                mi::mi_malloc_aligned(l.size(), l.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(&l) {
                mi::mi_zalloc(l.size()).cast()
            } else {
                mi::mi_zalloc_aligned(l.size(), l.align()).cast()
            }
        }
    }

    /// mimalloc's sized free (`mi_free_size`) only adds a debug-build check to
    /// `mi_free`: the size buys nothing here, so the plain free is used.
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` is a live mimalloc block (caller's contract: allocated by this
        // type and not freed since).
        unsafe { mi::mi_free(p.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` is a live mimalloc block (caller's contract) and `l.align()` a
        // power of two; on failure both return NULL and leave `p` allocated, as the
        // trait requires.
        unsafe {
            if l.align() <= MIN_ALIGN && l.align() <= new_size {
                mi::mi_realloc(p.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(p.cast(), new_size, l.align()).cast()
            }
        }
    }
}

impl MiMalloc {
    /// mimalloc's version, e.g. "2.3.2" (the header it was built with, which is what
    /// `mi_version()` returns).
    pub fn version() -> &'static str {
        allocshim_backends::mimalloc::VERSION.to_str().unwrap_or("unknown")
    }

    /// mimalloc keeps neither figure in a form `Usage` defines (its committed count is
    /// its whole reserved arena): both are None. See [`Usage`].
    pub fn usage() -> Usage {
        allocshim_backends::mimalloc::usage()
    }
}
