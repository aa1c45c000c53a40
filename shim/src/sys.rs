//! What every layer of the library asks of the C library and the kernel directly:
//! this thread's `errno` (read and set as `allocshim_select::errno` does it for the
//! whole project), the `errno`-setting failures of the exported functions, and the
//! page size. Imports nothing of the library: everything else may use it.
use core::ffi::c_void;
use core::ptr::null_mut;

pub use allocshim_select::errno::{errno, set_errno};

/// NULL with errno ENOMEM: a failed allocation, as glibc's.
#[cold]
pub fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    null_mut()
}

/// NULL with errno EINVAL: an alignment glibc refuses.
#[cold]
pub fn einval() -> *mut c_void {
    set_errno(libc::EINVAL);
    null_mut()
}

/// The page size: a power of two.
pub fn page_size() -> usize {
    // SAFETY: getauxval only reads the auxiliary vector the kernel passed; it has no
    // preconditions (and returns 0 for a missing entry, hence the floor).
    unsafe { libc::getauxval(libc::AT_PAGESZ) as usize }.max(4096)
}
