//! The library binds the process's malloc/free/calloc/realloc calls straight to the
//! chosen backend (shim/src/rebind.rs): tests/c/rebind.c reads its own GOT before it
//! allocates and reports where each slot points. Built three ways: a lazy-binding PIE
//! (Debian cc's default), BIND_NOW, and -fno-plt (GLOB_DAT slots, as in Rust binaries).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use allocshim_tests::*;

const BUILDS: [(&str, &[&str]); 3] = [("lazy", &[]), ("now", &["-Wl,-z,now"]), ("noplt", &["-fno-plt", "-Wl,-z,now"])];

fn cc(args: &[&str], out: &PathBuf, src: &str) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("cc")
        .args(["-O1", "-g", "-pthread", "-Wall", "-Wno-alloc-size-larger-than"])
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(workspace().join("tests/c").join(src))
        .arg("-ldl")
        .status()
        .expect("running cc");
    assert!(status.success(), "cc failed for {src} {args:?}");
}

/// (program per build, plugin library)
fn programs() -> &'static (Vec<(&'static str, PathBuf)>, PathBuf) {
    static BUILT: OnceLock<(Vec<(&'static str, PathBuf)>, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let plugin = c_artifact("rebind-libplugin.so");
        cc(&["-shared", "-fPIC"], &plugin, "libplugin.c");
        let progs = BUILDS
            .iter()
            .map(|(name, flags)| {
                let exe = c_artifact(&format!("rebind-{name}"));
                cc(flags, &exe, "rebind.c");
                (*name, exe)
            })
            .collect();
        (progs, plugin)
    })
}

/// Slot name -> where it points ("ours", "lazy", "direct:OBJECT"), main program and plugin.
struct Slots {
    main: BTreeMap<String, String>,
    plugin: BTreeMap<String, String>,
}

fn slots(out: &Output) -> Result<Slots, String> {
    let mut s = Slots { main: BTreeMap::new(), plugin: BTreeMap::new() };
    for line in out.stdout.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["slot", name, _kind, at] => s.main.insert(name.to_string(), at.to_string()),
            ["plugin", name, at] => s.plugin.insert(name.to_string(), at.to_string()),
            _ => None,
        };
    }
    for name in ["malloc", "free", "calloc", "realloc"] {
        if !s.main.contains_key(name) {
            return Err(format!("{}: no slot for {name} found in the program:\n{}", out.label, out.stdout));
        }
    }
    if !s.plugin.contains_key("malloc") || !s.plugin.contains_key("free") {
        return Err(format!("{}: no malloc/free slot found in the plugin:\n{}", out.label, out.stdout));
    }
    Ok(s)
}

/// What a slot the library did not rebind shows: the lazy build's slot is still the
/// PLT stub (it resolves to the exported function on first call); the others hold the
/// exported function.
fn kept(build: &str) -> &'static str {
    if build == "lazy" {
        "lazy"
    } else {
        "ours"
    }
}

fn check(build: &str, out: &Output, want: &[(&str, &str)]) -> Result<(), String> {
    let s = slots(out)?;
    for (name, expected) in want {
        let got = s.main.get(*name).map(String::as_str).unwrap_or("");
        if got != *expected {
            return Err(format!("{} ({build} build): {name} slot is {got}, expected {expected}\n{}", out.label, out.stdout));
        }
    }
    // Loaded after start-up, so never rebound: its calls reach the exported functions.
    for name in ["malloc", "free"] {
        if s.plugin[name] != "ours" {
            return Err(format!("{}: the dlopened plugin's {name} slot is {}, expected ours\n{}", out.label, s.plugin[name], out.stdout));
        }
    }
    Ok(())
}

#[test]
fn calls_are_bound_to_the_backend_where_it_behaves_as_the_shim() {
    let (progs, plugin) = programs();
    each_backend(|backend| {
        for (build, exe) in progs {
            let out = run(exe, &[plugin]).backend(backend).success()?;
            if out.field("backend") != Some(backend) {
                return Err(format!("{}: served by {:?}", out.label, out.field("backend")));
            }
            let lib = "direct:liballocshim.so";
            let want: Vec<(&str, &str)> = match backend {
                "system" => ["malloc", "free", "calloc", "realloc"].iter().map(|n| (*n, "direct:libc.so.6")).collect(),
                "jemalloc" => ["malloc", "free", "calloc", "realloc"].iter().map(|n| (*n, lib)).collect(),
                // mimalloc: calloc overflow leaves errno alone, realloc(p, 0) returns a block.
                "mimalloc" => vec![("malloc", lib), ("free", lib), ("calloc", kept(build)), ("realloc", kept(build))],
                // snmalloc: realloc is direct only when no bootstrap block is live at
                // start-up, which depends on what its start allocated; not asserted.
                _ => vec![("malloc", lib), ("free", lib), ("calloc", lib)],
            };
            check(build, &out, &want)?;
        }
        Ok(())
    });
}

#[test]
fn jemalloc_realloc_keeps_the_shim_when_malloc_conf_changes_realloc_zero() {
    // zero_realloc:alloc makes jemalloc's realloc(p, 0) return a block; the exported
    // realloc must then stay in the path (rebind.c checks realloc(p, 0) == NULL).
    let (progs, plugin) = programs();
    for (build, exe) in progs {
        let out = run(exe, &[plugin]).backend("jemalloc").env("MALLOC_CONF", "zero_realloc:alloc").success().unwrap();
        check(build, &out, &[("malloc", "direct:liballocshim.so"), ("realloc", kept(build))]).unwrap();
    }
}

#[test]
fn without_the_library_the_slots_are_untouched() {
    // The reader itself: with nothing preloaded, the lazy build's slots are unresolved
    // and the others hold glibc's functions (what dlsym finds).
    let (progs, plugin) = programs();
    for (build, exe) in progs {
        let out = run(exe, &[plugin]).no_preload().success().unwrap();
        let all: Vec<(&str, &str)> = ["malloc", "free", "calloc", "realloc"].iter().map(|n| (*n, kept(build))).collect();
        check(build, &out, &all).unwrap();
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
            cc(flags, &exe, "ownmalloc.c");
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
