//! The shipped binary: exactly the intended exports, unversioned; loadable on the
//! heroku-22 stack (glibc 2.35); no C++ runtime; no dynamic TLS on the hot path.
//! The library under test may be the x86_64 or the aarch64 build (scripts/test-aarch64):
//! its ELF header picks the binutils and the instructions to look for.
use std::process::Command;

use allocshim_tests::{c_program, lib, run};

/// What differs between the architectures the library is built for.
struct Isa {
    /// Prefix of the binutils that read this architecture (Debian's cross binutils).
    binutils: &'static str,
    /// How objdump spells a call (x86_64 `call`; aarch64 `bl`, and `blr` through a register).
    calls: &'static [&'static str],
    /// How objdump spells the indirect tail jump into the backend.
    tail_jump: &'static str,
    /// How a function saves registers for a frame of its own (x86_64 `push`; aarch64
    /// stores the frame pointer and link register with `stp x29, x30`).
    frame: &'static str,
}

impl Isa {
    fn is_call(&self, line: &str) -> bool {
        self.calls.iter().any(|c| line.contains(c))
    }
    fn saves_frame(&self, line: &str) -> bool {
        line.contains(self.frame)
    }
}

fn isa() -> Isa {
    let elf = std::fs::read(lib()).unwrap();
    assert!(elf.len() > 20 && elf.starts_with(b"\x7fELF"), "{} is not an ELF file", lib().display());
    match u16::from_le_bytes([elf[18], elf[19]]) {
        62 => Isa { binutils: "", calls: &["\tcall"], tail_jump: "jmp    *", frame: "\tpush " },
        183 => Isa { binutils: "aarch64-linux-gnu-", calls: &["\tbl\t", "\tblr\t"], tail_jump: "\tbr\t", frame: "\tstp\tx29, x30" },
        other => panic!("{}: ELF machine {other} (accepted: 62 x86_64, 183 aarch64)", lib().display()),
    }
}

