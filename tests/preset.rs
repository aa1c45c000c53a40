//! ALLOCSHIM_PRESET=low-memory: per backend, the effective options read back from the
//! backend itself (jemalloc's stats_print, mimalloc's verbose option list, glibc's
//! malloc_info arena count) and as the library reports them, with and without the
//! preset, with a user option overriding one preset option; bad names; no effect when
//! the variable is not set.
use allocshim_tests::*;

const PRESET: &str = "ALLOCSHIM_PRESET";

/// The library's `allocshim: preset NAME: OPTIONS` line (ALLOCSHIM_VERBOSE).
fn reported(out: &Output) -> String {
    out.stderr
        .lines()
        .find_map(|l| l.strip_prefix("allocshim: preset "))
        .unwrap_or_else(|| panic!("{}: no preset line in {:?}", out.label, out.stderr))
        .to_string()
}

fn jemalloc_stats(vars: &[(&str, &str)]) -> Output {
    let mut r =
        run("/bin/true", &[] as &[&str]).backend("jemalloc").env("ALLOCSHIM_VERBOSE", "1").env("_RJEM_MALLOC_CONF", "stats_print:true");
    for (k, v) in vars {
        r = r.env(k, v);
    }
    r.success().unwrap()
}

#[test]
fn jemalloc_gets_the_preset_and_the_user_wins_per_option() {
    // jemalloc's own statistics print the options it runs with.
    let out = jemalloc_stats(&[(PRESET, "low-memory")]);
    for want in ["opt.narenas: 2\n", "opt.dirty_decay_ms: 1000 ", "opt.muzzy_decay_ms: 0 ", "opt.background_thread: true "] {
        assert!(out.stderr.contains(want), "{want:?} missing: {}", out.stderr);
    }
    assert_eq!(
        reported(&out),
        "low-memory: narenas=2 (preset low-memory), dirty_decay_ms=1000 (preset low-memory), muzzy_decay_ms=0 (preset low-memory), background_thread=true (preset low-memory)"
    );

    let out = jemalloc_stats(&[(PRESET, "low-memory"), ("MALLOC_CONF", "dirty_decay_ms:5000")]);
    assert!(out.stderr.contains("opt.dirty_decay_ms: 5000 ") && out.stderr.contains("opt.narenas: 2\n"), "{}", out.stderr);
    assert!(reported(&out).contains("narenas=2 (preset low-memory), dirty_decay_ms=5000 (MALLOC_CONF)"), "{}", out.stderr);

    let out = jemalloc_stats(&[(PRESET, "default")]);
    assert!(out.stderr.contains("opt.dirty_decay_ms: 10000 ") && out.stderr.contains("opt.background_thread: false "), "{}", out.stderr);
    assert!(!out.stderr.contains("opt.narenas: 2\n"), "{}", out.stderr);
    assert!(reported(&out).starts_with("default: narenas=") && reported(&out).contains("dirty_decay_ms=10000 (default)"), "{}", out.stderr);
}

#[test]
fn mimalloc_gets_the_preset_and_the_user_wins_per_option() {
    let opts = |vars: &[(&str, &str)]| {
        let mut r = run("/bin/true", &[] as &[&str]).backend("mimalloc").env("ALLOCSHIM_VERBOSE", "1").env("MIMALLOC_VERBOSE", "1");
        for (k, v) in vars {
            r = r.env(k, v);
        }
        r.success().unwrap()
    };
    // mimalloc's verbose start-up lists every option it runs with.
    let out = opts(&[(PRESET, "low-memory")]);
    assert!(out.stderr.contains("option 'purge_delay': 0 ") && out.stderr.contains("option 'arena_purge_mult': 1 "), "{}", out.stderr);
    assert_eq!(reported(&out), "low-memory: purge_delay=0 (preset low-memory), arena_purge_mult=1 (preset low-memory)");

    let out = opts(&[(PRESET, "low-memory"), ("MIMALLOC_PURGE_DELAY", "50")]);
    assert!(out.stderr.contains("option 'purge_delay': 50 ") && out.stderr.contains("option 'arena_purge_mult': 1 "), "{}", out.stderr);
    assert_eq!(reported(&out), "low-memory: purge_delay=50 (MIMALLOC_PURGE_DELAY), arena_purge_mult=1 (preset low-memory)");

    let out = opts(&[]);
    assert!(out.stderr.contains("option 'purge_delay': 10 ") && out.stderr.contains("option 'arena_purge_mult': 10 "), "{}", out.stderr);
}

fn arenas(vars: &[(&str, &str)]) -> (String, u32) {
    let mut r = run(c_program("arenas"), &["8"]);
    for (k, v) in vars {
        r = r.env(k, v);
    }
    let out = r.success().unwrap();
    (out.field("backend").unwrap().to_string(), out.field("arenas").unwrap().parse().unwrap())
}

