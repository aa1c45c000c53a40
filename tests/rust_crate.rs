//! The `allocshim` crate: each type as a program's `#[global_allocator]`, proved by
//! which backend's own counters moved; `Auto` against the library on one table of
//! environments.
use std::process::{Command, Output};

use allocshim_tests::{c_program, each_backend, lib, run, rust_example};

fn run_example(name: &str, env: &[(&str, &str)]) -> Output {
    let out = Command::new(rust_example(name))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {env:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `backend=X served=Y` from the example's last line.
fn backend_and_served(out: &Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| text.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or("?").to_string();
    (field("backend="), field("served="))
}

#[test]
fn each_fixed_type_serves_the_memory_itself() {
    for (example, backend) in
        [("global_mimalloc", "mimalloc"), ("global_jemalloc", "jemalloc"), ("global_snmalloc", "snmalloc"), ("global_system", "system")]
    {
        // Variables that would steer Auto or the library must not matter here.
        let out = run_example(example, &[("ALLOCSHIM_BACKEND", "jemalloc"), ("MIMALLOC_ENABLED", "true")]);
        assert_eq!(backend_and_served(&out), (backend.to_string(), backend.to_string()), "{example}");
        assert!(out.stderr.is_empty(), "{example} printed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// One table of environments, and for each the backend both must pick.
const CASES: &[(&[(&str, &str)], &str)] = &[
    (&[], "system"),
    (&[("ALLOCSHIM_BACKEND", "jemalloc")], "jemalloc"),
    (&[("ALLOCSHIM_BACKEND", " Mimalloc ")], "mimalloc"),
    (&[("ALLOCSHIM_BACKEND", "snmalloc")], "snmalloc"),
    (&[("ALLOCSHIM_BACKEND", "system"), ("JEMALLOC_ENABLED", "true")], "system"),
    (&[("ALLOCSHIM_BACKEND", ""), ("SNMALLOC_ENABLED", "true")], "snmalloc"),
    (&[("MIMALLOC_ENABLED", "true")], "mimalloc"),
    (&[("JEMALLOC_ENABLED", "yes")], "jemalloc"),
    (&[("SNMALLOC_ENABLED", "1")], "snmalloc"),
    (&[("JEMALLOC_ENABLED", "false"), ("MIMALLOC_ENABLED", "off")], "system"),
    (&[("MIMALLOC_ENABLED", "true"), ("SNMALLOC_ENABLED", "on")], "mimalloc"),
    (&[("ALLOCSHIM_BACKEND", "tcmalloc")], "system"),
    (&[("JEMALLOC_ENABLED", "maybe"), ("SNMALLOC_ENABLED", "TRUE")], "snmalloc"),
];

/// The verbose line's backend and reason, and every other `allocshim:` line.
fn verdict(stderr: &[u8]) -> (String, String, Vec<String>) {
    let text = String::from_utf8_lossy(stderr);
    let mut backend = String::new();
    let mut reason = String::new();
    let mut warnings = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("allocshim: ")) {
        match line.strip_prefix("backend ") {
            Some(rest) => {
                backend = rest.split_whitespace().next().unwrap_or("").to_string();
                reason = rest.split_once(" (").map(|(_, r)| r.trim_end_matches(')').to_string()).unwrap_or_default();
            }
            None => warnings.push(line.to_string()),
        }
    }
    (backend, reason, warnings)
}

/// Auto (in `global_auto`) and the library (preloaded into `program`) under `env`,
/// with `ALLOCSHIM_VERBOSE=1`: both pick `expected`, with the same reason and warnings.
fn auto_and_the_library_agree(program: &std::ffi::OsStr, env: &[(&str, &str)], expected: &str) {
    let mut with_verbose: Vec<(&str, &str)> = env.to_vec();
    with_verbose.push(("ALLOCSHIM_VERBOSE", "1"));

    let crate_out = run_example("global_auto", &with_verbose);
    let (backend, served) = backend_and_served(&crate_out);
    assert_eq!((backend.as_str(), served.as_str()), (expected, expected), "Auto under {env:?}");

    let lib_out = Command::new(program)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LD_PRELOAD", lib())
        .envs(with_verbose.iter().copied())
        .output()
        .unwrap();
    let from_crate = verdict(&crate_out.stderr);
    let from_lib = verdict(&lib_out.stderr);
    assert_eq!(from_crate, from_lib, "crate and library disagree under {env:?}");
    assert_eq!(from_lib.0, expected, "library under {env:?}");
}

#[test]
fn auto_and_the_library_choose_alike_for_every_environment() {
    for (env, expected) in CASES {
        auto_and_the_library_agree("true".as_ref(), env, expected);
    }
}

#[test]
fn auto_warns_like_the_library_on_bad_values() {
    let out = run_example("global_auto", &[("ALLOCSHIM_BACKEND", "tcmalloc")]);
    let (_, _, warnings) = verdict(&out.stderr);
    assert_eq!(warnings, ["ignoring ALLOCSHIM_BACKEND=\"tcmalloc\": expected one of jemalloc, mimalloc, snmalloc, system"]);
}

#[test]
fn linking_the_crate_leaves_c_malloc_to_the_c_library() {
    // All three allocators are linked into global_auto, prefixed or without their
    // override: the program's C `malloc` must still be the C library's.
    let out = Command::new("nm").arg(rust_example("global_auto")).output().expect("nm (binutils)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "malloc_usable_size"] {
        let defined = text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 3 && f[2] == name && matches!(f[1], "T" | "W" | "t" | "i")
        });
        assert!(!defined, "the crate defines C `{name}` in the program");
    }
    assert!(text.lines().any(|l| l.trim() == "U malloc"), "malloc should come from the C library");
}

/// The library and the crate read each backend's figures and version with the same
/// code (allocshim-backends) and one definition (allocshim_select::usage): under every
/// backend, the library's ALLOCSHIM_STATS line names the same figures as the crate's
/// `allocshim::usage` gives, those are the ones the definition lists, and the
/// library's verbose line gives the version `allocshim::version` gives.
#[test]
fn the_library_and_the_crate_report_the_same_figures_and_version() {
    let fp = c_program("fingerprint");
    each_backend(|backend| {
        let expected = match backend {
            "jemalloc" | "system" => "allocated+resident",
            "snmalloc" => "resident",
            _ => "none", // mimalloc: see allocshim_select::usage
        };
        let out = run(&fp, &[] as &[&str]).backend(backend).env("ALLOCSHIM_STATS", "1").env("ALLOCSHIM_VERBOSE", "1").success()?;
        let stats = out
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("allocshim: stats: "))
            .ok_or(format!("[{backend}] no stats line:\n{}", out.stderr))?;
        let named: Vec<&str> =
            ["allocated", "resident"].into_iter().filter(|f| stats.split(", ").any(|part| part.starts_with(&format!("{f} ")))).collect();
        let from_lib = if named.is_empty() { "none".to_string() } else { named.join("+") };

        let crate_out = run_example("global_auto", &[("ALLOCSHIM_BACKEND", backend)]);
        let text = String::from_utf8_lossy(&crate_out.stdout);
        let from_crate = text.split_whitespace().find_map(|w| w.strip_prefix("figures=")).unwrap_or("?");
        let (_, served) = backend_and_served(&crate_out);
        let lib_version =
            out.stderr.lines().find_map(|l| l.strip_prefix(&format!("allocshim: backend {backend} "))).and_then(|r| r.split(' ').next());
        let crate_version = text.split_whitespace().find_map(|w| w.strip_prefix("version="));
        if lib_version.is_none() || lib_version != crate_version {
            return Err(format!("[{backend}] version: library {lib_version:?}, crate {crate_version:?}"));
        }
        if (from_lib.as_str(), from_crate, served.as_str()) != (expected, expected, backend) {
            return Err(format!("[{backend}] library: {from_lib} ({stats}); crate: {from_crate}, served by {served}; expected {expected}"));
        }
        Ok(())
    });
}

/// `ALLOCSHIM_ONLY`/`ALLOCSHIM_EXCEPT`: Auto leaves a program out exactly as the
/// library does, in the same words. The library runs in a copy of `true` named like
/// the example, so that both programs go by the same name.
#[test]
fn auto_and_the_library_leave_out_the_same_programs() {
    let dir = std::env::temp_dir().join(format!("allocshim-crate-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let twin = dir.join("global_auto");
    std::fs::copy("/bin/true", &twin).unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("JEMALLOC_ENABLED", "true"), ("ALLOCSHIM_ONLY", "ruby,python3*")], "system"),
        (&[("MIMALLOC_ENABLED", "true"), ("ALLOCSHIM_ONLY", "ruby,global_*")], "mimalloc"),
        (&[("SNMALLOC_ENABLED", "true"), ("ALLOCSHIM_EXCEPT", "global_auto")], "system"),
        (&[("ALLOCSHIM_BACKEND", "jemalloc"), ("ALLOCSHIM_ONLY", "*"), ("ALLOCSHIM_EXCEPT", "glob*")], "system"),
        (&[("JEMALLOC_ENABLED", "true"), ("ALLOCSHIM_ONLY", "ruby;global_auto")], "jemalloc"),
        (&[("ALLOCSHIM_ONLY", "ruby")], "system"),
    ];
    for (env, expected) in cases {
        auto_and_the_library_agree(twin.as_os_str(), env, expected);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
