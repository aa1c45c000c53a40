//! The classic buildpack, offline: an artifact built with scripts/dist and served
//! from a directory, bin/detect and bin/compile on scratch apps, then simulated dynos
//! (a clean `env -i` environment, every .profile.d script sourced, as Heroku's dyno
//! start does) where the library's own report says which allocator served the program.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use allocshim_tests::{c_artifact, c_program, target_arch, workspace};

/// The machine the source-build tests build on: a source build is always native.
const HOST: &str = std::env::consts::ARCH;

/// The architecture the artifact is built for and the buildpack believes it runs on
/// (ALLOCSHIM_TEST_ARCH=aarch64 from scripts/test-aarch64: a cross build, run under qemu).
fn arch() -> String {
    target_arch()
}

fn cross() -> bool {
    arch() != std::env::consts::ARCH
}

struct Dist {
    dir: PathBuf,
    artifacts: PathBuf,
    sha256: String,
}

/// One artifact for all tests, and the list of artifacts naming it with its checksum
/// that `scripts/artifact-lines` (what the release workflow runs) makes of it.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = c_artifact("dist");
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new(workspace().join("scripts/dist"));
        if cross() {
            cmd.args(["--arch", &arch()]);
        }
        let out = cmd.arg("--out").arg(&dir).output().unwrap();
        assert!(out.status.success(), "scripts/dist failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string();
        let (sha256, _) = line.split_once("  ").expect("sha256sum line");
        let lines = Command::new(workspace().join("scripts/artifact-lines")).arg(&dir).output().unwrap();
        assert!(lines.status.success(), "scripts/artifact-lines failed: {}", text(&lines.stderr));
        assert_eq!(text(&lines.stdout), format!("0.1.0 {} 2.3.2 5.3.1 0.7.6 {sha256}\n", arch()));
        let artifacts = dir.join("artifacts.txt");
        std::fs::write(&artifacts, format!("# shim arch mimalloc jemalloc snmalloc sha256\n{}", text(&lines.stdout))).unwrap();
        Dist { dir, artifacts, sha256: sha256.to_string() }
    })
}

struct App {
    build: PathBuf,
    cache: PathBuf,
    env: PathBuf,
}

