//! The backends as the library uses them: entry points, start-up, versions, reports.
//!
//! Their names, switch variables and precedence are `allocshim_select`'s (shared with
//! the `allocshim` crate); everything else (the C ABI, the self-report, and through
//! the self-report the CLI, scripts and docs) derives from these two places.
use core::ffi::{c_void, CStr};

pub mod jemalloc;
pub mod mimalloc;
pub mod snmalloc;
pub mod system;

pub use allocshim_select::{Backend, ALL};
use allocshim_select::preset::Preset;

/// Entry points the exported C ABI dispatches to. The callers in `exports` have
/// already handled NULL, size 0, overflow and alignment rules, so each backend only
/// sees the plain cases (documented per field) and needs no checks of its own.
pub struct Ops {
    /// any size up to PTRDIFF_MAX
    pub malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    /// count * size known not to overflow
    pub calloc: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    /// ptr non-NULL and not from the bootstrap arena; size > 0
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    /// ptr non-NULL and not from the bootstrap arena
    pub free: unsafe extern "C" fn(*mut c_void),
    /// (alignment, size): alignment a power of two above `size_of::<usize>()`
    pub memalign: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    /// ptr non-NULL and not from the bootstrap arena
    pub usable_size: unsafe extern "C" fn(*mut c_void) -> usize,
}

/// What the shim does with each backend: its C entry points, start-up, and reports.
pub trait BackendExt {
    /// The version of the allocator compiled into this library.
    fn version(self) -> &'static CStr;
    fn ops(self) -> &'static Ops;
    /// Runs in the selecting thread before the choice is published, applying `preset`.
    /// Returns a reason to refuse the backend (it then falls back to `system`).
    unsafe fn start(self, env: &crate::env::Env, preset: Preset) -> Result<(), Refusal>;
    /// Runs once at process exit (from the library's destructor), for the chosen backend only.
    unsafe fn at_exit(self);
    /// `malloc_trim`: give free memory back to the OS; true if the backend could.
    unsafe fn trim(self, pad: usize) -> bool;
    /// `malloc_stats`: the backend's own report, on stderr.
    unsafe fn print_stats(self);
    /// (allocated, resident) bytes as the backend itself counts them, where it does.
    unsafe fn usage(self) -> Usage;
}

impl BackendExt for Backend {
    fn version(self) -> &'static CStr {
        match self {
            Backend::Jemalloc => jemalloc::version(),
            Backend::Mimalloc => mimalloc::version(),
            Backend::Snmalloc => snmalloc::version(),
            Backend::System => system::version(),
        }
    }
    fn ops(self) -> &'static Ops {
        match self {
            Backend::Jemalloc => &jemalloc::OPS,
            Backend::Mimalloc => &mimalloc::OPS,
            Backend::Snmalloc => &snmalloc::OPS,
            Backend::System => &system::OPS,
        }
    }
    unsafe fn start(self, env: &crate::env::Env, preset: Preset) -> Result<(), Refusal> {
        match self {
            Backend::Jemalloc => jemalloc::start(env, preset),
            Backend::Mimalloc => mimalloc::start(preset),
            Backend::Snmalloc => snmalloc::start(), // no run-time options: nothing to preset
            Backend::System => system::start(env, preset),
        }
    }
    unsafe fn at_exit(self) {
        if self == Backend::Mimalloc {
            mimalloc::at_exit()
        }
    }
    unsafe fn trim(self, pad: usize) -> bool {
        match self {
            Backend::Jemalloc => jemalloc::trim(),
            Backend::Mimalloc => mimalloc::trim(),
            Backend::Snmalloc => false,
            Backend::System => system::trim(pad),
        }
    }
    unsafe fn print_stats(self) {
        match self {
            Backend::Jemalloc => jemalloc::print_stats(),
            Backend::Mimalloc => mimalloc::print_stats(),
            Backend::Snmalloc => snmalloc::print_stats(),
            Backend::System => system::print_stats(),
        }
    }
    unsafe fn usage(self) -> Usage {
        match self {
            Backend::Jemalloc => jemalloc::usage(),
            Backend::Mimalloc => mimalloc::usage(),
            Backend::Snmalloc => snmalloc::usage(),
            Backend::System => system::usage(),
        }
    }
}

#[derive(Default, Clone, Copy)]
pub struct Usage {
    pub allocated: Option<usize>,
    pub resident: Option<usize>,
}

/// Why a chosen backend could not start; written into the warning line.
pub struct Refusal {
    pub why: &'static str,
    pub limit: usize,
}
