//! The rules of "Choosing the backend", tuning pass-through, and the self-report.
use allocshim_tests::*;

fn choose(vars: &[(&str, &str)]) -> (String, String, String) {
    let mut r = run(c_program("fingerprint"), &[] as &[&str]);
    for (k, v) in vars {
        r = r.env(k, v);
    }
    let out = r.success().unwrap();
    let active = out.field("active").unwrap_or("?").to_string();
    let reason = out.field("reason").unwrap_or("?").to_string();
    (active, reason, out.stderr)
}

/// (environment, expected backend, expected warning text or "" for none)
type Case = (&'static [(&'static str, &'static str)], &'static str, &'static str);
const CASES: &[Case] = &[
    (&[], "system", ""),
    (&[("ALLOCSHIM_BACKEND", "jemalloc")], "jemalloc", ""),
    (&[("ALLOCSHIM_BACKEND", "  SnMalloc \t")], "snmalloc", ""),
    (&[("ALLOCSHIM_BACKEND", "MIMALLOC")], "mimalloc", ""),
    (&[("ALLOCSHIM_BACKEND", "system"), ("JEMALLOC_ENABLED", "true")], "system", ""),
    (&[("ALLOCSHIM_BACKEND", "mimalloc"), ("JEMALLOC_ENABLED", "true")], "mimalloc", ""),
    (&[("ALLOCSHIM_BACKEND", "")], "system", ""),
    (
        &[("ALLOCSHIM_BACKEND", "tcmalloc")],
        "system",
        "allocshim: ignoring ALLOCSHIM_BACKEND=\"tcmalloc\": expected one of jemalloc, mimalloc, snmalloc, system\n",
    ),
    (&[("ALLOCSHIM_BACKEND", "tcmalloc"), ("SNMALLOC_ENABLED", "yes")], "snmalloc", "ALLOCSHIM_BACKEND=\"tcmalloc\""),
    (&[("JEMALLOC_ENABLED", "true")], "jemalloc", ""),
    (&[("MIMALLOC_ENABLED", "TRUE")], "mimalloc", ""),
    (&[("MIMALLOC_ENABLED", "1")], "mimalloc", ""),
    (&[("SNMALLOC_ENABLED", " On ")], "snmalloc", ""),
    (&[("JEMALLOC_ENABLED", "Yes")], "jemalloc", ""),
    (&[("JEMALLOC_ENABLED", "false")], "system", ""),
    (&[("JEMALLOC_ENABLED", "0")], "system", ""),
    (&[("JEMALLOC_ENABLED", "No")], "system", ""),
    (&[("JEMALLOC_ENABLED", "OFF")], "system", ""),
    (&[("JEMALLOC_ENABLED", "")], "system", ""),
    (
        &[("JEMALLOC_ENABLED", "treu")],
        "system",
        "allocshim: ignoring JEMALLOC_ENABLED=\"treu\": expected true, 1, yes, on (enable) or false, 0, no, off, empty (disable), in any case\n",
    ),
    (&[("JEMALLOC_ENABLED", "treu"), ("MIMALLOC_ENABLED", "true")], "mimalloc", "JEMALLOC_ENABLED=\"treu\""),
    (
        &[("MIMALLOC_ENABLED", "true"), ("JEMALLOC_ENABLED", "true")],
        "jemalloc",
        "allocshim: several allocators enabled; using jemalloc (JEMALLOC_ENABLED), ignoring MIMALLOC_ENABLED (precedence: jemalloc, mimalloc, snmalloc; ALLOCSHIM_BACKEND overrides)\n",
    ),
    (
        &[("SNMALLOC_ENABLED", "1"), ("MIMALLOC_ENABLED", "on"), ("JEMALLOC_ENABLED", "yes")],
        "jemalloc",
        "ignoring MIMALLOC_ENABLED, SNMALLOC_ENABLED (precedence",
    ),
    (&[("SNMALLOC_ENABLED", "1"), ("MIMALLOC_ENABLED", "on")], "mimalloc", "ignoring SNMALLOC_ENABLED"),
];

#[test]
fn selection_rules() {
    let mut failures = vec![];
    for (vars, expect, warning) in CASES {
        let (active, reason, stderr) = choose(vars);
        let warned = stderr.lines().filter(|l| l.starts_with("allocshim:")).count();
        let ok = active == *expect && if warning.is_empty() { warned == 0 } else { stderr.contains(warning) && warned == 1 };
        if !ok {
            failures.push(format!("{vars:?}: got {active} ({reason}), stderr {stderr:?}; want {expect}, warning {warning:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reason_names_the_deciding_variable() {
    assert_eq!(choose(&[("JEMALLOC_ENABLED", "true")]).1, "JEMALLOC_ENABLED=true");
    assert_eq!(choose(&[("ALLOCSHIM_BACKEND", "snmalloc")]).1, "ALLOCSHIM_BACKEND=snmalloc");
    assert_eq!(choose(&[]).1, "default: no allocator variable set");
}

#[test]
fn an_execd_child_chooses_again_from_its_own_environment() {
    let fp = c_program("fingerprint");
    let script = format!("ALLOCSHIM_BACKEND=snmalloc {}", fp.display());
    let out = run("/bin/sh", &["-c", &script]).backend("jemalloc").success().unwrap();
    assert_eq!(out.field("active"), Some("snmalloc"), "{}", out.stdout);
    assert_eq!(identify(&out), "snmalloc");
}

#[test]
fn verbose_prints_backend_version_and_reason_once() {
    each_backend(|backend| {
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env("ALLOCSHIM_VERBOSE", "1").success()?;
        let lines: Vec<&str> = out.stderr.lines().collect();
        let ok = lines.len() == 1
            && lines[0].starts_with(&format!("allocshim: backend {backend} "))
            && (backend == "system" || lines[0].ends_with(&format!("({}_ENABLED=true)", backend.to_uppercase())));
        if ok {
            Ok(())
        } else {
            Err(format!("[{backend}] {:?}", out.stderr))
        }
    });
}

/// `ALLOCSHIM_VERBOSE` and `ALLOCSHIM_STATS` take the `*_ENABLED` vocabulary: `off`
/// is off (it used to turn verbose output on), a value outside it is named in a
/// warning and treated as unset.
#[test]
fn verbose_and_stats_take_the_switch_vocabulary() {
    for var in ["ALLOCSHIM_VERBOSE", "ALLOCSHIM_STATS"] {
        for off in ["off", "OFF", "no", "false", "0", ""] {
            let out = run("/bin/true", &[] as &[&str]).backend("jemalloc").env(var, off).success().unwrap();
            assert_eq!(out.stderr, "", "{var}={off:?} printed something");
        }
        for on in ["on", "yes", "TRUE", "1"] {
            let out = run("/bin/true", &[] as &[&str]).backend("jemalloc").env(var, on).success().unwrap();
            let want = if var == "ALLOCSHIM_VERBOSE" { "allocshim: backend jemalloc " } else { "allocshim: stats: backend jemalloc" };
            assert!(out.stderr.starts_with(want), "{var}={on:?}: {:?}", out.stderr);
        }
        let out = run("/bin/true", &[] as &[&str]).backend("jemalloc").env(var, "verbose").success().unwrap();
        assert_eq!(
            out.stderr,
            format!("allocshim: ignoring {var}=\"verbose\": expected true, 1, yes, on (enable) or false, 0, no, off, empty (disable), in any case\n")
        );
    }
}

#[test]
fn stats_at_exit() {
    each_backend(|backend| {
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env("ALLOCSHIM_STATS", "1").success()?;
        let want = format!("allocshim: stats: backend {backend}, peak RSS ");
        if out.stderr.lines().any(|l| l.starts_with(&want)) {
            Ok(())
        } else {
            Err(format!("[{backend}] {:?}", out.stderr))
        }
    });
}

/// "812 KiB", "3.4 MiB", "0 B" (the library's size format) in bytes.
fn bytes(figure: &str) -> f64 {
    let (n, unit) = figure.trim().split_once(' ').unwrap_or_else(|| panic!("not a size: {figure:?}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unknown unit in {figure:?}"),
    };
    n.parse::<f64>().unwrap_or_else(|_| panic!("not a size: {figure:?}")) * scale
}

/// Under snmalloc, `malloc_stats()` prints snmalloc's own current and peak figures,
/// named as allocshim_select::usage defines them (resident): the program held 8 MiB
/// at once, so the peak is at least that.
#[test]
fn snmalloc_malloc_stats_reports_current_and_peak() {
    let out = run(c_program("stats"), &[] as &[&str]).backend("snmalloc").success().unwrap();
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("allocshim: snmalloc: resident "))
        .unwrap_or_else(|| panic!("no snmalloc statistics line: {}", out.stderr));
    let (current, rest) = line.split_once(", peak resident ").unwrap_or_else(|| panic!("no peak in {line:?}"));
    let peak = rest.split(" (").next().unwrap();
    let (current, peak) = (bytes(current), bytes(peak));
    assert!(peak >= 8.0 * 1024.0 * 1024.0, "peak {peak} below the 8 MiB held at once: {line}");
    assert!(current > 0.0 && current <= peak, "current {current}, peak {peak}: {line}");
}

#[test]
fn malloc_conf_reaches_jemalloc_only() {
    let conf = "narenas:2,stats_print:true";
    let out = run("/bin/true", &[] as &[&str]).backend("jemalloc").env("MALLOC_CONF", conf).success().unwrap();
    assert!(out.stderr.contains("___ Begin jemalloc statistics ___"), "{}", out.stderr);
    assert!(out.stderr.contains("opt.narenas: 2"), "{}", out.stderr);
    let out = run("/bin/true", &[] as &[&str]).backend("jemalloc").env("_RJEM_MALLOC_CONF", "stats_print:true").success().unwrap();
    assert!(out.stderr.contains("___ Begin jemalloc statistics ___"), "_RJEM_MALLOC_CONF: {}", out.stderr);
    for backend in ["system", "mimalloc", "snmalloc"] {
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env("MALLOC_CONF", conf).success().unwrap();
        assert!(!out.stderr.contains("jemalloc"), "[{backend}] jemalloc woke up: {}", out.stderr);
        let out = run("/bin/true", &[] as &[&str]).backend(backend).env("_RJEM_MALLOC_CONF", "stats_print:true").success().unwrap();
        assert!(!out.stderr.contains("jemalloc"), "[{backend}] jemalloc woke up: {}", out.stderr);
    }
}

#[test]
fn mimalloc_options_pass_through_and_stay_dormant_elsewhere() {
    let out = run("/bin/true", &[] as &[&str]).backend("mimalloc").env("MIMALLOC_SHOW_STATS", "1").success().unwrap();
    // 2.x prints a "heap stats" table; 3.x (the `mimalloc3` build) heads it "subproc 0".
    assert!(out.stderr.contains("heap stats") || out.stderr.contains("subproc 0"), "{}", out.stderr);
    let out = run("/bin/true", &[] as &[&str]).backend("mimalloc").env("MIMALLOC_VERBOSE", "1").success().unwrap();
    assert!(out.stderr.contains("option 'verbose': 1"), "{}", out.stderr);
    for backend in ["system", "jemalloc", "snmalloc"] {
        let out = run("/bin/true", &[] as &[&str])
            .backend(backend)
            .env("MIMALLOC_SHOW_STATS", "1")
            .env("MIMALLOC_VERBOSE", "1")
            .success()
            .unwrap();
        assert!(!out.stderr.contains("mimalloc") && !out.stderr.contains("heap stats"), "[{backend}] {}", out.stderr);
    }
}

/// snmalloc's page map is ~256 GiB of address space; a process that did not choose
/// snmalloc must not carry it.
#[test]
fn unchosen_backends_reserve_no_address_space() {
    for backend in ["system", "mimalloc", "jemalloc"] {
        let out = run("/bin/cat", &["/proc/self/status"]).backend(backend).success().unwrap();
        let vm_kib: u64 = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert!(vm_kib < 8 << 20, "[{backend}] VmSize {vm_kib} kB");
    }
}

/// In secure mode (setuid), ld.so only preloads libraries named without a slash,
/// found in a standard directory and marked set-user-ID. The test installs such a
/// copy, which needs root: scripts/test runs it when it runs as root (CI does).
#[test]
#[ignore = "needs root (installs a setuid copy of the library in the system library directory); scripts/test runs it as root"]
fn secure_mode_ignores_configuration() {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(unsafe { libc_geteuid() }, 0, "this test needs root: it installs a setuid library in a system directory");
    let libdir = std::path::PathBuf::from(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH));
    assert!(libdir.is_dir(), "no {}: where does ld.so look for trusted libraries here?", libdir.display());
    let name = format!("liballocshim-securetest-{}.so", std::process::id());
    let installed = libdir.join(&name);
    std::fs::copy(lib(), &installed).unwrap();
    std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let dir = tempdir();
    let exe = dir.join("fingerprint-setuid");
    std::fs::copy(c_program("fingerprint"), &exe).unwrap();
    let chown = std::process::Command::new("chown").arg("nobody").arg(&exe).status().unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = run(&exe, &[] as &[&str]).env("LD_PRELOAD", &name).env("JEMALLOC_ENABLED", "true").env("ALLOCSHIM_VERBOSE", "1").output();
    let _ = std::fs::remove_file(&installed);
    assert!(chown.success());
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.field("malloc_object"), Some(name.as_str()), "the library was not preloaded: {}", out.stdout);
    assert_eq!(out.field("active"), Some("system"), "{}", out.stdout);
    assert!(out.field("reason").unwrap_or("").starts_with("secure mode"), "{}", out.stdout);
    assert!(!out.stderr.contains("allocshim:"), "secure mode must stay silent: {}", out.stderr);
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("allocshim-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d
}