/// A scratch directory outside this workspace, as Heroku's app, cache and layer
/// directories are: nothing a build finds by walking up from them (a Cargo.lock, say)
/// may come from the repository.
fn outside_the_workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allocshim-tests-{}", std::process::id())).join(name);
    assert!(!dir.starts_with(workspace()), "{} is inside the workspace", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A scratch app with its cache and an empty env dir, as on a fresh Heroku app.
fn fresh_app(name: &str) -> App {
    let root = outside_the_workspace(&format!("buildpack-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let app = App { build: root.join("app"), cache: root.join("cache"), env: root.join("env") };
    for d in [&app.build, &app.cache, &app.env] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(app.build.join("Procfile"), "web: ruby app.rb\n").unwrap();
    app
}

/// Sets the config var `name` (an ENV_DIR file), or removes it for `None`.
fn set_var(app: &App, name: &str, value: Option<&str>) {
    match value {
        Some(v) => std::fs::write(app.env.join(name), format!("{v}\n")).unwrap(),
        None => {
            let _ = std::fs::remove_file(app.env.join(name));
        }
    }
}

/// A scratch app whose config vars serve the test artifact (see `dist`); `vars` become
/// ENV_DIR files too, and win.
fn app(name: &str, vars: &[(&str, &str)]) -> App {
    let app = fresh_app(name);
    let d = dist();
    let mut all =
        vec![("ALLOCSHIM_DIST_URL", format!("file://{}", d.dir.display())), ("ALLOCSHIM_ARTIFACTS", d.artifacts.display().to_string())];
    all.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
    all.extend(vars.iter().map(|(k, v)| (*k, v.to_string())));
    for (k, v) in all {
        std::fs::write(app.env.join(k), format!("{v}\n")).unwrap();
    }
    app
}

fn compile(app: &App) -> Output {
    compile_with_path(app, &std::env::var("PATH").unwrap_or_default())
}

/// bin/compile as Heroku runs it (STACK set), with `path` as PATH.
fn compile_with_path(app: &App, path: &str) -> Output {
    // A cross test: bin/compile asks `uname -m`, which a stand-in answers.
    let path = if cross() { format!("{}:{path}", uname_stand_in().display()) } else { path.to_string() };
    Command::new(workspace().join("bin/compile"))
        .arg(&app.build)
        .arg(&app.cache)
        .arg(&app.env)
        .env_remove("LD_PRELOAD")
        .env("STACK", "heroku-24")
        .env("PATH", path)
        .output()
        .unwrap()
}

/// bin/compile asks `uname -m`: for a cross test, a directory with a `uname` that
/// answers the target architecture (written once, renamed into place whole).
fn uname_stand_in() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = c_artifact("uname");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("uname.{}", std::process::id()));
        let script = format!("#!/bin/sh\nif [ \"$*\" = -m ]; then echo {}; else exec /usr/bin/uname \"$@\"; fi\n", arch());
        std::fs::write(&tmp, script).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, dir.join("uname")).unwrap();
        dir
    })
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
    for f in [
        "lib/liballocshim.so",
        "bin/allocshim",
        "bin/allocshim.sh",
        "bin/jemalloc.sh",
        "bin/mimalloc.sh",
        "bin/snmalloc.sh",
        "manifest.txt",
    ] {
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
    assert!(
        stdout.contains("backend=none\n") && !stdout.contains("arenas=2\n") && !stdout.contains("arenas=1\n"),
        "{stdout}{}",
        text(&out.stderr)
    );
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

    // Never twice: the library already listed (after another one), or an older copy
    // elsewhere (by file name), with spaces another tool left: one copy, first.
    let older = app.build.join("old/liballocshim.so");
    std::fs::create_dir_all(older.parent().unwrap()).unwrap();
    std::fs::copy(&lib, &older).unwrap();
    let want = format!("preload=[{}:{}]", lib.display(), other.display());
    for existing in [format!("{}:{}", other.display(), lib.display()), format!(" {} {}  ", older.display(), other.display())] {
        let out = dyno(
            &app,
            &[("MIMALLOC_ENABLED", "1"), ("LD_PRELOAD", &existing)],
            &format!("echo \"preload=[$LD_PRELOAD]\"; exec {}", fingerprint()),
        );
        assert!(text(&out.stdout).contains(&want), "LD_PRELOAD={existing:?}: {}", text(&out.stdout));
        assert_eq!(served(&out), "mimalloc", "LD_PRELOAD={existing:?}");
    }
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
    for (script, words) in [
        ("jemalloc.sh", "usage: jemalloc.sh CMD"),
        ("allocshim.sh jemalloc", "usage: allocshim.sh BACKEND CMD"),
        ("allocshim.sh tcmalloc true", "unknown backend 'tcmalloc'"),
    ] {
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
    let arch = arch();
    fails(
        &app("unknown-version", &[("MIMALLOC_VERSION", "9.9.9")]),
        "MIMALLOC_VERSION=9.9.9 is not available (allocshim can build mimalloc 2.3.2, 3.3.2)",
    );
    fails(
        &app("unknown-prebuilt", &[("MIMALLOC_VERSION", "9.9.9"), ("ALLOCSHIM_BUILD", "prebuilt")]),
        &format!(
            "MIMALLOC_VERSION=9.9.9 is not available for {arch} (available: 2.3.2), and ALLOCSHIM_BUILD=prebuilt rules out a source build"
        ),
    );
    fails(
        &app("bad-mode", &[("ALLOCSHIM_BUILD", "compile")]),
        "ALLOCSHIM_BUILD=compile is not a build mode (accepted: auto, prebuilt, source)",
    );

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
    fails(
        &self::app("none-listed", &[("ALLOCSHIM_ARTIFACTS", &none.display().to_string()), ("ALLOCSHIM_BUILD", "prebuilt")]),
        &format!("no allocshim artifact for {arch} is listed in {}", none.display()),
    );
}

#[test]
fn version_pins_pick_the_artifact_and_the_default_line_wins_otherwise() {
    // A second listed artifact for mimalloc 3.3.2 (a renamed copy: this checks the
    // choice among listed artifacts, not a second build).
    let d = dist();
    let arch = arch();
    let dir = c_artifact("dist-two");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listed = std::fs::read_to_string(&d.artifacts).unwrap();
    let line = listed.lines().last().unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let name = |mi: &str| format!("allocshim-{}-{arch}-mimalloc{mi}-jemalloc{}-snmalloc{}.tar.gz", f[0], f[3], f[4]);
    std::fs::copy(d.dir.join(name(f[2])), dir.join(name(f[2]))).unwrap();
    std::fs::copy(d.dir.join(name(f[2])), dir.join(name("3.3.2"))).unwrap();
    let artifacts = dir.join("artifacts.txt");
    std::fs::write(&artifacts, format!("{line}\n{} {arch} 3.3.2 {} {} {}\n", f[0], f[3], f[4], f[5])).unwrap();
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
    let mut v = vars(Some("2.0.9"));
    v.push(("ALLOCSHIM_BUILD", "prebuilt".to_string()));
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
    fails(&app("pin-bad", &refs), &format!("MIMALLOC_VERSION=2.0.9 is not available for {arch} (available: {}, 3.3.2)", f[2]));
}

// --- Source builds: what a fresh app gets while no prebuilt artifact is published.

/// PATH for a build machine without Rust, as Heroku's build images are: `cargo` and
/// `rustc` stand-ins that fail come first, whatever else PATH holds.
fn path_without_rust() -> String {
    static STUBS: OnceLock<PathBuf> = OnceLock::new();
    let dir = STUBS.get_or_init(|| {
        let dir = c_artifact("no-rust-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for tool in ["cargo", "rustc"] {
            let stub = dir.join(tool);
            std::fs::write(&stub, format!("#!/bin/sh\necho '{tool}: not on this build machine' >&2\nexit 127\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    });
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// The Rust version rust-toolchain.toml pins.
fn pinned_rust() -> String {
    let pin = std::fs::read_to_string(workspace().join("rust-toolchain.toml")).unwrap();
    pin.lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("channel in rust-toolchain.toml")
}

/// A local rustup-init mirror holding a stand-in installer: it records its arguments in
/// CARGO_HOME/standin-args and "installs" the toolchain this test runs with by writing
/// cargo and rustc wrappers into CARGO_HOME/bin, as rustup-init would install proxies.
/// `published` replaces the checksum published beside it.
fn rustup_mirror(name: &str, published: Option<&str>) -> PathBuf {
    let dir = c_artifact(&format!("rustup-mirror-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let triple = dir.join(format!("{HOST}-unknown-linux-gnu"));
    std::fs::create_dir_all(&triple).unwrap();
    let sysroot = Command::new("rustc").arg("--print").arg("sysroot").output().unwrap();
    let bin = Path::new(text(&sysroot.stdout).trim()).join("bin");
    let script = format!(
        "#!/bin/sh\nset -eu\necho \"$*\" >\"$CARGO_HOME/standin-args\"\nmkdir -p \"$CARGO_HOME/bin\" \"$RUSTUP_HOME\"\nfor tool in cargo rustc; do\n    printf '#!/bin/sh\\nexec {}/%s \"$@\"\\n' \"$tool\" >\"$CARGO_HOME/bin/$tool\"\n    chmod +x \"$CARGO_HOME/bin/$tool\"\ndone\n",
        bin.display()
    );
    let installer = triple.join("rustup-init");
    std::fs::write(&installer, &script).unwrap();
    let sum = Command::new("sha256sum").arg(&installer).output().unwrap();
    let real = text(&sum.stdout)[..64].to_string();
    std::fs::write(triple.join("rustup-init.sha256"), format!("{}  rustup-init\n", published.unwrap_or(&real))).unwrap();
    dir
}

fn succeeded(out: &Output, step: &str) -> String {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{step}: bin/compile failed:\n{stdout}\n{}", text(&out.stderr));
    stdout
}

/// The fresh-app story, in order on one app and cache, as a user lives it: the first
/// build compiles, the next reuses it, a pin recompiles only what changed, and a build
/// machine without Rust gets the pinned toolchain through a verified rustup-init.
#[test]
fn a_fresh_app_builds_from_source_and_the_cache_makes_rebuilds_free() {
    let app = fresh_app("fresh");
    let rust = pinned_rust();

    // 1. Nothing set, no artifact listed: built from source with the cargo on PATH.
    let stdout = succeeded(&compile(&app), "first build");
    let first = stdout.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("-----> allocshim: building from source (no prebuilt artifact for {HOST} mimalloc 2.3.2 jemalloc 5.3.1 snmalloc 0.7.6)"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("       toolchain: cargo {rust} ")) && stdout.contains("from PATH"), "{stdout}");
    assert!(stdout.contains("       compiled in "), "{stdout}");
    assert!(!stdout.contains("Compiling"), "the compiler's output is shown only on failure:\n{stdout}");
    let fp = fingerprint();
    assert_eq!(served(&dyno(&app, &[("JEMALLOC_ENABLED", "true")], &format!("exec {fp}"))), "jemalloc");
    let off = dyno(&app, &[], &format!("echo \"preload=[$LD_PRELOAD]\"; exec {fp}"));
    assert!(text(&off.stdout).contains("preload=[]"), "{}", text(&off.stdout));
    assert_eq!(served(&off), "none");

    // 2. The same app again, on a machine without Rust: nothing is compiled (it could
    //    not be), the cached build is reused, and the slug is byte for byte the same.
    let before = tree(&app.build);
    let stdout = succeeded(&compile_with_path(&app, &path_without_rust()), "cached build");
    assert!(stdout.contains("reusing the library built from the same sources on an earlier build (build cache, sha256 "), "{stdout}");
    assert!(!stdout.contains("compiling") && !stdout.contains("toolchain:"), "{stdout}");
    assert_eq!(tree(&app.build), before, "the cached build changed the slug");

    // 3. A pin through the source path: the installed library carries it.
    set_var(&app, "MIMALLOC_VERSION", Some("3.3.2"));
    let stdout = succeeded(&compile(&app), "pinned build");
    assert!(
        stdout.contains(&format!("building from source (no prebuilt artifact for {HOST} mimalloc 3.3.2 jemalloc 5.3.1 snmalloc 0.7.6)")),
        "{stdout}"
    );
    let out = dyno(&app, &[("MIMALLOC_ENABLED", "true"), ("ALLOCSHIM_VERBOSE", "1")], &format!("exec {fp}"));
    assert_eq!(served(&out), "mimalloc");
    assert!(text(&out.stderr).contains("allocshim: backend mimalloc 3.3.2 "), "{}", text(&out.stderr));
    assert!(text(&std::fs::read(app.build.join("vendor/allocshim/manifest.txt")).unwrap()).contains("mimalloc=3.3.2\n"));

    // 4. An unknown pin names the variable, the value and what can be built; the slug
    //    of this failed build gets nothing.
    let failed = fresh_app("fresh-bad-pin");
    set_var(&failed, "JEMALLOC_VERSION", Some("5.2.1"));
    fails(&failed, "JEMALLOC_VERSION=5.2.1 is not available (allocshim can build jemalloc 5.3.1)");

    // 5. No cargo on PATH and nothing cached for these sources: rustup-init from a
    //    mirror, verified against the checksum published beside it, installs the
    //    pinned toolchain into the cache; the target directory is reused.
    set_var(&app, "MIMALLOC_VERSION", None);
    set_var(&app, "ALLOCSHIM_BUILD", Some("source"));
    std::fs::remove_dir_all(app.cache.join("allocshim/built")).unwrap();
    let mirror = rustup_mirror("good", None);
    set_var(&app, "ALLOCSHIM_RUSTUP_URL", Some(&mirror.display().to_string()));
    let stdout = succeeded(&compile_with_path(&app, &path_without_rust()), "rustup build");
    assert!(
        stdout.starts_with(&format!("-----> allocshim: building from source (ALLOCSHIM_BUILD=source: {HOST} mimalloc 2.3.2 ")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("installing Rust {rust} (minimal profile) with rustup-init")), "{stdout}");
    assert!(stdout.contains("rustup-init verified: sha256 ") && stdout.contains("the SHA-256 published beside it ("), "{stdout}");
    let args = text(&std::fs::read(app.cache.join("allocshim/cargo/standin-args")).unwrap());
    for a in ["-y", "--no-modify-path", "--profile minimal", &format!("--default-toolchain {rust}")] {
        assert!(args.contains(a), "rustup-init was run with '{}', without {a}", args.trim());
    }
    assert_eq!(served(&dyno(&app, &[("SNMALLOC_ENABLED", "true")], &format!("exec {fp}"))), "snmalloc");

    // 6. A download whose checksum does not match what is published fails closed.
    let tampered = fresh_app("fresh-tampered");
    set_var(&tampered, "ALLOCSHIM_RUSTUP_URL", Some(&rustup_mirror("bad", Some(&"0".repeat(64))).display().to_string()));
    let out = compile_with_path(&tampered, &path_without_rust());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("rustup-init checksum mismatch:") && text(&out.stderr).contains("nothing was installed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tampered.build.join("vendor/allocshim").exists() && !tampered.build.join(".profile.d/allocshim.sh").exists());
    assert!(
        !tampered.cache.join("allocshim/cargo/bin").exists() && !tampered.cache.join("allocshim/cargo/standin-args").exists(),
        "the installer ran"
    );

    // 7. ALLOCSHIM_BUILD=prebuilt with nothing listed: today's message, no source build.
    let prebuilt = fresh_app("fresh-prebuilt");
    set_var(&prebuilt, "ALLOCSHIM_BUILD", Some("prebuilt"));
    fails(&prebuilt, &format!("no allocshim artifact for {HOST} is listed in {}", workspace().join("vendor/artifacts.txt").display()));

    // The caches hold a target directory each: not left in /tmp.
    for a in [&app, &failed, &tampered, &prebuilt] {
        let _ = std::fs::remove_dir_all(a.build.parent().unwrap());
    }
}

// --- Cloud Native Buildpack: bin/detect and bin/build driven as the lifecycle would,
// then the launcher's steps (layer bin/ on PATH, exec.d run with fd 3) by hand.

struct Cnb {
    layers: PathBuf,
    platform: PathBuf,
}

fn cnb_arch() -> &'static str {
    if arch() == "aarch64" {
        "arm64"
    } else {
        "amd64"
    }
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

/// The launch layer's metadata: as the spec allows it, launched and cached.
fn check_layer_toml(text: &str) {
    check_layer_toml_types(text);
    assert!(text.contains("[types]\nlaunch = true\ncache = true"), "{text}");
}

/// Layer metadata as the spec allows it: `[types]` with boolean launch/build/cache,
/// and `[metadata]`; nothing else.
fn check_layer_toml_types(text: &str) {
    let mut section = "";
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('[') {
            section = line;
            assert!(["[types]", "[metadata]"].contains(&line), "unexpected table {line}");
            continue;
        }
        let (key, value) = line.split_once(" = ").unwrap_or_else(|| panic!("not a TOML pair: {line}"));
        match section {
            "[types]" => {
                assert!(["launch", "build", "cache"].contains(&key) && ["true", "false"].contains(&value), "bad [types] entry: {line}")
            }
            "[metadata]" => assert!(value.starts_with('"') && value.ends_with('"'), "metadata values are strings: {line}"),
            _ => panic!("top-level key {line}"),
        }
    }
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
    let out =
        exec_d.arg("-c").arg(format!("exec 3>{}; exec {}", fd3.display(), layer.join("exec.d/allocshim").display())).output().unwrap();
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
    // An existing preload stays, after ours, ':'-separated (ld.so also splits on the
    // space); quotes and backslashes survive TOML.
    let other = c_artifact("libearly.so");
    let _ = c_program("libs");
    let odd = format!("{} /tmp/no\"such\\lib.so", other.display());
    let (set, _) = launch(&c, &[("MIMALLOC_ENABLED", "true"), ("LD_PRELOAD", &odd)], "true");
    assert_eq!(set, [("LD_PRELOAD".to_string(), format!("{lib}:{}:/tmp/no\"such\\lib.so", other.display()))]);
    // Never twice: already there, or an older copy elsewhere (by file name).
    let older = c.layers.join("old/lib/liballocshim.so");
    for existing in [format!("{}:{lib}", other.display()), format!("{}:{}", older.display(), other.display())] {
        let (set, out) = launch(&c, &[("JEMALLOC_ENABLED", "on"), ("LD_PRELOAD", &existing)], &format!("exec {fp}"));
        assert_eq!(set, [("LD_PRELOAD".to_string(), format!("{lib}:{}", other.display()))], "LD_PRELOAD={existing}");
        assert_eq!(served(&out), "jemalloc");
    }
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
fn cnb_build_compiles_from_source_when_nothing_is_listed_and_reuses_the_layer() {
    let root = outside_the_workspace("cnb-source");
    let _ = std::fs::remove_dir_all(&root);
    let c = Cnb { layers: root.join("layers"), platform: root.join("platform") };
    std::fs::create_dir_all(c.platform.join("env")).unwrap();
    std::fs::create_dir_all(&c.layers).unwrap();
    let out = cnb_run(&c, "bin/build", cnb_arch());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "bin/build failed:\n{stdout}\n{}", text(&out.stderr));
    assert!(stdout.starts_with(&format!("-----> allocshim: building from source (no prebuilt artifact for {HOST} ")), "{stdout}");
    assert!(stdout.contains("       compiled in "), "{stdout}");
    let build = std::fs::read_to_string(c.layers.join("allocshim-build.toml")).unwrap();
    check_layer_toml_types(&build);
    assert!(build.contains("[types]\ncache = true\n") && !build.contains("launch"), "the build layer must stay out of the image:\n{build}");
    check_layer_toml(&std::fs::read_to_string(c.layers.join("allocshim.toml")).unwrap());
    let (set, out) = launch(&c, &[("JEMALLOC_ENABLED", "true")], &format!("exec {}", fingerprint()));
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(served(&out), "jemalloc");

    // The next build compiles nothing (no Rust on PATH) and keeps the launch layer.
    let again = Command::new(workspace().join("bin/build"))
        .env("CNB_LAYERS_DIR", &c.layers)
        .env("CNB_PLATFORM_DIR", &c.platform)
        .env("CNB_TARGET_ARCH", cnb_arch())
        .env("PATH", path_without_rust())
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}\n{}", text(&again.stderr));
    assert!(stdout.contains("reusing the library built from the same sources") && stdout.contains("reusing the cached layer"), "{stdout}");
    let _ = std::fs::remove_dir_all(&root);
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
