//! `ALLOCSHIM_PRESET=low-memory`: the options it sets in each backend, how the user's
//! own options keep winning one by one, and the report of the effective options
//! (read back from the backend where it can tell) with where each came from.
//!
//! The values and the measurements behind them: docs/servers.md.
//!
//! Everything here runs in the selecting thread, before the choice is published
//! (init.rs), and allocates nothing.
use core::ffi::{c_char, c_int, c_long};

use allocshim_select::preset::Preset;
use allocshim_select::vars;

use crate::backend::Backend;
use crate::env::Env;
use crate::once::{c_string, SelectionCell};
use crate::report::Line;

/// jemalloc, in `MALLOC_CONF` syntax (each name is read back in `describe_jemalloc`).
/// One arena per CPU the process may really use (affinity and cgroup quota, not the
/// host's CPUs, of which jemalloc's default makes 4 arenas each); freed pages go back
/// to the OS after 1 s instead of 10 s (muzzy 0: with a real MADV_DONTNEED, not a lazy
/// MADV_FREE that RSS still counts), and the background thread does that purging even
/// while the server is idle (otherwise decay only advances on allocation). Purging at
/// once (`dirty_decay_ms:0`) halved RSS again on the soaks but cost 25-55 % more CPU per
/// request, in pages faulted back in (docs/servers.md).
const JEMALLOC: &[(&str, Value)] = &[
    ("narenas", Value::Cpus),
    ("dirty_decay_ms", Value::Fixed("1000")),
    ("muzzy_decay_ms", Value::Fixed("0")),
    ("background_thread", Value::Fixed("true")),
];

