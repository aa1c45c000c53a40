//! The library binds the process's PLT calls of the allocation entry points straight
//! to the chosen backend (shim/src/entry.rs, rebind.rs) and leaves every address a
//! program can see alone: tests/c/rebind.c reads its own GOT before it allocates and
//! reports where each slot points, and tests/c/identity.c compares `&malloc` & co. across
//! the executable, a start-up library, a dlopen'ed plugin and dlsym. Built the ways
//! programs are: a lazy-binding PIE (Debian cc's default), BIND_NOW, -fno-plt (GLOB_DAT
//! slots, as in Rust binaries) and, for identity, a non-PIE executable.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use allocshim_tests::*;

const BUILDS: [(&str, &[&str]); 3] = [("lazy", &[]), ("now", &["-Wl,-z,now"]), ("noplt", &["-fno-plt", "-Wl,-z,now"])];

/// The entry points, as rebind.c and identity.c name them.
const NAMES: [&str; 7] = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"];

fn cc(args: &[&str], out: &Path, src: &[&Path]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("cc")
        .args(["-O1", "-g", "-pthread", "-Wall", "-Wno-alloc-size-larger-than"])
        .args(args)
        .arg("-o")
        .arg(out)
        .args(src)
        .arg("-ldl")
        .status()
        .expect("running cc");
    assert!(status.success(), "cc failed for {src:?} {args:?}");
}

fn c_source(name: &str) -> PathBuf {
    workspace().join("tests/c").join(name)
}

/// (program per build, plugin library)
fn programs() -> &'static (Vec<(&'static str, PathBuf)>, PathBuf) {
    static BUILT: OnceLock<(Vec<(&'static str, PathBuf)>, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let plugin = c_artifact("rebind-libplugin.so");
        cc(&["-shared", "-fPIC"], &plugin, &[&c_source("libplugin.c")]);
        let progs = BUILDS
            .iter()
            .map(|(name, flags)| {
                let exe = c_artifact(&format!("rebind-{name}"));
                cc(flags, &exe, &[&c_source("rebind.c")]);
                (*name, exe)
            })
            .collect();
        (progs, plugin)
    })
}

/// Slot name -> where it points ("ours", "libc", "lazy", "direct:OBJECT+0xOFFSET"),
/// per kind (JUMP_SLOT, GLOB_DAT), main program; and the plugin's slots.
struct Slots {
    main: BTreeMap<(String, String), String>,
    plugin: BTreeMap<String, String>,
}

fn slots(out: &Output) -> Result<Slots, String> {
    let mut s = Slots { main: BTreeMap::new(), plugin: BTreeMap::new() };
    for line in out.stdout.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["slot", name, kind, at] => s.main.insert((name.to_string(), kind.to_string()), at.to_string()),
            ["plugin", name, at] => s.plugin.insert(name.to_string(), at.to_string()),
            _ => None,
        };
    }
    for name in NAMES {
        if !s.main.keys().any(|(n, _)| n == name) {
            return Err(format!("{}: no slot for {name} found in the program:\n{}", out.label, out.stdout));
        }
    }
    if !s.plugin.contains_key("malloc") || !s.plugin.contains_key("free") {
        return Err(format!("{}: no malloc/free slot found in the plugin:\n{}", out.label, out.stdout));
    }
    Ok(s)
}

/// The library's symbols by address (its symbol table, as nm reads it).
fn symbols() -> &'static HashMap<u64, Vec<String>> {
    static SYMBOLS: OnceLock<HashMap<u64, Vec<String>>> = OnceLock::new();
    SYMBOLS.get_or_init(|| {
        let out = Command::new("nm").arg("--defined-only").arg(lib()).output().expect("running nm");
        assert!(out.status.success(), "nm {}: {}", lib().display(), String::from_utf8_lossy(&out.stderr));
        let mut map: HashMap<u64, Vec<String>> = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [addr, _, name] = f.as_slice() {
                if let Ok(a) = u64::from_str_radix(addr, 16) {
                    map.entry(a).or_default().push(name.to_string());
                }
            }
        }
        assert!(!map.is_empty(), "{} has no symbol table: the rebinding test names targets from it", lib().display());
        map
    })
}

/// What a slot points to, for people and for matching: "ours", "libc", "lazy", or
/// the library's symbol names at that address.
fn resolve(at: &str) -> String {
    let Some(off) = at.strip_prefix("direct:").and_then(|d| d.split_once("+0x")).filter(|(obj, _)| obj.starts_with("liballocshim")) else {
        return at.to_string();
    };
    let addr = u64::from_str_radix(off.1, 16).unwrap_or(u64::MAX);
    match symbols().get(&addr) {
        Some(names) => names.join(" "),
        None => format!("{at} (no symbol there)"),
    }
}

