//! The backends as the library uses them: one static [`Descriptor`] per backend (its
//! entry points, start-up, version, reports), found through [`descriptor`].
//!
//! Their names, switch variables and precedence are `allocshim_select`'s (shared with
//! the `allocshim` crate); everything else (the C ABI, the self-report, and through
//! the self-report the CLI, scripts and docs) derives from these two places.
//! The backend modules print through `allocshim_select::line`, never through
//! `crate::report`, which uses them: no import cycle.
use core::ffi::{c_void, CStr};

pub mod jemalloc;
pub mod mimalloc;
pub mod snmalloc;
pub mod system;

pub use crate::entry::{AlignedAllocFn, CallocFn, PosixMemalignFn, ReallocFn, UsableSizeFn};
use crate::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::Preset;
pub use allocshim_select::usage::Usage;
pub use allocshim_select::{Backend, ALL};

/// Entry points the exported C ABI dispatches to. The callers in `exports` handle
/// what the backends would do differently from glibc (realloc's NULL and size 0,
/// calloc's overflow, alignment rules, arena blocks); malloc and free reach the backend
/// as the program called them (documented per field).
pub struct Ops {
    /// any size: a backend returns NULL with ENOMEM for what it cannot serve
    pub malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    /// count * size known not to overflow
    pub calloc: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    /// ptr non-NULL and not from the bootstrap arena; size > 0
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    /// ptr NULL (a no-op in every backend) or not from the bootstrap arena
    pub free: unsafe extern "C" fn(*mut c_void),
    /// (alignment, size): alignment a power of two above `size_of::<usize>()`
    pub memalign: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    /// ptr non-NULL and not from the bootstrap arena
    pub usable_size: unsafe extern "C" fn(*mut c_void) -> usize,
}

/// Everything the library knows about one backend, written once in its module.
///
/// The `unsafe fn` fields share one contract besides their own: except `start`, they
/// are called only for the backend the selection chose and started (the chosen one is
/// the only one initialised; calling another's would start it, or read an allocator
/// that serves nothing).
pub struct Descriptor {
    /// The version of the allocator compiled into this library.
    pub version: fn() -> &'static CStr,
    /// The C entry points; `init` publishes a pointer to these once the backend started.
    pub ops: Ops,
    /// Runs in the selecting thread before the choice is published, applying `preset`.
    /// Returns a reason to refuse the backend (it then falls back to `system`).
    /// Safety: from the selecting thread, once, before the choice is published.
    pub start: unsafe fn(&Env, Preset) -> Result<(), Refusal>,
    /// Runs once at process exit (from the library's destructor).
    pub at_exit: unsafe fn(),
    /// `malloc_trim(pad)`: give free memory back to the OS; true if the backend could.
    pub trim: unsafe fn(usize) -> bool,
    /// `malloc_stats`: the backend's own report, on stderr.
    pub print_stats: unsafe fn(),
    /// Its own figures, as [`Usage`] defines them, read by `allocshim-backends` (for
    /// the crate too), whose per-backend `usage` says which figure is which.
    pub usage: unsafe fn() -> Usage,
    /// Its effective run-time options and where each came from (`preset`), for
    /// `ALLOCSHIM_VERBOSE` and `allocshim info`.
    pub describe: fn(&Env, Preset, &mut Line),
    /// What the exported functions may go to instead of the shim's own (`entry`).
    /// Safety: for the chosen backend, started (its options are final), from the
    /// library's initialiser (`entry::publish`).
    pub direct: unsafe fn() -> Direct,
}

/// What `entry::publish` may point an entry point at instead of the shim's own
/// function (`exports::own`), each doing exactly what that one does (glibc's contract,
/// docs/behaviour.md): the backend's own function, or the smallest wrapper of it that
/// adds what it lacks (counted in docs/hot-path.md). `None` keeps the shim's. malloc
/// always goes to `Ops::malloc` (ours is a bare tail jump) and free to `Ops::free`
/// when no bootstrap-arena block is live. tests/c/api.c and errno.c check every entry
/// point of every backend against glibc, through these very functions.
pub struct Direct {
    /// free ignores pointers it did not allocate (arena blocks included): it may serve
    /// even while arena blocks are live.
    pub free_ignores_foreign: bool,
    pub calloc: Option<CallocFn>,
    pub realloc: Option<ReallocFn>,
    pub posix_memalign: Option<PosixMemalignFn>,
    pub aligned_alloc: Option<AlignedAllocFn>,
    pub usable_size: Option<UsableSizeFn>,
}

/// The descriptor of `backend`: the one place a backend maps to its module.
#[inline(always)]
pub const fn descriptor(backend: Backend) -> &'static Descriptor {
    match backend {
        Backend::Jemalloc => &jemalloc::DESCRIPTOR,
        Backend::Mimalloc => &mimalloc::DESCRIPTOR,
        Backend::Snmalloc => &snmalloc::DESCRIPTOR,
        Backend::System => &system::DESCRIPTOR,
    }
}

/// For `Descriptor` fields a backend has nothing to do in.
fn nothing() {}
/// For backends that cannot give memory back on request.
fn cannot_trim(_pad: usize) -> bool {
    false
}

/// What the shim does with each backend, as method calls on [`Backend`]: a facade
/// over its [`Descriptor`], whose fields document each call.
pub trait BackendExt {
    fn version(self) -> &'static CStr;
    fn ops(self) -> &'static Ops;
    /// # Safety
    /// As [`Descriptor::start`]: from the selecting thread, before the choice is published.
    unsafe fn start(self, env: &Env, preset: Preset) -> Result<(), Refusal>;
    /// # Safety
    /// Once, at exit, for the chosen backend only.
    unsafe fn at_exit(self);
    /// # Safety
    /// For the chosen backend only.
    unsafe fn trim(self, pad: usize) -> bool;
    /// # Safety
    /// For the chosen backend only.
    unsafe fn print_stats(self);
    /// # Safety
    /// For the chosen backend only.
    unsafe fn usage(self) -> Usage;
}

impl BackendExt for Backend {
    #[inline(always)]
    fn version(self) -> &'static CStr {
        (descriptor(self).version)()
    }
    #[inline(always)]
    fn ops(self) -> &'static Ops {
        &descriptor(self).ops
    }
    unsafe fn start(self, env: &Env, preset: Preset) -> Result<(), Refusal> {
        // SAFETY: our caller's contract is the field's.
        unsafe { (descriptor(self).start)(env, preset) }
    }
    unsafe fn at_exit(self) {
        // SAFETY: our caller's contract is the field's.
        unsafe { (descriptor(self).at_exit)() }
    }
    unsafe fn trim(self, pad: usize) -> bool {
        // SAFETY: our caller's contract is the field's.
        unsafe { (descriptor(self).trim)(pad) }
    }
    unsafe fn print_stats(self) {
        // SAFETY: our caller's contract is the field's.
        unsafe { (descriptor(self).print_stats)() }
    }
    unsafe fn usage(self) -> Usage {
        // SAFETY: our caller's contract is the field's.
        unsafe { (descriptor(self).usage)() }
    }
}

/// Why a chosen backend could not start; written into the warning line.
pub struct Refusal {
    pub why: &'static str,
    pub limit: usize,
}
