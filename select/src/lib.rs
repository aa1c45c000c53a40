//! What liballocshim.so and the `allocshim` crate must agree on, written once: the
//! backends, their names and switch variables ([`Backend`]), reading the environment
//! without allocating ([`env`]), the rules that pick a backend ([`rules`]), and the
//! raw `write(2)` lines both print ([`line`]).
//!
//! `no_std` and allocation-free: the library runs this inside `malloc`, the crate
//! inside `GlobalAlloc::alloc`.
#![no_std]

pub mod env;
pub mod line;
pub mod preset;
pub mod rules;

use core::ffi::CStr;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
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

impl Backend {
    pub fn from_index(i: u8) -> Option<Backend> {
        ALL.into_iter().find(|b| *b as u8 == i)
    }

    /// The backend called `name` (as `ALLOCSHIM_BACKEND` spells it, any case).
    pub fn from_name(name: &[u8]) -> Option<Backend> {
        ALL.into_iter().find(|b| name.eq_ignore_ascii_case(b.name().to_bytes()))
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
}
