//! The C library's allocator (glibc's malloc on Linux), through std's `System`, which
//! already handles alignment exactly (posix_memalign above the guaranteed alignment).
use core::alloc::{GlobalAlloc, Layout};

use crate::Usage;

/// The system allocator, as `std::alloc::System`, with the query API of the others.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: allocshim::System = allocshim::System;
///
/// let v: Vec<u64> = (0..100_000).collect();
/// assert!(allocshim::System::usage().allocated.unwrap() >= 800_000);
/// # drop(v);
/// ```
#[derive(Clone, Copy, Default, Debug)]
pub struct System;

// SAFETY: every method is `std::alloc::System`'s, which implements the trait, called
// with our caller's arguments unchanged; blocks never mix with another allocator.
unsafe impl GlobalAlloc for System {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: our caller's `alloc` contract, passed on.
        unsafe { std::alloc::System.alloc(l) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: our caller's `alloc_zeroed` contract, passed on.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by this type, i.e. by `std::alloc::System`, with
        // layout `l` (caller's contract).
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`, and `new_size` as our caller guarantees.
        unsafe { std::alloc::System.realloc(p, l, new_size) }
    }
}

impl System {
    /// glibc's version, e.g. "2.36".
    pub fn version() -> &'static str {
        allocshim_backends::system::version().to_str().unwrap_or("unknown")
    }

    /// glibc's figures from `mallinfo2()`: bytes in use (`uordblks + hblkhd`) and
    /// bytes its heaps hold from the OS (`arena + hblkhd`).
    pub fn usage() -> Usage {
        // SAFETY: mallinfo2 takes nothing and returns a struct by value (glibc 2.33+,
        // which the link requires).
        let mi = unsafe { libc::mallinfo2() };
        allocshim_backends::system::usage(&mi)
    }
}
