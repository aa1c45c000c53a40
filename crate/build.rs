//! Checks the mimalloc line is chosen once, and records snmalloc's version, which it
//! cannot tell at run time (no version API; its -sys crate carries upstream's version
//! number, found in the program's Cargo.lock).
use std::{env, fs, path::PathBuf};

fn main() {
    if env::var_os("CARGO_FEATURE_MIMALLOC").is_some() && env::var_os("CARGO_FEATURE_MIMALLOC3").is_some() {
        panic!("allocshim: features `mimalloc` (2.x, default) and `mimalloc3` exclude each other; \
                for 3.x use default-features = false, features = [\"mimalloc3\", \"jemalloc\", \"snmalloc\"]");
    }
    // One cfg for "some mimalloc line is compiled in".
    println!("cargo:rustc-check-cfg=cfg(has_mimalloc)");
    if env::var_os("CARGO_FEATURE_MIMALLOC").is_some() || env::var_os("CARGO_FEATURE_MIMALLOC3").is_some() {
        println!("cargo:rustc-cfg=has_mimalloc");
    }
    let mut version = String::from("unknown");
    let mut dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    while dir.pop() {
        let lock = dir.join("Cargo.lock");
        if let Ok(text) = fs::read_to_string(&lock) {
            println!("cargo:rerun-if-changed={}", lock.display());
            let mut lines = text.lines();
            while let Some(l) = lines.next() {
                if l == "name = \"snmalloc-sys\"" {
                    if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                        version = v.trim_end_matches('"').to_string();
                    }
                }
            }
            break;
        }
    }
    println!("cargo:rustc-env=ALLOCSHIM_SNMALLOC_VERSION={version}");
}
