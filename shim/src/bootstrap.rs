//! A static bump arena for the allocations that arrive before a backend may serve
//! them: ld.so's mallocs before libc has set `environ` (so nothing can be chosen yet),
//! and calls the selecting thread makes into malloc while it starts the backend.
//!
//! Blocks are never reused: `free` recognises them by address and ignores them,
//! `realloc` copies them into the chosen backend. The arena lives in .bss, so the
//! part never touched costs no memory.
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

const SIZE: usize = 256 * 1024;
const HEADER: usize = 16;

// Cache-line aligned, not page-aligned: a page-aligned arena gave `.bss` that alignment,
// which put the library's statics (the selection's state, written in every process)
// on a page of their own instead of the one `.got.plt` already dirties (one page less
// resident in every process). `alloc` aligns each block itself.
#[repr(C, align(64))]
struct Arena(UnsafeCell<[u8; SIZE]>);
// SAFETY: the bytes are only reached through `alloc`, which hands each range out once:
// the compare-exchange on `USED` gives every caller a range no other caller gets, its
// header written only by that caller before the block is returned, and the block then
// belongs to whoever received it (later readers of the header, `usable_size`, got the
// pointer from that owner, hence after the write). Nothing is ever handed out twice.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);
/// Blocks handed out and not yet freed (or moved by realloc). Once a backend is chosen
/// nothing new lands here, so when this is 0 at that point no arena block can ever
/// reach `free` again, and `free` may go straight to the backend (see `rebind`).
static LIVE: AtomicUsize = AtomicUsize::new(0);

fn base() -> usize {
    ARENA.0.get() as usize
}

#[inline(always)]
pub fn contains(p: *const c_void) -> bool {
    (p as usize).wrapping_sub(base()) < SIZE
}

/// A zeroed block of `size` bytes aligned to `align` (a power of two), or NULL when
/// the arena is exhausted.
pub fn alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.max(HEADER);
    let mut used = USED.load(Ordering::Relaxed);
    loop {
        let start = (base() + used + HEADER + align - 1) & !(align - 1);
        let Some(end) = start.checked_add(size) else { return core::ptr::null_mut() };
        if end > base() + SIZE {
            return core::ptr::null_mut();
        }
        match USED.compare_exchange_weak(used, end - base(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                // The size lives just before the block, for malloc_usable_size and realloc.
                // SAFETY: [start - HEADER, end) lies inside the arena (end <= base + SIZE,
                // start - HEADER >= base + used) and the compare-exchange just reserved it
                // for this call alone; start is aligned to at least HEADER (16), so the
                // header word is aligned.
                unsafe { *((start - HEADER) as *mut usize) = size };
                LIVE.fetch_add(1, Ordering::Relaxed);
                return start as *mut c_void;
            }
            Err(now) => used = now,
        }
    }
}

/// The size `alloc` was asked for when it returned `p`.
///
/// # Safety
/// `p` was returned by [`alloc`] (not just any address for which [`contains`] is true).
pub unsafe fn usable_size(p: *const c_void) -> usize {
    // SAFETY: `alloc` wrote the size in the aligned word just before every block it
    // returned (our caller's contract), and nothing writes it again.
    unsafe { *((p as usize - HEADER) as *const usize) }
}

/// Called for every arena block that `free` or `realloc` gives up (it is not reused).
#[cold]
pub fn release() {
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

/// Arena blocks handed out and not given up yet.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}