/// The function a program's PLT call of `name` must reach under `backend`: "libc",
/// or a distinctive part of the library's symbol name (alternatives separated by |).
/// mimalloc's calloc, realloc and aligned_alloc, jemalloc's posix_memalign and
/// snmalloc's aligned functions are the smallest wrappers that give glibc's contract
/// (backend::Direct); snmalloc's realloc and malloc_usable_size are its own only when
/// no bootstrap-arena block is live at start-up (snmalloc's own start leaves one), so
/// they may be the shim's.
fn expected(backend: &str, name: &str) -> &'static str {
    match (backend, name) {
        ("system", _) => "libc",
        ("jemalloc", "malloc") => "_rjem_malloc",
        ("jemalloc", "free") => "_rjem_free",
        ("jemalloc", "calloc") => "_rjem_calloc",
        ("jemalloc", "realloc") => "_rjem_realloc",
        ("jemalloc", "posix_memalign") => "jemalloc25posix_memalign_sets_errno",
        ("jemalloc", "aligned_alloc") => "_rjem_aligned_alloc",
        ("jemalloc", "malloc_usable_size") => "_rjem_malloc_usable_size",
        ("mimalloc", "malloc") => "mi_malloc",
        ("mimalloc", "free") => "mi_free",
        ("mimalloc", "calloc") => "mimalloc13calloc_enomem",
        ("mimalloc", "realloc") => "mimalloc21realloc_frees_on_zero",
        ("mimalloc", "posix_memalign") => "mi_posix_memalign",
        ("mimalloc", "aligned_alloc") => "mimalloc20aligned_alloc_einval",
        ("mimalloc", "malloc_usable_size") => "mi_usable_size",
        ("snmalloc", "malloc") => "sn_malloc",
        ("snmalloc", "free") => "sn_free",
        ("snmalloc", "calloc") => "sn_calloc",
        ("snmalloc", "realloc") => "sn_realloc|own7realloc",
        ("snmalloc", "posix_memalign") => "snmalloc22posix_memalign_nonzero",
        ("snmalloc", "aligned_alloc") => "snmalloc21aligned_alloc_nonzero",
        ("snmalloc", "malloc_usable_size") => "sn_malloc_usable_size|own18malloc_usable_size",
        _ => panic!("no expectation for {backend} {name}"),
    }
}

fn matches(resolved: &str, want: &str) -> bool {
    want.split('|').any(|w| if w == "libc" { resolved == "libc" } else { resolved.split(' ').any(|sym| sym.contains(w)) })
}

/// Every GLOB_DAT slot (an address the program can see) holds the exported function;
/// every JUMP_SLOT what `want` says (None: the exported function, or in the lazy build
/// still unresolved); the dlopened plugin's slots the exported functions.
fn check(build: &str, out: &Output, want: &dyn Fn(&str) -> Option<&'static str>) -> Result<(), String> {
    let s = slots(out)?;
    let fail = |msg: String| Err(format!("{} ({build} build): {msg}\n{}", out.label, out.stdout));
    for ((name, kind), at) in &s.main {
        let got = resolve(at);
        match (kind.as_str(), want(name)) {
            ("GLOB_DAT", _) if got != "ours" => return fail(format!("{name} GLOB_DAT slot (its &{name}) is {got}, expected ours")),
            ("JUMP_SLOT", Some(w)) if !matches(&got, w) => return fail(format!("{name} PLT slot reaches {got}, expected {w}")),
            ("JUMP_SLOT", None) if got != "ours" && !(build == "lazy" && got == "lazy") => {
                return fail(format!("{name} PLT slot is {got}, expected ours (or lazy)"))
            }
            _ => {}
        }
    }
    if build == "noplt" && s.main.keys().any(|(_, kind)| kind == "JUMP_SLOT") {
        return fail("the -fno-plt build has PLT slots: it no longer tests GOT calls".into());
    }
    if build != "noplt" && !s.main.keys().any(|(_, kind)| kind == "JUMP_SLOT") {
        return fail("no PLT slot found".into());
    }
    // Loaded after start-up, so never rebound: its calls reach the exported functions.
    for name in ["malloc", "free"] {
        if s.plugin[name] != "ours" {
            return fail(format!("the dlopened plugin's {name} slot is {}, expected ours", s.plugin[name]));
        }
    }
    Ok(())
}

#[test]
fn plt_calls_reach_the_backend_and_addresses_stay_the_exported_functions() {
    let (progs, plugin) = programs();
    each_backend(|backend| {
        for (build, exe) in progs {
            let out = run(exe, &[plugin]).backend(backend).success()?;
            if out.field("backend") != Some(backend) {
                return Err(format!("{}: served by {:?}", out.label, out.field("backend")));
            }
            check(build, &out, &|name| Some(expected(backend, name)))?;
        }
        Ok(())
    });
}

