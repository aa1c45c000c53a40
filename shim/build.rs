//! Build glue for liballocshim.so.
//!
//! * compiles `src/glue.c` (the few things that must be C: see that file);
//! * links the library's PLT with lazy binding (start-up cost, see below);
//! * keeps jemalloc dormant: its only load-time constructor (`jemalloc_constructor`
//!   in jemalloc.c, which fully initialises jemalloc in every process) is dropped at
//!   link time, so jemalloc initialises lazily, and only if it is chosen;
//! * gives the code every process runs at load and exit its own small executable
//!   mapping (start-up RSS, see the linker script below);
//! * wraps the backends' `pthread_atfork` and `prctl` calls (glue.c);
//! * gives each allocator's relocated data a section of its own and, once the library
//!   is linked, leaves its relocations to the library (relink.rs): this program is
//!   also the wrapper gcc runs the linker under.
//!
//! (The compiled-in backend versions are the allocshim-backends crate's.)
use std::ffi::OsString;
use std::{env, fs, path::PathBuf, process::Command};

#[path = "relink.rs"]
mod relink;

/// The first argument with which gcc (`-wrapper`) runs this program around the linker.
const RELINK: &str = "--allocshim-relink";

fn main() {
    let mut args = env::args_os().skip(1);
    if args.next().is_some_and(|a| a == RELINK) {
        std::process::exit(link_then_relink(args.collect()));
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    if env::var_os("CARGO_FEATURE_MIMALLOC2").is_some() == env::var_os("CARGO_FEATURE_MIMALLOC3").is_some() {
        panic!(
            "allocshim: enable exactly one of the features `mimalloc2` (default) and `mimalloc3` \
                (for 3.x: --no-default-features --features mimalloc3)"
        );
    }

    println!("cargo:rerun-if-changed=src/glue.c");
    println!("cargo:rerun-if-changed=src/backend/jemalloc/unwind.c");
    println!("cargo:rerun-if-changed=src/backend/jemalloc/profile.c");
    cc::Build::new()
        .file("src/glue.c")
        .file("src/backend/jemalloc/unwind.c")
        .file("src/backend/jemalloc/profile.c")
        .flag("-fvisibility=hidden")
        .flag("-ftls-model=initial-exec")
        .flag("-fno-builtin-malloc")
        .flag("-std=gnu11")
        .compile("allocshim_glue");

    // INSERT scripts augment the default linker script instead of replacing it.
    //
    // 1. jemalloc's constructor is discarded. rustc bundles the static libjemalloc_pic.a
    //    into tikv-jemalloc-sys's rlib, so the object is named as a member of that archive.
    //
    // 2. The code every process runs at load and exit gets an executable mapping of its
    //    own: the PLT, the crt start/exit code, glue.c, the Rust code (the selection, the
    //    rebinding, the exports: 38 KiB) and the few libc_nonshared and compiler-builtins
    //    helpers the allocators call at their start (`atexit`, `pthread_atfork`,
    //    `__popcountdi2`), then a one-byte read-only fence (glue.c) that ends the segment.
    //    On a read fault the kernel maps up to 64-128 KiB of cached file pages around
    //    the faulting one ("fault-around"), but never past the mapping: with one
    //    executable mapping, the start-up code pulled in 80 KiB of allocator code at load
    //    and `__cxa_finalize`'s PLT call (lld puts the PLT after .text) another 112 KiB
    //    at exit, in every process, `system` mode included (docs/hot-path.md,
    //    "Start-up"). crtbegin's and glue.c's code comes first: crtbegin's runs at every
    //    load and exit, and placed after the Rust code it pulled a second 64 KiB window
    //    of the segment in.
    //
    // 3. Each allocator's code and read-only data get mappings of their own too, the
    //    Rust functions that only its start runs (`#[link_section = ".allocshim.<name>"]`)
    //    first: its read-only data, after its code, ends the executable segment, and a
    //    fence ends the read-only one. So a process maps the pages of the allocator it
    //    chose and no window of another's: with one mapping for all three, mimalloc's
    //    /bin/true had 220 KiB of text resident for its 70 KiB of code, and every
    //    backend a second 64 KiB window of the first read-only segment for its strings
    //    (docs/benchmarks.md, "Start-up RSS"). tests/binary.rs checks which mappings each
    //    backend's start-up leaves resident.
    //
    // 4. What no start-up runs stays after `.text`, so that the windows above hold only
    //    what runs: the heap profiler's C code (profile.c, unwind.c), and the Rust
    //    functions marked `#[link_section = ".allocshim.cold"]` (warnings and their size
    //    formatting, the scope's explanations, cgroup quotas, the profile's parsing). A
    //    function marked so that a start-up does run costs a window of that segment.
    //
    //    lld (rustc's linker for x86_64) starts a segment at each change of flags; GNU ld
    //    (the aarch64 cross build's) keeps one executable segment, so there only the
    //    order changes. Objects these patterns miss (another toolchain's names) land in
    //    `.text` with the rest.
    //
    // 5. The Rust code's read-only data (the variable names the selection looks up in
    //    every process, its messages) comes first in `.rodata`, right after the
    //    relocations that ld.so reads in full: in the first 64 KiB of the file, the
    //    window ld.so's reading maps anyway, rather than 12 KiB further on, which mapped
    //    the next 64 KiB too (`cat`: -128 KiB peak RSS, `sh`: -104 KiB).
    //
    // 6. Each allocator's relocated data gets writable sections of its own, on pages
    //    of their own, bounded by hidden symbols: `.data.allocshim.<name>.ro` (its
    //    `.data.rel.ro*`, the pointer tables) and `.data.allocshim.<name>` (its
    //    `.data*`). relink.rs takes their relocations from ld.so, and src/relocate.rs
    //    applies the chosen allocator's, then makes the `.ro` pages read-only, as
    //    RELRO would have (RELRO itself cannot hold them: ld.so seals it before the
    //    choice). relink.rs writes how many it withheld in `.allocshim.withheld`
    //    (glue.c's read-only 8 bytes), next to the Rust code's read-only data.
    //
    // 7. jemalloc's TLS image (its 2 KiB `tsd`, no pointer in it) comes first in
    //    `.tdata`, so that the two pointers ld.so relocates there (mimalloc's and
    //    snmalloc's initial thread heaps) share a page with the rest of RELRO, which
    //    is written anyway, and the first page of RELRO stays the file's. (GNU ld's
    //    default script takes `.tdata` first: no change there.)
    const JEMALLOC: &str = "*libtikv_jemalloc_sys-*.rlib";
    // (name, the archive rustc bundles the allocator's C/C++ objects into)
    let allocators = [("mimalloc", "*liblibmimalloc_sys-*.rlib"), ("jemalloc", JEMALLOC), ("snmalloc", "*libsnmalloc_sys-*.rlib")];
    let (mut own, mut data) = (String::new(), String::new());
    for (name, archive) in allocators {
        own += &format!(
            "  .text.{name} : {{ *(.allocshim.{name}) {archive}:*(.text .text.*) }}\n  \
             .rodata.{name} : {{ {archive}:*(.rodata .rodata.*) }}\n  \
             .allocshim.fence.{name} : {{ KEEP(*(.allocshim.fence.{name})) }}\n"
        );
        let section = relink::SECTION_PREFIX;
        data += &format!(
            "  {section}{name}.ro : ALIGN(4096) {{ HIDDEN(__allocshim_data_{name}_start = .); \
             {archive}:*(.data.rel.ro .data.rel.ro.*) . = ALIGN(4096); HIDDEN(__allocshim_data_{name}_ro_end = .); }}\n  \
             {section}{name} : ALIGN(4096) {{ {archive}:*(.data .data.*) \
             HIDDEN(__allocshim_data_{name}_end = .); . = ALIGN(4096); }}\n"
        );
    }
    let counter = relink::COUNTER;
    let script = out.join("layout.ld");
    fs::write(
        &script,
        format!(
            "SECTIONS {{\n  /DISCARD/ : {{ {JEMALLOC}:jemalloc.pic.o(.init_array .init_array.* .ctors .ctors.*) }}\n}}\nINSERT AFTER .text;\n\
             SECTIONS {{\n  .allocshim.cold : {{ *(.allocshim.cold) }}\n}}\nINSERT AFTER .text;\n\
             SECTIONS {{\n  .plt : {{ *(.plt) }}\n  \
             .text.allocshim : {{ *crtbegin*.o(.text .text.*) *liballocshim_glue.a:*-glue.o(.text .text.*) *.rcgu.o(.text .text.*) \
             *libc_nonshared.a:*(.text .text.*) *libcompiler_builtins-*.rlib:*(.text .text.*) }}\n  \
             .allocshim.fence : {{ KEEP(*(.allocshim.fence)) }}\n{own}}}\nINSERT BEFORE .text;\n\
             SECTIONS {{\n  .rodata.allocshim : {{ *.rcgu.o(.rodata .rodata.*) }}\n  \
             {counter} : {{ HIDDEN(__allocshim_withheld = .); KEEP(*(.allocshim.withheld)) }}\n}}\nINSERT BEFORE .rodata;\n\
             SECTIONS {{\n{data}}}\nINSERT BEFORE .data;\n\
             SECTIONS {{\n  .tdata : {{ {JEMALLOC}:*(.tdata .tdata.*) *(.tdata .tdata.*) }}\n}}\nINSERT BEFORE .tbss;\n"
        ),
    )
    .unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());

    // Lazy binding for the library's own PLT calls (rustc asks for -z now): the C
    // allocators import some sixty libc functions, and in a process that uses one
    // backend, or none (`system`), most are never called. Resolving them all at load
    // was 47 k of the 125 k instructions the library added to /bin/true's start-up.
    // Resolution on first call takes no ld.so lock for a libc symbol and allocates
    // nothing; glibc's own libc.so.6 is lazily bound the same way. The GOT slots the
    // Rust code calls through (GLOB_DAT) are still bound at load and stay read-only.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");

    // The backends' own pthread_atfork registrations and prctl calls go to wrappers in
    // glue.c (fork-safe handler order, errno kept); see that file and
    // docs/fork-and-errno.md. --wrap only redirects references inside this link.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap=pthread_atfork,--wrap=prctl");

    // gcc runs the linker (collect2) under this very program (`-wrapper`, a gcc
    // option), which then hands the allocators' relocations to the library (relink.rs).
    // Other drivers (clang) have no such option: a library they link keeps ld.so
    // applying them all, and the library makes every allocator's tables read-only.
    if linker_is_gcc() {
        let me = env::current_exe().unwrap();
        println!("cargo:rustc-cdylib-link-arg=-wrapper");
        println!("cargo:rustc-cdylib-link-arg={},{RELINK}", me.display());
    }
}

