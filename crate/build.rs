//! Checks the mimalloc line is chosen once. (The backends' versions are the
//! allocshim-backends crate's, shared with liballocshim.so.)
use std::env;

fn main() {
    if env::var_os("CARGO_FEATURE_MIMALLOC").is_some() && env::var_os("CARGO_FEATURE_MIMALLOC3").is_some() {
        panic!(
            "allocshim: features `mimalloc` (2.x, default) and `mimalloc3` exclude each other; \
                for 3.x use default-features = false, features = [\"mimalloc3\", \"jemalloc\", \"snmalloc\"]"
        );
    }
    // One cfg for "some mimalloc line is compiled in".
    println!("cargo:rustc-check-cfg=cfg(has_mimalloc)");
    if env::var_os("CARGO_FEATURE_MIMALLOC").is_some() || env::var_os("CARGO_FEATURE_MIMALLOC3").is_some() {
        println!("cargo:rustc-cfg=has_mimalloc");
    }
}
