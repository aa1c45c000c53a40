//! liballocshim.so: one preload library, four allocators, one chosen per process.
//!
//! Reading order for a newcomer: [`backend`] (the one table of backends), [`select`]
//! (how the environment picks one), [`init`] (choosing once, before the first
//! allocation is served), [`exports`] (the C ABI and glibc's semantics), [`report`]
//! (warnings, verbose line, exit statistics).
//!
//! The crate is `no_std`: nothing here can allocate through Rust's allocator, which
//! would re-enter this very `malloc`. Panics abort (see Cargo profiles) and the code
//! is written not to panic at all.
#![no_std]

mod backend;
mod bootstrap;
mod env;
mod exports;
mod init;
mod report;
mod select;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Never format a message here: formatting may allocate, and we are the allocator.
    unsafe { libc::abort() }
}
