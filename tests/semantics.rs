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
        if errors.is_empty() { Ok(()) } else { Err(format!("[{backend}] {}\n{}", errors.join("; "), out.stdout)) }
    });
}

/// The fingerprint can tell the difference: an enable variable without the library
/// changes nothing, and the evidence then points at glibc.
#[test]
fn fingerprint_ignores_what_the_environment_claims() {
    let out = run(c_program("fingerprint"), &[] as &[&str])
        .no_preload()
        .env("JEMALLOC_ENABLED", "true")
        .success()
        .unwrap();
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
