//! The `allocshim` command: run, info, doctor, compare, and its answers to bad input.
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use allocshim_tests::*;

/// The command, with the library under test and a clean allocator configuration.
fn allocshim<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run(cli(), args).no_preload().env("ALLOCSHIM_LIB", lib())
}

/// A refusal: non-zero exit, the expected words, and no panic or backtrace.
fn refused(out: &Output, code: i32, words: &str) {
    assert_eq!(out.status.code(), Some(code), "{}: {}\n{}", out.label, out.status, out.stderr);
    assert!(out.stderr.contains(words), "{}: expected '{words}' in:\n{}", out.label, out.stderr);
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"), "{}", out.stderr);
}

#[test]
fn run_serves_each_backend_as_the_library_reports_and_the_memory_shows() {
    let fp = c_program("fingerprint");
    each_backend(|b| {
        let out = allocshim(&["run", "--backend", b, "--verbose", "--", fp.to_str().unwrap()]).success()?;
        if !out.stderr.contains(&format!("allocshim: backend {b} ")) {
            return Err(format!("[{b}] no self-report of {b}: {}", out.stderr));
        }
        let served = identify(&out);
        (served == b).then_some(()).ok_or(format!("[{b}] memory served by {served}"))
    });
    // Without --backend, the usual environment rules apply.
    let out = allocshim(&["run", "--", fp.to_str().unwrap()]).env("JEMALLOC_ENABLED", "true").success().unwrap();
    assert_eq!(identify(&out), "jemalloc");
}

#[test]
fn run_passes_exit_status_and_signals_through() {
    let out = allocshim(&["run", "--", "sh", "-c", "exit 7"]).output();
    assert_eq!(out.status.code(), Some(7), "{}", out.stderr);
    let out = allocshim(&["run", "--backend", "mimalloc", "--", "sh", "-c", "kill -TERM $$"]).output();
    assert_eq!(out.status.signal(), Some(15), "{}", out.status);
    let out = allocshim(&["run", "--", "no-such-command-xyz"]).output();
    refused(&out, 127, "cannot run no-such-command-xyz");
}

#[test]
fn run_prepends_to_ld_preload_and_keeps_what_was_there() {
    let other = c_artifact("libplugin.so");
    c_program("libs"); // builds libplugin.so
    let out =
        allocshim(&["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\"; cat /proc/self/maps"]).env("LD_PRELOAD", &other).success().unwrap();
    let first = out.stdout.lines().next().unwrap();
    assert_eq!(first, format!("{}:{}", lib().canonicalize().unwrap().display(), other.display()));
    assert!(out.stdout.contains("liballocshim.so") && out.stdout.contains("libplugin.so"), "both must be mapped");
}

/// `allocshim preload`, the LD_PRELOAD editor the buildpack's start-up scripts call.
#[test]
fn preload_prints_the_new_ld_preload_and_answers_whether_to() {
    let lib = lib().canonicalize().unwrap();
    let other = "/x/libother.so";
    // The library first, the rest kept in order, an older copy dropped, ':' only.
    let out = allocshim(&["preload"]).env("LD_PRELOAD", format!(" /old/liballocshim.so {other}:/y/liby.so")).success().unwrap();
    assert_eq!(out.stdout, format!("{}:{other}:/y/liby.so\n", lib.display()));
    let out = allocshim(&["preload"]).env("LD_PRELOAD", format!("{other}:{}", lib.display())).success().unwrap();
    assert_eq!(out.stdout, format!("{}:{other}\n", lib.display()));

    // --if-enabled: nothing asked, nothing printed, exit 1.
    let out = allocshim(&["preload", "--if-enabled"]).output();
    assert_eq!((out.status.code(), out.stdout.as_str(), out.stderr.as_str()), (Some(1), "", ""));
    // Not preloaded, so the library cannot explain a misspelt switch: the command does.
    let out = allocshim(&["preload", "--if-enabled"]).env("JEMALLOC_ENABLED", "treu").output();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, "");
    assert!(out.stderr.starts_with("allocshim: ignoring JEMALLOC_ENABLED=\"treu\": expected true"), "{}", out.stderr);
    // Asked: the value, with --lib used as given; the warnings are left to the library.
    let out = allocshim(&["preload", "--if-enabled", "--lib", lib.to_str().unwrap()])
        .env("JEMALLOC_ENABLED", "yes")
        .env("MIMALLOC_ENABLED", "on")
        .success()
        .unwrap();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), (format!("{}\n", lib.display()).as_str(), ""));

    refused(&allocshim(&["preload", "--lib", "liballocshim.so"]).output(), 2, "--lib liballocshim.so is not an absolute path to a file");
}