fn tool(name: &str, args: &[&str]) -> String {
    let name = format!("{}{name}", isa().binutils);
    let out = Command::new(&name).args(args).arg(lib()).output().unwrap_or_else(|e| panic!("{name}: {e}"));
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
    "pthread_create", // glibc's, wrapped: starts the low-memory preset's trimming helper (trimmer.rs)
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
    let text: Vec<&str> = dynsym.lines().filter(|l| l.contains(" .text")).collect();
    for name in EXPORTS {
        assert!(
            text.iter().any(|l| l.split_whitespace().last() == Some(name)),
            "{name} not among the .text symbols of objdump -T:\n{dynsym}"
        );
    }
    for line in text {
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
    // It does use versioned glibc symbols: no version found means the tool's output was not read.
    assert!(max >= (2, 2), "no GLIBC_ symbol version found in objdump -T:\n{dynsym}");
    assert!(max <= (2, 35), "needs GLIBC_{}.{}, above Ubuntu 22.04's 2.35", max.0, max.1);
    let dynamic = tool("readelf", &["-d"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(needed.iter().any(|l| l.contains("[libc.so.6]")), "no NEEDED libc.so.6 in readelf -d:\n{dynamic}");
    // Nothing but libc (and the dynamic loader, loaded anyway): jemalloc's profiler
    // unwinds with libgcc_s.so.1, which the library dlopens only when sampling
    // (shim/src/backend/jemalloc/unwind.c), and its libm functions are the library's own.
    for line in &needed {
        assert!(
            ["libc.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"].iter().any(|ok| line.contains(ok)),
            "unexpected dependency: {line}"
        );
    }
}

#[test]
fn no_dynamic_tls_or_plt_calls_into_backends_on_the_hot_path() {
    // Disassemble each hot export by address (`free` and `cfree` share one body).
    let isa = isa();
    let nm = tool("nm", &["-D", "-S", "--defined-only"]);
    for name in ["malloc", "free", "calloc", "realloc"] {
        let fields: Vec<&str> = nm
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() == 4 && f[3] == name)
            .unwrap_or_else(|| panic!("{name} not in nm -D -S"))
            .to_vec();
        let start = u64::from_str_radix(fields[0], 16).unwrap();
        let size = u64::from_str_radix(fields[1], 16).unwrap();
        let asm = tool(
            "objdump",
            &["-d", "--no-show-raw-insn", &format!("--start-address={start:#x}"), &format!("--stop-address={:#x}", start + size)],
        );
        // The label at its address (`free` may be labelled `cfree`), then its
        // instructions ("  2da50:\tmov ..."): headers only must not pass for clean code.
        assert!(asm.lines().any(|l| l.starts_with(&format!("{start:016x} <"))), "{name}: not disassembled:\n{asm}");
        let instructions: Vec<&str> = asm
            .lines()
            .filter(|l| {
                l.trim_start().split_once(":\t").is_some_and(|(addr, _)| !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit()))
            })
            .collect();
        assert!(!instructions.is_empty(), "{name}: no instructions found:\n{asm}");
        assert!(!asm.contains("__tls_get_addr"), "{name}: dynamic TLS on the hot path:\n{asm}");
        for line in asm.lines().filter(|l| isa.is_call(l) && (l.contains("@plt") || l.contains("@GLIBC"))) {
            assert!(line.contains("__errno_location"), "{name}: call through the PLT/GOT on the hot path: {line}\n{asm}");
        }
        // malloc and free reach the backend by a tail jump: no frame of their own,
        // the backend returns straight to the caller (see exports.rs). Their hot path
        // is every instruction up to that jump; free's cold path (a bootstrap-arena
        // block) is laid out after it and may call (aarch64's out-of-line atomics).
        if name == "malloc" || name == "free" {
            let jump = instructions.iter().position(|l| l.contains(isa.tail_jump));
            let hot = &instructions[..=jump.unwrap_or_else(|| panic!("{name}: no tail jump into the backend:\n{asm}"))];
            assert!(!hot.iter().any(|l| isa.saves_frame(l)), "{name}: builds a frame on the hot path:\n{asm}");
            assert!(!hot.iter().any(|l| isa.is_call(l)), "{name}: calls on the hot path:\n{asm}");
        }
    }
}

#[test]
fn backends_are_release_builds_without_their_debug_assertions() {
    // snmalloc-sys leaves NDEBUG undefined on Linux; .cargo/config.toml defines it.
    // With snmalloc's assertions on, its malloc/free took 1.5x as long (scripts/bench).
    let strings = tool("strings", &["-a"]);
    // The library's own texts are there: the output was read.
    assert!(strings.contains("several allocators enabled"), "strings -a found none of the library's own texts");
    let asserts: Vec<&str> = strings.lines().filter(|l| l.contains("assert fail")).collect();
    assert!(asserts.is_empty(), "assertion messages compiled in: {asserts:?}");
}

#[test]
fn code_run_at_load_and_exit_has_a_small_executable_segment_of_its_own() {
    // The kernel maps up to 128 KiB of cached file pages around a faulting one, within
    // the mapping: the exported functions, the selection and the exit code share one
    // small executable segment, so that start-up maps none of the allocators' text
    // (shim/build.rs; docs/hot-path.md, "Start-up"). The x86_64 build is linked by
    // lld, which starts a segment at the read-only fence; GNU ld, which links the
    // aarch64 cross build, keeps one executable segment: nothing to check there.
    if !isa().binutils.is_empty() {
        return;
    }
    let headers = tool("readelf", &["-lW"]);
    let exec: Vec<(u64, u64)> = headers
        .lines()
        // "LOAD offset vaddr paddr filesz memsz FLAGS align": the flags may be spaced ("R E").
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"LOAD") && f.len() > 7 && f[6..f.len() - 1].concat().contains('E')
        })
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                u64::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?,
                u64::from_str_radix(f.get(5)?.trim_start_matches("0x"), 16).ok()?,
            ))
        })
        .collect();
    assert!(exec.len() >= 2, "one executable segment only:\n{headers}");
    let nm = tool("nm", &["-D", "--defined-only"]);
    for name in ["malloc", "free", "allocshim_active"] {
        let addr = nm
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == name).then(|| u64::from_str_radix(f[0], 16).unwrap())
            })
            .unwrap_or_else(|| panic!("{name} not in nm -D"));
        let (start, size) = exec
            .iter()
            .copied()
            .find(|(s, m)| (*s..s + m).contains(&addr))
            .unwrap_or_else(|| panic!("{name} is in no executable segment:\n{headers}"));
        // The library's own start-up and exit code: 34 KiB at first, 38 KiB with
        // per-program scoping, heap profiling and the low-memory preset's helpers, whose
        // code no `system` start-up runs is kept out (shim/build.rs); the allocators'
        // 800 KiB stay in the other segment.
        assert!(size <= 48 << 10, "{name} is in an executable segment of {size} bytes at {start:#x}, not the small one:\n{headers}");
    }
}

/// One of the library's sections, as `readelf -SW` lists it.
#[derive(Debug)]
struct Section {
    name: String,
    addr: u64,
    offset: u64,
    size: u64,
}

