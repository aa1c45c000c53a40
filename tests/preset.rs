//! ALLOCSHIM_PRESET=low-memory: per backend, the effective options read back from the
//! backend itself (jemalloc's stats_print, mimalloc's verbose option list, glibc's
//! malloc_info arena count) and as the library reports them, with and without the
//! preset, with a user option overriding one preset option; jemalloc's arenas
//! following the CPUs the process may use (affinity, cgroup quota); glibc's trimming
//! helper (started by the first thread, in forked children too, giving pages back);
//! bad names; no effect when the variable is not set.
use std::path::{Path, PathBuf};

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

/// The CPUs this test may use, as the library counts them (affinity and cgroup
/// quota; std counts them the same way).
fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[test]
fn jemalloc_gets_the_preset_and_the_user_wins_per_option() {
    // jemalloc's own statistics print the options it runs with.
    let out = jemalloc_stats(&[(PRESET, "low-memory")]);
    let narenas = format!("opt.narenas: {}\n", cpus());
    for want in [narenas.as_str(), "opt.dirty_decay_ms: 1000 ", "opt.muzzy_decay_ms: 0 ", "opt.background_thread: true "] {
        assert!(out.stderr.contains(want), "{want:?} missing: {}", out.stderr);
    }
    assert_eq!(
        reported(&out),
        format!(
            "low-memory: narenas={} (preset low-memory), dirty_decay_ms=1000 (preset low-memory), muzzy_decay_ms=0 (preset low-memory), background_thread=true (preset low-memory)",
            cpus()
        )
    );

    let out = jemalloc_stats(&[(PRESET, "low-memory"), ("MALLOC_CONF", "dirty_decay_ms:5000")]);
    assert!(out.stderr.contains("opt.dirty_decay_ms: 5000 ") && out.stderr.contains(&narenas), "{}", out.stderr);
    assert!(reported(&out).contains("(preset low-memory), dirty_decay_ms=5000 (MALLOC_CONF)"), "{}", out.stderr);

    // An empty MALLOC_CONF sets nothing: the preset alone, and no complaint from jemalloc.
    let out = jemalloc_stats(&[(PRESET, "low-memory"), ("MALLOC_CONF", "")]);
    assert!(out.stderr.contains("opt.dirty_decay_ms: 1000 ") && !out.stderr.contains("<jemalloc>"), "{}", out.stderr);

    let out = jemalloc_stats(&[(PRESET, "default")]);
    assert!(out.stderr.contains("opt.dirty_decay_ms: 10000 ") && out.stderr.contains("opt.background_thread: false "), "{}", out.stderr);
    assert!(reported(&out).starts_with("default: narenas=") && reported(&out).contains("dirty_decay_ms=10000 (default)"), "{}", out.stderr);
}

/// jemalloc's arena count under the preset, from its own statistics, for a run
/// through `wrapper` (e.g. taskset).
fn preset_narenas(wrapper: &[&str]) -> u32 {
    let mut args: Vec<String> = wrapper[1..].iter().map(|s| s.to_string()).collect();
    args.push("/bin/true".into());
    let out = run(wrapper[0], &args)
        .backend("jemalloc")
        .env(PRESET, "low-memory")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .success()
        .unwrap();
    let line = out.stderr.lines().map(str::trim).find(|l| l.starts_with("opt.narenas: ")).unwrap_or_else(|| panic!("{}", out.stderr));
    line["opt.narenas: ".len()..].trim().parse().unwrap()
}

#[test]
fn jemalloc_arenas_follow_the_cpus_the_process_may_use() {
    assert_eq!(preset_narenas(&["env"]), cpus() as u32);
    assert_eq!(preset_narenas(&["taskset", "-c", "0"]), 1, "one CPU in the affinity mask: one arena");
}

/// A cgroup with a CPU quota of one CPU's time, for the process `sh` started in it:
/// v1's cpu controller, or v2's where the cpu controller can be enabled. None where
/// neither can be set up here (no cgroup v1 cpu hierarchy, v2 without a delegable cpu
/// controller).
fn one_cpu_cgroup(name: &str) -> Option<(PathBuf, &'static str)> {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        let dir = v1.join(name);
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(dir.join("cpu.cfs_quota_us"), "100000").ok()?;
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000").ok()?;
        return Some((dir, "v1"));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return None;
    }
    let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
    let dir = v2.join(name);
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("cpu.max"), "100000 100000").ok()?;
    Some((dir, "v2"))
}

#[test]
#[ignore = "needs root: creates a cgroup with a CPU quota (scripts/test runs it as root)"]
fn jemalloc_arenas_follow_the_cgroup_cpu_quota() {
    let name = format!("allocshim-test-{}", std::process::id());
    let Some((dir, version)) = one_cpu_cgroup(&name) else {
        panic!("no cgroup v1 cpu hierarchy and no delegable cgroup v2 cpu controller: cannot set a CPU quota here");
    };
    let procs = dir.join("cgroup.procs").display().to_string();
    let enter = format!("echo $$ > {procs} && exec \"$@\"");
    let narenas = preset_narenas(&["sh", "-c", &enter, "sh"]);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(narenas, 1, "a quota of one CPU's time (cgroup {version}) on a {}-CPU machine", cpus());
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
    assert_eq!(reported(&out), "low-memory: trim=every 1 s (preset low-memory), arena_max=3 (MALLOC_ARENA_MAX)");
}

/// tests/c/trim.c's report under `vars`: helper threads at each point, RSS before and
/// after 2.5 s, as numbers.
fn trim_report(vars: &[(&str, &str)]) -> (String, [i64; 6]) {
    trim_report_after(vars, 2500)
}

