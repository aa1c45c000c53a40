//! `ALLOCSHIM_PRESET`: a named set of allocator options, applied by the library to
//! whichever backend serves the process. Only the name and its parsing live here (the
//! library and the `allocshim` command must agree on them); the options each preset
//! sets, per backend, are the library's (shim/src/preset.rs).
//!
//! Unset, empty or `default`: nothing changes. `low-memory`: options that keep the
//! resident memory of long-running threaded servers down. Any other value gets one
//! warning naming it and is treated as `default`. In secure mode nothing is read.
use core::ffi::CStr;

use crate::env::{number, secure_mode, Env};
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

/// The low-memory preset's trimming interval under glibc, in milliseconds.
pub const TRIM_INTERVAL_MS: u32 = 1000;
/// The shortest interval `ALLOCSHIM_TRIM_INTERVAL` takes (0 aside): 0.01 s. Each trim
/// takes glibc's arena locks, so a helper waking more often would mostly contend.
pub const TRIM_INTERVAL_MIN_MS: u32 = 10;
/// The longest interval `ALLOCSHIM_TRIM_INTERVAL` takes: an hour.
pub const TRIM_INTERVAL_MAX_MS: u32 = 3_600_000;

/// Milliseconds between two trims of glibc's heaps under `preset` (0: none): the
/// preset's interval, or `ALLOCSHIM_TRIM_INTERVAL`'s seconds (`0` turns trimming off;
/// up to three decimals, e.g. `0.2`). A value that is not a number of seconds from
/// 0.01 to an hour gets one warning and the preset's interval. Nothing is read in
/// secure mode or without the low-memory preset.
pub fn trim_interval<'a>(env: &Env<'a>, preset: Preset, warn: &mut dyn FnMut(&Warning<'a>)) -> u32 {
    if preset != Preset::LowMemory || secure_mode() {
        return 0;
    }
    let Some(raw) = env.get(ALLOCSHIM_TRIM_INTERVAL) else { return TRIM_INTERVAL_MS };
    let value = raw.trim_ascii();
    if value.is_empty() {
        return TRIM_INTERVAL_MS;
    }
    millis(value).filter(|&ms| ms == 0 || (TRIM_INTERVAL_MIN_MS..=TRIM_INTERVAL_MAX_MS).contains(&ms)).unwrap_or_else(|| {
        warn(&Warning::NotSeconds { var: ALLOCSHIM_TRIM_INTERVAL, value: raw, min_ms: TRIM_INTERVAL_MIN_MS, max_ms: TRIM_INTERVAL_MAX_MS });
        TRIM_INTERVAL_MS
    })
}

/// `SECONDS[.FRACTION]` (at most 4 and 3 digits; "1." and ".5" are not numbers) as
/// milliseconds.
fn millis(value: &[u8]) -> Option<u32> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b"0"[..]),
    };
    if whole.len() > 4 || fraction.is_empty() || fraction.len() > 3 {
        return None;
    }
    let scale = 10u64.pow(3 - fraction.len() as u32);
    u32::try_from(number(whole)? * 1000 + number(fraction)? * scale).ok()
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
    fn trim_interval_reads_seconds_to_the_millisecond_and_warns_about_the_rest() {
        assert_eq!(interval(None, Preset::LowMemory), (1000, None));
        assert_eq!(interval(Some(""), Preset::LowMemory), (1000, None));
        assert_eq!(interval(Some(" 10 "), Preset::LowMemory), (10_000, None));
        assert_eq!(interval(Some("0"), Preset::LowMemory), (0, None));
        assert_eq!(interval(Some("0.0"), Preset::LowMemory), (0, None));
        assert_eq!(interval(Some("3600"), Preset::LowMemory), (3_600_000, None));
        assert_eq!(interval(Some("1.5"), Preset::LowMemory), (1500, None));
        assert_eq!(interval(Some("0.2"), Preset::LowMemory), (200, None));
        assert_eq!(interval(Some("0.05"), Preset::LowMemory), (50, None));
        assert_eq!(interval(Some("0.01"), Preset::LowMemory), (10, None));
        assert_eq!(interval(Some("0.125"), Preset::LowMemory), (125, None));
        let want = "ignoring ALLOCSHIM_TRIM_INTERVAL=\"0.001\": expected seconds from 0.01 to 3600, such as 1 or 0.2, or 0 (off)";
        assert_eq!(interval(Some("0.001"), Preset::LowMemory), (1000, Some(want.into())), "below the shortest");
        for bad in ["3600.001", "3601", "-1", "1.", ".5", "0.1234", "1,5", "1s", "fast", "1.2.3"] {
            let (n, warned) = interval(Some(bad), Preset::LowMemory);
            assert_eq!(n, 1000, "{bad}");
            assert!(warned.is_some_and(|w| w.contains(&format!("=\"{bad}\""))), "{bad}: one warning naming it");
        }
        assert_eq!(interval(Some("10"), Preset::Default), (0, None), "no preset, no trimming, nothing read");
    }
}