#[test]
fn jemalloc_realloc_gets_a_wrapper_when_malloc_conf_changes_realloc_zero() {
    // zero_realloc:alloc makes jemalloc's realloc(p, 0) return a block; the PLT slot
    // must then reach the wrapper that frees (rebind.c checks realloc(p, 0) == NULL).
    let (progs, plugin) = programs();
    for (build, exe) in progs {
        let out = run(exe, &[plugin]).backend("jemalloc").env("MALLOC_CONF", "zero_realloc:alloc").success().unwrap();
        let want = |name: &str| match name {
            "realloc" => Some("jemalloc21realloc_frees_on_zero"),
            _ => Some(expected("jemalloc", name)),
        };
        check(build, &out, &want).unwrap();
    }
}

#[test]
fn without_the_library_the_slots_are_untouched() {
    // The reader itself: with nothing preloaded, the lazy build's PLT slots are
    // unresolved and the others hold glibc's functions (what dlsym finds: "ours").
    let (progs, plugin) = programs();
    for (build, exe) in progs {
        let out = run(exe, &[plugin]).no_preload().success().unwrap();
        check(build, &out, &|_| None).unwrap();
    }
}

/// (build name, executable) of identity.c, each with its start-up library, and the plugin
/// of each build.
fn identity_programs() -> &'static Vec<(&'static str, PathBuf, PathBuf)> {
    static BUILT: OnceLock<Vec<(&'static str, PathBuf, PathBuf)>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let builds: [(&str, &[&str], &[&str]); 4] = [
            ("lazy", &[], &[]),
            ("now", &["-Wl,-z,now"], &["-Wl,-z,now"]),
            ("noplt", &["-fno-plt", "-Wl,-z,now"], &["-fno-plt", "-Wl,-z,now"]),
            ("nopie", &["-fno-pie", "-no-pie"], &[]),
        ];
        builds
            .iter()
            .map(|(name, exe_flags, lib_flags)| {
                let startup = c_artifact(&format!("identity-{name}/libidentity.so"));
                let plugin = c_artifact(&format!("identity-{name}/libidentity-plugin.so"));
                for lib in [&startup, &plugin] {
                    let flags: Vec<&str> = ["-shared", "-fPIC"].iter().chain(lib_flags.iter()).copied().collect();
                    cc(&flags, lib, &[&c_source("libidentity.c")]);
                }
                let exe = c_artifact(&format!("identity-{name}/identity"));
                let rpath = format!("-Wl,-rpath,{}", startup.parent().unwrap().display());
                let flags: Vec<&str> = exe_flags.iter().copied().chain([rpath.as_str()]).collect();
                cc(&flags, &exe, &[&c_source("identity.c"), &startup]);
                (*name, exe, plugin)
            })
            .collect()
    })
}

#[test]
fn function_pointers_are_one_address_in_every_object() {
    // &malloc & co. in the executable, a library loaded at start-up and a plugin
    // dlopen'ed later, and dlsym(RTLD_DEFAULT): one address per function, under every
    // backend and for every way of building (identity.c checks and exits 1 otherwise).
    let progs = identity_programs();
    each_backend(|backend| {
        for (_, exe, plugin) in progs {
            let out = run(exe, &[plugin]).backend(backend).success()?;
            if out.field("backend") != Some(backend) {
                return Err(format!("{}: served by {:?}", out.label, out.field("backend")));
            }
            // The one address is the library's exported function; in a non-PIE
            // executable that takes it, the executable's PLT stub (the ELF rule for
            // canonical addresses), which leads to the library's.
            let owner = if exe.ends_with("identity-nopie/identity") { "identity" } else { "liballocshim.so" };
            for name in NAMES {
                let line = out.stdout.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or("");
                if line.split(' ').nth(2) != Some(owner) {
                    return Err(format!("{}: {name} is not {owner}'s: {line:?}\n{}", out.label, out.stdout));
                }
            }
        }
        Ok(())
    });
    // The control: the same programs without the library (glibc's functions).
    for (build, exe, plugin) in progs {
        let out = run(exe, &[plugin]).no_preload().success().unwrap_or_else(|e| panic!("{build} build, nothing preloaded: {e}"));
        assert_eq!(out.field("backend"), Some("none"), "{}", out.stdout);
    }
}

#[test]
fn a_program_with_its_own_malloc_keeps_it() {
    // The library passes through to glibc; the rebinding must not take the program's
    // own malloc/free for the library's (libc's slots hold the program's functions)
    // nor pre-bind lazy slots. ownmalloc.c counts the calls its malloc/free receive.
    let builds: Vec<PathBuf> = [("lazy", &[] as &[&str]), ("now", &["-Wl,-z,now"])]
        .iter()
        .map(|(name, flags)| {
            let exe = c_artifact(&format!("ownmalloc-{name}"));
            cc(flags, &exe, &[&c_source("ownmalloc.c")]);
            exe
        })
        .collect();
    each_backend(|backend| {
        for exe in &builds {
            let out = run(exe, &[] as &[&str]).backend(backend).success()?;
            if out.field("backend") != Some("system") {
                return Err(format!("{}: expected the pass-through to system, got {:?}", out.label, out.field("backend")));
            }
        }
        Ok(())
    });
}
