//! What liballocshim.so, the `allocshim` crate and the `allocshim` command must agree
//! on, written once:
//!
//! * the backends: their names, switch variables and precedence ([`Backend`], [`ALL`]);
//! * the name of every environment variable ([`vars`]), and reading the environment
//!   without allocating ([`env`]);
//! * the rules that pick a backend and read the switches, with their warnings
//!   ([`rules`]); which programs the choice applies to ([`scope`]);
//! * `ALLOCSHIM_PRESET`'s names and the trimming interval ([`preset`]),
//!   `ALLOCSHIM_PROFILE`'s grammar ([`profile`]), the CPUs a process may use ([`cpus`]);
//! * what a backend's usage figures mean ([`usage`]);
//! * the raw `write(2)` lines the library and the crate print ([`line`]), and this
//!   thread's `errno` ([`errno`]).
//!
//! `no_std` and allocation-free: the library runs this inside `malloc`, the crate
//! inside `GlobalAlloc::alloc`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cpus;
pub mod env;
pub mod errno;
pub mod line;
pub mod preset;
pub mod profile;
pub mod rules;
pub mod scope;
pub mod usage;
pub mod vars;

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
    /// These are the `*_ENABLED` variables of [`vars`]; they are defined only here.
    pub const fn enable_var(self) -> Option<&'static str> {
        match self {
            Backend::Jemalloc => Some("JEMALLOC_ENABLED"),
            Backend::Mimalloc => Some("MIMALLOC_ENABLED"),
            Backend::Snmalloc => Some("SNMALLOC_ENABLED"),
            Backend::System => None,
        }
    }
}
