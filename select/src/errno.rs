//! This thread's `errno`, read and set in one place for this crate and the library:
//! every line printed keeps errno as it was, and the library's entry points set it as
//! glibc's do.

/// This thread's errno.
#[inline(always)]
pub fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
#[inline(always)]
pub fn set_errno(e: libc::c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}