/// As `trim_report`, with RSS read `wait_ms` after the frees.
fn trim_report_after(vars: &[(&str, &str)], wait_ms: u32) -> (String, [i64; 6]) {
    let mut r = run(c_program("trim"), &[wait_ms.to_string()]).timeout(60);
    for (k, v) in vars {
        r = r.env(k, v);
    }
    let out = r.success().unwrap();
    let n = |k: &str| out.field(k).unwrap_or_else(|| panic!("{k} missing: {}", out.stdout)).parse::<i64>().unwrap();
    let fields = ["helper_at_start", "helper_after", "child_at_fork", "child_after", "rss_before", "rss_after"].map(n);
    (out.field("backend").unwrap().to_string(), fields)
}

#[test]
fn glibc_is_trimmed_by_a_helper_the_first_thread_starts() {
    // Under the preset: no helper until the program starts a thread, then one; a forked
    // child starts without it and gets its own with its first thread; and the pages the
    // program freed below its live blocks go back to the OS.
    let (backend, [at_start, after, child_at_fork, child_after, before, after_rss]) = trim_report(&[(PRESET, "low-memory")]);
    assert_eq!(backend, "system");
    assert_eq!((at_start, after, child_at_fork, child_after), (0, 1, 0, 1), "helper threads at start, after a thread, in a child");
    assert!(before > 100_000, "160 MiB touched: {before} KiB");
    assert!(after_rss < before / 4, "freed pages not given back: {before} -> {after_rss} KiB");

    // Without the preset, or under a backend that gives pages back itself: no helper,
    // and glibc keeps the pages.
    let (_, [_, after, _, child_after, before, after_rss]) = trim_report(&[]);
    assert_eq!((after, child_after), (0, 0), "no helper without the preset");
    assert!(after_rss > before * 3 / 4, "glibc alone keeps them: {before} -> {after_rss} KiB");
    let (_, [_, after, _, child_after, ..]) = trim_report(&[(PRESET, "low-memory"), ("MALLOC_ARENA_MAX", "3")]);
    assert_eq!((after, child_after), (1, 1), "the user's arena count does not turn trimming off");
    // ALLOCSHIM_TRIM_INTERVAL=0 turns the helper off; a longer interval has not trimmed
    // yet 2.5 s after the frees.
    let (_, [_, after, _, child_after, before, after_rss]) = trim_report(&[(PRESET, "low-memory"), ("ALLOCSHIM_TRIM_INTERVAL", "0")]);
    assert_eq!((after, child_after), (0, 0), "ALLOCSHIM_TRIM_INTERVAL=0: no helper");
    assert!(after_rss > before * 3 / 4, "{before} -> {after_rss} KiB");
    let (_, [_, after, _, _, before, after_rss]) = trim_report(&[(PRESET, "low-memory"), ("ALLOCSHIM_TRIM_INTERVAL", "30")]);
    assert_eq!(after, 1);
    assert!(after_rss > before * 3 / 4, "every 30 s: not yet trimmed: {before} -> {after_rss} KiB");
    for backend in ["jemalloc", "mimalloc", "snmalloc"] {
        let (b, [_, after, _, child_after, ..]) = trim_report(&[(PRESET, "low-memory"), ("ALLOCSHIM_BACKEND", backend)]);
        assert_eq!((b.as_str(), after, child_after), (backend, 0, 0), "only glibc is trimmed by the helper");
    }

    let out = run("/bin/true", &[] as &[&str]).env(PRESET, "low-memory").env("ALLOCSHIM_VERBOSE", "1").success().unwrap();
    assert_eq!(reported(&out), "low-memory: trim=every 1 s (preset low-memory), arena_max=2 (preset low-memory)");
    let out = run("/bin/true", &[] as &[&str])
        .env(PRESET, "low-memory")
        .env("ALLOCSHIM_VERBOSE", "1")
        .env("ALLOCSHIM_TRIM_INTERVAL", "0.001")
        .success()
        .unwrap();
    assert!(out.stderr.starts_with(
        "allocshim: ignoring ALLOCSHIM_TRIM_INTERVAL=\"0.001\": expected seconds from 0.01 to 3600, such as 1 or 0.2, or 0 (off)\n"
    ));
    assert_eq!(reported(&out), "low-memory: trim=every 1 s (preset low-memory), arena_max=2 (preset low-memory)");
}

#[test]
fn a_sub_second_trim_interval_trims_within_it() {
    // Every 0.1 s: trimmed 0.6 s after the frees, where every 30 s has not been.
    let every = |interval| trim_report_after(&[(PRESET, "low-memory"), ("ALLOCSHIM_TRIM_INTERVAL", interval)], 600).1;
    let [_, helper, _, _, before, after] = every("0.1");
    assert_eq!(helper, 1);
    assert!(before > 100_000 && after < before / 4, "every 0.1 s: {before} -> {after} KiB");
    let [_, helper, _, _, before, after] = every("30");
    assert_eq!(helper, 1);
    assert!(after > before * 3 / 4, "every 30 s: not yet trimmed: {before} -> {after} KiB");

    let out = run("/bin/true", &[] as &[&str])
        .env(PRESET, "low-memory")
        .env("ALLOCSHIM_VERBOSE", "1")
        .env("ALLOCSHIM_TRIM_INTERVAL", "0.25")
        .success()
        .unwrap();
    assert_eq!(reported(&out), "low-memory: trim=every 0.25 s (ALLOCSHIM_TRIM_INTERVAL), arena_max=2 (preset low-memory)");
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
    assert!(out.stderr.contains("opt.dirty_decay_ms: 1000 "), "names are read in any case: {}", out.stderr);
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
    // glibc's trimming helper and arena cap, and jemalloc's background purging, change
    // how threads and fork meet the allocator: the thread and fork programs must still pass.
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