#[test]
fn glibc_arena_count_follows_the_preset_unless_the_user_set_it() {
    // Eight threads allocating at once: glibc gives each its own arena (up to 8 per core).
    let (backend, unset) = arenas(&[]);
    assert_eq!(backend, "system");
    assert!(unset > 2, "without a preset glibc made {unset} arenas");
    assert_eq!(arenas(&[(PRESET, "")]).1, unset, "an empty ALLOCSHIM_PRESET changes nothing");
    assert_eq!(arenas(&[(PRESET, "default")]).1, unset);
    assert_eq!(arenas(&[(PRESET, "low-memory")]), ("system".into(), 2));
    assert_eq!(arenas(&[(PRESET, "low-memory"), ("ALLOCSHIM_BACKEND", "system")]).1, 2);
    assert_eq!(arenas(&[(PRESET, "low-memory"), ("MALLOC_ARENA_MAX", "3")]).1, 3);
    assert_eq!(arenas(&[(PRESET, "low-memory"), ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")]).1, 4);
    // A backend that is not glibc leaves glibc's arenas alone (its malloc is not used).
    assert_eq!(arenas(&[(PRESET, "low-memory"), ("JEMALLOC_ENABLED", "true")]).0, "jemalloc");

    let out = run("/bin/true", &[] as &[&str])
        .env(PRESET, "low-memory")
        .env("MALLOC_ARENA_MAX", "3")
        .env("ALLOCSHIM_VERBOSE", "1")
        .success()
        .unwrap();
    assert_eq!(reported(&out), "low-memory: arena_max=3 (MALLOC_ARENA_MAX)");
}

#[test]
fn snmalloc_has_nothing_to_tune_and_says_so() {
    let out =
        run("/bin/true", &[] as &[&str]).backend("snmalloc").env(PRESET, "low-memory").env("ALLOCSHIM_VERBOSE", "1").success().unwrap();
    assert_eq!(reported(&out), "low-memory: none (snmalloc has no run-time options)");
}

#[test]
fn an_unknown_preset_is_warned_about_once_and_means_default() {
    each_backend(|backend| {
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env(PRESET, "tiny").success()?;
        let want = "allocshim: ignoring ALLOCSHIM_PRESET=\"tiny\": expected one of default, low-memory\n";
        if out.stderr != want {
            return Err(format!("[{backend}] {:?}", out.stderr));
        }
        Ok(())
    });
    assert_eq!(arenas(&[(PRESET, "tiny")]).1, arenas(&[]).1);
    let out = jemalloc_stats(&[(PRESET, " LOW-Memory ")]);
    assert!(out.stderr.contains("opt.narenas: 2\n"), "names are read in any case: {}", out.stderr);
}

#[test]
fn without_the_variable_the_verbose_output_is_unchanged() {
    each_backend(|backend| {
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env("ALLOCSHIM_VERBOSE", "1").success()?;
        if out.stderr.lines().count() != 1 || out.stderr.contains("preset") {
            return Err(format!("[{backend}] {:?}", out.stderr));
        }
        Ok(())
    });
}

#[test]
fn info_and_enabled_show_the_preset() {
    let info = |vars: &[(&str, &str)]| {
        let mut r = run(cli(), &["info", "--json"]).no_preload().env("ALLOCSHIM_LIB", lib());
        for (k, v) in vars {
            r = r.env(k, v);
        }
        let out = r.success().unwrap();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (v["preset"].as_str().unwrap().to_string(), v["options"].as_str().unwrap().to_string())
    };
    let (preset, options) = info(&[(PRESET, "low-memory"), ("JEMALLOC_ENABLED", "true"), ("MALLOC_CONF", "narenas:3")]);
    assert_eq!(preset, "low-memory");
    assert!(options.starts_with("narenas=3 (MALLOC_CONF), dirty_decay_ms=1000 (preset low-memory)"), "{options}");
    assert_eq!(info(&[]), ("default".to_string(), "arena_max=8-per-core (default)".to_string()));

    // A preset alone makes the library worth preloading (it tunes glibc).
    let enabled = |vars: &[(&str, &str)]| {
        let mut r = run(cli(), &["enabled"]).no_preload();
        for (k, v) in vars {
            r = r.env(k, v);
        }
        r.output()
    };
    let out = enabled(&[(PRESET, "low-memory")]);
    assert!(out.status.success() && out.stdout.contains("preset low-memory"), "{}{}", out.stdout, out.stderr);
    assert!(!enabled(&[]).status.success());
    assert!(!enabled(&[(PRESET, "default")]).status.success());
}

#[test]
fn threads_and_fork_work_under_the_preset() {
    // jemalloc's background purging threads and glibc's arena cap change how threads
    // and fork meet the allocator: the thread and fork programs must still pass.
    each_backend(|backend| {
        for (program, args) in [("forkmt", &["200"][..]), ("stress", &["4", "20000", "2000"][..])] {
            let out = run(c_program(program), args).backend(backend).env(PRESET, "low-memory").timeout(120).success()?;
            if !out.stdout.contains(&format!("done under {backend}")) || !out.stdout.contains(" 0 failures") {
                return Err(format!("[{backend}] {program}: {}", out.stdout));
            }
        }
        Ok(())
    });
}
