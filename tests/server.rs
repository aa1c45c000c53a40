//! `allocshim compare --load`: a small Python server (tests/py/server.py) that
//! allocates per request, loaded by tests/py/load.py; every variant started, loaded,
//! sampled and stopped; failures reported per variant; no process left behind.
use std::path::{Path, PathBuf};

use allocshim_tests::*;
use serde_json::Value;

fn py(name: &str) -> String {
    workspace().join("tests/py").join(name).display().to_string()
}

/// A word unique to this test process, put on the server's command line.
fn tag(what: &str) -> String {
    format!("allocshim-server-test-{}-{what}", std::process::id())
}

/// Processes whose command line contains `word`.
fn processes_with(word: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(word) {
                found.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn compare(args: &[&str], server: &[&str], json: &Path) -> Output {
    let mut all: Vec<String> =
        vec!["compare".into(), "--runs".into(), "1".into(), "--warmup".into(), "0".into(), "--json".into(), json.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("--".into());
    all.extend(["python3".to_string(), py("server.py")]);
    all.extend(server.iter().map(|s| s.to_string()));
    run(cli(), &all).no_preload().env("ALLOCSHIM_LIB", lib()).timeout(300).output()
}

fn rows(json: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    v["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], label: &str) -> &'a Value {
    rows.iter().find(|r| r["label"] == label).unwrap_or_else(|| panic!("no row {label}"))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("allocshim-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn every_variant_is_started_loaded_sampled_and_stopped() {
    let (json, svg) = (temp("ok.json"), temp("ok.svg"));
    let t = tag("ok");
    let load = format!("python3 {} 300 4", py("load.py"));
    let svg_arg = svg.display().to_string();
    let out = compare(
        &[
            "--backends",
            "system,jemalloc",
            "--variant",
            "none=",
            "--preset",
            "low-memory",
            "--env-variant",
            "arena2=none:MALLOC_ARENA_MAX=2",
            "--interval",
            "0.1",
            "--svg",
            &svg_arg,
            "--load",
            &load,
        ],
        &["serve", &t],
        &json,
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let rows = rows(&json);
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["system", "jemalloc", "none", "system+low-memory", "jemalloc+low-memory", "arena2"]);
    for r in &rows {
        let label = r["label"].as_str().unwrap();
        let sample = &r["samples"][0];
        assert_eq!(sample["metrics"]["requests"], 300.0, "{label}: every request served: {r}");
        let series = sample["rss_series"].as_array().unwrap();
        assert!(series.len() >= 3, "{label}: RSS sampled during the load: {series:?}");
        assert!(series.iter().all(|p| p[1].as_u64().unwrap() > 4 << 20), "{label}: a Python server's RSS: {series:?}");
        let m = &r["figures"]["metrics"];
        for name in ["rss_end", "rss_mean_last_third", "rss_slope_last_third", "requests_per_s"] {
            assert!(m[name]["median"].is_number(), "{label}: {name} missing: {m}");
        }
        assert!(sample["user_s"].as_f64().unwrap() > 0.0, "{label}: the server's CPU time: {sample}");
    }
    assert_eq!(row(&rows, "jemalloc")["served_by"], "jemalloc");
    assert_eq!(row(&rows, "jemalloc+low-memory")["served_by"], "jemalloc");
    assert_eq!(row(&rows, "jemalloc+low-memory")["env"][0], serde_json::json!(["ALLOCSHIM_PRESET", "low-memory"]));
    assert_eq!(row(&rows, "arena2")["env"][0], serde_json::json!(["MALLOC_ARENA_MAX", "2"]));
    assert!(row(&rows, "none")["served_by"].is_null(), "nothing preloaded");
    assert!(
        out.stdout.contains("| jemalloc+low-memory |") && out.stdout.contains("| RSS last third MiB, median (min–max) |"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("| throughput req/s |"), "{}", out.stdout);
    // Not a terminal: a line per finished run says how far the comparison got.
    assert!(
        out.stderr.contains("allocshim compare: 6 of 6 done, about 0s left (last: ")
            && out.stderr.contains("allocshim compare: 1 of 6 done, about "),
        "{}",
        out.stderr
    );

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(chart.matches("<polyline").count(), 6, "one line per run: {chart}");
    assert!(chart.contains("arena2: ") && chart.contains("seconds into the load"));
    assert_eq!(processes_with(&t), Vec::<String>::new(), "servers left running");
}

#[test]
fn only_runs_the_variants_it_names() {
    // arena2 is built on `none` and system+low-memory on `system`; neither base runs.
    let json = temp("only.json");
    let t = tag("only");
    let load = format!("python3 {} 50 2", py("load.py"));
    let out = compare(
        &[
            "--backends",
            "system",
            "--variant",
            "none=",
            "--env-variant",
            "arena2=none:MALLOC_ARENA_MAX=2",
            "--env-variant",
            "system+low-memory=system:ALLOCSHIM_PRESET=low-memory",
            "--only",
            "system+low-memory,arena2",
            "--baseline",
            "arena2",
            "--load",
            &load,
        ],
        &["serve", &t],
        &json,
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let rows = rows(&json);
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["arena2", "system+low-memory"]);
    assert!(row(&rows, "arena2")["served_by"].is_null(), "nothing preloaded");
    assert_eq!(row(&rows, "system+low-memory")["served_by"], "system");
    assert!(out.stderr.contains("allocshim compare: 2 of 2 done"), "{}", out.stderr);

    let out = compare(&["--variant", "none=", "--only", "none,arena2", "--load", "true"], &["serve", &t], &json);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--only none,arena2: there is no variant labelled arena2 (there are: none)"), "{}", out.stderr);
    assert_eq!(processes_with(&t), Vec::<String>::new(), "servers left running");
}

/// `compare` on tests/py/worker.py, which listens on no port: ready when DIR/ready-$PORT
/// exists, loaded by its own `enqueue`.
fn compare_worker(args: &[&str], dir: &Path, json: &Path) -> Output {
    let ready = format!("test -f {}/ready-$PORT", dir.display());
    let load = format!("python3 {} enqueue {} 300", py("worker.py"), dir.display());
    let mut all = vec!["--ready", &ready, "--load", &load];
    all.extend(args);
    let mut server = vec![];
    let w = py("worker.py");
    let d = dir.display().to_string();
    let t = tag("worker");
    server.extend(["python3", &w, "run", &d, &t]);
    let mut cmd: Vec<String> =
        vec!["compare".into(), "--runs".into(), "1".into(), "--warmup".into(), "0".into(), "--json".into(), json.display().to_string()];
    cmd.extend(all.iter().map(|s| s.to_string()));
    cmd.push("--".into());
    cmd.extend(server.iter().map(|s| s.to_string()));
    run(cli(), &cmd).no_preload().env("ALLOCSHIM_LIB", lib()).timeout(300).output()
}

#[test]
fn a_worker_without_a_port_is_measured_once_its_ready_check_passes() {
    let dir = temp("worker");
    let json = temp("worker.json");
    let out = compare_worker(&["--backends", "jemalloc", "--variant", "none=", "--interval", "0.1"], &dir, &json);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let done = rows(&json);
    for r in &done {
        let label = r["label"].as_str().unwrap();
        let sample = &r["samples"][0];
        assert_eq!(sample["metrics"]["jobs"], 300.0, "{label}: every job done: {r}");
        assert!(sample["metrics"]["jobs_per_s"].as_f64().unwrap() > 0.0, "{label}: {r}");
        assert!(sample["rss_series"].as_array().unwrap().len() >= 2, "{label}: RSS sampled: {r}");
    }
    assert_eq!(row(&done, "jemalloc")["served_by"], "jemalloc");
    assert!(out.stdout.contains("| throughput jobs/s |"), "the worker's throughput is the table's: {}", out.stdout);
    assert_eq!(processes_with(&tag("worker")), Vec::<String>::new(), "workers left running");

    // A check that never passes, and a server that exits before it is ready.
    let json = temp("worker-fail.json");
    let t = tag("worker");
    let args = [
        "compare",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--json",
        &json.display().to_string(),
        "--variant",
        "none=",
        "--env-variant",
        "early=none:SERVER_MODE=exit-early",
        "--start-timeout",
        "2",
        "--ready",
        "false",
        "--load",
        "true",
        "--",
        "python3",
        &py("server.py"),
        "serve",
        &t,
    ]
    .map(String::from);
    let out = run(cli(), &args).no_preload().env("ALLOCSHIM_LIB", lib()).timeout(120).output();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let rows = rows(&json);
    let status = |label: &str| row(&rows, label)["failures"][0]["status"].as_str().unwrap_or("").to_string();
    assert_eq!(status("none"), "server was not ready within 2 s (the ready command never succeeded: false)");
    assert_eq!(status("early"), "server exited before it was ready (exit status 3)");
    assert_eq!(processes_with(&tag("worker")), Vec::<String>::new(), "workers left running");
}

#[test]
fn failures_are_reported_per_variant() {
    let json = temp("fail.json");
    let t = tag("fail");
    let pidfile = temp("stubborn.pid");
    let load = format!("python3 {} 200 2", py("load.py"));
    let stubborn = format!("stubborn=none:SERVER_MODE=ignore-term SERVER_PIDFILE={}", pidfile.display());
    let out = compare(
        &[
            "--variant",
            "none=",
            "--env-variant",
            "early=none:SERVER_MODE=exit-early",
            "--env-variant",
            "never=none:SERVER_MODE=never-listen",
            "--env-variant",
            "dies=none:SERVER_MODE=die-after=20",
            "--env-variant",
            &stubborn,
            "--start-timeout",
            "2",
            "--grace",
            "1",
            "--load",
            &load,
        ],
        &["serve", &t],
        &json,
    );
    assert_eq!(out.status.code(), Some(1), "a failed variant fails the comparison: {}\n{}", out.stdout, out.stderr);
    let rows = rows(&json);
    let status = |label: &str| row(&rows, label)["failures"][0]["status"].as_str().unwrap_or("").to_string();
    assert!(row(&rows, "none")["figures"].is_object(), "the good variant keeps its figures: {:?}", row(&rows, "none"));
    assert!(
        status("early").starts_with("server exited before listening on port ") && status("early").ends_with("(exit status 3)"),
        "{}",
        status("early")
    );
    assert!(
        status("never").starts_with("server did not accept connections on port ") && status("never").ends_with("within 2 s"),
        "{}",
        status("never")
    );
    assert_eq!(status("dies"), "server died during the load (exit status 4)");
    for label in ["early", "never", "dies"] {
        assert!(row(&rows, label)["figures"].is_null(), "{label}: a failed variant has no figures");
        assert!(
            out.stdout.contains(&format!("| {label} | glibc (nothing preloaded), SERVER_MODE=")) && out.stdout.contains("FAILED"),
            "{}",
            out.stdout
        );
    }
    // Ignoring SIGTERM costs the grace period, then the whole group is killed.
    assert!(row(&rows, "stubborn")["figures"].is_object(), "{:?}", row(&rows, "stubborn"));
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    for pid in pids.split_whitespace() {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
        assert!(!alive, "process {pid} of the stubborn server survived");
    }
    assert_eq!(processes_with(&t), Vec::<String>::new(), "servers left running");
}

#[test]
fn a_failing_load_and_failed_requests_are_reported() {
    let json = temp("load.json");
    let t = tag("load");
    let out = compare(&["--variant", "none=", "--load", "echo cannot reach it >&2; exit 7"], &["serve", &t], &json);
    assert_eq!(out.status.code(), Some(1));
    let failure = &rows(&json)[0]["failures"][0];
    assert_eq!(failure["status"], "load command failed (exit status 7)");
    assert_eq!(failure["stderr_tail"], "cannot reach it");

    // wrk's way of reporting failed requests.
    let load = format!(
        "python3 {} 20 2 && echo '  Socket errors: connect 0, read 0, write 0, timeout 2' && echo '  Non-2xx or 3xx responses: 3'",
        py("load.py")
    );
    let out = compare(&["--variant", "none=", "--load", &load], &["serve", &t], &json);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rows(&json)[0]["failures"][0]["status"], "5 failed requests (2 socket timeout errors, 3 non-2xx/3xx responses)");

    let out = compare(&["--variant", "none=", "--env-variant", "x=nothing:A=1", "--load", "true"], &["serve", &t], &json);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--env-variant x=nothing:A=1: there is no variant labelled nothing (there are: none)"), "{}", out.stderr);
    assert_eq!(processes_with(&t), Vec::<String>::new(), "servers left running");
}

#[test]
fn stopping_compare_stops_its_server_and_load() {
    // The server and the load run in process groups of their own, which neither a
    // terminal's Ctrl-C nor a SIGTERM to `compare` reaches: compare must end them.
    for (sig, name) in [(2, "INT"), (15, "TERM")] {
        let t = tag(&format!("stop-{}", name.to_lowercase()));
        let load = format!("sleep 60 # {t}");
        let json = temp("stop.json");
        let mut cmd = std::process::Command::new(cli());
        cmd.args(["compare", "--runs", "1", "--warmup", "0", "--variant", "none=", "--json"])
            .arg(&json)
            .args(["--load", &load, "--", "python3", &py("server.py"), "serve", &t])
            .env_remove("LD_PRELOAD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let t0 = std::time::Instant::now();
        // Both the server and the load (whose command line carries the tag) are up.
        while processes_with(&t).len() < 2 && t0.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(processes_with(&t).len(), 2, "server and load running: {:?}", processes_with(&t));
        let sent = std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sig), "compare ends as the signal asks: {status:?}");
        let t1 = std::time::Instant::now();
        while !processes_with(&t).is_empty() && t1.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(processes_with(&t), Vec::<String>::new(), "left running after signal {sig}");
    }
}
