//! Choosing the backend from the environment: the rules, and nothing else.
//!
//! 1. `ALLOCSHIM_BACKEND=<name>` wins (case-insensitive, surrounding blanks ignored;
//!    empty means unset).
//! 2. Else the buildpack switches `JEMALLOC_ENABLED`, `MIMALLOC_ENABLED`,
//!    `SNMALLOC_ENABLED`: true/1/yes/on turn one on, false/0/no/off/empty mean off.
//!    Several on: the first in `backend::ALL` order wins, with one warning.
//! 3. Else `system`.
//! A value that means nothing gets a warning naming it and is treated as unset.
use crate::env::{secure_mode, Env};
use crate::line::Line;
use crate::{Backend, ALL};

pub const BACKEND_VAR: &[u8] = b"ALLOCSHIM_BACKEND";

pub struct Choice {
    pub backend: Backend,
    /// Which variable decided, e.g. `JEMALLOC_ENABLED=true`; empty when none did.
    pub reason: Line,
}

pub fn choose(env: &Env, warn: &mut dyn FnMut(&Line)) -> Choice {
    if let Some(raw) = env.get(BACKEND_VAR) {
        let value = trim(raw);
        if !value.is_empty() {
            match Backend::from_name(value) {
                Some(backend) => return Choice { backend, reason: assignment(BACKEND_VAR, raw) },
                None => {
                    let mut l = bad_value(BACKEND_VAR, raw);
                    l.str("expected one of");
                    for (i, b) in ALL.into_iter().enumerate() {
                        l.str(if i == 0 { " " } else { ", " }).bytes(b.name().to_bytes());
                    }
                    warn(&l);
                }
            }
        }
    }

    let mut chosen: Option<(Backend, &[u8])> = None;
    let mut ignored = Line::new();
    for backend in ALL {
        let Some(var) = backend.enable_var() else { continue };
        let Some(raw) = env.get(var) else { continue };
        match switch(raw) {
            Some(true) if chosen.is_none() => chosen = Some((backend, raw)),
            Some(true) => {
                ignored.str(if ignored.is_empty() { "" } else { ", " }).bytes(var);
            }
            Some(false) => {}
            None => {
                let mut l = bad_value(var, raw);
                l.str("expected true, 1, yes, on (enable) or false, 0, no, off, empty (disable), in any case");
                warn(&l);
            }
        }
    }
    match chosen {
        Some((backend, raw)) => {
            let var = backend.enable_var().unwrap_or_default();
            if !ignored.is_empty() {
                let mut l = Line::new();
                l.str("several allocators enabled; using ")
                    .bytes(backend.name().to_bytes())
                    .str(" (")
                    .bytes(var)
                    .str("), ignoring ")
                    .bytes(ignored.as_bytes())
                    .str(" (precedence: jemalloc, mimalloc, snmalloc; ALLOCSHIM_BACKEND overrides)");
                warn(&l);
            }
            Choice { backend, reason: assignment(var, raw) }
        }
        None => Choice { backend: Backend::System, reason: Line::new() },
    }
}

/// Some(on) for a recognised switch value, None for anything else.
fn switch(raw: &[u8]) -> Option<bool> {
    let v = trim(raw);
    const ON: [&[u8]; 4] = [b"true", b"1", b"yes", b"on"];
    const OFF: [&[u8]; 5] = [b"false", b"0", b"no", b"off", b""];
    if ON.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if OFF.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn assignment(var: &[u8], raw: &[u8]) -> Line {
    let mut l = Line::new();
    l.bytes(var).str("=").bytes(raw);
    l
}

pub(crate) fn bad_value(var: &[u8], raw: &[u8]) -> Line {
    let mut l = Line::new();
    l.str("ignoring ").bytes(var).str("=\"").bytes(raw).str("\": ");
    l
}

/// The whole decision for a process: in secure mode (setuid/setgid, AT_SECURE) no
/// variable is read and the answer is `system`; otherwise [`choose`].
pub fn decide(env: &Env, warn: &mut dyn FnMut(&Line)) -> Choice {
    if secure_mode() {
        let mut reason = Line::new();
        reason.str("secure mode (setuid/setgid): configuration not read");
        return Choice { backend: Backend::System, reason };
    }
    let mut choice = choose(env, warn);
    if choice.reason.is_empty() {
        choice.reason.str("default: no allocator variable set");
    }
    choice
}

/// `ALLOCSHIM_VERBOSE` and `ALLOCSHIM_STATS`: set and not empty, `0` or `false`.
pub fn flag(v: Option<&[u8]>) -> bool {
    matches!(v.map(|v| v.trim_ascii()), Some(v) if !v.is_empty() && v != b"0" && !v.eq_ignore_ascii_case(b"false"))
}
