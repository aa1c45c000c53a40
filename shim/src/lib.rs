//! liballocshim.so: one preload library, four allocators, one chosen per process.
//!
//! Reading order for a newcomer: `allocshim_select` (the backends' names and the
//! rules that pick one, shared with the `allocshim` crate), [`backend`] (what the
//! library does with each), [`init`] (choosing once, before the first
//! allocation is served), [`exports`] (the C ABI and glibc's semantics), [`entry`]
//! (where each exported function jumps once the backend is chosen), [`rebind`]
//! (binding the process's PLT calls of those functions straight to the same targets),
//! [`report`] (warnings, verbose line, exit statistics).
//!
//! The crate is `no_std`: nothing here can allocate through Rust's allocator, which
//! would re-enter this very `malloc`. Panics abort (see Cargo profiles) and the code
//! is written not to panic at all.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
mod bootstrap;
mod cpus;
mod entry;
mod exports;
mod init;
mod once;
mod preset;
mod rebind;
mod report;
mod sys;
mod trimmer;

// The rules and the environment reader are shared with the `allocshim` crate.
use allocshim_select::{env, rules as select, scope, vars};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Never format a message here: formatting may allocate, and we are the allocator.
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}
