//! The library's load and exit hooks: raw `.init_array`/`.fini_array` entries rather
//! than the `ctor` crate's, because the initialiser needs its `envp` argument (libc's
//! `environ` is not guaranteed to be set for it) and an explicit priority: 100 runs
//! before the default-priority constructors of anything else linked into this library.
//!
//! At load: the selection (`init`), unless a malloc ld.so called made it earlier; then
//! what must not run inside a malloc: the entries published (`entry`), the PLT slots
//! rebound (`rebind`), the backend's own load-time work (`on_load`). At exit: the
//! `ALLOCSHIM_STATS` report and the backend's own exit work.
use core::ffi::{c_char, c_int};

use crate::backend::BackendExt;
use crate::exports::ENTRY;
use crate::{init, rebind, report};

#[used]
#[link_section = ".init_array.00100"]
static ON_LOAD: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = on_load;

extern "C" fn on_load(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    if !init::at_load(envp) {
        return;
    }
    // Here, not inside the selection: that may run inside a malloc called by ld.so
    // with its locks held, and `system` looks glibc's functions up with dlsym, and the
    // walk over the loaded objects takes one of those locks. A selection that happened
    // earlier is published and rebound now, before main.
    // SAFETY: the backend is chosen and started (READY), and this is the library's
    // initialiser: this thread holds no ld.so lock but the ones ld.so takes around
    // initialisers, which dlsym, dl_iterate_phdr and dladdr may take again.
    unsafe {
        ENTRY.publish(init::chosen());
        rebind::rebind(init::malloc_is_ours());
    }
    // The backend's own (jemalloc: heap profiling's unwinder, signal handler and
    // thread): here for the same reason.
    init::chosen().on_load();
}

#[used]
#[link_section = ".fini_array.00100"]
static ON_EXIT: extern "C" fn() = on_exit;

extern "C" fn on_exit() {
    if !init::ready() {
        return;
    }
    let backend = init::chosen();
    if init::stats_at_exit() {
        report::exit_stats(backend);
    }
    // SAFETY: the library's destructor, which runs once, and `backend` is the chosen
    // one (READY): what `at_exit` requires.
    unsafe { backend.at_exit() };
}
