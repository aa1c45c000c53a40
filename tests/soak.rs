//! scripts/soak --short: every soak workload (Sidekiq with its Redis, Puma, gunicorn twice)
//! started, loaded, sampled and stopped under every variant through `allocshim compare
//! --load`, as a functional check: which allocator served each variant, every job or
//! request done, the RSS sampled; no thresholds on RSS or speed (those are
//! docs/servers.md's, from the full runs). Nothing may be left running afterwards:
//! not Redis, not a server. And the driver's failure paths.
use allocshim_tests::*;
use serde_json::Value;

/// Processes started under the scratch directory `tmp` (the TMPDIR each test gives the
/// driver, inherited by Redis, `compare`, the servers and the loads): the tests run in
/// parallel, so a process is matched by its environment, not by a name another test's
/// soak shares.
fn processes_under(tmp: &std::path::Path) -> Vec<String> {
    let marker = format!("TMPDIR={}", tmp.display());
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(e.path().join("environ")) else { continue };
        if environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()) {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(format!("{}: {}", e.file_name().to_string_lossy(), String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// A fresh TMPDIR for one test's soak.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("allocshim-soak-test-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn soak_in(tmp: &std::path::Path, args: &[&str]) -> Output {
    run(workspace().join("scripts/soak"), args)
        .no_preload()
        .env("ALLOCSHIM_LIB", lib())
        .env("ALLOCSHIM_CLI", cli())
        .env("TMPDIR", tmp)
        .timeout(900)
        .output()
}

fn soak(args: &[&str]) -> Output {
    let tmp = scratch("args");
    let out = soak_in(&tmp, args);
    let _ = std::fs::remove_dir_all(&tmp);
    out
}

const VARIANTS: [&str; 8] =
    ["jemalloc", "mimalloc", "snmalloc", "none", "arena2", "system+low-memory", "jemalloc+low-memory", "mimalloc+low-memory"];

#[test]
fn every_workload_runs_under_every_variant_and_nothing_is_left_running() {
    let tmp = scratch("all");
    let out_dir = tmp.join("results");
    let out = soak_in(&tmp, &["--short", "--out", &out_dir.display().to_string()]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    for (workload, throughput) in
        [("sidekiq", "jobs_per_s"), ("puma", "requests_per_s"), ("gunicorn", "requests_per_s"), ("gunicorn-large", "requests_per_s")]
    {
        let json = out_dir.join(format!("{workload}.json"));
        let c: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(c["baseline"], "arena2", "{workload}: Heroku's setting is the baseline");
        let rows = c["rows"].as_array().unwrap();
        let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
        assert_eq!(labels, VARIANTS, "{workload}");
        for r in rows {
            let label = r["label"].as_str().unwrap();
            let what = format!("{workload} {label}");
            assert!(r["failures"].as_array().unwrap().is_empty(), "{what}: {r}");
            let sample = &r["samples"][0];
            assert!(sample["metrics"][throughput].as_f64().unwrap() > 0.0, "{what}: no {throughput}: {r}");
            assert!(sample["metrics"]["cpu_ms_per_op"].as_f64().unwrap() > 0.0, "{what}: {r}");
            let series = sample["rss_series"].as_array().unwrap();
            assert!(series.len() >= 5 && series.iter().all(|p| p[1].as_u64().unwrap() > 10 << 20), "{what}: RSS sampled: {series:?}");
            // The library's own word on what served it.
            let want = label.split('+').next().unwrap();
            match want {
                "none" | "arena2" => assert!(r["served_by"].is_null(), "{what}: nothing preloaded: {r}"),
                backend => assert_eq!(r["served_by"], backend, "{what}"),
            }
        }
        if workload == "sidekiq" {
            let jobs = rows[0]["samples"][0]["metrics"]["jobs"].as_f64().unwrap();
            assert!(jobs >= 20.0, "sidekiq: {jobs} jobs in 8 s");
        }
        let md = std::fs::read_to_string(out_dir.join(format!("{workload}.md"))).unwrap();
        assert!(md.contains("| jemalloc+low-memory |") && md.contains("× arena2"), "{md}");
        assert!(std::fs::read_to_string(out_dir.join(format!("{workload}.svg"))).unwrap().contains("<polyline"));
    }
    // Not Redis, not a server, not a load.
    assert_eq!(processes_under(&tmp), Vec::<String>::new(), "left running");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn variants_runs_only_those_and_always_the_baseline() {
    let tmp = scratch("variants");
    let out_dir = tmp.join("results");
    let out = soak_in(&tmp, &["--short", "--variants", "jemalloc+low-memory", "--out", &out_dir.display().to_string(), "puma"]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let c: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("puma.json")).unwrap()).unwrap();
    let labels: Vec<&str> = c["rows"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["arena2", "jemalloc+low-memory"]);
    assert_eq!(c["rows"][1]["served_by"], "jemalloc");
    assert!(!out_dir.join("sidekiq.json").exists(), "only the workload asked for");
    assert_eq!(processes_under(&tmp), Vec::<String>::new(), "left running");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bad_arguments_name_the_value_and_what_is_accepted() {
    for (args, want) in [
        (&["redis"][..], "soak: unknown workload 'redis' (accepted: sidekiq, puma, gunicorn, gunicorn-large, json-puma, json-gunicorn)"),
        (&["--minutes", "0"][..], "soak: --minutes 0: expected a number of minutes above 0, e.g. 10 or 0.5"),
        (&["--minutes", "ten"][..], "soak: --minutes ten: expected a number of minutes above 0, e.g. 10 or 0.5"),
        (&["--rounds", "0"][..], "soak: --rounds 0: expected a whole number of runs, 1 or more"),
        (&["--fast"][..], "soak: unknown option --fast (accepted: --minutes M, --rounds N, --variants LIST, --short, --out DIR)"),
        (
            &["--variants", "arena2,tcmalloc"][..],
            "soak: unknown variant 'tcmalloc' in --variants (accepted: jemalloc,mimalloc,snmalloc,none,arena2,system+low-memory,jemalloc+low-memory,mimalloc+low-memory)",
        ),
    ] {
        let out = soak(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim(), want, "{args:?}");
    }
}

#[test]
fn a_stopped_soak_leaves_nothing_running() {
    let tmp = scratch("stop");
    let mut child = std::process::Command::new(workspace().join("scripts/soak"))
        .args(["--short", "sidekiq"])
        .env("ALLOCSHIM_LIB", lib())
        .env("ALLOCSHIM_CLI", cli())
        .env("TMPDIR", &tmp)
        .env_remove("LD_PRELOAD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Sidekiq itself, not the driver's or compare's command line that names it.
    let sidekiq =
        || processes_under(&tmp).into_iter().any(|p| p.contains("sidekiq") && !p.contains("scripts/soak") && !p.contains(" compare "));
    let t0 = std::time::Instant::now();
    while !sidekiq() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(sidekiq(), "Sidekiq never started: {:?}", processes_under(&tmp));
    let stopped = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    let t1 = std::time::Instant::now();
    while !processes_under(&tmp).is_empty() && t1.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(processes_under(&tmp), Vec::<String>::new(), "left running after SIGTERM");
    let _ = std::fs::remove_dir_all(&tmp);
}
