//! jemalloc's options: the string its compiled-in `malloc_conf` points at (the
//! low-memory preset's options, then the profiler's, then the user's `MALLOC_CONF`,
//! so that the user's win one by one), and the effective values read back for the
//! report (`crate::options`), with where each came from.
//!
//! Everything here runs in the selecting thread, before the choice is published
//! (init.rs), or, for the report, after jemalloc started; nothing allocates.
use core::ffi::c_char;

use allocshim_select::env::Env;
use allocshim_select::line::{warn, Line};
use allocshim_select::preset::Preset;
use allocshim_select::vars;

use crate::once::SelectionCell;
use crate::options;

/// The low-memory preset, in `MALLOC_CONF` syntax (each name is read back in
/// [`describe`]). One arena per CPU the process may really use (affinity and cgroup
/// quota, not the host's CPUs, of which jemalloc's default makes 4 arenas each); freed
/// pages go back to the OS after 1 s instead of 10 s (muzzy 0: with a real
/// MADV_DONTNEED, not a lazy MADV_FREE that RSS still counts), and the background
/// thread does that purging even while the server is idle (otherwise decay only
/// advances on allocation). Purging at once (`dirty_decay_ms:0`) halved RSS again on
/// the soaks but cost 25-55 % more CPU per request, in pages faulted back in
/// (docs/servers.md).
const LOW_MEMORY: &[(&str, Value)] = &[
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

/// "PRESET,PROFILER,MALLOC_CONF\0": later pairs override earlier ones.
static MERGED: SelectionCell<[u8; 1024]> = SelectionCell::new([0; 1024]);

/// What jemalloc's `_rjem_malloc_conf` should point at: the user's `MALLOC_CONF` as
/// it is without a preset or profiling; with them, the preset's options, then the
/// profiler's (`profiling`, from profile.rs), then the user's, so that the user's win
/// option by option. (`_RJEM_MALLOC_CONF` is read later still.)
///
/// # Safety
/// Only from the selecting thread, before the choice is published.
pub unsafe fn merged(env: &Env, preset: Preset, profiling: Option<&[u8]>) -> Option<*const c_char> {
    if preset == Preset::Default && profiling.is_none() {
        return env.get_c(vars::MALLOC_CONF);
    }
    // An empty MALLOC_CONF sets nothing (and must not leave a trailing comma).
    let user = env.get(vars::MALLOC_CONF).filter(|u| !u.is_empty());
    // SAFETY: the selecting thread before the choice is published (our caller's
    // contract); jemalloc reads the string only after this returns.
    let buf = unsafe { MERGED.get_mut() };
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
    let pairs = if preset == Preset::Default { &[][..] } else { LOW_MEMORY };
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
        warn(&l);
        return env.get_c(vars::MALLOC_CONF);
    }
    buf[n] = 0;
    Some(buf.as_ptr().cast())
}

/// The last of jemalloc's configuration variables that sets `name`: `confs` holds each
/// variable with its value, in the order jemalloc lets them win (read once per start).
fn user(confs: &[(&'static str, Option<&[u8]>); 2], name: &str) -> Option<&'static [u8]> {
    let sets = |conf: &[u8]| conf.split(|&b| b == b',').any(|pair| pair.split(|&b| b == b':').next() == Some(name.as_bytes()));
    confs.iter().find(|(_, value)| value.is_some_and(sets)).map(|(var, _)| var.as_bytes())
}

/// jemalloc's effective values of the preset's options, read back from its option
/// variables.
#[inline(never)]
#[link_section = ".allocshim.jemalloc"] // with jemalloc's own code: shim/build.rs
pub fn describe(env: &Env, preset: Preset, out: &mut Line) {
    extern "C" {
        // jemalloc.c's option variables (`unsigned`, `ssize_t`, `ssize_t`, `bool`).
        static _rjem_je_opt_narenas: u32;
        static _rjem_je_opt_dirty_decay_ms: isize;
        static _rjem_je_opt_muzzy_decay_ms: isize;
        static _rjem_je_opt_background_thread: bool;
    }
    let confs = [(vars::RJEM_MALLOC_CONF, env.get(vars::RJEM_MALLOC_CONF)), (vars::MALLOC_CONF, env.get(vars::MALLOC_CONF))];
    for (opt, _) in LOW_MEMORY {
        options::name(out, opt);
        // Read from the option variables linked into this library, not with
        // mallctl("opt.NAME"): its first call builds jemalloc's whole control tree,
        // some 200 k instructions at every start-up (`frees_on_zero_realloc` in
        // jemalloc.rs reads zero_realloc the same way). SAFETY: variables of these C
        // types, written by jemalloc while it parsed its options, which are final once
        // it started (the report is made after `start`); nothing writes them any more.
        // Volatile: their values are jemalloc's.
        unsafe {
            use core::ptr::{addr_of, read_volatile};
            match *opt {
                "narenas" => out.num(u64::from(read_volatile(addr_of!(_rjem_je_opt_narenas)))),
                "dirty_decay_ms" => options::signed(out, read_volatile(addr_of!(_rjem_je_opt_dirty_decay_ms)) as i64),
                "muzzy_decay_ms" => options::signed(out, read_volatile(addr_of!(_rjem_je_opt_muzzy_decay_ms)) as i64),
                "background_thread" => out.str(if read_volatile(addr_of!(_rjem_je_opt_background_thread)) { "true" } else { "false" }),
                _ => out.str("?"),
            };
        }
        options::source(out, user(&confs, opt), preset);
    }
}
