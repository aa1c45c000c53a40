//! Choosing the backend from the environment, and reading the other switches: the
//! rules, and nothing else.
//!
//! 1. `ALLOCSHIM_BACKEND=<name>` wins (case-insensitive, surrounding blanks ignored;
//!    empty means unset).
//! 2. Else the buildpack switches `JEMALLOC_ENABLED`, `MIMALLOC_ENABLED`,
//!    `SNMALLOC_ENABLED` ([`Backend::enable_var`]), in the one yes/no vocabulary of
//!    [`switch`]. Several on: the first in [`ALL`] order wins, with one warning.
//! 3. Else `system`.
//!
//! `ALLOCSHIM_VERBOSE` and `ALLOCSHIM_STATS` are switches too ([`flag`]). A value
//! that means nothing gets a [`Warning`] naming it and is treated as unset. In secure
//! mode nothing is read ([`decide`], [`flag`]).
use crate::env::{secure_mode, Env};
use crate::line::{self, Line};
use crate::scope;
use crate::vars::{ALLOCSHIM_BACKEND, ALLOCSHIM_PRESET};
use crate::{Backend, ALL};

/// Values that turn a switch on (any case, blanks around ignored).
pub const ON: [&str; 4] = ["true", "1", "yes", "on"];
/// Values that turn a switch off (any case, blanks around ignored); so does empty.
pub const OFF: [&str; 4] = ["false", "0", "no", "off"];

/// The one yes/no vocabulary of every switch: Some(on) for a value of [`ON`],
/// [`OFF`] or empty (off), None for anything else.
pub fn switch(raw: &[u8]) -> Option<bool> {
    let v = raw.trim_ascii();
    if ON.iter().any(|w| v.eq_ignore_ascii_case(w.as_bytes())) {
        Some(true)
    } else if v.is_empty() || OFF.iter().any(|w| v.eq_ignore_ascii_case(w.as_bytes())) {
        Some(false)
    } else {
        None
    }
}

/// A set of backends, without allocating.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Backends(u8);

