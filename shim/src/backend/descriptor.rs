//! What a backend module gives the library: one static [`Descriptor`] (its entry
//! points, start-up, version, options, figures), written once in its module
//! (`backend/<name>.rs`). Imports no backend: the backend modules import it, and the
//! list that maps each backend to its descriptor (`backend/mod.rs`) imports them.
use core::ffi::{c_int, c_void, CStr};

use allocshim_select::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::Preset;
use allocshim_select::usage::Usage;

pub type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);
pub type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
pub type AlignedAllocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;

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
    /// Runs once in the library's initialiser, after `start`, outside any malloc
    /// (`hooks`): what may take locks or start threads. None for nothing.
    pub on_load: Option<fn()>,
    /// Runs once at process exit (from the library's destructor).
    pub at_exit: unsafe fn(),
    /// `malloc_trim(pad)`: give free memory back to the OS; true if the backend could.
    pub trim: unsafe fn(usize) -> bool,
    /// `malloc_stats`: the backend's own report, on stderr.
    pub print_stats: unsafe fn(),
    /// Its own figures, as [`Usage`] defines them, read by `allocshim-backends` (for
    /// the crate too), whose per-backend `usage` says which figure is which.
    pub usage: unsafe fn() -> Usage,
    /// Its effective run-time options and where each came from (`options`), for
    /// `ALLOCSHIM_VERBOSE` and `allocshim info`.
    pub describe: fn(&Env, Preset, &mut Line),
    /// What the exported functions may go to instead of the shim's own (`entry`).
    /// Safety: for the chosen backend, started (its options are final), from the
    /// library's initialiser (`entry::Entries::publish`).
    pub direct: unsafe fn() -> Direct,
}

/// What `Entries::publish` may point an entry point at instead of the shim's own
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

/// Why a chosen backend could not start; written into the warning line.
pub struct Refusal {
    pub why: &'static str,
    pub limit: usize,
}

/// For `Descriptor` fields a backend has nothing to do in.
pub fn nothing() {}

/// For backends that cannot give memory back on request.
pub fn cannot_trim(_pad: usize) -> bool {
    false
}
