//! Which allocator really serves, and glibc's malloc semantics under each backend.
use allocshim_tests::*;

#[test]
fn fingerprint_proves_the_serving_allocator() {
    let fp = c_program("fingerprint");
    each_backend(|backend| {
        let out = run(&fp, &[] as &[&str]).backend(backend).success()?;
        let mut errors = vec![];
        if out.field("malloc_object") != Some("liballocshim.so") {
            errors.push(format!("malloc resolves to {:?}, not liballocshim.so", out.field("malloc_object")));
        }
        let served_by = identify(&out);
        if served_by != backend {
            errors.push(format!("memory came from {served_by}"));
        }
        // mimalloc offers no live-allocation figure (see allocshim_usage); the others must move.
        let want_usage = if backend == "mimalloc" { "n/a" } else { "1" };
        if out.field("usage_grew") != Some(want_usage) {
            errors.push("the backend's own statistics did not see 64 MiB being allocated".into());
        }
        if out.field("active") != Some(backend) {
            errors.push(format!("allocshim_active() says {:?}", out.field("active")));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("[{backend}] {}\n{}", errors.join("; "), out.stdout))
        }
    });
}

/// The fingerprint can tell the difference: an enable variable without the library
/// changes nothing, and the evidence then points at glibc.
#[test]
fn fingerprint_ignores_what_the_environment_claims() {
    let out = run(c_program("fingerprint"), &[] as &[&str]).no_preload().env("JEMALLOC_ENABLED", "true").success().unwrap();
    assert_eq!(out.field("malloc_object"), Some("libc.so.6"));
    assert_eq!(identify(&out), "system");
    assert_eq!(out.field("active"), Some("none"));
}

#[test]
fn glibc_semantics_under_every_backend() {
    let api = c_program("api");
    each_backend(|backend| {
        let out = run(&api, &[] as &[&str]).backend(backend).success()?;
        if !out.stdout.contains(&format!("under {backend}: 0 failures")) {
            return Err(format!("[{backend}] unexpected output: {}", out.stdout));
        }
        Ok(())
    });
}

/// `errno` after every entry point, failing and succeeding, is glibc's: the same
/// program run with nothing preloaded is the reference. `oom` makes the backends'
/// own mmap fail under RLIMIT_AS (what glibc's tst-malloc-thread-fail does).
/// Left out on purpose: `aligned_alloc` with an alignment that is no power of two,
/// where jemalloc, mimalloc and snmalloc follow glibc >= 2.38 (EINVAL) whatever glibc
/// runs and `system` does what the running glibc does (api.c checks both).
#[test]
fn errno_after_every_entry_point_is_glibcs() {
    let exe = c_program("errno");
    for mode in [&[] as &[&str], &["oom"]] {
        let glibc = run(&exe, mode).no_preload().success().unwrap();
        assert!(glibc.stdout.lines().count() > 10, "reference run printed too little:\n{}", glibc.stdout);
        each_backend(|backend| {
            let out = run(&exe, mode).backend(backend).success()?;
            if !out.stderr.contains(&format!("done under {backend}")) {
                return Err(format!("[{backend}] did not run under the library: {}", out.stderr));
            }
            let differ: Vec<String> = glibc
                .stdout
                .lines()
                .zip(out.stdout.lines())
                .filter(|(g, o)| g != o)
                .map(|(g, o)| format!("  glibc: {g}\n  shim:  {o}"))
                .collect();
            if differ.is_empty() && glibc.stdout.lines().count() == out.stdout.lines().count() {
                return Ok(());
            }
            Err(format!("[{backend}] errno {mode:?} differs from glibc's:\n{}", differ.join("\n")))
        });
    }
}