impl Backends {
    pub fn insert(&mut self, b: Backend) {
        self.0 |= 1 << b as u8;
    }
    pub fn contains(self, b: Backend) -> bool {
        self.0 & (1 << b as u8) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members, in precedence order.
    pub fn iter(self) -> impl Iterator<Item = Backend> {
        ALL.into_iter().filter(move |b| self.contains(*b))
    }
}

/// What the rules warn about: the variable and the value concerned. [`Warning::line`]
/// is the one text of each; the library and the crate print it, `allocshim doctor`
/// matches on the variant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Warning<'a> {
    /// `ALLOCSHIM_BACKEND` names no backend; it is treated as unset.
    UnknownBackend { value: &'a [u8] },
    /// A switch (`*_ENABLED`, `ALLOCSHIM_VERBOSE`, `ALLOCSHIM_STATS`) with a value
    /// outside the vocabulary; it is treated as unset.
    NotASwitch { var: &'static str, value: &'a [u8] },
    /// Several `*_ENABLED` switches on: `using` wins by precedence.
    SeveralEnabled { using: Backend, ignored: Backends },
    /// `ALLOCSHIM_PRESET` names no preset; it is treated as `default`.
    UnknownPreset { value: &'a [u8] },
    /// `ALLOCSHIM_TRIM_INTERVAL` is not a number of seconds in range (to the
    /// millisecond); the preset's interval is used.
    NotSeconds { var: &'static str, value: &'a [u8], min_ms: u32, max_ms: u32 },
    /// `ALLOCSHIM_ONLY` or `ALLOCSHIM_EXCEPT` holds `entry`, which is not a program
    /// name or pattern; the variable is treated as unset (see `scope`).
    NotAProgramList { var: &'static str, value: &'a [u8], entry: &'a [u8] },
}

impl Warning<'_> {
    /// The one-line text, without the `allocshim: ` prefix.
    pub fn line(&self) -> Line {
        let mut l = Line::new();
        match *self {
            Warning::UnknownBackend { value } => {
                ignoring(&mut l, ALLOCSHIM_BACKEND, value).str("expected one of");
                for (i, b) in ALL.into_iter().enumerate() {
                    l.str(if i == 0 { " " } else { ", " }).bytes(b.name().to_bytes());
                }
            }
            Warning::NotASwitch { var, value } => {
                ignoring(&mut l, var, value).str("expected");
                list(&mut l, &ON).str(" (enable) or");
                list(&mut l, &OFF).str(", empty (disable), in any case");
            }
            Warning::SeveralEnabled { using, ignored } => {
                l.str("several allocators enabled; using ").bytes(using.name().to_bytes());
                l.str(" (").str(using.enable_var().unwrap_or_default()).str("), ignoring ");
                for (i, b) in ignored.iter().enumerate() {
                    l.str(if i == 0 { "" } else { ", " }).str(b.enable_var().unwrap_or_default());
                }
                l.str(" (");
                precedence(&mut l);
                l.str(")");
            }
            Warning::UnknownPreset { value } => {
                ignoring(&mut l, ALLOCSHIM_PRESET, value).str("expected one of");
                for (i, name) in crate::preset::Preset::names().enumerate() {
                    l.str(if i == 0 { " " } else { ", " }).str(name);
                }
            }
            Warning::NotSeconds { var, value, min_ms, max_ms } => {
                ignoring(&mut l, var, value).str("expected seconds from ").seconds(min_ms).str(" to ").seconds(max_ms);
                l.str(", such as 1 or 0.2, or 0 (off)");
            }
            Warning::NotAProgramList { var, value, entry } => {
                ignoring(&mut l, var, value).str("\"").bytes(entry);
                l.str(if entry.contains(&b'/') { "\" is a path, not a program name" } else { "\" is not a program name" });
                l.str("; expected names separated by commas, such as ").str(scope::EXAMPLE);
                l.str(" (letters, digits and ").str(scope::PUNCTUATION).str("; * matches any characters)");
            }
        }
        l
    }

    /// Prints the line on stderr (raw write(2), errno kept): `allocshim: <line>`.
    #[inline(never)]
    #[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
    pub fn print(&self) {
        line::warn(&self.line());
    }
}

fn ignoring<'l>(l: &'l mut Line, var: &str, value: &[u8]) -> &'l mut Line {
    l.str("ignoring ").str(var).str("=\"").bytes(value).str("\": ")
}

fn list<'l>(l: &'l mut Line, words: &[&str]) -> &'l mut Line {
    for (i, w) in words.iter().enumerate() {
        l.str(if i == 0 { " " } else { ", " }).str(w);
    }
    l
}

/// "precedence: jemalloc, mimalloc, snmalloc; ALLOCSHIM_BACKEND overrides", from
/// the backend list.
pub fn precedence(l: &mut Line) -> &mut Line {
    l.str("precedence:");
    let switched = ALL.into_iter().filter(|b| b.enable_var().is_some());
    for (i, b) in switched.enumerate() {
        l.str(if i == 0 { " " } else { ", " }).bytes(b.name().to_bytes());
    }
    l.str("; ").str(ALLOCSHIM_BACKEND).str(" overrides")
}

pub struct Choice {
    pub backend: Backend,
    /// Which variable decided, e.g. `JEMALLOC_ENABLED=true`; empty when none did.
    pub reason: Line,
}

