//! `ALLOCSHIM_PRESET`: a named set of allocator options, applied by the library to
//! whichever backend serves the process. Only the name and its parsing live here (the
//! library and the `allocshim` command must agree on them); the options each preset
//! sets, per backend, are the library's (shim/src/preset.rs).
//!
//! Unset, empty or `default`: nothing changes. `low-memory`: options that keep the
//! resident memory of long-running threaded servers down. Any other value gets one
//! warning naming it and is treated as `default`. In secure mode nothing is read.
use core::ffi::CStr;

use crate::env::{secure_mode, Env};
use crate::line::Line;
use crate::rules::bad_value;

pub const PRESET_VAR: &[u8] = b"ALLOCSHIM_PRESET";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Preset {
    Default,
    LowMemory,
}

pub const ALL_PRESETS: [Preset; 2] = [Preset::Default, Preset::LowMemory];

impl Preset {
    /// A C string, as the library's query API hands it out.
    pub const fn name(self) -> &'static CStr {
        match self {
            Preset::Default => c"default",
            Preset::LowMemory => c"low-memory",
        }
    }

    /// The preset called `name` (any case, surrounding blanks ignored).
    pub fn from_name(name: &[u8]) -> Option<Preset> {
        let name = name.trim_ascii();
        ALL_PRESETS.into_iter().find(|p| name.eq_ignore_ascii_case(p.name().to_bytes()))
    }
}

/// The preset this environment asks for. Unset or empty: `Default`, silently; a name
/// that means nothing: `Default`, with one warning.
pub fn read(env: &Env, warn: &mut dyn FnMut(&Line)) -> Preset {
    if secure_mode() {
        return Preset::Default;
    }
    let Some(raw) = env.get(PRESET_VAR) else { return Preset::Default };
    if raw.trim_ascii().is_empty() {
        return Preset::Default;
    }
    Preset::from_name(raw).unwrap_or_else(|| {
        let mut l = bad_value(PRESET_VAR, raw);
        l.str("expected one of");
        for (i, p) in ALL_PRESETS.into_iter().enumerate() {
            l.str(if i == 0 { " " } else { ", " }).bytes(p.name().to_bytes());
        }
        warn(&l);
        Preset::Default
    })
}
