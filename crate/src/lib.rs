//! mimalloc, jemalloc, snmalloc or the system allocator as Rust's global allocator:
//! one fixed, or the one the environment asks for, chosen at run time by the same
//! rules and variables as the `liballocshim.so` preload library (`ALLOCSHIM_BACKEND`,
//! `MIMALLOC_ENABLED`, `JEMALLOC_ENABLED`, `SNMALLOC_ENABLED`). The rules are the
//! library's own code (the `allocshim-select` crate), so the two cannot disagree.
//!
//! ```toml
//! [dependencies]
//! allocshim = "0.1"
//! ```
//! ```
//! #[global_allocator]
//! static GLOBAL: allocshim::Auto = allocshim::Auto;
//! # fn main() { let _ = vec![1u8; 10]; }
//! ```
//!
//! | type | allocator | entry points |
//! |---|---|---|
//! | [`Auto`] | chosen from the environment at the first allocation | the chosen type's |
//! | [`MiMalloc`] | mimalloc 2.x (3.x with `mimalloc3`) | `mi_malloc`/`mi_malloc_aligned`, `mi_zalloc*`, `mi_realloc*`, `mi_free` |
//! | [`JeMalloc`] | jemalloc 5.3 | `malloc`/`mallocx`, `calloc`/`MALLOCX_ZERO`, sized `sdallocx`, `rallocx` |
//! | [`SnMalloc`] | snmalloc 0.7 | `sn_rust_alloc*`, sized `sn_rust_dealloc`, `sn_rust_realloc` |
//! | [`System`] | the C library's | `std::alloc::System` |
//!
//! Linking this crate never replaces C's `malloc`: mimalloc is built without its
//! override, jemalloc with its `_rjem_` prefix, snmalloc without its C API, so C code
//! in the same program keeps the C library's allocator.
//!
//! # Features
//! `mimalloc`, `jemalloc`, `snmalloc` (all on by default): compile only what is
//! needed. `mimalloc3`: mimalloc's 3.x line instead of `mimalloc`. `snmalloc-debug`:
//! snmalloc's Debug build (the seed wrapper's `debug`); `snmalloc-check`: its checked
//! build. The seed wrapper's `1mib` and `cache-friendly` features have no counterpart:
//! snmalloc-rs deprecated `cache-friendly` in 0.2.28 and removed `1mib`/`16mib` in
//! 0.3.0 with snmalloc 0.6, whose allocator no longer has a configurable chunk size;
//! snmalloc-sys 0.7 offers neither. snmalloc-sys also builds snmalloc's Debug
//! variant whenever Cargo's profile has debug info (`DEBUG=true`), and on Linux
//! defines `NDEBUG` only for MSVC, so even a release build keeps snmalloc's
//! assertions unless `CXXFLAGS` has `-DNDEBUG` (this repository sets it in
//! `.cargo/config.toml`; they cost snmalloc about a third of its speed).
#![deny(missing_docs)]
// Every unsafe operation inside an `unsafe fn` sits in its own `unsafe {}` block with
// a `SAFETY:` comment, as in the standard library.
#![deny(unsafe_op_in_unsafe_fn)]

mod auto;
#[cfg(feature = "jemalloc")]
mod jemalloc;
#[cfg(has_mimalloc)]
mod mimalloc;
#[cfg(feature = "snmalloc")]
mod snmalloc;
mod system;

pub use allocshim_select::Backend;
pub use auto::Auto;
#[cfg(feature = "jemalloc")]
pub use jemalloc::JeMalloc;
#[cfg(has_mimalloc)]
pub use mimalloc::MiMalloc;
#[cfg(feature = "snmalloc")]
pub use snmalloc::SnMalloc;
pub use system::System;

/// A backend's own figures, defined once for this crate and liballocshim.so (its
/// `ALLOCSHIM_STATS` line, `malloc_stats` and `allocshim_usage` report the same):
/// see the fields.
pub use allocshim_select::usage::Usage;

/// Whether `backend` is compiled into this program (Cargo features).
pub fn compiled(backend: Backend) -> bool {
    match backend {
        Backend::Jemalloc => cfg!(feature = "jemalloc"),
        Backend::Mimalloc => cfg!(has_mimalloc),
        Backend::Snmalloc => cfg!(feature = "snmalloc"),
        Backend::System => true,
    }
}

/// The version of `backend` compiled in, or None if it is not.
pub fn version(backend: Backend) -> Option<&'static str> {
    Some(match backend {
        #[cfg(feature = "jemalloc")]
        Backend::Jemalloc => JeMalloc::version(),
        #[cfg(has_mimalloc)]
        Backend::Mimalloc => MiMalloc::version(),
        #[cfg(feature = "snmalloc")]
        Backend::Snmalloc => SnMalloc::version(),
        Backend::System => System::version(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// `backend`'s own statistics, or None if it is not compiled in.
pub fn usage(backend: Backend) -> Option<Usage> {
    Some(match backend {
        #[cfg(feature = "jemalloc")]
        Backend::Jemalloc => JeMalloc::usage(),
        #[cfg(has_mimalloc)]
        Backend::Mimalloc => MiMalloc::usage(),
        #[cfg(feature = "snmalloc")]
        Backend::Snmalloc => SnMalloc::usage(),
        Backend::System => System::usage(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}