/// The rules above on `env` (secure mode not considered: see [`decide`]).
pub fn choose<'a>(env: &Env<'a>, warn: &mut dyn FnMut(&Warning<'a>)) -> Choice {
    if let Some(raw) = env.get(ALLOCSHIM_BACKEND) {
        let value = raw.trim_ascii();
        if !value.is_empty() {
            match Backend::from_name(value) {
                Some(backend) => return Choice { backend, reason: assignment(ALLOCSHIM_BACKEND, raw) },
                None => warn(&Warning::UnknownBackend { value: raw }),
            }
        }
    }

    let mut chosen: Option<(Backend, &str, &[u8])> = None;
    let mut ignored = Backends::default();
    for backend in ALL {
        let Some(var) = backend.enable_var() else { continue };
        let Some(raw) = env.get(var) else { continue };
        match switch(raw) {
            Some(true) if chosen.is_none() => chosen = Some((backend, var, raw)),
            Some(true) => ignored.insert(backend),
            Some(false) => {}
            None => warn(&Warning::NotASwitch { var, value: raw }),
        }
    }
    match chosen {
        Some((backend, var, raw)) => {
            if !ignored.is_empty() {
                warn(&Warning::SeveralEnabled { using: backend, ignored });
            }
            Choice { backend, reason: assignment(var, raw) }
        }
        None => Choice { backend: Backend::System, reason: Line::new() },
    }
}

fn assignment(var: &str, raw: &[u8]) -> Line {
    let mut l = Line::new();
    l.str(var).str("=").bytes(raw);
    l
}

