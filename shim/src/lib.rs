//! liballocshim.so: one preload library, four allocators, one chosen per process.
//!
//! Reading order for a newcomer: `allocshim_select` (the backends' names and the
//! rules that pick one, shared with the `allocshim` crate), [`backend`] (what the
//! library does with each: one module per backend), [`init`] (choosing once, before
//! the first allocation is served), [`hooks`] (what runs at load and at exit),
//! [`exports`] (the C ABI and glibc's semantics), [`entry`] (where each exported
//! function jumps once the backend is chosen), [`rebind`] (binding the process's PLT
//! calls of those functions straight to the same targets), [`report`] (the verbose
//! line and exit statistics).
//!
//! Each module imports only modules below it: no two import each other, directly or
//! through others (tests/maps.rs checks it; the layers: docs/layout.md).
//!
//! The crate is `no_std`: nothing here can allocate through Rust's allocator, which
//! would re-enter this very `malloc`. Panics abort (see Cargo profiles) and the code
//! is written not to panic at all.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
mod bootstrap;
mod cpus;
mod elf;
mod entry;
mod exports;
mod hooks;
mod init;
mod once;
mod options;
mod rebind;
mod relocate;
mod report;
mod sys;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Never format a message here: formatting may allocate, and we are the allocator.
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}
