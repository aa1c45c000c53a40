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
/// assert_eq!(allocshim::MiMalloc::usage().resident.is_some(), true);
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

unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if plain(&l) {
            mi::mi_malloc(l.size()).cast()
        } else {
            mi::mi_malloc_aligned(l.size(), l.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if plain(&l) {
            mi::mi_zalloc(l.size()).cast()
        } else {
            mi::mi_zalloc_aligned(l.size(), l.align()).cast()
        }
    }

    /// mimalloc's sized free (`mi_free_size`) only adds a debug-build check to
    /// `mi_free`: the size buys nothing here, so the plain free is used.
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        mi::mi_free(p.cast())
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= MIN_ALIGN && l.align() <= new_size {
            mi::mi_realloc(p.cast(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(p.cast(), new_size, l.align()).cast()
        }
    }
}

impl MiMalloc {
    /// mimalloc's version, e.g. "2.3.2".
    pub fn version() -> &'static str {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let v = unsafe { mi::mi_version() } as u32;
            format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
        })
    }

    /// mimalloc keeps no running count of live bytes in release builds; `resident` is
    /// the memory it has committed from the OS (`mi_process_info`; on Linux that is
    /// also what it reports as its resident set).
    pub fn usage() -> Usage {
        let (mut elapsed, mut user, mut system, mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) = (0, 0, 0, 0, 0, 0, 0, 0);
        unsafe {
            mi::mi_process_info(&mut elapsed, &mut user, &mut system, &mut rss, &mut peak_rss, &mut commit, &mut peak_commit, &mut faults);
        }
        let _ = (elapsed, user, system, rss, peak_rss, peak_commit, faults);
        Usage { allocated: None, resident: Some(commit) }
    }
}
