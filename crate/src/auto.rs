//! `Auto`: the backend the environment asks for, chosen at the first allocation by
//! liballocshim.so's own rules (shared code: `allocshim_select`) and never changed.
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering::*};

use allocshim_select::env::Env;
use allocshim_select::line::{warn, Line};
use allocshim_select::preset::Preset;
use allocshim_select::{rules, scope, vars, Backend};

use crate::compiled;

/// The allocator `ALLOCSHIM_BACKEND` or `*_ENABLED` selects, as liballocshim.so
/// would select it for this process (same rules, same warnings on stderr, `system`
/// in secure mode, `system` for a program that `ALLOCSHIM_ONLY`/`ALLOCSHIM_EXCEPT`
/// leave out), chosen once at the first allocation.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: allocshim::Auto = allocshim::Auto;
///
/// // With MIMALLOC_ENABLED=true in the environment this prints "mimalloc".
/// println!("{}", allocshim::Auto::backend().name().to_str().unwrap());
/// ```
///
/// Each call costs one load and an indirect jump over the fixed type. A backend
/// left out by Cargo features is replaced by `system`, with a warning.
/// `ALLOCSHIM_VERBOSE=1` prints the choice and why, as the library does.
#[derive(Clone, Copy, Default, Debug)]
pub struct Auto;

const UNCHOSEN: u8 = u8::MAX;
const CHOOSING: u8 = u8::MAX - 1;

static CHOICE: AtomicU8 = AtomicU8::new(UNCHOSEN);

impl Auto {
    /// The backend serving this program; chooses it now if nothing was allocated yet.
    #[inline]
    pub fn backend() -> Backend {
        // Acquire: what the choosing thread did before publishing is visible.
        match Backend::from_index(CHOICE.load(Acquire)) {
            Some(b) => b,
            None => choose(),
        }
    }

    /// The backend serving this program, or None before its first allocation.
    pub fn active() -> Option<Backend> {
        Backend::from_index(CHOICE.load(Acquire))
    }
}

#[cold]
#[inline(never)]
fn choose() -> Backend {
    loop {
        match CHOICE.compare_exchange(UNCHOSEN, CHOOSING, Acquire, Acquire) {
            Ok(_) => {
                let b = decide();
                bind_chosen(b);
                CHOICE.store(b as u8, Release);
                return b;
            }
            // Another thread is choosing (nothing in `decide` allocates, so it is
            // never this thread): wait for its answer.
            Err(CHOOSING) => core::hint::spin_loop(),
            Err(c) => return Backend::from_index(c).unwrap_or(Backend::System),
        }
    }
}

/// Runs inside the first allocation: reads the environment in place and prints with
/// raw write(2); no Rust allocation.
fn decide() -> Backend {
    let Some(env) = Env::from_libc() else {
        let mut l = Line::new();
        l.str("the environment is not readable yet at the first allocation; using system");
        warn(&l);
        return Backend::System;
    };
    let choice = rules::decide(&env, &mut |w| w.print());
    let (mut backend, mut reason) = (choice.backend, choice.reason);
    // ALLOCSHIM_ONLY/EXCEPT, as the library applies them (no preset in the crate).
    if backend != Backend::System {
        let lists = scope::lists(&env, &mut |w| w.print());
        if !lists.is_empty() {
            let mut own = scope::Own::new();
            let names = own.read();
            let verdict = lists.judge(&names);
            reason = lists.reason(&verdict, &names, backend, Preset::Default, reason.as_bytes());
            if verdict.left_on_system() {
                backend = Backend::System;
            }
        }
    }
    if !compiled(backend) {
        let mut l = Line::new();
        l.bytes(backend.name().to_bytes())
            .str(" is not compiled into this program (cargo feature `")
            .bytes(backend.name().to_bytes())
            .str("`); using system");
        warn(&l);
        reason.str("; ").bytes(l.as_bytes());
        backend = Backend::System;
    }
    if rules::flag(&env, vars::ALLOCSHIM_VERBOSE, &mut |w| w.print()) {
        let mut l = Line::new();
        l.str("backend ").bytes(backend.name().to_bytes()).str(" (").bytes(reason.as_bytes()).str(")");
        warn(&l);
    }
    backend
}

// Each method goes through a function pointer, bound to the chosen type's method
// when the choice is made: one load and a jump before the fixed type's own code.
// Branching on the choice at every call instead (a compare chain that LLVM turned into
// a jump table, plus a stack frame for the choosing call) cost 1-2 ns per
// allocation+free over the fixed type; see the README for the figures.
type AllocFn = unsafe fn(Layout) -> *mut u8;
type DeallocFn = unsafe fn(*mut u8, Layout);
type ReallocFn = unsafe fn(*mut u8, Layout, usize) -> *mut u8;

struct Table {
    alloc: AtomicPtr<()>,
    alloc_zeroed: AtomicPtr<()>,
    dealloc: AtomicPtr<()>,
    realloc: AtomicPtr<()>,
}

/// Until the choice: functions that choose, then call through the table again.
static TABLE: Table = Table {
    alloc: AtomicPtr::new(first_alloc as AllocFn as *mut ()),
    alloc_zeroed: AtomicPtr::new(first_alloc_zeroed as AllocFn as *mut ()),
    dealloc: AtomicPtr::new(first_dealloc as DeallocFn as *mut ()),
    realloc: AtomicPtr::new(first_realloc as ReallocFn as *mut ()),
};

// The `first_*` functions and `bind`'s are entered only through `TABLE`, from the
// `GlobalAlloc` methods of `Auto`, with those methods' arguments unchanged.