/// The whole decision for a process: in secure mode (setuid/setgid, AT_SECURE) no
/// variable is read and the answer is `system`; otherwise [`choose`].
pub fn decide<'a>(env: &Env<'a>, warn: &mut dyn FnMut(&Warning<'a>)) -> Choice {
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

/// A switch that changes what is printed (`ALLOCSHIM_VERBOSE`, `ALLOCSHIM_STATS`):
/// on only for a value of [`ON`]; unset, empty or [`OFF`] is off; anything else is
/// warned about and off. Never read in secure mode.
pub fn flag<'a>(env: &Env<'a>, var: &'static str, warn: &mut dyn FnMut(&Warning<'a>)) -> bool {
    if secure_mode() {
        return false;
    }
    let Some(raw) = env.get(var) else { return false };
    switch(raw).unwrap_or_else(|| {
        warn(&Warning::NotASwitch { var, value: raw });
        false
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::ffi::{CStr, CString};
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;
    use crate::vars::{ALLOCSHIM_STATS, ALLOCSHIM_VERBOSE};

    /// Runs `f` on an in-memory environment holding `vars`.
    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce(&Env) -> T) -> T {
        let owned: Vec<CString> = vars.iter().map(|(k, v)| CString::new(std::format!("{k}={v}")).unwrap()).collect();
        let entries: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        f(&Env::from_entries(&entries))
    }

    fn text(l: &Line) -> String {
        String::from_utf8(l.as_bytes().to_vec()).unwrap()
    }

    /// (backend, reason, warning lines) for `vars`.
    fn chosen(vars: &[(&str, &str)]) -> (Backend, String, Vec<String>) {
        with_env(vars, |env| {
            let mut warnings = Vec::new();
            let c = decide(env, &mut |w| warnings.push(text(&w.line())));
            (c.backend, text(&c.reason), warnings)
        })
    }

    fn warnings(vars: &[(&str, &str)]) -> Vec<Warning<'static>> {
        // Values leaked to 'static so the warnings can outlive the environment.
        let owned: Vec<&'static CStr> =
            vars.iter().map(|(k, v)| &*std::boxed::Box::leak(CString::new(std::format!("{k}={v}")).unwrap().into_boxed_c_str())).collect();
        let env = Env::from_entries(owned.leak());
        let mut out = Vec::new();
        choose(&env, &mut |w| out.push(*w));
        out
    }

    #[test]
    fn the_vocabulary_is_one_for_every_switch() {
        for v in ["true", "TRUE", "1", "yes", "Yes", "on", " On ", "\ttrue\n"] {
            assert_eq!(switch(v.as_bytes()), Some(true), "{v:?}");
        }
        for v in ["false", "0", "no", "No", "off", "OFF", "", "  "] {
            assert_eq!(switch(v.as_bytes()), Some(false), "{v:?}");
        }
        for v in ["treu", "2", "enabled", "y", "-1", "true1", "o n"] {
            assert_eq!(switch(v.as_bytes()), None, "{v:?}");
        }
    }

    #[test]
    fn nothing_set_is_system_by_default() {
        assert_eq!(chosen(&[]), (Backend::System, "default: no allocator variable set".to_string(), vec![]));
        assert_eq!(chosen(&[("UNRELATED", "1")]).0, Backend::System);
    }

    #[test]
    fn allocshim_backend_names_a_backend_in_any_case_and_wins() {
        assert_eq!(chosen(&[("ALLOCSHIM_BACKEND", "jemalloc")]), (Backend::Jemalloc, "ALLOCSHIM_BACKEND=jemalloc".to_string(), vec![]));
        assert_eq!(chosen(&[("ALLOCSHIM_BACKEND", "  SnMalloc \t")]).0, Backend::Snmalloc);
        assert_eq!(chosen(&[("ALLOCSHIM_BACKEND", "MIMALLOC")]).0, Backend::Mimalloc);
        // Overriding a switch is silent: it is how one process is set apart.
        assert_eq!(
            chosen(&[("ALLOCSHIM_BACKEND", "system"), ("JEMALLOC_ENABLED", "true")]),
            (Backend::System, "ALLOCSHIM_BACKEND=system".to_string(), vec![])
        );
        assert_eq!(chosen(&[("JEMALLOC_ENABLED", "true"), ("ALLOCSHIM_BACKEND", "mimalloc")]).0, Backend::Mimalloc);
        // Empty (or blank) is unset.
        assert_eq!(chosen(&[("ALLOCSHIM_BACKEND", " "), ("SNMALLOC_ENABLED", "1")]).0, Backend::Snmalloc);
    }

    #[test]
    fn an_unknown_backend_is_named_in_a_warning_and_treated_as_unset() {
        let (b, _, w) = chosen(&[("ALLOCSHIM_BACKEND", "tcmalloc")]);
        assert_eq!(b, Backend::System);
        assert_eq!(w, ["ignoring ALLOCSHIM_BACKEND=\"tcmalloc\": expected one of jemalloc, mimalloc, snmalloc, system"]);
        assert_eq!(warnings(&[("ALLOCSHIM_BACKEND", "tcmalloc")]), [Warning::UnknownBackend { value: b"tcmalloc" }]);
        let (b, reason, _) = chosen(&[("ALLOCSHIM_BACKEND", "tcmalloc"), ("SNMALLOC_ENABLED", "yes")]);
        assert_eq!((b, reason.as_str()), (Backend::Snmalloc, "SNMALLOC_ENABLED=yes"));
    }

    #[test]
    fn each_switch_turns_its_backend_on_and_off() {
        for b in [Backend::Jemalloc, Backend::Mimalloc, Backend::Snmalloc] {
            let var = b.enable_var().unwrap();
            for on in ON.iter().chain(&["TRUE", " On "]) {
                assert_eq!(chosen(&[(var, on)]), (b, std::format!("{var}={on}"), vec![]), "{var}={on}");
            }
            for off in OFF.iter().chain(&["", "No"]) {
                assert_eq!(chosen(&[(var, off)]), (Backend::System, "default: no allocator variable set".to_string(), vec![]));
            }
        }
        assert_eq!(Backend::System.enable_var(), None);
    }

    #[test]
    fn a_bad_switch_is_named_in_a_warning_and_treated_as_unset() {
        let (b, _, w) = chosen(&[("JEMALLOC_ENABLED", "treu")]);
        assert_eq!(b, Backend::System);
        assert_eq!(
            w,
            ["ignoring JEMALLOC_ENABLED=\"treu\": expected true, 1, yes, on (enable) or false, 0, no, off, empty (disable), in any case"]
        );
        assert_eq!(warnings(&[("JEMALLOC_ENABLED", "treu")]), [Warning::NotASwitch { var: "JEMALLOC_ENABLED", value: b"treu" }]);
        let (b, _, w) = chosen(&[("JEMALLOC_ENABLED", "treu"), ("MIMALLOC_ENABLED", "true")]);
        assert_eq!((b, w.len()), (Backend::Mimalloc, 1));
    }

    #[test]
    fn several_switches_on_the_first_in_precedence_wins_with_one_warning() {
        let (b, reason, w) = chosen(&[("MIMALLOC_ENABLED", "true"), ("JEMALLOC_ENABLED", "true")]);
        assert_eq!((b, reason.as_str()), (Backend::Jemalloc, "JEMALLOC_ENABLED=true"));
        assert_eq!(
            w,
            ["several allocators enabled; using jemalloc (JEMALLOC_ENABLED), ignoring MIMALLOC_ENABLED (precedence: jemalloc, mimalloc, snmalloc; ALLOCSHIM_BACKEND overrides)"]
        );
        let all = [("SNMALLOC_ENABLED", "1"), ("MIMALLOC_ENABLED", "on"), ("JEMALLOC_ENABLED", "yes")];
        let mut ignored = Backends::default();
        ignored.insert(Backend::Snmalloc);
        ignored.insert(Backend::Mimalloc);
        assert_eq!(warnings(&all), [Warning::SeveralEnabled { using: Backend::Jemalloc, ignored }]);
        assert!(chosen(&all).2[0].contains("ignoring MIMALLOC_ENABLED, SNMALLOC_ENABLED (precedence"));
        let (b, _, w) = chosen(&[("SNMALLOC_ENABLED", "1"), ("MIMALLOC_ENABLED", "on")]);
        assert_eq!(b, Backend::Mimalloc);
        assert!(w[0].contains("using mimalloc (MIMALLOC_ENABLED), ignoring SNMALLOC_ENABLED"), "{w:?}");
    }

    #[test]
    fn the_precedence_text_follows_the_backend_list() {
        let mut l = Line::new();
        precedence(&mut l);
        assert_eq!(text(&l), "precedence: jemalloc, mimalloc, snmalloc; ALLOCSHIM_BACKEND overrides");
    }

    #[test]
    fn verbose_and_stats_take_the_same_vocabulary() {
        for var in [ALLOCSHIM_VERBOSE, ALLOCSHIM_STATS] {
            let got = |value: Option<&str>| {
                let vars: Vec<(&str, &str)> = value.map(|v| (var, v)).into_iter().collect();
                with_env(&vars, |env| {
                    let mut w = Vec::new();
                    let on = flag(env, var, &mut |x| w.push(text(&x.line())));
                    (on, w)
                })
            };
            // The bug this fixes: `off` used to turn verbose output on.
            for off in [None, Some(""), Some("0"), Some("false"), Some("off"), Some("OFF"), Some("no")] {
                assert_eq!(got(off), (false, vec![]), "{var}={off:?}");
            }
            for on in ["1", "true", "on", "Yes"] {
                assert_eq!(got(Some(on)), (true, vec![]), "{var}={on}");
            }
            let (on, w) = got(Some("2"));
            assert!(!on);
            assert_eq!(
                w,
                [std::format!(
                    "ignoring {var}=\"2\": expected true, 1, yes, on (enable) or false, 0, no, off, empty (disable), in any case"
                )]
            );
        }
    }

    #[test]
    fn backends_by_name_and_index() {
        for b in ALL {
            assert_eq!(Backend::from_name(b.name().to_bytes()), Some(b));
            assert_eq!(Backend::from_index(b as u8), Some(b));
        }
        assert_eq!(Backend::from_name(b"JeMalloc"), Some(Backend::Jemalloc));
        assert_eq!(Backend::from_name(b"tcmalloc"), None);
        assert_eq!(Backend::from_index(4), None);
    }
}
