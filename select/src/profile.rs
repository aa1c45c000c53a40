//! `ALLOCSHIM_PROFILE`: jemalloc's heap profiler, on in this process. Only the value's
//! grammar and the rule that it implies jemalloc live here: the library (which turns
//! the profiler on), and the `allocshim` command (`enabled`, `preload --if-enabled`,
//! `profile --dump PID`) must read it alike. What the library does with it:
//! shim/src/backend/jemalloc/profile.rs; for users: docs/profiling.md.
//!
//! The value is a directory, then options, separated by commas:
//!
//! ```text
//! ALLOCSHIM_PROFILE=/tmp/prof                      dumps at exit and on growth, on demand by signal
//! ALLOCSHIM_PROFILE=/tmp/prof,every=10m,growth=50,signal=RTMIN+7
//! ALLOCSHIM_PROFILE=1                              the same into /tmp/allocshim-profile
//! ```
//!
//! `every=DURATION` (`90`, `90s`, `15m`, `2h`; `0` = never, the default): a dump that
//! often. `growth=PERCENT` (default 25; `0` = never): a dump whenever the bytes
//! allocated reach that much more than at the last growth dump (and at least
//! [`GROWTH_MIN_BYTES`] more). `signal=RTMIN+N`, `RTMAX-N`, a number, or `none`
//! (default `RTMIN+5`): a dump when the process receives that real-time signal.
//!
//! Unset, empty or a switch's off word (`0`, `false`, ...): off. Any item that means
//! nothing gets one warning and is left out; a bad directory turns profiling off
//! with a warning (the library checks that it can write there). In secure mode
//! nothing is read.
use crate::env::{number, secure_mode, Env};
use crate::line::Line;
use crate::rules::{self, Choice};
use crate::vars::ALLOCSHIM_PROFILE;
use crate::Backend;

/// Where dumps go when the value is a switch's on word (`1`, `true`, ...).
pub const DEFAULT_DIR: &str = "/tmp/allocshim-profile";
/// `growth=` when not given: a dump at each 25 % more bytes allocated.
pub const DEFAULT_GROWTH_PERCENT: u32 = 25;
/// A growth dump also needs this many more bytes than the last one, so that a
/// server's start (a few MiB growing fast) does not write a dozen small dumps.
pub const GROWTH_MIN_BYTES: u64 = 16 << 20;
/// `signal=` when not given: SIGRTMIN+5. Puma, Unicorn, gunicorn and the runtimes we
/// serve use none of the real-time signals; glibc keeps the two below SIGRTMIN.
pub const DEFAULT_SIGNAL: Signal = Signal::RtMin(5);

/// A real-time signal as the user names it; its number is the C library's
/// (`SIGRTMIN` is 34 with glibc, but is a run-time value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signal {
    RtMin(u8),
    RtMax(u8),
    Number(u8),
}

/// glibc's real-time range on Linux (SIGRTMIN is 34: glibc keeps 32 and 33 for
/// itself; SIGRTMAX is the kernel's 64). Used to check a value without asking libc,
/// which the library does only in its lazily bound C (backend/jemalloc/profile.c).
const RT_RANGE: core::ops::RangeInclusive<i32> = 34..=64;

impl Signal {
    /// Whether it names a real-time signal (glibc's numbering).
    pub fn in_range(self) -> bool {
        RT_RANGE.contains(&match self {
            Signal::RtMin(k) => RT_RANGE.start() + i32::from(k),
            Signal::RtMax(k) => RT_RANGE.end() - i32::from(k),
            Signal::Number(n) => i32::from(n),
        })
    }

    /// The signal's number in this process, if it is a real-time signal here.
    pub fn number(self) -> Option<i32> {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let n = match self {
            Signal::RtMin(k) => min + i32::from(k),
            Signal::RtMax(k) => max - i32::from(k),
            Signal::Number(n) => i32::from(n),
        };
        (min..=max).contains(&n).then_some(n)
    }

