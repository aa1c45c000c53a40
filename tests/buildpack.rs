//! The classic buildpack, offline: an artifact built with scripts/dist and served
//! from a directory, bin/detect and bin/compile on scratch apps, then simulated dynos
//! (a clean `env -i` environment, every .profile.d script sourced, as Heroku's dyno
//! start does) where the library's own report says which allocator served the program.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use allocshim_tests::{c_artifact, c_program, workspace};

const ARCH: &str = std::env::consts::ARCH;

struct Dist {
    dir: PathBuf,
    artifacts: PathBuf,
    sha256: String,
}

/// One artifact for all tests, and a list of artifacts naming it with its checksum.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = c_artifact("dist");
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(workspace().join("scripts/dist")).arg("--out").arg(&dir).output().unwrap();
        assert!(out.status.success(), "scripts/dist failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string();
        let (sha256, name) = line.split_once("  ").expect("sha256sum line");
        // allocshim-0.1.0-x86_64-mimalloc2.3.2-jemalloc5.3.1-snmalloc0.7.6.tar.gz
        let fields: Vec<&str> = name.trim_end_matches(".tar.gz").split('-').collect();
        let version = |prefix: &str| fields.iter().find_map(|f| f.strip_prefix(prefix)).unwrap().to_string();
        let artifacts = dir.join("artifacts.txt");
        std::fs::write(
            &artifacts,
            format!("# shim arch mimalloc jemalloc snmalloc sha256\n{} {ARCH} {} {} {} {sha256}\n", fields[1], version("mimalloc"), version("jemalloc"), version("snmalloc")),
        )
        .unwrap();
        Dist { dir, artifacts, sha256: sha256.to_string() }
    })
}

struct App {
    build: PathBuf,
    cache: PathBuf,
    env: PathBuf,
}

