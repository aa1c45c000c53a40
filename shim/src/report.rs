//! Everything the library prints: warnings, the verbose start line, exit statistics.
//! All of it is assembled in fixed stack buffers (`allocshim_select::line`) and
//! written with raw `write(2)`.
use allocshim_select::line::{warn, Line};
use allocshim_select::preset::Preset;

use crate::backend::{Backend, BackendExt};

/// `ALLOCSHIM_VERBOSE=1`: which backend, its version, and why.
pub fn verbose_choice(backend: Backend, reason: &[u8]) {
    let mut l = Line::new();
    l.str("backend ").bytes(backend.name().to_bytes()).str(" ").bytes(backend.version().to_bytes());
    l.str(" (").bytes(reason).str(")");
    warn(&l);
}

/// `ALLOCSHIM_VERBOSE=1` with `ALLOCSHIM_PRESET` set: the preset and the backend's
/// effective options, each with where it came from.
pub fn verbose_options(preset: Preset, options: &[u8]) {
    let mut l = Line::new();
    l.str("preset ").bytes(preset.name().to_bytes()).str(": ").bytes(options);
    warn(&l);
}

/// `ALLOCSHIM_STATS=1`, at exit: backend, peak RSS, the backend's own figures.
pub fn exit_stats(backend: Backend) {
    let mut l = Line::new();
    l.str("stats: backend ").bytes(backend.name().to_bytes()).str(", peak RSS ");
    l.size(peak_rss());
    // SAFETY: `backend` is `init::chosen()` (the one caller is init's destructor,
    // after READY): the backend the selection started, which is what `usage` expects.
    let usage = unsafe { backend.usage() };
    if let Some(a) = usage.allocated {
        l.str(", allocated ").size(a as u64);
    }
    if let Some(r) = usage.resident {
        l.str(", resident ").size(r as u64);
    }
    warn(&l);
}

pub fn peak_rss() -> u64 {
    // SAFETY: rusage is plain C data (integers and timevals), for which all zeroes is
    // a valid value.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: getrusage only writes the `rusage` it is given, a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss.max(0) as u64 * 1024
}
