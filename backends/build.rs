//! The versions of the backends compiled in, read once at build time from what was
//! compiled (the headers the -sys crates built with), for the library and the crate
//! alike. None of them needs the allocator to be running: the library reports
//! versions without starting backends it did not choose.
use std::{env, fs, path::PathBuf};

fn main() {
    // jemalloc: the version its configure step wrote into the installed header, as
    // "5.3.1" (without the git suffix of "5.3.1-0-g81034ce...").
    if env::var_os("CARGO_FEATURE_JEMALLOC").is_some() {
        let root = PathBuf::from(env::var_os("DEP_JEMALLOC_ROOT").expect("tikv-jemalloc-sys sets DEP_JEMALLOC_ROOT"));
        let header = fs::read_to_string(root.join("include/jemalloc/jemalloc.h")).unwrap();
        let v = header
            .lines()
            .find_map(|l| l.strip_prefix("#define JEMALLOC_VERSION \""))
            .and_then(|v| v.split(['-', '"']).next())
            .expect("JEMALLOC_VERSION in jemalloc.h");
        println!("cargo:rustc-env=ALLOCSHIM_JEMALLOC_VERSION={v}");
    }

    // mimalloc: MI_MALLOC_VERSION (major*10000 + minor*100 + patch, what mi_version()
    // returns) of the line compiled in (DEP_MIMALLOC_INCLUDE_DIR is v2's or v3's).
    if env::var_os("CARGO_FEATURE_MIMALLOC").is_some() {
        let include = PathBuf::from(env::var_os("DEP_MIMALLOC_INCLUDE_DIR").expect("libmimalloc-sys sets DEP_MIMALLOC_INCLUDE_DIR"));
        let header = fs::read_to_string(include.join("mimalloc.h")).unwrap();
        let v: u32 = header
            .lines()
            .find_map(|l| l.strip_prefix("#define MI_MALLOC_VERSION"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("MI_MALLOC_VERSION in mimalloc.h");
        println!("cargo:rustc-env=ALLOCSHIM_MIMALLOC_VERSION={}.{}.{}", v / 10000, v / 100 % 100, v % 100);
    }

    // snmalloc has no version API; snmalloc-sys is versioned with upstream snmalloc,
    // and the build's Cargo.lock says which was used: the first one above OUT_DIR (the
    // workspace whose target directory this is, ours or a dependent's), else the one of
    // the workspace this crate is in (a target directory kept elsewhere, as the
    // buildpack's source build keeps it in the build cache).
    if env::var_os("CARGO_FEATURE_SNMALLOC").is_some() {
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
        let candidates = out.ancestors().skip(1).chain(manifest.parent()).map(|d| d.join("Cargo.lock"));
        let version = candidates
            .filter_map(|lock| fs::read_to_string(&lock).ok().map(|text| (lock, text)))
            .find_map(|(lock, text)| {
                println!("cargo:rerun-if-changed={}", lock.display());
                locked_version(&text, "snmalloc-sys")
            })
            .unwrap_or_else(|| "unknown".to_string());
        println!("cargo:rustc-env=ALLOCSHIM_SNMALLOC_VERSION={version}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The version of package `name` in the text of a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            return lines.next()?.strip_prefix("version = \"").map(|v| v.trim_end_matches('"').to_string());
        }
    }
    None
}