/// Whether the C compiler rustc links with is gcc: the one Cargo was given
/// (`RUSTC_LINKER`, from `target.<triple>.linker`), one in RUSTFLAGS (`-C linker=`),
/// or `cc`; gcc names the Free Software Foundation in its `--version`.
fn linker_is_gcc() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut from_flags = None;
    let mut words = flags.split('\x1f');
    while let Some(w) = words.next() {
        let w = if w == "-C" { words.next().unwrap_or_default() } else { w.strip_prefix("-C").unwrap_or(w) };
        if let Some(l) = w.strip_prefix("linker=") {
            from_flags = Some(l.to_string());
        }
    }
    let linker = from_flags.or_else(|| env::var("RUSTC_LINKER").ok()).unwrap_or_else(|| "cc".into());
    Command::new(&linker).arg("--version").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Free Software Foundation"))
}

/// As gcc's `-wrapper`: runs `command` (the linker driver and its arguments), then
/// rewrites the library it wrote (relink.rs). Returns the exit status.
fn link_then_relink(command: Vec<OsString>) -> i32 {
    let Some((program, args)) = command.split_first() else { return 2 };
    let status = match Command::new(program).args(args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("allocshim relink: cannot run {}: {e}", program.to_string_lossy());
            return 1;
        }
    };
    if !status.success() {
        return status.code().unwrap_or(1);
    }
    match output_of(args) {
        // A library left as linked still works (ld.so applies all its relocations);
        // tests/binary.rs checks that the shipped one was rewritten.
        Some(path) => match relink::patch(&path) {
            Ok(w) => eprintln!("allocshim relink: {}: {} relocations left to the library, {} to ld.so", path.display(), w.count, w.kept),
            Err(why) => eprintln!("allocshim relink: {} left as linked: {why}", path.display()),
        },
        None => eprintln!("allocshim relink: no -o among the linker's arguments"),
    }
    0
}

/// The `-o` argument of a linker command line, looked for in `@file` arguments too.
fn output_of(args: &[OsString]) -> Option<PathBuf> {
    let mut words: Vec<String> = vec![];
    for a in args {
        let a = a.to_string_lossy();
        match a.strip_prefix('@') {
            Some(file) => words.extend(fs::read_to_string(file).ok()?.split_whitespace().map(|w| w.trim_matches('"').to_string())),
            None => words.push(a.into_owned()),
        }
    }
    let at = words.iter().position(|w| w == "-o")?;
    words.get(at + 1).map(PathBuf::from)
}