/// # Safety
/// As [`GlobalAlloc::alloc`]: `l` has a non-zero size.
unsafe fn first_alloc(l: Layout) -> *mut u8 {
    choose();
    // SAFETY: our caller's `alloc` contract, passed on unchanged; `choose` has bound
    // the table, so this reaches the chosen type's `alloc`.
    unsafe { Auto.alloc(l) }
}
/// # Safety
/// As [`GlobalAlloc::alloc_zeroed`]: `l` has a non-zero size.
unsafe fn first_alloc_zeroed(l: Layout) -> *mut u8 {
    choose();
    // SAFETY: our caller's `alloc_zeroed` contract, passed on unchanged.
    unsafe { Auto.alloc_zeroed(l) }
}
/// # Safety
/// As [`GlobalAlloc::dealloc`]: `p` was allocated by `Auto` with layout `l`.
unsafe fn first_dealloc(p: *mut u8, l: Layout) {
    choose();
    // SAFETY: our caller's `dealloc` contract, passed on unchanged. (A block to free
    // means an allocation already made the choice, so `choose` returned at once.)
    unsafe { Auto.dealloc(p, l) }
}
/// # Safety
/// As [`GlobalAlloc::realloc`]: `p` was allocated by `Auto` with layout `l`, and `n`
/// is non-zero and does not overflow `isize` when rounded up to `l.align()`.
unsafe fn first_realloc(p: *mut u8, l: Layout, n: usize) -> *mut u8 {
    choose();
    // SAFETY: our caller's `realloc` contract, passed on unchanged.
    unsafe { Auto.realloc(p, l, n) }
}

/// Points the table at `T`'s methods (monomorphised, so each is the fixed type's code).
///
/// Each of the four has the contract of the `GlobalAlloc` method it forwards to.
/// Blocks pass between `Auto` and `T` safely: once bound, every `Auto` call (in any
/// thread, for the rest of the process) reaches `T`, and no block was allocated by
/// another type before (the first allocation is what binds).
fn bind<T: GlobalAlloc + Default>() {
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc<T: GlobalAlloc + Default>(l: Layout) -> *mut u8 {
        // SAFETY: `Auto::alloc`'s caller's contract, passed on unchanged.
        unsafe { T::default().alloc(l) }
    }
    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    unsafe fn alloc_zeroed<T: GlobalAlloc + Default>(l: Layout) -> *mut u8 {
        // SAFETY: `Auto::alloc_zeroed`'s caller's contract, passed on unchanged.
        unsafe { T::default().alloc_zeroed(l) }
    }
    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    unsafe fn dealloc<T: GlobalAlloc + Default>(p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `Auto`, i.e. from `T` (see above), with layout `l`.
        unsafe { T::default().dealloc(p, l) }
    }
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    unsafe fn realloc<T: GlobalAlloc + Default>(p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: `p` came from `T` (see above) with layout `l`; `n` as the caller
        // of `Auto::realloc` guarantees.
        unsafe { T::default().realloc(p, l, n) }
    }
    TABLE.alloc.store(alloc::<T> as AllocFn as *mut (), Release);
    TABLE.alloc_zeroed.store(alloc_zeroed::<T> as AllocFn as *mut (), Release);
    TABLE.dealloc.store(dealloc::<T> as DeallocFn as *mut (), Release);
    TABLE.realloc.store(realloc::<T> as ReallocFn as *mut (), Release);
}

fn bind_chosen(b: Backend) {
    match b {
        #[cfg(feature = "jemalloc")]
        Backend::Jemalloc => bind::<crate::JeMalloc>(),
        #[cfg(has_mimalloc)]
        Backend::Mimalloc => bind::<crate::MiMalloc>(),
        #[cfg(feature = "snmalloc")]
        Backend::Snmalloc => bind::<crate::SnMalloc>(),
        // `decide` never picks a backend that is not compiled in.
        _ => bind::<crate::System>(),
    }
}

// SAFETY: every method forwards, unchanged, to the same method of one fixed type (the
// `first_*` functions only choose it first), whose own `GlobalAlloc` impl upholds the
// trait's contract; the type never changes after the first allocation, so a block is
// always freed or resized by the allocator that made it.
//
// In each method: every value ever stored in the `TABLE` slot it loads is a function
// of exactly the slot's type (`AllocFn`, `DeallocFn`, `ReallocFn`) cast to `*mut ()`
// (the `TABLE` initialiser and `bind`), so transmuting it back gives that function,
// and calling it passes on our caller's contract unchanged. Relaxed is enough: both
// the initial and the bound function are valid at any time, and a thread that chose
// (or saw the choice through `CHOICE`'s Acquire) sees the bound one.
unsafe impl GlobalAlloc for Auto {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: see above: an `AllocFn`, called with the caller's layout.
        unsafe {
            let f: AllocFn = core::mem::transmute(TABLE.alloc.load(Relaxed));
            f(l)
        }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: see above: an `AllocFn`, called with the caller's layout.
        unsafe {
            let f: AllocFn = core::mem::transmute(TABLE.alloc_zeroed.load(Relaxed));
            f(l)
        }
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: see above: a `DeallocFn`, called with the caller's block and layout.
        unsafe {
            let f: DeallocFn = core::mem::transmute(TABLE.dealloc.load(Relaxed));
            f(p, l)
        }
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see above: a `ReallocFn`, called with the caller's arguments.
        unsafe {
            let f: ReallocFn = core::mem::transmute(TABLE.realloc.load(Relaxed));
            f(p, l, new_size)
        }
    }
}
