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
use crate::vars::{ALLOCSHIM_PRESET, ALLOCSHIM_TRIM_INTERVAL};

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

/// The low-memory preset's trimming interval under glibc, in seconds.
pub const TRIM_INTERVAL_S: u32 = 1;
/// The largest interval `ALLOCSHIM_TRIM_INTERVAL` takes: an hour.
pub const TRIM_INTERVAL_MAX_S: u32 = 3600;

/// Seconds between two trims of glibc's heaps under `preset` (0: none): the preset's
/// interval, or `ALLOCSHIM_TRIM_INTERVAL`'s whole seconds (0 turns trimming off). A
/// value that is not a number from 0 to an hour gets one warning and the preset's
/// interval. Nothing is read in secure mode or without the low-memory preset.
pub fn trim_interval<'a>(env: &Env<'a>, preset: Preset, warn: &mut dyn FnMut(&Warning<'a>)) -> u32 {
    if preset != Preset::LowMemory || secure_mode() {
        return 0;
    }
    let Some(raw) = env.get(ALLOCSHIM_TRIM_INTERVAL) else { return TRIM_INTERVAL_S };
    let value = raw.trim_ascii();
    if value.is_empty() {
        return TRIM_INTERVAL_S;
    }
    let parsed = (value.len() <= 4 && value.iter().all(u8::is_ascii_digit))
        .then(|| value.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
        .filter(|&n| n <= TRIM_INTERVAL_MAX_S);
    parsed.unwrap_or_else(|| {
        warn(&Warning::NotSeconds { var: ALLOCSHIM_TRIM_INTERVAL, value: raw, max: TRIM_INTERVAL_MAX_S });
        TRIM_INTERVAL_S
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(value: Option<&str>, preset: Preset) -> (u32, Option<std::string::String>) {
        let entry = value.map(|v| std::ffi::CString::new(format!("{ALLOCSHIM_TRIM_INTERVAL}={v}")).unwrap());
        let entries: std::vec::Vec<&core::ffi::CStr> = entry.iter().map(|c| c.as_c_str()).collect();
        let env = Env::from_entries(&entries);
        let mut warned = None;
        let n = trim_interval(&env, preset, &mut |w| warned = Some(std::string::String::from_utf8_lossy(w.line().as_bytes()).into_owned()));
        (n, warned)
    }

    #[test]
    fn trim_interval_reads_whole_seconds_and_warns_about_the_rest() {
        assert_eq!(interval(None, Preset::LowMemory), (1, None));
        assert_eq!(interval(Some(""), Preset::LowMemory), (1, None));
        assert_eq!(interval(Some(" 10 "), Preset::LowMemory), (10, None));
        assert_eq!(interval(Some("0"), Preset::LowMemory), (0, None));
        assert_eq!(interval(Some("3600"), Preset::LowMemory), (3600, None));
        let want = "ignoring ALLOCSHIM_TRIM_INTERVAL=\"1.5\": expected whole seconds from 0 (off) to 3600";
        assert_eq!(interval(Some("1.5"), Preset::LowMemory), (1, Some(want.into())));
        assert_eq!(interval(Some("3601"), Preset::LowMemory).0, 1);
        assert_eq!(interval(Some("-1"), Preset::LowMemory).0, 1);
        assert_eq!(interval(Some("10"), Preset::Default), (0, None), "no preset, no trimming, nothing read");
    }
}
