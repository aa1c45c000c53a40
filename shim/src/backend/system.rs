//! `system`: glibc's own allocator, reached through its `__libc_*` entry points
//! (which the shim deliberately does not export, so these always bind to glibc).
//! The few functions glibc has no `__libc_` name for are looked up once, lazily,
//! with `dlsym(RTLD_NEXT)` (`glibc`). Under the low-memory preset: glibc's options set
//! with `mallopt` ([`LOW_MEMORY`]) and the trimming helper thread (`trimmer`).
use core::ffi::{c_int, c_void, CStr};

use allocshim_backends::system;
use allocshim_select::env::Env;
use allocshim_select::line::Line;
use allocshim_select::preset::{self, Preset};
use allocshim_select::usage::Usage;
use allocshim_select::vars;

use super::descriptor::{nothing, Descriptor, Direct, Ops, Refusal};
use crate::options;

mod glibc;
mod trimmer;

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
}

pub static DESCRIPTOR: Descriptor = Descriptor {
    version,
    ops: Ops {
        malloc: __libc_malloc,
        calloc: __libc_calloc,
        realloc: __libc_realloc,
        free: __libc_free,
        memalign: __libc_memalign,
        usable_size,
    },
    start,
    on_load: None,
    at_exit: nothing,
    trim,
    print_stats,
    usage,
    describe,
    direct,
};

/// `system` is glibc exactly as if nothing were preloaded, so every entry point goes to
/// glibc's own function, `aligned_alloc` included: before glibc 2.38 that name is
/// `memalign`, which rounds an alignment that is no power of two up where 2.38 returns
/// EINVAL, and a program gets what its glibc does (the other backends follow 2.38).
///
/// # Safety
/// From the library's initialiser (`dlsym`).
unsafe fn direct() -> Direct {
    Direct {
        free_ignores_foreign: false,
        calloc: Some(__libc_calloc),
        realloc: Some(__libc_realloc),
        posix_memalign: glibc::posix_memalign(),
        aligned_alloc: glibc::aligned_alloc(),
        usable_size: glibc::usable_size(),
    }
}

/// glibc needs no start; a preset's options are set now, at load time, before the
/// program starts any thread.
///
/// # Safety
/// From the selecting thread, before the choice is published.
unsafe fn start(env: &Env, preset: Preset) -> Result<(), Refusal> {
    // SAFETY: we are the selecting thread (our contract), as apply_preset asks.
    unsafe { apply_preset(env, preset) };
    Ok(())
}

fn version() -> &'static CStr {
    system::version()
}

/// # Safety
/// `p` a live block of glibc's malloc (`Ops::usable_size`).
unsafe extern "C" fn usable_size(p: *mut c_void) -> usize {
    // SAFETY: glibc's malloc_usable_size, and `p` is a live glibc block (our contract).
    glibc::usable_size().map_or(0, |f| unsafe { f(p) })
}

/// # Safety
/// For glibc's malloc (always started).
unsafe fn trim(pad: usize) -> bool {
    glibc::malloc_trim(pad)
}

/// # Safety
/// For glibc's malloc (always started).
unsafe fn print_stats() {
    glibc::malloc_stats()
}

/// # Safety
/// For glibc's malloc (always started).
unsafe fn usage() -> Usage {
    glibc::mallinfo2().map_or(Usage::default(), |m| system::usage(&m))
}

// ---------------------------------------------------------------------------------
// The low-memory preset and the options report

/// The low-memory preset: (`mallopt` parameter, name, the environment variable and
/// the tunable a user sets it with, value).
const LOW_MEMORY: &[(c_int, &str, &str, &str, c_int)] = &[(M_ARENA_MAX, "arena_max", vars::MALLOC_ARENA_MAX, "glibc.malloc.arena_max", 2)];

const M_ARENA_MAX: c_int = -8; // <malloc.h>

/// What the user set for a glibc option: its environment variable, or the tunable in
/// `GLIBC_TUNABLES`. glibc applies those itself; the preset must not override them.
fn user(env: &Env, var: &'static str, tunable: &str) -> Option<&'static str> {
    if env.get(var.as_bytes()).is_some() {
        return Some(var);
    }
    let tunables = env.get(vars::GLIBC_TUNABLES)?;
    let set = tunables.split(|&b| b == b':').any(|t| t.split(|&b| b == b'=').next() == Some(tunable.as_bytes()));
    set.then_some(vars::GLIBC_TUNABLES)
}

/// Applies the preset to glibc's malloc with `mallopt`, at load time (before the
/// program starts threads), skipping every option the user set, and asks for the
/// trimming helper.
///
/// # Safety
/// From the selecting thread.
unsafe fn apply_preset(env: &Env, preset: Preset) {
    if preset != Preset::LowMemory {
        return;
    }
    trimmer::want(preset::trim_interval(env, preset, &mut |w| w.print()));
    for &(param, _, var, tunable, value) in LOW_MEMORY {
        if user(env, var, tunable).is_none() {
            // SAFETY: mallopt takes plain integers (a known parameter and a positive
            // value) and takes glibc's arena lock itself.
            unsafe { glibc::mallopt(param, value) };
        }
    }
}

/// What the preset set, and by whom: glibc has no getter for these. Also read
/// without a preset (and in secure mode): an `arena_max` the user set is reported.
fn describe(env: &Env, preset: Preset, out: &mut Line) {
    if preset == Preset::LowMemory {
        // Read again, silently: the warning, if any, was printed when it was applied.
        let mut ignored = false;
        let every = preset::trim_interval(env, preset, &mut |_| ignored = true);
        match every {
            0 => out.str("trim=off"),
            ms => out.str("trim=every ").seconds(ms).str(" s"),
        };
        let set = env.get(vars::ALLOCSHIM_TRIM_INTERVAL).is_some_and(|v| !v.trim_ascii().is_empty()) && !ignored;
        options::source(out, set.then_some(vars::ALLOCSHIM_TRIM_INTERVAL.as_bytes()), preset);
    }
    for &(_, name, var, tunable, value) in LOW_MEMORY {
        options::name(out, name);
        let user = user(env, var, tunable);
        match user {
            Some(v) if v == var => out.bytes(env.get(v.as_bytes()).unwrap_or(b"?")),
            Some(_) => out.str("as tuned"),
            None if preset == Preset::LowMemory => out.num(value as u64),
            None => out.str("8-per-core"), // glibc's default on 64-bit
        };
        options::source(out, user.map(str::as_bytes), preset);
    }
}
