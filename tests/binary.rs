//! The shipped binary: exactly the intended exports, unversioned; loadable on the
//! heroku-22 stack (glibc 2.35); no C++ runtime; no dynamic TLS on the hot path.
use std::process::Command;

use allocshim_tests::lib;

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name).args(args).arg(lib()).output().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const EXPORTS: &[&str] = &[
    "aligned_alloc",
    "allocshim_active",
    "allocshim_backend_count",
    "allocshim_backend_name",
    "allocshim_backend_version",
    "allocshim_options",
    "allocshim_preset",
    "allocshim_reason",
    "allocshim_usage",
    "allocshim_version",
    "calloc",
    "cfree",
    "free",
    "free_aligned_sized",
    "free_sized",
    "malloc",
    "malloc_stats",
    "malloc_trim",
    "malloc_usable_size",
    "memalign",
    "posix_memalign",
    "pvalloc",
    "realloc",
    "reallocarray",
    "valloc",
];

#[test]
fn exports_exactly_the_malloc_family_and_the_query_api() {
    let nm = tool("nm", &["-D", "--defined-only"]);
    let mut names: Vec<&str> = nm.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    names.sort();
    assert_eq!(names, EXPORTS, "nm -D --defined-only:\n{nm}");
}

#[test]
fn exports_are_unversioned() {
    // ld.so binds its own malloc lookups (versioned) only to unversioned or matching definitions.
    let dynsym = tool("objdump", &["-T"]);
    for line in dynsym.lines().filter(|l| l.contains(" .text")) {
        assert!(line.contains("Base"), "versioned export: {line}");
    }
}

#[test]
fn loads_on_glibc_2_35_without_a_cpp_runtime() {
    let dynsym = tool("objdump", &["-T"]);
    let mut max = (0u32, 0u32);
    for v in dynsym.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        if let Some(rest) = v.strip_prefix("GLIBC_") {
            let mut it = rest.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            max = max.max((it.next().unwrap_or(0), it.next().unwrap_or(0)));
        }
        assert!(!v.starts_with("GLIBCXX_") && !v.starts_with("CXXABI_"), "C++ runtime symbol version {v}");
    }
    assert!(max <= (2, 35), "needs GLIBC_{}.{}, above Ubuntu 22.04's 2.35", max.0, max.1);
    let dynamic = tool("readelf", &["-d"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    for line in &needed {
        assert!(
            ["libc.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libgcc_s.so.1"]
                .iter()
                .any(|ok| line.contains(ok)),
            "unexpected dependency: {line}"
        );
    }
}

#[test]
fn no_dynamic_tls_or_plt_calls_into_backends_on_the_hot_path() {
    // Disassemble each hot export by address (`free` and `cfree` share one body).
    let nm = tool("nm", &["-D", "-S", "--defined-only"]);
    for name in ["malloc", "free", "calloc", "realloc"] {
        let fields: Vec<&str> = nm.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|f| f.len() == 4 && f[3] == name).unwrap_or_else(|| panic!("{name} not in nm -D -S")).to_vec();
        let start = u64::from_str_radix(fields[0], 16).unwrap();
        let size = u64::from_str_radix(fields[1], 16).unwrap();
        let asm = tool(
            "objdump",
            &["-d", "--no-show-raw-insn", &format!("--start-address={start:#x}"), &format!("--stop-address={:#x}", start + size)],
        );
        assert!(asm.lines().filter(|l| l.contains(':')).count() > 3, "{name}: no code found:\n{asm}");
        assert!(!asm.contains("__tls_get_addr"), "{name}: dynamic TLS on the hot path:\n{asm}");
        for line in asm.lines().filter(|l| l.contains("call") && (l.contains("@plt") || l.contains("@GLIBC"))) {
            assert!(line.contains("__errno_location"), "{name}: call through the PLT/GOT on the hot path: {line}\n{asm}");
        }
        // malloc and free reach the backend by a tail jump: no frame of their own,
        // the backend returns straight to the caller (see exports.rs).
        if name == "malloc" || name == "free" {
            assert!(asm.contains("jmp    *"), "{name}: no tail jump into the backend:\n{asm}");
            assert!(!asm.lines().any(|l| l.contains("\tcall")), "{name}: calls on the hot path:\n{asm}");
        }
    }
}

#[test]
fn backends_are_release_builds_without_their_debug_assertions() {
    // snmalloc-sys leaves NDEBUG undefined on Linux; .cargo/config.toml defines it.
    // With snmalloc's assertions on, its malloc/free took 1.5x as long (scripts/bench).
    let strings = tool("strings", &["-a"]);
    let asserts: Vec<&str> = strings.lines().filter(|l| l.contains("assert fail")).collect();
    assert!(asserts.is_empty(), "assertion messages compiled in: {asserts:?}");
}