/// The library's section table.
fn section_table() -> Vec<Section> {
    let table = tool("readelf", &["-SW"]);
    let mut found = vec![];
    for line in table.lines() {
        // "[Nr] Name Type Address Off Size ...": after the bracket, name and offsets.
        let Some((_, rest)) = line.split_once(']') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let hex = |i: usize| u64::from_str_radix(f[i], 16);
        if let (true, Ok(addr), Ok(offset), Ok(size)) = (f.len() > 4, hex(2), hex(3), hex(4)) {
            found.push(Section { name: f[0].to_string(), addr, offset, size });
        }
    }
    found
}

/// Each of the library's sections named in `names`.
fn sections(names: &[&str]) -> Vec<Section> {
    let found: Vec<Section> = section_table().into_iter().filter(|s| names.contains(&s.name.as_str())).collect();
    assert_eq!(found.len(), names.len(), "sections {names:?} among {:?}", section_table());
    found
}

#[test]
fn no_segment_is_writable_and_executable_and_relro_is_kept() {
    // The linker script's sections (shim/build.rs) must not change what the linker
    // makes of the segments: a writable section among the read-only ones once made GNU
    // ld (the aarch64 build) merge the whole library into one read-write-execute
    // segment without RELRO, and only a linker warning, which rustc hides, said so.
    let headers = tool("readelf", &["-lW"]);
    let mut loads = 0;
    for line in headers.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"LOAD") && f.len() > 7 {
            loads += 1;
            // "LOAD offset vaddr paddr filesz memsz FLAGS align": the flags may be spaced ("R E").
            let flags = f[6..f.len() - 1].concat();
            assert!(!(flags.contains('W') && flags.contains('E')), "a writable and executable segment:\n{headers}");
        }
    }
    assert!(loads >= 2, "fewer than 2 LOAD segments:\n{headers}");
    assert!(headers.lines().any(|l| l.trim_start().starts_with("GNU_RELRO")), "no GNU_RELRO segment:\n{headers}");
}

#[test]
fn only_the_chosen_allocators_data_is_relocated() {
    // ld.so applies every relocation it is given at load, and the allocators' pointer
    // tables need some 1 600: that made 11 pages of the library private memory in
    // every process. shim/relink.rs takes the relocations of each allocator's data
    // sections (`.data.allocshim.<name>.ro`, its tables, and `.data.allocshim.<name>`)
    // out of what ld.so applies, and src/relocate.rs applies the chosen allocator's.
    // First, in the file: no relocation ld.so applies (any type but NONE) targets those
    // sections, and each allocator has relocations withheld.
    let data: Vec<Section> = section_table().into_iter().filter(|s| s.name.starts_with(".data.allocshim.")).collect();
    let allocators: Vec<&str> = allocshim_tests::BACKENDS.into_iter().filter(|b| *b != "system").collect();
    let owner = |section: &str| section.trim_start_matches(".data.allocshim.").trim_end_matches(".ro").to_string();
    for a in &allocators {
        for s in [format!(".data.allocshim.{a}.ro"), format!(".data.allocshim.{a}")] {
            assert!(data.iter().any(|d| d.name == s), "no section {s}: {data:?}");
        }
    }
    let relocations = tool("readelf", &["-rW"]);
    let mut withheld: Vec<(String, u32)> = allocators.iter().map(|a| (a.to_string(), 0)).collect();
    for line in relocations.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(offset), Some(kind)) = (f.first().and_then(|o| u64::from_str_radix(o, 16).ok()), f.get(2)) else { continue };
        if let Some(Section { name, .. }) = data.iter().find(|d| (d.addr..d.addr + d.size).contains(&offset)) {
            assert!(kind.ends_with("_NONE"), "ld.so applies a relocation in {name}: {line}");
            withheld.iter_mut().find(|(a, _)| *a == owner(name)).unwrap().1 += 1;
        }
    }
    for (allocator, n) in &withheld {
        assert!(*n > 0, "no relocation of {allocator}'s withheld: was the library linked without shim/relink.rs?");
    }
    // relocate.rs applies as many entries as `.allocshim.withheld` counts (8 bytes,
    // little-endian).
    let counter = sections(&[".allocshim.withheld"]).remove(0);
    let file = std::fs::read(lib()).unwrap();
    let counted = u64::from_le_bytes(file[counter.offset as usize..][..8].try_into().unwrap());
    let total: u32 = withheld.iter().map(|(_, n)| n).sum();
    assert_eq!(counted, u64::from(total), "`.allocshim.withheld` counts {counted}, the sections have {total} NONE entries");
    // Then, by the kernel: the pages a process wrote. In `system` mode none of these
    // sections; under an allocator, its own (relocated, then its running state) and
    // no other's, and its tables are read-only again once relocated, as RELRO would
    // have left them. (Not under qemu, whose processes' page map is the emulator's.)
    // The sections are 4 KiB-aligned: with larger pages they share pages.
    let page = Command::new("getconf").arg("PAGESIZE").output().unwrap();
    if !isa().binutils.is_empty() || String::from_utf8_lossy(&page.stdout).trim() != "4096" {
        return;
    }
    let ranges: Vec<String> = data
        .iter()
        .filter(|d| d.size > 0)
        .map(|d| format!("{}:{:x}:{:x}", d.name.trim_start_matches(".data.allocshim."), d.addr, d.addr + d.size))
        .collect();
    for backend in allocshim_tests::BACKENDS {
        let out = run(c_program("written"), &ranges).backend(backend).output();
        assert!(out.status.success(), "[{backend}] {}", out.stderr);
        for allocator in &allocators {
            let lines: Vec<Vec<&str>> = out
                .stdout
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<&str>>())
                .filter(|f| f.len() == 6 && owner(f[0]) == *allocator)
                .collect();
            assert!(!lines.is_empty(), "[{backend}] no line for {allocator}: {}", out.stdout);
            let written: u32 = lines.iter().map(|f| f[2].parse::<u32>().unwrap()).sum();
            if *allocator == backend {
                assert!(written > 0, "[{backend}] its data was not written:\n{}", out.stdout);
            } else {
                assert_eq!(written, 0, "[{backend}] {allocator}'s data was written:\n{}", out.stdout);
            }
            for f in &lines {
                let want = if *allocator == backend && f[0].ends_with(".ro") { "r--p" } else { "rw-p" };
                assert_eq!(f[5], want, "[{backend}] {} mapped {}, not {want}:\n{}", f[0], f[5], out.stdout);
            }
        }
    }
}

