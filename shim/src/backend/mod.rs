//! The backends as the library uses them: one module per backend, each the one home
//! of that backend in the library (its entry points and their wrappers, start-up and
//! preset, its options as reported, its statistics), giving one static
//! [`Descriptor`]; and the list that maps each backend to it ([`BackendExt`]).
//!
//! Their names, switch variables and precedence are `allocshim_select`'s (shared with
//! the `allocshim` crate), their versions and usage figures `allocshim_backends`'s;
//! everything else (the C ABI, the self-report, and through the self-report the CLI,
//! scripts and docs) derives from these places. Adding a backend: docs/layout.md.
use core::ffi::CStr;

pub mod descriptor;
pub mod jemalloc;
pub mod mimalloc;
pub mod snmalloc;
pub mod system;

use allocshim_select::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::Preset;
use allocshim_select::usage::Usage;
pub use allocshim_select::{Backend, ALL};
use descriptor::{Descriptor, Direct, Ops, Refusal};

/// The descriptor of `backend`: the one place a backend maps to its module.
#[inline(always)]
const fn of(backend: Backend) -> &'static Descriptor {
    match backend {
        Backend::Jemalloc => &jemalloc::DESCRIPTOR,
        Backend::Mimalloc => &mimalloc::DESCRIPTOR,
        Backend::Snmalloc => &snmalloc::DESCRIPTOR,
        Backend::System => &system::DESCRIPTOR,
    }
}

/// What the shim does with each backend, as method calls on [`Backend`]: a facade
/// over its [`Descriptor`], whose fields document each call.
pub trait BackendExt {
    fn version(self) -> &'static CStr;
    fn ops(self) -> &'static Ops;
    /// # Safety
    /// As [`Descriptor::start`]: from the selecting thread, before the choice is published.
    unsafe fn start(self, env: &Env, preset: Preset) -> Result<(), Refusal>;
    /// Once, from the library's initialiser, for the chosen backend only.
    fn on_load(self);
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
    /// For the chosen backend, started.
    fn describe(self, env: &Env, preset: Preset, out: &mut Line);
    /// # Safety
    /// As [`Descriptor::direct`]: for the chosen backend, started, from the initialiser.
    unsafe fn direct(self) -> Direct;
}

impl BackendExt for Backend {
    #[inline(always)]
    fn version(self) -> &'static CStr {
        (of(self).version)()
    }
    #[inline(always)]
    fn ops(self) -> &'static Ops {
        &of(self).ops
    }
    unsafe fn start(self, env: &Env, preset: Preset) -> Result<(), Refusal> {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).start)(env, preset) }
    }
    fn on_load(self) {
        if let Some(f) = of(self).on_load {
            f()
        }
    }
    unsafe fn at_exit(self) {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).at_exit)() }
    }
    unsafe fn trim(self, pad: usize) -> bool {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).trim)(pad) }
    }
    unsafe fn print_stats(self) {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).print_stats)() }
    }
    unsafe fn usage(self) -> Usage {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).usage)() }
    }
    fn describe(self, env: &Env, preset: Preset, out: &mut Line) {
        (of(self).describe)(env, preset, out)
    }
    unsafe fn direct(self) -> Direct {
        // SAFETY: our caller's contract is the field's.
        unsafe { (of(self).direct)() }
    }
}
