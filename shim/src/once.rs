//! Values the selection writes once and every thread reads afterwards: the reason,
//! the preset and its report, jemalloc's configuration string.
//!
//! They are written only by the selecting thread, before it publishes the choice
//! (`init` stores READY with Release), and read only after a reader has seen READY
//! (Acquire). That release/acquire pair is the synchronisation; no lock, no
//! allocation, nothing on the hot path.
use core::cell::UnsafeCell;

/// A value written only by the selecting thread while the choice is being made, and
/// read only after it has been published: `init` stores READY with Release after the
/// write and every reader has loaded READY with Acquire first.
pub struct SelectionCell<T>(UnsafeCell<T>);

// SAFETY: see the type's documentation: one writer, strictly before all readers, with
// the release/acquire pair of init's STATE between them. `T: Send` because the value
// written in one thread is then read in others.
unsafe impl<T: Send> Sync for SelectionCell<T> {}

impl<T> SelectionCell<T> {
    pub const fn new(v: T) -> Self {
        SelectionCell(UnsafeCell::new(v))
    }

    /// # Safety
    /// Only from the selecting thread, before the choice is published, and no other
    /// reference from `get`/`get_mut` alive while the one returned is used.
    #[allow(clippy::mut_from_ref)] // the point of the type; the contract keeps it unique
    pub unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: only the selecting thread writes, and nobody else reads before the
        // choice is published (our caller's contract), so this reference is unique.
        unsafe { &mut *self.0.get() }
    }

    /// # Safety
    /// Only once the choice is published (after `init::chosen()`), or from the
    /// selecting thread when no reference from `get_mut` is in use.
    pub unsafe fn get(&self) -> &T {
        // SAFETY: no write races this read and no `&mut` is in use (our caller's
        // contract): after publication every write happened before the Release store
        // of READY the caller observed, and none follows; in the selecting thread,
        // program order does the same.
        unsafe { &*self.0.get() }
    }
}

/// Copies `src` into `dst` as a NUL-terminated C string, cut to fit.
pub fn c_string(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len().saturating_sub(1));
    dst[..n].copy_from_slice(&src[..n]);
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}
