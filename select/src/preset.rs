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
use crate::rules::Warning;
use crate::vars::ALLOCSHIM_PRESET;

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

    /// The names of all presets, as `ALLOCSHIM_PRESET` takes them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL_PRESETS.into_iter().map(|p| p.name().to_str().unwrap_or("?"))
    }

    /// The preset called `name` (any case, surrounding blanks ignored).
    pub fn from_name(name: &[u8]) -> Option<Preset> {
        let name = name.trim_ascii();
        ALL_PRESETS.into_iter().find(|p| name.eq_ignore_ascii_case(p.name().to_bytes()))
    }
}

/// The preset this environment asks for. Unset or empty: `Default`, silently; a name
/// that means nothing: `Default`, with one warning.
pub fn read<'a>(env: &Env<'a>, warn: &mut dyn FnMut(&Warning<'a>)) -> Preset {
    if secure_mode() {
        return Preset::Default;
    }
    let Some(raw) = env.get(ALLOCSHIM_PRESET) else { return Preset::Default };
    if raw.trim_ascii().is_empty() {
        return Preset::Default;
    }
    Preset::from_name(raw).unwrap_or_else(|| {
        warn(&Warning::UnknownPreset { value: raw });
        Preset::Default
    })
}