#[test]
fn run_with_stats_prints_the_exit_summary() {
    let out = allocshim(&["run", "--stats", "--backend", "jemalloc", "--", "true"]).success().unwrap();
    assert!(out.stderr.contains("allocshim: stats: backend jemalloc, peak RSS"), "{}", out.stderr);
}

#[test]
fn info_json_matches_the_query_api() {
    let out = allocshim(&["info", "--json"]).env("SNMALLOC_ENABLED", "yes").success().unwrap();
    let info: serde_json::Value = serde_json::from_str(&out.stdout).expect("info --json is JSON");
    let q = run(c_program("query"), &[] as &[&str]).env("SNMALLOC_ENABLED", "yes").success().unwrap();
    assert_eq!(info["version"], q.field("version").unwrap());
    let backends: Vec<String> = info["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{} {}", b["name"].as_str().unwrap(), b["version"].as_str().unwrap()))
        .collect();
    let expected: Vec<&str> = q.stdout.lines().filter_map(|l| l.strip_prefix("backend=")).collect();
    assert_eq!(backends, expected);
    assert_eq!(info["selected"]["name"], q.field("active").unwrap());
    assert_eq!(info["selected"]["name"], "snmalloc");
    assert_eq!(info["reason"], q.field("reason").unwrap());
    assert_eq!(info["library"], lib().canonicalize().unwrap().to_str().unwrap());
    assert_eq!(info["binary"]["missing"].as_array().unwrap().len(), 0);
    assert_eq!(info["binary"]["leaked"].as_array().unwrap().len(), 0);
    assert!(info["binary"]["glibc_floor"].as_str().unwrap().starts_with("GLIBC_2."));
    assert_eq!(info["binary"]["arch"], target_arch());

    let text = allocshim(&["info"]).success().unwrap();
    assert!(text.stdout.contains("selected     system"), "{}", text.stdout);
    assert!(text.stdout.contains(&format!(" for {}\n", target_arch())), "{}", text.stdout);
}