/// A scratch app with its cache and env dirs; `vars` become ENV_DIR files.
fn app(name: &str, vars: &[(&str, &str)]) -> App {
    let root = c_artifact(&format!("buildpack-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let app = App { build: root.join("app"), cache: root.join("cache"), env: root.join("env") };
    for d in [&app.build, &app.cache, &app.env] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(app.build.join("Procfile"), "web: ruby app.rb\n").unwrap();
    let d = dist();
    let mut all = vec![("ALLOCSHIM_DIST_URL", format!("file://{}", d.dir.display())), ("ALLOCSHIM_ARTIFACTS", d.artifacts.display().to_string())];
    all.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
    all.extend(vars.iter().map(|(k, v)| (*k, v.to_string())));
    for (k, v) in all {
        std::fs::write(app.env.join(k), format!("{v}\n")).unwrap();
    }
    app
}

fn compile(app: &App) -> Output {
    Command::new(workspace().join("bin/compile")).arg(&app.build).arg(&app.cache).arg(&app.env).env_remove("LD_PRELOAD").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn compiled(name: &str, vars: &[(&str, &str)]) -> App {
    let app = app(name, vars);
    let out = compile(&app);
    assert!(out.status.success(), "bin/compile failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    app
}

/// A dyno: HOME at the app, only the config vars in the environment, every
/// .profile.d script sourced by bash, then `script` run.
fn dyno(app: &App, vars: &[(&str, &str)], script: &str) -> Output {
    let mut c = Command::new("env");
    c.arg("-i").arg(format!("HOME={}", app.build.display())).arg("PATH=/usr/local/bin:/usr/bin:/bin");
    for (k, v) in vars {
        c.arg(format!("{k}={v}"));
    }
    c.args(["bash", "-c", &format!("for f in \"$HOME\"/.profile.d/*.sh; do . \"$f\"; done\n{script}")]);
    c.output().unwrap()
}

/// The backend the library reports serving the fingerprint program ("none" when the
/// library is not loaded at all).
fn served(out: &Output) -> String {
    assert!(out.status.success(), "dyno command failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout).lines().find_map(|l| l.strip_prefix("active=")).unwrap_or("?").to_string()
}

fn fingerprint() -> String {
    c_program("fingerprint").display().to_string()
}

#[test]
fn detect_always_passes_and_names_the_buildpack() {
    let out = Command::new(workspace().join("bin/detect")).arg("/nonexistent").output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "allocshim");
}

#[test]
fn compile_installs_the_library_the_wrappers_and_the_profile_script() {
    let app = app("install", &[]);
    let out = compile(&app);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.starts_with("-----> allocshim\n"), "{stdout}");
    assert!(stdout.contains(&format!("       checksum verified (sha256 {})", dist().sha256)), "{stdout}");
    assert!(stdout.contains("mimalloc 2.3.2, jemalloc 5.3.1, snmalloc 0.7.6"), "{stdout}");
    for f in ["lib/liballocshim.so", "bin/allocshim", "bin/allocshim.sh", "bin/jemalloc.sh", "bin/mimalloc.sh", "bin/snmalloc.sh", "manifest.txt"] {
        assert!(app.build.join("vendor/allocshim").join(f).is_file(), "{f} missing");
    }
    assert!(app.build.join(".profile.d/allocshim.sh").is_file());
    // The second build reuses the cache and leaves the same slug.
    let before = tree(&app.build);
    let again = compile(&app);
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("from the build cache"), "{}", text(&again.stdout));
    assert_eq!(tree(&app.build), before, "compiling twice changed the slug");
}

/// Every file under `dir` with its size and contents' hash.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let out = Command::new("sh").arg("-c").arg("find . -type f -print0 | sort -z | xargs -0 sha256sum").current_dir(dir).output().unwrap();
    text(&out.stdout).lines().map(|l| (l[66..].to_string(), l[..64].to_string())).collect()
}

#[test]
fn dynos_run_the_backend_the_config_vars_ask_for() {
    let app = compiled("dynos", &[]);
    let fp = fingerprint();
    for backend in ["jemalloc", "mimalloc", "snmalloc"] {
        let var = format!("{}_ENABLED", backend.to_uppercase());
        assert_eq!(served(&dyno(&app, &[(&var, "true")], &format!("exec {fp}"))), backend, "{var}=true");
        assert_eq!(served(&dyno(&app, &[("ALLOCSHIM_BACKEND", backend)], &format!("exec {fp}"))), backend);
    }
    // Off, or nothing asked: not preloaded at all.
    for vars in [&[("JEMALLOC_ENABLED", "false")][..], &[][..], &[("MIMALLOC_ENABLED", "")][..]] {
        let out = dyno(&app, vars, &format!("echo \"preload=[$LD_PRELOAD]\"; exec {fp}"));
        assert!(text(&out.stdout).contains("preload=[]"), "{vars:?}: {}", text(&out.stdout));
        assert_eq!(served(&out), "none", "{vars:?}");
    }
    // A preset alone: the library is preloaded to tune glibc (two arenas for eight
    // threads, where glibc alone makes one per thread and the main one).
    let arenas = c_program("arenas").display().to_string();
    let out = dyno(&app, &[("ALLOCSHIM_PRESET", "low-memory")], &format!("exec {arenas} 8"));
    assert!(text(&out.stdout).contains("backend=system\narenas=2\n"), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = dyno(&app, &[("ALLOCSHIM_PRESET", "default")], &format!("exec {arenas} 8"));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("backend=none\n") && !stdout.contains("arenas=2\n") && !stdout.contains("arenas=1\n"), "{stdout}{}", text(&out.stderr));
    // Two enabled: the library's precedence, with its warning.
    let out = dyno(&app, &[("MIMALLOC_ENABLED", "true"), ("SNMALLOC_ENABLED", "true")], &format!("exec {fp}"));
    assert_eq!(served(&out), "mimalloc");
    assert!(text(&out.stderr).contains("several allocators enabled; using mimalloc"), "{}", text(&out.stderr));
}

#[test]
fn an_existing_ld_preload_is_kept_and_sourcing_twice_changes_nothing() {
    let app = compiled("preload", &[]);
    let lib = app.build.join("vendor/allocshim/lib/liballocshim.so");
    let other = c_artifact("libearly.so");
    let _ = c_program("libs"); // builds libearly.so
    let script = format!(". \"$HOME/.profile.d/allocshim.sh\"; . \"$HOME/.profile.d/allocshim.sh\"; echo \"preload=[$LD_PRELOAD]\"; echo \"path=[$PATH]\"; exec {}", fingerprint());
    let out = dyno(&app, &[("JEMALLOC_ENABLED", "true"), ("LD_PRELOAD", &other.display().to_string())], &script);
    assert!(text(&out.stdout).contains(&format!("preload=[{}:{}]", lib.display(), other.display())), "{}", text(&out.stdout));
    let bin = app.build.join("vendor/allocshim/bin").display().to_string();
    let path_line = text(&out.stdout).lines().find(|l| l.starts_with("path=")).unwrap().to_string();
    assert_eq!(path_line.matches(&bin).count(), 1, "{path_line}");
    assert_eq!(served(&out), "jemalloc");
}

#[test]
fn wrappers_beat_the_config_vars_and_check_their_arguments() {
    let app = compiled("wrappers", &[]);
    let fp = fingerprint();
    let vars = [("MIMALLOC_ENABLED", "true")];
    assert_eq!(served(&dyno(&app, &vars, &format!("exec jemalloc.sh {fp}"))), "jemalloc");
    assert_eq!(served(&dyno(&app, &vars, &format!("exec snmalloc.sh {fp}"))), "snmalloc");
    assert_eq!(served(&dyno(&app, &[], &format!("exec allocshim.sh mimalloc {fp}"))), "mimalloc");
    // Exit status passes through the exec.
    assert_eq!(dyno(&app, &[], "exec jemalloc.sh sh -c 'exit 7'").status.code(), Some(7));
    for (script, words) in [("jemalloc.sh", "usage: jemalloc.sh CMD"), ("allocshim.sh jemalloc", "usage: allocshim.sh BACKEND CMD"), ("allocshim.sh tcmalloc true", "unknown backend 'tcmalloc'")] {
        let out = dyno(&app, &[], script);
        assert!(!out.status.success(), "{script} succeeded");
        assert!(text(&out.stderr).contains(words), "{script}: {}", text(&out.stderr));
    }
}

/// A failed build says why and leaves no library in the slug.
fn fails(app: &App, words: &str) {
    let out = compile(app);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains(words), "expected '{words}' in:\n{}", text(&out.stderr));
    assert!(!app.build.join("vendor/allocshim").exists(), "half-installed after: {words}");
    assert!(!app.build.join(".profile.d/allocshim.sh").exists());
}

