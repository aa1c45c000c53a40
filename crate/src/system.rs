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

unsafe impl GlobalAlloc for System {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        std::alloc::System.alloc(l)
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        std::alloc::System.alloc_zeroed(l)
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        std::alloc::System.dealloc(p, l)
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        std::alloc::System.realloc(p, l, new_size)
    }
}

impl System {
    /// glibc's version, e.g. "2.36".
    pub fn version() -> &'static str {
        extern "C" {
            fn gnu_get_libc_version() -> *const core::ffi::c_char;
        }
        unsafe { core::ffi::CStr::from_ptr(gnu_get_libc_version()) }.to_str().unwrap_or("unknown")
    }

    /// glibc's count of bytes in use (`mallinfo2().uordblks + hblkhd`: heap blocks and
    /// mmapped blocks); glibc has no resident figure of its own.
    pub fn usage() -> Usage {
        let mi = unsafe { libc::mallinfo2() };
        Usage { allocated: Some(mi.uordblks + mi.hblkhd), resident: None }
    }
}