/// Starts `sleep` (with or without the library), runs `doctor PID` on it.
fn doctor_on_process(preload: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut sleep = Command::new("sleep");
    sleep.arg("30").stdin(Stdio::null()).env_remove("LD_PRELOAD");
    for v in ["ALLOCSHIM_BACKEND", "JEMALLOC_ENABLED", "MIMALLOC_ENABLED", "SNMALLOC_ENABLED"] {
        sleep.env_remove(v);
    }
    if let Some(p) = preload {
        sleep.env("LD_PRELOAD", p);
    }
    sleep.envs(env.iter().copied());
    let mut child = sleep.spawn().unwrap();
    // Wait until the exec has happened, so /proc shows sleep and not the forked test.
    for _ in 0..200 {
        if std::fs::read_link(format!("/proc/{}/exe", child.id())).is_ok_and(|p| p.ends_with("sleep")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = allocshim(&["doctor", &child.id().to_string()]).output();
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn doctor_on_processes_with_and_without_the_library() {
    let lib = lib().canonicalize().unwrap();
    let good = doctor_on_process(Some(lib.to_str().unwrap()), &[("JEMALLOC_ENABLED", "true")]);
    assert!(good.status.success(), "{}\n{}", good.stdout, good.stderr);
    assert!(good.stdout.contains("the library is loaded in the process"), "{}", good.stdout);
    assert!(good.stdout.contains("the library selects jemalloc"), "{}", good.stdout);
    assert!(good.stdout.trim_end().ends_with("healthy"), "{}", good.stdout);

    let none = doctor_on_process(None, &[("JEMALLOC_ENABLED", "true")]);
    assert_eq!(none.status.code(), Some(1), "{}", none.stdout);
    assert!(none.stdout.contains("LD_PRELOAD is not set"), "{}", none.stdout);
    assert!(none.stdout.contains("fix: "), "{}", none.stdout);

    let broken = doctor_on_process(Some("/nonexistent/liballocshim.so"), &[]);
    assert_eq!(broken.status.code(), Some(1), "{}", broken.stdout);
    assert!(broken.stdout.contains("/nonexistent/liballocshim.so does not exist"), "{}", broken.stdout);
    assert!(broken.stdout.contains("has not loaded it"), "{}", broken.stdout);
}

#[test]
fn doctor_on_this_shell_finds_separators_and_conflicts() {
    let lib = lib().canonicalize().unwrap();
    let ok = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("MIMALLOC_ENABLED", "on").output();
    assert!(ok.status.success(), "{}", ok.stdout);

    let semicolon = format!("{};/usr/lib/libfoo.so", lib.display());
    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &semicolon).output();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.contains("contains ';' or ','"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("LD_PRELOAD=\"{}:/usr/lib/libfoo.so\"", lib.display())), "{}", out.stdout);

    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "true").env("SNMALLOC_ENABLED", "true").output();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("several allocators enabled; using jemalloc"), "{}", out.stdout);

    assert!(out.stdout.contains("fix: turn SNMALLOC_ENABLED off to keep jemalloc, or set ALLOCSHIM_BACKEND"), "{}", out.stdout);

    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("MIMALLOC_ENABLED", "treu").output();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("MIMALLOC_ENABLED=\"treu\""), "{}", out.stdout);
    assert!(
        out.stdout.contains("fix: set MIMALLOC_ENABLED to one of true, 1, yes, on (on) or false, 0, no, off (off), or unset it"),
        "{}",
        out.stdout
    );

    // Print-only switches: the library never sees them in doctor's probe, the shared
    // rules still judge them.
    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "1").env("ALLOCSHIM_VERBOSE", "off").output();
    assert!(out.status.success(), "ALLOCSHIM_VERBOSE=off is valid: {}", out.stdout);
    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "1").env("ALLOCSHIM_STATS", "maybe").output();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("the library warns: ignoring ALLOCSHIM_STATS=\"maybe\""), "{}", out.stdout);
    assert_eq!(out.stdout.matches("the library warns").count(), 1, "{}", out.stdout);

    // The trimming interval, read only under the preset: a fraction of a second is
    // valid, a value below 0.01 s is not, and the fix names the range.
    let doctor = |interval: &str| {
        allocshim(&["doctor"])
            .env("LD_PRELOAD", &lib)
            .env("ALLOCSHIM_BACKEND", "system")
            .env("ALLOCSHIM_PRESET", "low-memory")
            .env("ALLOCSHIM_TRIM_INTERVAL", interval)
            .output()
    };
    let out = doctor("0.2");
    assert!(out.status.success(), "ALLOCSHIM_TRIM_INTERVAL=0.2 is valid: {}", out.stdout);
    let out = doctor("0.005");
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("ignoring ALLOCSHIM_TRIM_INTERVAL=\"0.005\""), "{}", out.stdout);
    assert!(
        out.stdout.contains("fix: set ALLOCSHIM_TRIM_INTERVAL to seconds from 0.01 to 3600 (e.g. 0.2), 0 for no trimming, or unset it"),
        "{}",
        out.stdout
    );
}

#[test]
fn doctor_on_programs_that_preloading_cannot_serve() {
    let lib = lib().canonicalize().unwrap();
    let static_exe = c_program("static");
    let out = allocshim(&["doctor", "--", static_exe.to_str().unwrap()]).env("LD_PRELOAD", &lib).output();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("is statically linked"), "{}", out.stdout);

    // A script is judged by its interpreter.
    let dir = c_artifact("doctor-script");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("hello.pl");
    std::fs::write(&script, "#!/usr/bin/env perl\nprint 1;\n").unwrap();
    let out = allocshim(&["doctor", "--", script.to_str().unwrap()]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "1").output();
    assert!(out.status.success(), "{}", out.stdout);
    assert!(out.stdout.contains("perl") && out.stdout.contains("is dynamically linked"), "{}", out.stdout);
}