#[test]
fn failed_builds_say_why_and_install_nothing() {
    let d = dist();
    fails(&app("unknown-version", &[("MIMALLOC_VERSION", "9.9.9")]), &format!("MIMALLOC_VERSION=9.9.9 is not available for {ARCH} (available: 2.3.2)"));

    let wrong = d.dir.join("wrong-sum.txt");
    let listed = std::fs::read_to_string(&d.artifacts).unwrap();
    std::fs::write(&wrong, listed.replace(&d.sha256, &"0".repeat(64))).unwrap();
    fails(&app("mismatch", &[("ALLOCSHIM_ARTIFACTS", &wrong.display().to_string())]), "checksum mismatch");

    let empty = c_artifact("empty-dist");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&app("missing", &[("ALLOCSHIM_DIST_URL", &empty.display().to_string())]), "is not in");

    fails(&app("unreachable", &[("ALLOCSHIM_DIST_URL", "http://127.0.0.1:9/releases")]), "cannot download http://127.0.0.1:9/releases/");

    let app = app("unwritable-cache", &[]);
    std::fs::remove_dir_all(&app.cache).unwrap();
    std::fs::write(&app.cache, "a file, not a directory").unwrap();
    fails(&app, "cannot write the cache directory");

    let none = d.dir.join("no-artifacts.txt");
    std::fs::write(&none, "# nothing published\n").unwrap();
    fails(&self::app("none-listed", &[("ALLOCSHIM_ARTIFACTS", &none.display().to_string())]), &format!("no allocshim artifact for {ARCH}"));
}

#[test]
fn version_pins_pick_the_artifact_and_the_default_line_wins_otherwise() {
    // A second listed artifact for mimalloc 3.3.2 (a renamed copy: this checks the
    // choice among listed artifacts, not a second build).
    let d = dist();
    let dir = c_artifact("dist-two");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listed = std::fs::read_to_string(&d.artifacts).unwrap();
    let line = listed.lines().last().unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let name = |mi: &str| format!("allocshim-{}-{ARCH}-mimalloc{mi}-jemalloc{}-snmalloc{}.tar.gz", f[0], f[3], f[4]);
    std::fs::copy(d.dir.join(name(f[2])), dir.join(name(f[2]))).unwrap();
    std::fs::copy(d.dir.join(name(f[2])), dir.join(name("3.3.2"))).unwrap();
    let artifacts = dir.join("artifacts.txt");
    std::fs::write(&artifacts, format!("{line}\n{} {ARCH} 3.3.2 {} {} {}\n", f[0], f[3], f[4], f[5])).unwrap();
    let vars = |pin: Option<&str>| {
        let mut v = vec![("ALLOCSHIM_DIST_URL", dir.display().to_string()), ("ALLOCSHIM_ARTIFACTS", artifacts.display().to_string())];
        if let Some(p) = pin {
            v.push(("MIMALLOC_VERSION", p.to_string()));
        }
        v
    };
    for (pin, expect) in [(None, f[2]), (Some("3.3.2"), "3.3.2"), (Some(f[2]), f[2])] {
        let v = vars(pin);
        let refs: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
        let a = app(&format!("pin-{}", pin.unwrap_or("none")), &refs);
        let out = compile(&a);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("mimalloc {expect},")), "pin {pin:?}:\n{}", text(&out.stdout));
    }
    let v = vars(Some("2.0.9"));
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
    fails(&app("pin-bad", &refs), &format!("MIMALLOC_VERSION=2.0.9 is not available for {ARCH} (available: {}, 3.3.2)", f[2]));
}