    /// As `kill -s` spells it: `RTMIN+5`, `RTMAX-2`, `40`.
    pub fn describe(self, l: &mut Line) -> &mut Line {
        match self {
            Signal::RtMin(0) => l.str("RTMIN"),
            Signal::RtMin(k) => l.str("RTMIN+").num(k.into()),
            Signal::RtMax(0) => l.str("RTMAX"),
            Signal::RtMax(k) => l.str("RTMAX-").num(k.into()),
            Signal::Number(n) => l.num(n.into()),
        }
    }

    fn parse(v: &[u8]) -> Option<Signal> {
        let v = v.trim_ascii();
        let v = strip_prefix_ci(v, b"SIG").unwrap_or(v);
        if let Some(rest) = strip_prefix_ci(v, b"RTMIN") {
            return offset(rest, b'+').map(Signal::RtMin);
        }
        if let Some(rest) = strip_prefix_ci(v, b"RTMAX") {
            return offset(rest, b'-').map(Signal::RtMax);
        }
        number(v).and_then(|n| u8::try_from(n).ok()).map(Signal::Number)
    }
}

/// `""` -> 0, `"+5"` -> 5 (with `sign` the one allowed).
fn offset(rest: &[u8], sign: u8) -> Option<u8> {
    match rest.split_first() {
        None => Some(0),
        Some((&s, n)) if s == sign => number(n).and_then(|n| u8::try_from(n).ok()),
        _ => None,
    }
}

fn strip_prefix_ci<'a>(v: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &v[prefix.len()..])
}

/// `90`, `90s`, `15m`, `2h` -> seconds.
fn duration(v: &[u8]) -> Option<u32> {
    let (digits, unit) = match v.last() {
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        _ => (v, 1),
    };
    number(digits).and_then(|n| u32::try_from(n * unit).ok())
}

/// What `ALLOCSHIM_PROFILE` asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Settings<'a> {
    /// As written (absolute, or relative to the directory the program started in).
    pub dir: &'a [u8],
    /// Seconds between periodic dumps; 0: none.
    pub every: u32,
    /// Percent more bytes allocated that trigger a dump; 0: none.
    pub growth: u32,
    /// The on-demand signal; None: `signal=none`.
    pub signal: Option<Signal>,
}

/// An item of the value that means nothing; it is left out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ignored<'a> {
    pub item: &'a [u8],
    pub why: &'static str,
}

impl Ignored<'_> {
    pub fn line(&self) -> Line {
        let mut l = Line::new();
        l.str("ignoring \"").bytes(self.item).str("\" in ").str(ALLOCSHIM_PROFILE).str(": ").str(self.why);
        l
    }
}

const OPTIONS: &str =
    "expected a directory, then every=DURATION (90, 90s, 15m, 2h, 0), growth=PERCENT (25, 0), signal=RTMIN+N|RTMAX-N|NUMBER|none";

/// The settings in `raw`, or None when it turns profiling off (empty or an off word).
/// Each item that means nothing is handed to `warn` and left out.
#[inline(never)]
#[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
pub fn parse<'a>(raw: &'a [u8], warn: &mut dyn FnMut(Ignored<'a>)) -> Option<Settings<'a>> {
    let raw = raw.trim_ascii();
    if let Some(on) = rules::switch(raw) {
        return on.then_some(Settings {
            dir: DEFAULT_DIR.as_bytes(),
            every: 0,
            growth: DEFAULT_GROWTH_PERCENT,
            signal: Some(DEFAULT_SIGNAL),
        });
    }
    let mut s = Settings { dir: b"", every: 0, growth: DEFAULT_GROWTH_PERCENT, signal: Some(DEFAULT_SIGNAL) };
    for item in raw.split(|&b| b == b',') {
        let item = item.trim_ascii();
        let (key, value) = match item.iter().position(|&b| b == b'=') {
            Some(i) => (&item[..i], &item[i + 1..]),
            None => (item, &b""[..]),
        };
        let bad = |why| Ignored { item, why };
        match key {
            b"every" => match duration(value) {
                Some(n) => s.every = n,
                None => warn(bad("every= takes seconds, or a number with s, m or h (90, 90s, 15m, 2h); 0 = never")),
            },
            b"growth" => match number(value.strip_suffix(b"%").unwrap_or(value)).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => s.growth = n,
                None => warn(bad("growth= takes a percentage (25, 25%); 0 = never")),
            },
            b"signal" if value.eq_ignore_ascii_case(b"none") => s.signal = None,
            b"signal" => match Signal::parse(value).filter(|sig| sig.in_range()) {
                Some(sig) => s.signal = Some(sig),
                None => warn(bad("signal= takes a real-time signal (RTMIN+N, RTMAX-N or its number) or none")),
            },
            _ if item.is_empty() => {}
            _ if s.dir.is_empty() && !item.contains(&b'=') => s.dir = item,
            _ => warn(bad(OPTIONS)),
        }
    }
    if s.dir.is_empty() {
        s.dir = DEFAULT_DIR.as_bytes();
    }
    Some(s)
}

