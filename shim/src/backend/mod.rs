//! The one table of backends: names, variables, versions, entry points.
//!
//! Everything else (selection, the C ABI, the self-report, and through the self-report
//! the CLI, scripts and docs) derives from what is written here.
use core::ffi::{c_void, CStr};

pub mod jemalloc;
pub mod mimalloc;
pub mod snmalloc;
pub mod system;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Backend {
    Jemalloc = 0,
    Mimalloc = 1,
    Snmalloc = 2,
    System = 3,
}

/// All backends, in precedence order: when several `*_ENABLED` variables are on,
/// the first of them in this list wins.
pub const ALL: [Backend; 4] = [Backend::Jemalloc, Backend::Mimalloc, Backend::Snmalloc, Backend::System];

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

impl Backend {
    pub fn from_index(i: u8) -> Option<Backend> {
        ALL.into_iter().find(|b| *b as u8 == i)
    }

    pub const fn name(self) -> &'static CStr {
        match self {
            Backend::Jemalloc => c"jemalloc",
            Backend::Mimalloc => c"mimalloc",
            Backend::Snmalloc => c"snmalloc",
            Backend::System => c"system",
        }
    }

    /// The buildpack-style switch (`JEMALLOC_ENABLED=true`); `system` has none.
    pub const fn enable_var(self) -> Option<&'static [u8]> {
        match self {
            Backend::Jemalloc => Some(b"JEMALLOC_ENABLED"),
            Backend::Mimalloc => Some(b"MIMALLOC_ENABLED"),
            Backend::Snmalloc => Some(b"SNMALLOC_ENABLED"),
            Backend::System => None,
        }
    }

    /// The version of the allocator compiled into this library.
    pub fn version(self) -> &'static CStr {
        match self {
            Backend::Jemalloc => jemalloc::version(),
            Backend::Mimalloc => mimalloc::version(),
            Backend::Snmalloc => snmalloc::version(),
            Backend::System => system::version(),
        }
    }

    pub fn ops(self) -> &'static Ops {
        match self {
            Backend::Jemalloc => &jemalloc::OPS,
            Backend::Mimalloc => &mimalloc::OPS,
            Backend::Snmalloc => &snmalloc::OPS,
            Backend::System => &system::OPS,
        }
    }

    /// Runs in the selecting thread before the choice is published. Returns a reason
    /// to refuse the backend (it then falls back to `system`).
    pub unsafe fn start(self, env: &crate::env::Env) -> Result<(), Refusal> {
        match self {
            Backend::Jemalloc => jemalloc::start(env),
            Backend::Mimalloc => mimalloc::start(),
            Backend::Snmalloc => snmalloc::start(),
            Backend::System => Ok(()),
        }
    }

    /// Runs once at process exit (from the library's destructor), for the chosen backend only.
    pub unsafe fn at_exit(self) {
        if self == Backend::Mimalloc {
            mimalloc::at_exit()
        }
    }

    /// `malloc_trim`: give free memory back to the OS; true if the backend could.
    pub unsafe fn trim(self, pad: usize) -> bool {
        match self {
            Backend::Jemalloc => jemalloc::trim(),
            Backend::Mimalloc => mimalloc::trim(),
            Backend::Snmalloc => false,
            Backend::System => system::trim(pad),
        }
    }

    /// `malloc_stats`: the backend's own report, on stderr.
    pub unsafe fn print_stats(self) {
        match self {
            Backend::Jemalloc => jemalloc::print_stats(),
            Backend::Mimalloc => mimalloc::print_stats(),
            Backend::Snmalloc => snmalloc::print_stats(),
            Backend::System => system::print_stats(),
        }
    }

    /// (allocated, resident) bytes as the backend itself counts them, where it does.
    pub unsafe fn usage(self) -> Usage {
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