// --- Cloud Native Buildpack: bin/detect and bin/build driven as the lifecycle would,
// then the launcher's steps (layer bin/ on PATH, exec.d run with fd 3) by hand.

struct Cnb {
    layers: PathBuf,
    platform: PathBuf,
}

fn cnb_arch() -> &'static str {
    if ARCH == "aarch64" { "arm64" } else { "amd64" }
}

fn cnb(name: &str, vars: &[(&str, &str)]) -> Cnb {
    let root = c_artifact(&format!("cnb-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let c = Cnb { layers: root.join("layers"), platform: root.join("platform") };
    std::fs::create_dir_all(c.platform.join("env")).unwrap();
    std::fs::create_dir_all(&c.layers).unwrap();
    let d = dist();
    let mut all = vec![("ALLOCSHIM_DIST_URL", d.dir.display().to_string()), ("ALLOCSHIM_ARTIFACTS", d.artifacts.display().to_string())];
    all.extend(vars.iter().map(|(k, v)| (*k, v.to_string())));
    for (k, v) in all {
        std::fs::write(c.platform.join("env").join(k), v).unwrap();
    }
    c
}

fn cnb_run(c: &Cnb, program: &str, arch: &str) -> Output {
    Command::new(workspace().join(program))
        .env("CNB_LAYERS_DIR", &c.layers)
        .env("CNB_PLATFORM_DIR", &c.platform)
        .env("CNB_BUILD_PLAN_PATH", c.layers.join("plan.toml"))
        .env("CNB_TARGET_OS", "linux")
        .env("CNB_TARGET_ARCH", arch)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap()
}

/// The layer metadata as the spec allows it: `[types]` with boolean launch/build/cache,
/// and `[metadata]`; nothing else.
fn check_layer_toml(text: &str) {
    let mut section = "";
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('[') {
            section = line;
            assert!(["[types]", "[metadata]"].contains(&line), "unexpected table {line}");
            continue;
        }
        let (key, value) = line.split_once(" = ").unwrap_or_else(|| panic!("not a TOML pair: {line}"));
        match section {
            "[types]" => assert!(["launch", "build", "cache"].contains(&key) && ["true", "false"].contains(&value), "bad [types] entry: {line}"),
            "[metadata]" => assert!(value.starts_with('"') && value.ends_with('"'), "metadata values are strings: {line}"),
            _ => panic!("top-level key {line}"),
        }
    }
    assert!(text.contains("[types]\nlaunch = true\ncache = true"), "{text}");
}

/// exec.d output: `NAME = "value"` lines only (TOML basic strings), as a map.
fn parse_exec_d(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let (k, v) = line.split_once(" = ").unwrap_or_else(|| panic!("exec.d wrote a non-TOML line: {line}"));
            assert!(!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad key in {line}");
            assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "not a string: {line}");
            let inner = &v[1..v.len() - 1];
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(ch) = chars.next() {
                match ch {
                    '\\' => out.push(chars.next().expect("dangling escape")),
                    '"' => panic!("unescaped quote in {line}"),
                    c => out.push(c),
                }
            }
            (k.to_string(), out)
        })
        .collect()
}