/// ALLOCSHIM_ONLY/EXCEPT: `doctor PID` judges the process by the names the library
/// read in it, and says what the library itself said at its start.
#[test]
fn doctor_on_a_process_says_which_rule_left_it_on_system() {
    let lib = lib().canonicalize().unwrap();
    for (var, value, rule) in [
        ("ALLOCSHIM_EXCEPT", "node*,sleep", "left on system by ALLOCSHIM_EXCEPT=\"node*,sleep\": program sleep matches sleep"),
        ("ALLOCSHIM_ONLY", "ruby,python3*", "left on system by ALLOCSHIM_ONLY=\"ruby,python3*\": program sleep is not listed"),
        ("ALLOCSHIM_ONLY", "sl*", "JEMALLOC_ENABLED=true; ALLOCSHIM_ONLY=\"sl*\": program sleep matches sl*"),
    ] {
        let mut sleep = Command::new("sleep");
        sleep.arg("30").stdin(Stdio::null()).stderr(Stdio::piped()).env("LD_PRELOAD", &lib);
        sleep.env("JEMALLOC_ENABLED", "true").env("ALLOCSHIM_VERBOSE", "1").env(var, value);
        let mut child = sleep.spawn().unwrap();
        // The library's own line, printed at the process's start.
        let mut own = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stderr.take().unwrap()), &mut own).unwrap();
        let out = allocshim(&["doctor", &child.id().to_string()]).output();
        let _ = child.kill();
        let _ = child.wait();
        let said = own.trim().strip_prefix("allocshim: backend ").unwrap_or(&own).to_string();
        assert!(said.contains(rule), "the library said: {own}");
        assert!(out.status.success(), "a program left out is not a problem: {}", out.stdout);
        assert!(
            out.stdout.contains(&format!("for this program the library selects {said}")),
            "doctor disagrees with the library ({said}):\n{}",
            out.stdout
        );
        let fix = match (var, rule.starts_with("left")) {
            (_, false) => None,
            ("ALLOCSHIM_ONLY", _) => Some("fix: to serve it, add one of its names (program sleep) to ALLOCSHIM_ONLY"),
            _ => Some("fix: to serve it, take the pattern that matches it out of ALLOCSHIM_EXCEPT"),
        };
        if let Some(fix) = fix {
            assert!(out.stdout.contains("the library is loaded but dormant") && out.stdout.contains(fix), "{}", out.stdout);
        }
    }
}

#[test]
fn doctor_names_a_list_that_is_not_one_and_judges_commands() {
    let lib = lib().canonicalize().unwrap();
    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "1").env("ALLOCSHIM_ONLY", "ruby;python3").output();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains("the library warns: ignoring ALLOCSHIM_ONLY=\"ruby;python3\": \"ruby;python3\" is not a program name"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("fix: set ALLOCSHIM_ONLY to program names or patterns separated by commas (ruby,puma*,python3*), or unset it"));
    let out = allocshim(&["doctor"]).env("LD_PRELOAD", &lib).env("JEMALLOC_ENABLED", "1").env("ALLOCSHIM_ONLY", "ruby, python3*").output();
    assert!(
        out.stdout.contains("programs served: only ruby, python3* (ALLOCSHIM_ONLY); every other program stays on system"),
        "{}",
        out.stdout
    );

    // `doctor -- SCRIPT` follows `#!/usr/bin/env ruby` to the process that lasts.
    let dir = c_artifact("doctor-scope");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("web-server.rb");
    std::fs::write(&script, "#!/usr/bin/env ruby\nsleep\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let doctor = |only: &str| {
        allocshim(&["doctor", "--", script.to_str().unwrap()])
            .env("LD_PRELOAD", &lib)
            .env("JEMALLOC_ENABLED", "1")
            .env("ALLOCSHIM_ONLY", only)
            .output()
    };
    let out = doctor("web-*");
    assert!(
        out.stdout.contains("for this program the library selects jemalloc") && out.stdout.contains("script web-server.rb matches web-*"),
        "{}",
        out.stdout
    );
    let out = doctor("python3*");
    assert!(out.stdout.contains("program ruby (binary ruby"), "{}", out.stdout);
    assert!(out.stdout.contains(", script web-server.rb) is not listed"), "{}", out.stdout);
}

