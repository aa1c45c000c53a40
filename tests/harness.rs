//! Shared test harness: find the built library, compile the C test programs, run
//! programs with the library preloaded under a chosen backend, with a timeout that
//! turns a hang into a failure.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The backends every behaviour test runs under.
pub const BACKENDS: [&str; 4] = ["system", "mimalloc", "jemalloc", "snmalloc"];

/// Variables that would change the choice or the backends' behaviour; removed from
/// every test process so the developer's own environment cannot leak in.
const CONFIG_VARS: [&str; 16] = [
    "LD_PRELOAD",
    "ALLOCSHIM_BACKEND",
    "ALLOCSHIM_PRESET",
    "ALLOCSHIM_TRIM_INTERVAL",
    "ALLOCSHIM_PROFILE",
    "ALLOCSHIM_ONLY",
    "ALLOCSHIM_EXCEPT",
    "MALLOC_ARENA_MAX",
    "ALLOCSHIM_VERBOSE",
    "ALLOCSHIM_STATS",
    "MIMALLOC_ENABLED",
    "JEMALLOC_ENABLED",
    "SNMALLOC_ENABLED",
    "MALLOC_CONF",
    "_RJEM_MALLOC_CONF",
    "MIMALLOC_SHOW_STATS",
];

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The library under test: $ALLOCSHIM_LIB, or the release build in this workspace.
pub fn lib() -> PathBuf {
    let path = std::env::var_os("ALLOCSHIM_LIB").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/release/liballocshim.so"));
    assert!(path.is_file(), "{} does not exist: build it first with `cargo build --release` (or run scripts/test)", path.display());
    path
}

/// The `allocshim` command under test: $ALLOCSHIM_CLI, or the debug build in this
/// workspace (scripts/test builds it).
pub fn cli() -> PathBuf {
    let path = std::env::var_os("ALLOCSHIM_CLI").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/debug/allocshim"));
    assert!(path.is_file(), "{} does not exist: build it with `cargo build -p allocshim-loader` (or run scripts/test)", path.display());
    path
}

/// One of the `allocshim` crate's example programs (crate/examples), built by
/// scripts/test with `cargo build -p allocshim --examples`.
pub fn rust_example(name: &str) -> PathBuf {
    let dir = std::env::var_os("ALLOCSHIM_EXAMPLES").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/debug/examples"));
    let path = dir.join(name);
    assert!(path.is_file(), "{} does not exist: build it with `cargo build -p allocshim --examples` (or run scripts/test)", path.display());
    path
}

/// The variable and value a user sets to pick `backend` the buildpack way.
pub fn enable_var(backend: &str) -> Option<(String, &'static str)> {
    (backend != "system").then(|| (format!("{}_ENABLED", backend.to_uppercase()), "true"))
}

/// The architecture of the library under test and of the C test programs:
/// $ALLOCSHIM_TEST_ARCH, or this machine's. scripts/test-aarch64 sets `aarch64` and
/// the aarch64 programs run under qemu-user (docs/aarch64.md).
pub fn target_arch() -> String {
    std::env::var("ALLOCSHIM_TEST_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.into())
}

/// How much longer programs may take: under qemu-user (another architecture) the
/// stress and fork programs run 3-10 times slower than natively; a hang still fails.
fn emulation_slowdown() -> u32 {
    if target_arch() == std::env::consts::ARCH {
        1
    } else {
        5
    }
}

/// The C compiler for tests/c: `cc`, or Debian's cross compiler for another architecture.
fn c_compiler() -> String {
    match target_arch() {
        arch if arch == std::env::consts::ARCH => "cc".into(),
        arch => format!("{arch}-linux-gnu-gcc"),
    }
}

/// Compiles tests/c/NAME.c once per test process and returns the executable.
pub fn c_program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let src = workspace().join("tests/c");
    let out = c_dir();
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join(name);
    let mut cc = Command::new(c_compiler());
    cc.args(["-O1", "-g", "-pthread", "-Wall", "-Wno-alloc-size-larger-than", "-Wno-use-after-free", "-o"])
        .arg(&exe)
        .arg(src.join(format!("{name}.c")));
    if name == "libs" {
        // The program links libearly.so (its constructor allocates early) and dlopens libplugin.so.
        for lib in ["libearly", "libplugin"] {
            compile_shared(&src.join(format!("{lib}.c")), &out.join(format!("{lib}.so")));
        }
        cc.arg("-L").arg(&out).arg("-learly").arg(format!("-Wl,-rpath,{}", out.display()));
    }
    if name == "static" {
        cc.arg("-static");
    }
    cc.arg("-ldl");
    let status = cc.status().expect("running cc");
    assert!(status.success(), "cc failed for {name}.c");
    built.insert(name.to_string(), exe.clone());
    exe
}