/// `ALLOCSHIM_PROFILE`'s settings in `env`, if it asks for profiling (never in
/// secure mode).
pub fn read<'a>(env: &Env<'a>, warn: &mut dyn FnMut(Ignored<'a>)) -> Option<Settings<'a>> {
    if secure_mode() {
        return None;
    }
    parse(env.get(ALLOCSHIM_PROFILE)?, warn)
}

/// What asking for profiling does to the choice of backend.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Implied {
    /// No profiling asked for, or jemalloc chosen anyway.
    Nothing,
    /// No variable chose a backend: jemalloc, because profiling asked for it.
    Jemalloc,
    /// Another variable chose another backend: it stays, and nothing is profiled.
    Overridden,
}

/// Profiling implies jemalloc, but only where no variable chose a backend: `choice`
/// (the result of [`rules::decide`] on `env`) becomes jemalloc, with the profile
/// variable as its reason. A backend chosen by name or switch wins ([`Implied::Overridden`]:
/// the library warns that nothing will be profiled).
pub fn imply(env: &Env, choice: &mut Choice) -> Implied {
    let Some(raw) = env.get(ALLOCSHIM_PROFILE) else { return Implied::Nothing };
    if secure_mode() || rules::switch(raw) == Some(false) || choice.backend == Backend::Jemalloc {
        return Implied::Nothing;
    }
    // decide() writes a default reason when nothing chose; ask the bare rules.
    if !rules::choose(env, &mut |_| {}).reason.is_empty() {
        return Implied::Overridden;
    }
    choice.backend = Backend::Jemalloc;
    choice.reason = Line::new();
    choice.reason.str(ALLOCSHIM_PROFILE).str("=").bytes(raw);
    Implied::Jemalloc
}