/// A preset option's value: written as is, or computed when the preset is applied.
enum Value {
    Fixed(&'static str),
    /// The CPUs this process may use (`cpus::effective`).
    Cpus,
}

/// mimalloc: (option name as `MIMALLOC_<NAME>` spells it, its legacy name, index in
/// `mi_option_t` (the same in 2.x and 3.x for these), low-memory value).
const MIMALLOC: &[(&str, Option<&str>, c_int, c_long)] = &[("purge_delay", Some("reset_delay"), 15, 0), ("arena_purge_mult", None, 24, 1)];

/// glibc: (`mallopt` parameter, name, the environment variable and the tunable a user
/// sets it with, low-memory value).
const GLIBC: &[(c_int, &str, &str, &str, c_int)] = &[(M_ARENA_MAX, "arena_max", vars::MALLOC_ARENA_MAX, "glibc.malloc.arena_max", 2)];

const M_ARENA_MAX: c_int = -8; // <malloc.h>

static PRESET: SelectionCell<Preset> = SelectionCell::new(Preset::Default);
/// The same, NUL-terminated, for the query API.
static OPTIONS_C: SelectionCell<[u8; 512]> = SelectionCell::new([0; 512]);
/// "PRESET,MALLOC_CONF\0" for jemalloc: later pairs override earlier ones.
static JEMALLOC_CONF: SelectionCell<[u8; 1024]> = SelectionCell::new([0; 1024]);

/// The preset in force and the effective options, as `init` recorded them.
pub fn preset() -> Preset {
    crate::init::chosen();
    // SAFETY: after `init::chosen()`, which orders this read after the selection's
    // writes (see there).
    unsafe { *PRESET.get() }
}

pub fn options_c() -> *const c_char {
    crate::init::chosen();
    // SAFETY: as in `preset`. The pointer stays valid: the cell is a static.
    unsafe { OPTIONS_C.get().as_ptr().cast() }
}

/// Records the preset and the effective options of the started backend (for the
/// query API), and returns the options' text (for the verbose line).
///
/// # Safety
/// Only from the selecting thread, after `backend` started, before the choice is published.
pub unsafe fn record(backend: Backend, env: &Env, preset: Preset) -> Line {
    let mut out = Line::new();
    (crate::backend::descriptor(backend).describe)(env, preset, &mut out);
    // SAFETY: the selecting thread before the choice is published (our caller's
    // contract); each reference is the only one to its cell while it is used.
    unsafe {
        *PRESET.get_mut() = preset;
        c_string(OPTIONS_C.get_mut(), out.as_bytes());
    }
    out
}

fn source(out: &mut Line, user: Option<&[u8]>, preset: Preset) {
    out.str(" (");
    match user {
        Some(var) => out.bytes(var),
        None if preset != Preset::Default => out.str("preset ").bytes(preset.name().to_bytes()),
        None => out.str("default"),
    };
    out.str(")");
}

fn sep(out: &mut Line) {
    if !out.is_empty() {
        out.str(", ");
    }
}

// ---------------------------------------------------------------------------------
// jemalloc

/// What jemalloc's `_rjem_malloc_conf` should point at: the user's `MALLOC_CONF` as
/// it is without a preset or profiling; with them, the preset's options, then the
/// profiler's (`profiling`, from backend/jemalloc/profile.rs), then the user's, so
/// that the user's win option by option. (`_RJEM_MALLOC_CONF` is read later still.)
///
/// # Safety
/// Only from the selecting thread, before the choice is published.
pub unsafe fn jemalloc_conf(env: &Env, preset: Preset, profiling: Option<&[u8]>) -> Option<*const c_char> {
    if preset == Preset::Default && profiling.is_none() {
        return env.get_c(vars::MALLOC_CONF);
    }
    // An empty MALLOC_CONF sets nothing (and must not leave a trailing comma).
    let user = env.get(vars::MALLOC_CONF).filter(|u| !u.is_empty());
    // SAFETY: the selecting thread before the choice is published (our caller's
    // contract); jemalloc reads the string only after this returns.
    let buf = unsafe { JEMALLOC_CONF.get_mut() };
    let mut n = 0;
    let mut put = |s: &[u8]| {
        let fits = n + s.len() < buf.len(); // keeps room for the final NUL
        if fits {
            buf[n..n + s.len()].copy_from_slice(s);
            n += s.len();
        }
        fits
    };
    let mut ok = true;
    let pairs = if preset == Preset::Default { &[][..] } else { JEMALLOC };
    let mut first = true;
    for (name, value) in pairs {
        let mut digits = Line::new();
        let value = match value {
            Value::Fixed(v) => v.as_bytes(),
            Value::Cpus => digits.num(u64::from(crate::cpus::effective())).as_bytes(),
        };
        ok &= put(if first { b"" } else { b"," }) && put(name.as_bytes()) && put(b":") && put(value);
        first = false;
    }
    for more in profiling.into_iter().chain(user) {
        ok &= put(if first { b"" } else { b"," }) && put(more);
        first = false;
    }
    if !ok {
        let mut l = Line::new();
        l.str("MALLOC_CONF is too long to combine with ALLOCSHIM_PRESET or ALLOCSHIM_PROFILE; jemalloc uses MALLOC_CONF alone");
        crate::report::warn(&l);
        return env.get_c(vars::MALLOC_CONF);
    }
    buf[n] = 0;
    Some(buf.as_ptr().cast())
}

/// The last of jemalloc's configuration variables that sets `name`: `confs` holds each
/// variable with its value, in the order jemalloc lets them win (read once per start).
fn jemalloc_user(confs: &[(&'static str, Option<&[u8]>); 2], name: &str) -> Option<&'static [u8]> {
    let sets = |conf: &[u8]| conf.split(|&b| b == b',').any(|pair| pair.split(|&b| b == b':').next() == Some(name.as_bytes()));
    confs.iter().find(|(_, value)| value.is_some_and(sets)).map(|(var, _)| var.as_bytes())
}

/// jemalloc's effective values, read back from its option variables.
/// snmalloc has no run-time options: nothing to describe but that.
pub(crate) fn describe_snmalloc(_env: &Env, _preset: Preset, out: &mut Line) {
    out.str("none (snmalloc has no run-time options)");
}

#[inline(never)]
#[link_section = ".allocshim.cold"] // code no `system` start-up runs: shim/build.rs
pub(crate) fn describe_jemalloc(env: &Env, preset: Preset, out: &mut Line) {
    extern "C" {
        // jemalloc.c's option variables (`unsigned`, `ssize_t`, `ssize_t`, `bool`).
        static _rjem_je_opt_narenas: u32;
        static _rjem_je_opt_dirty_decay_ms: isize;
        static _rjem_je_opt_muzzy_decay_ms: isize;
        static _rjem_je_opt_background_thread: bool;
    }
    let confs = [(vars::RJEM_MALLOC_CONF, env.get(vars::RJEM_MALLOC_CONF)), (vars::MALLOC_CONF, env.get(vars::MALLOC_CONF))];
    for (opt, _) in JEMALLOC {
        sep(out);
        out.str(opt).str("=");
        // Read from the option variables linked into this library, not with
        // mallctl("opt.NAME"): its first call builds jemalloc's whole control tree,
        // some 200 k instructions at every start-up (rebind.rs reads zero_realloc the
        // same way). SAFETY: variables of these C types, written by jemalloc while it
        // parsed its options, which are final once it started (`record` runs after
        // `start`); nothing writes them any more. Volatile: their values are jemalloc's.
        unsafe {
            use core::ptr::{addr_of, read_volatile};
            match *opt {
                "narenas" => out.num(u64::from(read_volatile(addr_of!(_rjem_je_opt_narenas)))),
                "dirty_decay_ms" => signed(out, read_volatile(addr_of!(_rjem_je_opt_dirty_decay_ms)) as i64),
                "muzzy_decay_ms" => signed(out, read_volatile(addr_of!(_rjem_je_opt_muzzy_decay_ms)) as i64),
                "background_thread" => out.str(if read_volatile(addr_of!(_rjem_je_opt_background_thread)) { "true" } else { "false" }),
                _ => out.str("?"),
            };
        }
        source(out, jemalloc_user(&confs, opt), preset);
    }
}

fn signed(out: &mut Line, v: i64) -> &mut Line {
    if v < 0 {
        out.str("-");
    }
    out.num(v.unsigned_abs())
}

// ---------------------------------------------------------------------------------
// mimalloc

/// `MIMALLOC_<NAME>` (upper case) for an option name, in `buf`.
fn mimalloc_var<'a>(buf: &'a mut [u8; 64], name: &str) -> &'a [u8] {
    let prefix = vars::MIMALLOC_OPTION_PREFIX.as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    for (i, c) in name.bytes().enumerate() {
        buf[prefix.len() + i] = c.to_ascii_uppercase();
    }
    &buf[..prefix.len() + name.len()]
}

/// The variable that sets mimalloc option `name` (or its legacy name), if any: those
/// win over the preset because mimalloc reads them after `mi_option_set_default`.
fn mimalloc_user(env: &Env, name: &str, legacy: Option<&str>) -> Option<Line> {
    for n in core::iter::once(name).chain(legacy) {
        let mut buf = [0u8; 64];
        let var = mimalloc_var(&mut buf, n);
        if env.get(var).is_some() {
            let mut l = Line::new();
            l.bytes(var);
            return Some(l);
        }
    }
    None
}

/// Sets the preset's values as mimalloc's defaults. Must run before mimalloc's process
/// init, which reads `MIMALLOC_*` and so lets every variable the user set win.
///
/// # Safety
/// Before mimalloc is initialised, from the selecting thread.
pub unsafe fn mimalloc_defaults(preset: Preset) {
    if preset == Preset::LowMemory {
        for &(_, _, index, value) in MIMALLOC {
            // SAFETY: `index` is a valid `mi_option_t` (the table's); before mimalloc
            // is initialised, in the selecting thread (our caller's contract), nothing
            // else reads or writes the option meanwhile.
            unsafe { libmimalloc_sys::mi_option_set_default(index, value) };
        }
    }
}

/// mimalloc's effective values, read back with `mi_option_get`.
#[inline(never)]
#[link_section = ".allocshim.cold"] // code no `system` start-up runs: shim/build.rs
pub(crate) fn describe_mimalloc(env: &Env, preset: Preset, out: &mut Line) {
    for &(name, legacy, index, _) in MIMALLOC {
        sep(out);
        out.str(name).str("=");
        // SAFETY: `index` is a valid `mi_option_t` (the table's, the same in mimalloc
        // 2.x and 3.x); mi_option_get only reads the option (reading it from the
        // environment first if that has not happened yet).
        signed(out, unsafe { libmimalloc_sys::mi_option_get(index) } as i64);
        source(out, mimalloc_user(env, name, legacy).as_ref().map(Line::as_bytes), preset);
    }
}

// ---------------------------------------------------------------------------------
// glibc

extern "C" {
    // glibc's; the shim does not define mallopt, so this binds to glibc.
    fn mallopt(param: c_int, value: c_int) -> c_int;
}

/// What the user set for a glibc option: its environment variable, or the tunable in
/// `GLIBC_TUNABLES`. glibc applies those itself; the preset must not override them.
fn glibc_user(env: &Env, var: &'static str, tunable: &str) -> Option<&'static str> {
    if env.get(var.as_bytes()).is_some() {
        return Some(var);
    }
    let tunables = env.get(vars::GLIBC_TUNABLES)?;
    let set = tunables.split(|&b| b == b':').any(|t| t.split(|&b| b == b'=').next() == Some(tunable.as_bytes()));
    set.then_some(vars::GLIBC_TUNABLES)
}

/// Applies the preset to glibc's malloc with `mallopt`, at load time (before the
/// program starts threads), skipping every option the user set.
///
/// # Safety
/// From the selecting thread.
pub unsafe fn glibc_apply(env: &Env, preset: Preset) {
    if preset != Preset::LowMemory {
        return;
    }
    crate::trimmer::want(allocshim_select::preset::trim_interval(env, preset, &mut |w| w.print()));
    for &(param, _, var, tunable, value) in GLIBC {
        if glibc_user(env, var, tunable).is_none() {
            // SAFETY: mallopt takes plain integers (a known parameter and a positive
            // value) and takes glibc's arena lock itself.
            unsafe { mallopt(param, value) };
        }
    }
}

pub(crate) fn describe_glibc(env: &Env, preset: Preset, out: &mut Line) {
    // glibc has no getter for these: the report says what was set, and by whom.
    if preset == Preset::LowMemory {
        // Read again, silently: the warning, if any, was printed when it was applied.
        let mut ignored = false;
        let every = allocshim_select::preset::trim_interval(env, preset, &mut |_| ignored = true);
        match every {
            0 => out.str("trim=off"),
            s => out.str("trim=every ").num(u64::from(s)).str(" s"),
        };
        let set = env.get(vars::ALLOCSHIM_TRIM_INTERVAL).is_some_and(|v| !v.trim_ascii().is_empty()) && !ignored;
        source(out, set.then_some(vars::ALLOCSHIM_TRIM_INTERVAL.as_bytes()), preset);
    }
    for &(_, name, var, tunable, value) in GLIBC {
        sep(out);
        out.str(name).str("=");
        let user = glibc_user(env, var, tunable);
        match user {
            Some(v) if v == var => out.bytes(env.get(v.as_bytes()).unwrap_or(b"?")),
            Some(_) => out.str("as tuned"),
            None if preset == Preset::LowMemory => out.num(value as u64),
            None => out.str("8-per-core"), // glibc's default on 64-bit
        };
        source(out, user.map(str::as_bytes), preset);
    }
}
