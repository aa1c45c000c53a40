//! Threads, fork, process creation, libraries and memory limits, under each backend.
use allocshim_tests::*;

fn passes(program: &str, args: &[&str], timeout: u64) {
    passes_exe(&c_program(program), program, args, timeout)
}

/// The C program ran to the end under each backend and reported no failed check.
fn passes_exe(exe: &std::path::Path, program: &str, args: &[&str], timeout: u64) {
    each_backend(|backend| {
        let out = run(exe, args).backend(backend).timeout(timeout).success()?;
        let expect = format!("done under {backend}");
        if !out.stdout.contains(&expect) || !out.stdout.contains(" 0 failures") {
            return Err(format!("[{backend}] {program}: {}", out.stdout));
        }
        Ok(())
    });
}

#[test]
fn cross_thread_frees_with_content_checks_and_thread_churn() {
    passes("stress", &["4", "30000", "3000"], 120);
}

#[test]
fn fork_from_a_multithreaded_process_never_hangs() {
    // 300 forks while three threads allocate; a child stuck on a lock held at fork
    // time shows up as a timeout.
    passes("forkmt", &["300"], 90);
}

/// How often each fork test runs per backend: the deadlocks they catch depend on
/// timing, so one clean run proves little.
const FORK_REPEATS: usize = 5;

fn passes_repeatedly(program: &str, args: &[&str], timeout: u64) {
    let exe = c_program(program);
    each_backend(|backend| {
        for rep in 1..=FORK_REPEATS {
            let out = run(&exe, args).backend(backend).timeout(timeout).success().map_err(|e| format!("run {rep}/{FORK_REPEATS}: {e}"))?;
            if !out.stdout.contains(&format!("done under {backend}")) || !out.stdout.contains(" 0 failures") {
                return Err(format!("[{backend}] {program} run {rep}/{FORK_REPEATS}: {}", out.stdout));
            }
        }
        Ok(())
    });
}

/// Threads fork while others hold stdio locks and allocate (getline, fflush(NULL),
/// fopen/fclose): jemalloc's fork handler used to take its locks before glibc's fork
/// took the stdio list lock, and the three threads waited for each other forever.
#[test]
fn fork_while_other_threads_use_stdio_never_hangs() {
    passes_repeatedly("forkstdio", &["1500"], 60);
}

/// A signal handler forks while the single-threaded process allocates: jemalloc
/// waited for a lock its own interrupted malloc held, snmalloc aborted. glibc takes no
/// malloc lock in a single-threaded fork, and neither may the backends.
#[test]
fn fork_from_a_signal_handler_while_allocating_completes() {
    passes_repeatedly("forksignal", &["500"], 60);
}

#[test]
fn posix_spawn_system_and_popen() {
    passes("spawn", &[], 60);
}

#[test]
fn early_constructor_allocation_and_dlopen_dlclose() {
    let exe = c_program("libs");
    let plugin = c_artifact("libplugin.so");
    passes_exe(&exe, "libs", &[plugin.to_str().unwrap()], 60);
}

/// glibc's blocks reaching the shim: snmalloc ignores them (a leak, no crash);
/// jemalloc and mimalloc do not check, exactly like their standalone builds (a check
/// would cost every free; see backend/mimalloc.rs), so they are left out, as the
/// README documents.
#[test]
fn foreign_pointers_do_not_crash_where_the_backend_can_tell() {
    let exe = c_program("foreign");
    for (backend, mode) in [("system", "all"), ("snmalloc", "free")] {
        let out = run(&exe, &[mode]).backend(backend).success().unwrap();
        assert!(out.stdout.contains(&format!("done under {backend}: 0 failures")), "{}", out.stdout);
    }
}

#[test]
fn allocation_failure_under_rlimit_as_is_null_and_enomem() {
    passes("rlimit", &[], 120);
}

/// snmalloc reserves ~256 GiB of address space when it starts; under a 3 GiB
/// RLIMIT_AS it is refused with a warning and the process runs on glibc instead of
/// aborting before main.
#[test]
fn snmalloc_under_a_3_gib_address_space_limit_falls_back_with_a_warning() {
    let fp = c_program("fingerprint");
    let mut r = run("prlimit", &["--as=3221225472", fp.to_str().unwrap()]).backend("snmalloc");
    let out = r.command().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("active=system"), "{stdout}");
    assert!(stderr.contains("allocshim: snmalloc refused: RLIMIT_AS"), "{stderr}");
    // The other backends fit in 3 GiB and stay in charge.
    for backend in ["mimalloc", "jemalloc"] {
        let mut r = run("prlimit", &["--as=3221225472", fp.to_str().unwrap()]).backend(backend);
        let out = r.command().output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains(&format!("active={backend}")), "{backend}: {stdout}");
    }
}
