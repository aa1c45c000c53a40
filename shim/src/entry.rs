//! Where each exported allocation function goes: one function pointer per entry
//! point ([`Entries`]), which the exported function jumps through (`exports::ENTRY`)
//! and which `rebind` writes into the program's PLT slots.
//!
//! Every entry starts at the shim's own implementation (`exports::own`: glibc's
//! contract over any backend, the bootstrap arena included). Once the backend is
//! chosen and started, [`Entries::publish`] points each entry at what the backend's
//! descriptor offers for it (`Direct`): the backend's own function where it does exactly
//! what glibc's does, or the smallest wrapper that adds what it lacks. So the exported
//! `malloc` is a single indirect jump to the backend's, whoever calls it: a program
//! bound through the PLT (whose slot then skips even that jump), a `-fno-plt` one, a
//! library loaded later, or a function pointer taken with `&malloc`, which keeps being
//! the address of the exported function everywhere (C's function-pointer identity).
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use crate::backend::descriptor::{AlignedAllocFn, CallocFn, FreeFn, MallocFn, PosixMemalignFn, ReallocFn, UsableSizeFn};
use crate::backend::{Backend, BackendExt};
use crate::bootstrap;

/// One entry point's target: a function pointer of type `F`, read and written whole.
pub struct Entry<F> {
    f: AtomicPtr<()>,
    _type: PhantomData<F>,
}

impl<F: Copy> Entry<F> {
    /// `f` must be a function pointer of type `F`, cast to a raw pointer (what a
    /// `static` initialiser can write).
    pub const fn new(f: *mut ()) -> Self {
        Entry { f: AtomicPtr::new(f), _type: PhantomData }
    }

    #[inline(always)]
    pub fn get(&self) -> F {
        const { assert!(core::mem::size_of::<F>() == core::mem::size_of::<*mut ()>()) };
        let f = self.f.load(Relaxed);
        // SAFETY: the entry only ever holds a function pointer of type `F` (`new`'s
        // contract, and `set` takes an `F`), which has a raw pointer's size (asserted).
        unsafe { core::mem::transmute_copy::<*mut (), F>(&f) }
    }

    /// A word-sized store: a thread calling through the entry meanwhile gets either
    /// function, and both do the same (`publish`).
    fn set(&self, f: F) {
        // SAFETY: `F` is a function pointer type of a raw pointer's size (see `get`).
        let f = unsafe { core::mem::transmute_copy::<F, *mut ()>(&f) };
        self.f.store(f, Relaxed);
    }

    /// The current target's address.
    pub fn addr(&self) -> usize {
        self.f.load(Relaxed) as usize
    }
}

/// The entry points that go through an entry, and that `rebind` binds directly.
pub struct Entries {
    pub malloc: Entry<MallocFn>,
    pub free: Entry<FreeFn>,
    pub calloc: Entry<CallocFn>,
    pub realloc: Entry<ReallocFn>,
    pub posix_memalign: Entry<PosixMemalignFn>,
    pub aligned_alloc: Entry<AlignedAllocFn>,
    pub malloc_usable_size: Entry<UsableSizeFn>,
}

/// The exported names of the entries, in the order of [`targets`].
pub const NAMES: [&[u8]; 7] = [b"malloc", b"free", b"calloc", b"realloc", b"posix_memalign", b"aligned_alloc", b"malloc_usable_size"];

impl Entries {
    /// Each entry's current target, in the order of [`NAMES`].
    pub fn targets(&self) -> [usize; 7] {
        let e = self;
        [
            e.malloc.addr(),
            e.free.addr(),
            e.calloc.addr(),
            e.realloc.addr(),
            e.posix_memalign.addr(),
            e.aligned_alloc.addr(),
            e.malloc_usable_size.addr(),
        ]
    }

    /// Points each entry at what `backend` offers for it (`Direct`), once.
    ///
    /// free, realloc and malloc_usable_size also take bootstrap-arena blocks in ours
    /// (`exports::own`), so they go to the backend only when no arena block is live (none
    /// can be made after the choice), or for free, when the backend ignores pointers it
    /// does not own.
    ///
    /// # Safety
    /// `backend` is the chosen one, started (its options are final); called from the
    /// library's initialiser (the system backend looks functions up with `dlsym`, which
    /// must not run inside a malloc that ld.so called with its locks held).
    pub unsafe fn publish(&self, backend: Backend) {
        let ops = backend.ops();
        // SAFETY: `backend` is the chosen, started one, from the initialiser (our contract).
        let d = unsafe { backend.direct() };
        let arena_live = bootstrap::live() != 0;
        let e = self;
        e.malloc.set(ops.malloc);
        if !arena_live || d.free_ignores_foreign {
            e.free.set(ops.free);
        }
        if let Some(f) = d.calloc {
            e.calloc.set(f);
        }
        if let Some(f) = d.posix_memalign {
            e.posix_memalign.set(f);
        }
        if let Some(f) = d.aligned_alloc {
            e.aligned_alloc.set(f);
        }
        if !arena_live {
            if let Some(f) = d.realloc {
                e.realloc.set(f);
            }
            if let Some(f) = d.usable_size {
                e.malloc_usable_size.set(f);
            }
        }
    }
}