#[test]
fn a_start_up_maps_the_code_of_its_own_backend_and_of_no_other() {
    // What the segments of shim/build.rs are for, seen by the kernel: `cat` reads its own
    // smaps under each backend. The small start-up segment is resident; of the
    // allocators' code, only the chosen one's (none in `system` mode); the code no
    // start-up runs (`.allocshim.cold`), never. A function of one backend that another's
    // start-up calls, or a cold one that start-up runs, would fault a 64 KiB window of
    // the wrong mapping in; and this is the kernel's own proof of which allocator ran.
    if !isa().binutils.is_empty() {
        return;
    }
    // Every backend but `system` has its code in `.text.<backend>`.
    let allocators: Vec<&str> = allocshim_tests::BACKENDS.into_iter().filter(|b| *b != "system").collect();
    let own: Vec<String> = allocators.iter().map(|a| format!(".text.{a}")).collect();
    let names: Vec<&str> = [".text.allocshim", ".allocshim.cold"].into_iter().chain(own.iter().map(String::as_str)).collect();
    let sections = sections(&names);
    let lib_name = lib().file_name().unwrap().to_string_lossy().into_owned();
    for backend in allocshim_tests::BACKENDS {
        let out = run("cat", &["/proc/self/smaps"]).backend(backend).output();
        assert!(out.status.success(), "{}", out.stderr);
        // (file offset, size, Rss) of each of the library's mappings, all in bytes
        let mut mappings: Vec<(u64, u64, u64)> = vec![];
        let mut current: Option<(u64, u64)> = None;
        for line in out.stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 5 && f[0].contains('-') && f[1].len() == 4 {
                current = None;
                if f.last().is_some_and(|p| p.ends_with(&lib_name)) {
                    let (a, b) = f[0].split_once('-').unwrap();
                    let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
                    current = Some((u64::from_str_radix(f[2], 16).unwrap(), b - a));
                }
            } else if let (Some((offset, size)), ["Rss:", kib, "kB"]) = (current, f.as_slice()) {
                mappings.push((offset, size, kib.parse::<u64>().unwrap() << 10));
            }
        }
        let rss_of = |section: &str| -> u64 {
            let s = sections.iter().find(|s| s.name == section).unwrap();
            let middle = s.offset + s.size / 2;
            let m = mappings.iter().find(|(o, s, _)| (*o..o + s).contains(&middle));
            m.unwrap_or_else(|| panic!("[{backend}] no mapping of {lib_name} holds {section}: {mappings:?}")).2
        };
        let start = rss_of(".text.allocshim");
        assert!(start > 0 && start <= 48 << 10, "[{backend}] start-up segment: {start} bytes resident");
        assert_eq!(rss_of(".allocshim.cold"), 0, "[{backend}] a start-up faulted the cold code in");
        for (allocator, section) in allocators.iter().zip(&own) {
            let resident = rss_of(section);
            if *allocator == backend {
                assert!(resident > 0, "[{backend}] its own code is not resident: {mappings:?}");
            } else {
                assert_eq!(resident, 0, "[{backend}] {allocator}'s code is resident: {mappings:?}");
            }
        }
    }
}