fn compile_shared(src: &Path, out: &Path) {
    let status = Command::new(c_compiler()).args(["-O1", "-shared", "-fPIC", "-o"]).arg(out).arg(src).status().unwrap();
    assert!(status.success(), "cc failed for {}", src.display());
}

/// Where the compiled C test programs go (inside target/, never in the source tree),
/// in a directory of their own when built for another architecture.
fn c_dir() -> PathBuf {
    match target_arch() {
        arch if arch == std::env::consts::ARCH => workspace().join("target/c-tests"),
        arch => workspace().join("target/c-tests").join(arch),
    }
}

pub fn c_artifact(name: &str) -> PathBuf {
    c_dir().join(name)
}

pub struct Run {
    cmd: Command,
    timeout: Duration,
    label: String,
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub label: String,
    pub timed_out: bool,
}

/// `program args...` with the library preloaded and a clean allocator configuration.
pub fn run<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Run {
    let mut cmd = Command::new(program.as_ref());
    cmd.args(args);
    for v in CONFIG_VARS {
        cmd.env_remove(v);
    }
    cmd.env("LD_PRELOAD", lib());
    let label = std::iter::once(program.as_ref())
        .chain(args.iter().map(|a| a.as_ref()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Run { cmd, timeout: Duration::from_secs(120), label }
}

impl Run {
    /// Chooses `backend` as an operator would: `X_ENABLED=true`, nothing for system.
    pub fn backend(mut self, backend: &str) -> Run {
        if let Some((var, value)) = enable_var(backend) {
            self.cmd.env(var, value);
        }
        self.label = format!("[{backend}] {}", self.label);
        self
    }
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Run {
        self.label = format!("{key}={} {}", value.as_ref().to_string_lossy(), self.label);
        self.cmd.env(key, value);
        self
    }
    pub fn no_preload(mut self) -> Run {
        self.cmd.env_remove("LD_PRELOAD");
        self
    }
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Run {
        self.cmd.current_dir(dir);
        self
    }
    pub fn timeout(mut self, secs: u64) -> Run {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    pub fn output(mut self) -> Output {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.label));
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + self.timeout * emulation_slowdown();
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap(), label: self.label, timed_out }
    }

    /// Runs and requires exit status 0 within the timeout.
    pub fn success(self) -> Result<Output, String> {
        let out = self.output();
        if out.timed_out {
            return Err(format!("{}: hung (killed after the timeout)\n{}", out.label, out.stderr));
        }
        if !out.status.success() {
            return Err(format!("{}: {}\n--- stdout\n{}\n--- stderr\n{}", out.label, out.status, out.stdout, out.stderr));
        }
        Ok(out)
    }
}

impl Output {
    /// Value of a `key=value` line in stdout.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.stdout.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The backends `each_backend` runs: $ALLOCSHIM_TEST_BACKENDS (comma-separated; lets
/// scripts/test-aarch64 report each backend on its own line), or all of them.
pub fn test_backends() -> Vec<&'static str> {
    let Ok(list) = std::env::var("ALLOCSHIM_TEST_BACKENDS") else { return BACKENDS.to_vec() };
    list.split(',')
        .map(|name| {
            *BACKENDS
                .iter()
                .find(|b| **b == name.trim())
                .unwrap_or_else(|| panic!("ALLOCSHIM_TEST_BACKENDS: unknown backend '{name}' (accepted: {})", BACKENDS.join(", ")))
        })
        .collect()
}

/// Runs `check` under every backend and reports every failure, not just the first.
pub fn each_backend(check: impl Fn(&str) -> Result<(), String>) {
    let backends = test_backends();
    let failures: Vec<String> = backends.iter().filter_map(|b| check(b).err()).collect();
    assert!(failures.is_empty(), "{} of {} backends failed:\n{}", failures.len(), backends.len(), failures.join("\n\n"));
}

/// Which allocator served the memory, judged from the fingerprint program's evidence
/// (size classes and the brk heap), never from the environment.
pub fn identify(fp: &Output) -> String {
    let usable: Vec<usize> = fp.field("usable").unwrap_or("").split(',').filter_map(|v| v.parse().ok()).collect();
    let brk = fp.field("brk_heap") == Some("1");
    match usable.as_slice() {
        [24, _, _, _] if brk => "system".into(),
        [16, _, _, large] if large.is_power_of_two() => "snmalloc".into(),
        // Large requests: jemalloc rounds to pages (4 KiB, or 64 KiB in the aarch64
        // build), mimalloc to 1/8 steps of a power of two (2359296 here).
        [8, _, _, large] if *large < 2_100_000 + 65536 => "jemalloc".into(),
        [8, _, _, large] if *large >= 2_100_000 + 131072 => "mimalloc".into(),
        other => format!("unknown (usable sizes {other:?}, brk heap {brk})"),
    }
}