/// `info` says which programs are served; `info -- CMD` gives what CMD gets, in the
/// words the library prints in it.
#[test]
fn info_says_which_programs_are_served() {
    let text = allocshim(&["info"]).env("JEMALLOC_ENABLED", "1").env("ALLOCSHIM_EXCEPT", "node*, chrom*").success().unwrap();
    assert!(text.stdout.contains("selected     jemalloc "), "{}", text.stdout);
    assert!(text.stdout.contains("programs     never node*, chrom* (ALLOCSHIM_EXCEPT); the others are served"), "{}", text.stdout);
    let fp = c_program("fingerprint");
    each_backend(|backend| {
        for only in ["ruby", "finger*"] {
            let mut info = allocshim(&["info", "--json", "--", fp.to_str().unwrap()]).backend(backend).env("ALLOCSHIM_ONLY", only);
            let json: serde_json::Value =
                serde_json::from_str(&info.command().output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap())
                    .map_err(|e| format!("[{backend}] info --json: {e}"))?;
            let truth = run(&fp, &[] as &[&str]).backend(backend).env("ALLOCSHIM_ONLY", only).success()?;
            let left = json["left_on_system_by"].as_str();
            let expected_left = (backend != "system" && only == "ruby").then_some("ALLOCSHIM_ONLY");
            let agrees = json["selected"]["name"].as_str() == truth.field("active")
                && json["reason"].as_str() == truth.field("reason")
                && left == expected_left
                && json["names"]["program"] == "fingerprint";
            if !agrees {
                return Err(format!("[{backend}] ALLOCSHIM_ONLY={only}: info says {json}\nthe program says {}", truth.stdout));
            }
        }
        Ok(())
    });
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn compare_reports_every_backend_with_sane_figures_and_a_chart_that_renders() {
    let churn = c_program("churn");
    let dir = c_artifact("compare");
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg, png) = (dir.join("c.json"), dir.join("c.svg"), dir.join("c.png"));
    let out = allocshim(&[
        "compare",
        "--runs",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--",
        churn.to_str().unwrap(),
        "300000",
    ])
    .success()
    .unwrap();
    for b in BACKENDS {
        assert!(out.stdout.lines().any(|l| l.starts_with(&format!("| {b} |"))), "no row for {b}:\n{}", out.stdout);
    }
    // Not a terminal: no progress bar.
    assert!(!out.stderr.contains("runs,"), "progress drawn to a pipe: {}", out.stderr);

    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), BACKENDS.len());
    for r in rows {
        let label = r["label"].as_str().unwrap();
        assert_eq!(r["served_by"], label, "the library itself must report serving {label}");
        assert_eq!(r["samples"].as_array().unwrap().len(), 3);
        let f = &r["figures"];
        let wall = f["wall_s"]["median"].as_f64().unwrap();
        let rss = f["peak_rss"]["median"].as_f64().unwrap();
        assert!(wall > 0.0 && wall < 60.0, "{label}: wall {wall}");
        assert!(rss > 256.0 * 1024.0 && rss < 1024.0 * 1024.0 * 1024.0, "{label}: peak RSS {rss}");
        assert!(f["wall_s"]["min"].as_f64().unwrap() <= wall && wall <= f["wall_s"]["max"].as_f64().unwrap());
        // The program's own figure (an `allocshim-metric` line), read from every run.
        assert_eq!(f["metrics"]["operations"]["median"].as_f64(), Some(300000.0), "{label}: {f}");
        assert_eq!(f["metrics"]["operations"]["n"].as_u64(), Some(3), "{label}");
    }
    assert_eq!(c["metric_units"]["operations"], "ops");
    assert!(out.stdout.contains("operations ops, median (min–max)"), "no metric column:\n{}", out.stdout);
    assert_eq!(rows[0]["label"], "system");
    assert_eq!(rows[0]["wall_ratio"]["value"].as_f64(), Some(1.0));

    let status = Command::new("rsvg-convert").arg(&svg).arg("-o").arg(&png).status().expect("rsvg-convert (Debian's librsvg2-bin)");
    assert!(status.success());
    let png = std::fs::read(&png).unwrap();
    assert!(png.len() > 2000, "PNG too small to hold a chart");
    // 900 wide; 78 header + 30 per variant + 50 axis.
    assert_eq!(png_size(&png), (900, 78 + 30 * BACKENDS.len() as u32 + 50));
}