/// The launcher: launch layer's bin/ on PATH and lib/ on LD_LIBRARY_PATH, the runtime
/// config vars, exec.d run with fd 3, its variables applied, then `cmd`.
fn launch(c: &Cnb, vars: &[(&str, &str)], cmd: &str) -> (Vec<(String, String)>, Output) {
    let layer = c.layers.join("allocshim");
    let fd3 = c.layers.join("exec.d.out");
    let base = |command: &mut Command| {
        command
            .env_clear()
            .env("HOME", &c.layers)
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", layer.join("bin").display()))
            .env("LD_LIBRARY_PATH", layer.join("lib"))
            .envs(vars.iter().copied());
    };
    let mut exec_d = Command::new("bash");
    base(&mut exec_d);
    let out = exec_d.arg("-c").arg(format!("exec 3>{}; exec {}", fd3.display(), layer.join("exec.d/allocshim").display())).output().unwrap();
    assert!(out.status.success(), "exec.d failed: {}", text(&out.stderr));
    let set = parse_exec_d(&std::fs::read_to_string(&fd3).unwrap());
    let mut run = Command::new("bash");
    base(&mut run);
    run.envs(set.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = run.arg("-c").arg(cmd).output().unwrap();
    (set, out)
}

#[test]
fn cnb_build_makes_a_cached_launch_layer_that_exec_d_enables_at_start() {
    let c = cnb("launch", &[]);
    let detect = cnb_run(&c, "bin/detect", cnb_arch());
    assert!(detect.status.success(), "detect: {}", text(&detect.stderr));
    let out = cnb_run(&c, "bin/build", cnb_arch());
    assert!(out.status.success(), "bin/build failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("checksum verified"), "{}", text(&out.stdout));
    let layer = c.layers.join("allocshim");
    check_layer_toml(&std::fs::read_to_string(c.layers.join("allocshim.toml")).unwrap());
    assert!(layer.join("lib/liballocshim.so").is_file() && layer.join("bin/jemalloc.sh").is_file());
    use std::os::unix::fs::PermissionsExt;
    assert!(std::fs::metadata(layer.join("exec.d/allocshim")).unwrap().permissions().mode() & 0o111 != 0, "exec.d not executable");

    let fp = fingerprint();
    let lib = layer.join("lib/liballocshim.so").display().to_string();
    let (set, out) = launch(&c, &[("JEMALLOC_ENABLED", "true")], &format!("exec {fp}"));
    assert_eq!(set, [("LD_PRELOAD".to_string(), lib.clone())]);
    assert_eq!(served(&out), "jemalloc");
    let (set, out) = launch(&c, &[("ALLOCSHIM_BACKEND", "snmalloc"), ("MIMALLOC_ENABLED", "true")], &format!("exec {fp}"));
    assert_eq!(set.len(), 1);
    assert_eq!(served(&out), "snmalloc");
    // Nothing asked: exec.d writes nothing and the library is not loaded.
    let (set, out) = launch(&c, &[("JEMALLOC_ENABLED", "false")], &format!("exec {fp}"));
    assert!(set.is_empty(), "{set:?}");
    assert_eq!(served(&out), "none");
    // An existing preload stays, after ours; quotes and backslashes survive TOML.
    let other = c_artifact("libearly.so");
    let _ = c_program("libs");
    let odd = format!("{} /tmp/no\"such\\lib.so", other.display());
    let (set, _) = launch(&c, &[("MIMALLOC_ENABLED", "true"), ("LD_PRELOAD", &odd)], "true");
    assert_eq!(set, [("LD_PRELOAD".to_string(), format!("{lib}:{odd}"))]);
    // The wrappers are on PATH through the layer's bin/.
    let (_, out) = launch(&c, &[("MIMALLOC_ENABLED", "true")], &format!("exec jemalloc.sh {fp}"));
    assert_eq!(served(&out), "jemalloc");

    // A second build keeps the cached layer.
    let again = cnb_run(&c, "bin/build", cnb_arch());
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("reusing the cached layer"), "{}", text(&again.stdout));

    let bad = cnb_run(&c, "bin/build", "s390x");
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("CNB_TARGET_ARCH=s390x is not supported (supported: amd64, arm64)"), "{}", text(&bad.stderr));
}

#[test]
fn the_console_is_a_build_environment_where_compile_works() {
    let d = dist();
    let script = format!(
        "echo {} > env/ALLOCSHIM_DIST_URL && echo {} > env/ALLOCSHIM_ARTIFACTS && $BUILDPACK/bin/compile app cache env >/dev/null && test -f app/vendor/allocshim/lib/liballocshim.so && echo \"ok $STACK $CNB_TARGET_ARCH $(basename $CNB_LAYERS_DIR)\"",
        d.dir.display(),
        d.artifacts.display()
    );
    let out = Command::new(workspace().join("scripts/console")).arg("-c").arg(script).env_remove("STACK").output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("classic build:") && stdout.contains("CNB build:"), "no help text:\n{stdout}");
    assert!(stdout.contains(&format!("ok heroku-24 {} layers", cnb_arch())), "{stdout}");
}

#[test]
fn dist_refuses_an_unknown_version_by_name() {
    for (flag, value, available) in [("--jemalloc", "9.9", "5.3.1"), ("--mimalloc", "2.0.9", "2.3.2, 3.3.2")] {
        let out = Command::new(workspace().join("scripts/dist")).args([flag, value]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let backend = &flag[2..];
        assert!(
            text(&out.stderr).contains(&format!("dist: {backend} {value} is not available (vendor/backends.txt has: {available})")),
            "{}",
            text(&out.stderr)
        );
    }
}