/// The warning for [`Implied::Overridden`].
pub fn overridden_line(choice: &Choice) -> Line {
    let mut l = Line::new();
    l.str(ALLOCSHIM_PROFILE).str(" needs jemalloc, but ").bytes(choice.reason.as_bytes()).str(" chose ");
    l.bytes(choice.backend.name().to_bytes()).str(": no heap profiles in this process");
    l
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::ffi::CString;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::env::Env;

    fn parsed(raw: &str) -> (Option<Settings<'_>>, Vec<String>) {
        let mut w = Vec::new();
        let s = parse(raw.as_bytes(), &mut |i| w.push(String::from_utf8(i.line().as_bytes().to_vec()).unwrap()));
        (s, w)
    }

    #[test]
    fn a_directory_with_the_defaults() {
        let (s, w) = parsed("/tmp/prof");
        assert_eq!(s, Some(Settings { dir: b"/tmp/prof", every: 0, growth: 25, signal: Some(Signal::RtMin(5)) }));
        assert!(w.is_empty());
        assert_eq!(parsed("1").0.unwrap().dir, DEFAULT_DIR.as_bytes());
        assert_eq!(parsed(" TRUE ").0.unwrap().dir, DEFAULT_DIR.as_bytes());
        for off in ["", " ", "0", "off", "false", "No"] {
            assert_eq!(parsed(off), (None, Vec::new()), "{off:?}");
        }
    }

    #[test]
    fn options_after_the_directory() {
        let (s, w) = parsed("/var/prof , every=15m,growth=50%, signal=SIGRTMAX-2");
        assert_eq!(s, Some(Settings { dir: b"/var/prof", every: 900, growth: 50, signal: Some(Signal::RtMax(2)) }));
        assert!(w.is_empty(), "{w:?}");
        let s = parsed("every=2h,signal=none,growth=0").0.unwrap();
        assert_eq!((s.dir, s.every, s.growth, s.signal), (DEFAULT_DIR.as_bytes(), 7200, 0, None));
        assert_eq!(parsed("d,signal=rtmin").0.unwrap().signal, Some(Signal::RtMin(0)));
        let n = libc::SIGRTMIN() + 3;
        assert_eq!(parsed(&std::format!("d,signal={n}")).0.unwrap().signal.and_then(Signal::number), Some(n));
        assert_eq!(parsed("d,every=90").0.unwrap().every, 90);
    }

    #[test]
    fn items_that_mean_nothing_are_named_and_left_out() {
        let (s, w) = parsed("/p,signal=USR1,every=soon,growth=lots,sample=19,/q");
        assert_eq!(s, Some(Settings { dir: b"/p", every: 0, growth: 25, signal: Some(Signal::RtMin(5)) }));
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[0].starts_with("ignoring \"signal=USR1\" in ALLOCSHIM_PROFILE: signal= takes a real-time signal"), "{w:?}");
        assert!(w[1].contains("every= takes seconds"), "{w:?}");
        assert!(w[2].contains("growth= takes a percentage"), "{w:?}");
        assert!(w[3].contains("\"sample=19\"") && w[3].contains("expected a directory, then every="), "{w:?}");
        assert!(w[4].contains("\"/q\""), "{w:?}");
        // Outside the real-time range: refused, not sent.
        assert!(!parsed("/p,signal=RTMAX-99").1.is_empty());
        assert!(!parsed("/p,signal=2").1.is_empty());
    }

    #[test]
    fn implies_jemalloc_only_when_nothing_chose() {
        let check = |vars: &[(&str, &str)]| {
            let owned: Vec<CString> = vars.iter().map(|(k, v)| CString::new(std::format!("{k}={v}")).unwrap()).collect();
            let entries: Vec<&core::ffi::CStr> = owned.iter().map(|c| c.as_c_str()).collect();
            let env = Env::from_entries(&entries);
            let mut choice = rules::decide(&env, &mut |_| {});
            let implied = imply(&env, &mut choice);
            (implied, choice.backend, String::from_utf8(choice.reason.as_bytes().to_vec()).unwrap())
        };
        assert_eq!(check(&[("ALLOCSHIM_PROFILE", "/tmp/p")]), (Implied::Jemalloc, Backend::Jemalloc, "ALLOCSHIM_PROFILE=/tmp/p".into()));
        assert_eq!(check(&[("ALLOCSHIM_PROFILE", "0")]).0, Implied::Nothing);
        assert_eq!(check(&[]).1, Backend::System);
        assert_eq!(check(&[("ALLOCSHIM_PROFILE", "1"), ("JEMALLOC_ENABLED", "true")]).0, Implied::Nothing);
        let (i, b, _) = check(&[("ALLOCSHIM_PROFILE", "1"), ("ALLOCSHIM_BACKEND", "mimalloc")]);
        assert_eq!((i, b), (Implied::Overridden, Backend::Mimalloc));
        // A switch turned off chose nothing.
        assert_eq!(check(&[("ALLOCSHIM_PROFILE", "1"), ("MIMALLOC_ENABLED", "false")]).1, Backend::Jemalloc);
        let mut c = rules::decide(&Env::from_entries(&[c"ALLOCSHIM_BACKEND=system"]), &mut |_| {});
        c.backend = Backend::System;
        let l = overridden_line(&c);
        assert_eq!(
            core::str::from_utf8(l.as_bytes()).unwrap(),
            "ALLOCSHIM_PROFILE needs jemalloc, but ALLOCSHIM_BACKEND=system chose system: no heap profiles in this process"
        );
    }
}