#[test]
fn compare_measures_the_peak_rss_of_the_command_not_of_allocshim() {
    // rusage alone would report at least allocshim's own size for a tiny command (the
    // kernel counts the image exec replaced); /bin/true itself needs far less.
    let dir = c_artifact("compare-true");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("true.json");
    allocshim(&["compare", "--runs", "3", "--backends", "system", "--variant", "none=", "--json", json.to_str().unwrap(), "--", "true"])
        .success()
        .unwrap();
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let own = status_kib(std::process::id(), "VmHWM");
    for r in c["rows"].as_array().unwrap() {
        let kib = r["figures"]["peak_rss"]["median"].as_f64().unwrap() / 1024.0;
        assert!(kib > 300.0 && kib < 4096.0, "{}: /bin/true peak RSS {kib} KiB", r["label"]);
        assert!(own == 0 || kib < own as f64, "{}: {kib} KiB is not below this test's own {own} KiB", r["label"]);
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn summarize_puts_several_comparisons_side_by_side_with_a_chart() {
    let churn = c_program("churn");
    let dir = c_artifact("summarize");
    std::fs::create_dir_all(&dir).unwrap();
    let mut results = Vec::new();
    for (name, ops) in [("small", "20000"), ("large", "200000")] {
        let json = dir.join(format!("{name}.json"));
        let json_arg = format!("--json={}", json.display());
        allocshim(&["compare", "--runs=2", "--warmup=0", "--backends=system,jemalloc", &json_arg, "--", churn.to_str().unwrap(), ops])
            .success()
            .unwrap();
        results.push(format!("{name}={}", json.display()));
    }
    let svg = dir.join("s.svg");
    let mut args = vec!["summarize", "--pair", "jemalloc/system", "--time-metric", "no-such-metric", "--svg", svg.to_str().unwrap()];
    args.extend(results.iter().map(String::as_str));
    let out = allocshim(&args).success().unwrap();
    for name in ["small (wall)", "large (wall)"] {
        let row =
            out.stdout.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("no row {name}:\n{}", out.stdout));
        assert!(row.contains(" ms)"), "{row}");
    }
    assert!(out.stdout.contains("| jemalloc / system |"), "{}", out.stdout);
    assert!(out.stdout.contains("KiB)"), "{}", out.stdout);
    let png = dir.join("s.png");
    assert!(Command::new("rsvg-convert").arg(&svg).arg("-o").arg(&png).status().unwrap().success());
    let (w, h) = png_size(&std::fs::read(&png).unwrap());
    assert_eq!(w, 900);
    assert!(h > 150, "chart height {h}");

    let mut bad = vec!["summarize", "--pair", "jemalloc/tcmalloc"];
    bad.extend(results.iter().map(String::as_str));
    refused(&allocshim(&bad).output(), 2, "no result has a variant labelled tcmalloc (there are: jemalloc, system)");
    refused(&allocshim(&["summarize", "--pair", "a/b", "/nope.json"]).output(), 2, "cannot read /nope.json");
}

#[test]
fn compare_reports_a_failing_variant_instead_of_averaging_it() {
    let script = "echo boom >&2; test \"$ALLOCSHIM_BACKEND\" != mimalloc";
    let out = allocshim(&["compare", "--runs=2", "--warmup=0", "--backends=system,mimalloc", "--", "sh", "-c", script]).output();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with("| mimalloc |")).expect("mimalloc row");
    assert!(row.contains("FAILED: 2 of 2 runs, exit status 1") && row.contains("boom"), "{row}");
    let row = out.stdout.lines().find(|l| l.starts_with("| system |")).expect("system row");
    assert!(row.contains("| 1.00 |"), "{row}");
}

#[test]
fn compare_shows_progress_on_a_terminal() {
    // util-linux's `script` gives the command a pseudo-terminal.
    let cmd = format!("{} compare --runs 2 --warmup 0 --backends system -- sleep 0.3", cli().display());
    let out = run("script", &["-qec", &cmd, "/dev/null"]).no_preload().env("ALLOCSHIM_LIB", lib()).success().unwrap();
    assert!(out.stdout.contains("runs,") && out.stdout.contains("left"), "no progress bar on a terminal:\n{}", out.stdout);
}

#[test]
fn bad_input_is_refused_clearly() {
    refused(
        &allocshim(&["run", "--backend", "tcmalloc", "--", "true"]).output(),
        2,
        "unknown backend 'tcmalloc'; this library has: jemalloc, mimalloc, snmalloc, system",
    );
    refused(&allocshim(&["compare", "--backends", "system,tcmalloc", "--", "true"]).output(), 2, "unknown backend 'tcmalloc'");
    refused(&allocshim(&["run"]).output(), 2, "<CMD>");
    refused(&allocshim(&["compare", "--runs", "0", "--", "true"]).output(), 2, "invalid value '0' for '--runs <RUNS>'");
    refused(&allocshim(&["compare", "--", "no-such-command-xyz"]).output(), 2, "command not found: no-such-command-xyz");
    refused(&allocshim(&["doctor", "999999999"]).output(), 2, "no process with PID 999999999");
    refused(
        &allocshim(&["info"]).env("ALLOCSHIM_LIB", "/nope/liballocshim.so").output(),
        2,
        "ALLOCSHIM_LIB=/nope/liballocshim.so is not a file",
    );
}
