//! Heap profiling: `ALLOCSHIM_PROFILE` turns jemalloc's sampler on in a real process,
//! which writes dumps (at exit, on a signal, in a forked child), and `allocshim
//! profile` renders them. The leak program (tests/c/leak.c) allocates from functions
//! with known names; the table, the flame graph and the pprof file (decoded here by
//! hand, independently of the command's encoder) must attribute the leaked bytes to
//! the leaking function. Bad input of every kind is an error naming the file.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allocshim_tests::*;

const MIB: f64 = 1048576.0;
/// Sampling every 16 KiB on average: ~6000 samples of a 96 MiB leak, so the estimate is
/// within a few percent (at jemalloc's default 512 KiB it would be ~200 samples, ±7 %).
const FINE: &str = "lg_prof_sample:14";

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("allocshim-profile-test-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn dumps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "heap")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `allocshim profile ARGS...`
fn profile(args: &[&str]) -> Output {
    run(cli(), &[&["profile"], args].concat()).no_preload().timeout(120).output()
}

/// "95.7 MiB" -> bytes.
fn bytes_of(figure: &str, unit: &str) -> f64 {
    let v: f64 = figure.trim_start_matches('+').parse().unwrap_or_else(|_| panic!("not a figure: {figure}"));
    v * match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB,
        "GiB" => MIB * 1024.0,
        u => panic!("unit {u}"),
    }
}

/// The flat bytes of `function` in the table on stdout.
fn table_flat(out: &Output, function: &str) -> Option<f64> {
    out.stdout.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() > 7 && w[7] == function).then(|| bytes_of(w[0], w[1]))
    })
}

/// The bytes of the flame graph's frame `function` (inferno's `<title>NAME (N bytes, P%)`).
fn svg_bytes(svg: &Path, function: &str) -> f64 {
    let text = std::fs::read_to_string(svg).unwrap();
    let start = format!("<title>{function} (");
    text.match_indices(&start)
        .map(|(i, _)| {
            let rest = &text[i + start.len()..];
            rest[..rest.find(" bytes").unwrap()].replace(',', "").parse::<f64>().unwrap()
        })
        .sum()
}

/// Live bytes per leaf function in a pprof file: gunzip, then the protobuf read by hand.
fn pprof_by_leaf(path: &Path) -> std::collections::HashMap<String, f64> {
    let gz = std::fs::read(path).unwrap();
    let out = Command::new("gzip").arg("-dc").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut child = out;
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let mut raw = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut raw).unwrap();
    assert!(child.wait().unwrap().success(), "{}: not gzip", path.display());
    let (mut strings, mut functions, mut locations, mut samples) =
        (vec![], std::collections::HashMap::new(), std::collections::HashMap::new(), vec![]);
    for (field, value) in fields(&raw) {
        match (field, value) {
            (2, Field::Bytes(b)) => {
                let (mut locs, mut vals) = (vec![], vec![]);
                for (f, v) in fields(b) {
                    match (f, v) {
                        (1, Field::Bytes(p)) => locs.extend(varints(p)),
                        (1, Field::Int(n)) => locs.push(n),
                        (2, Field::Bytes(p)) => vals.extend(varints(p)),
                        (2, Field::Int(n)) => vals.push(n),
                        _ => {}
                    }
                }
                samples.push((locs, vals));
            }
            (4, Field::Bytes(b)) => {
                let (mut id, mut function) = (0, None);
                for (f, v) in fields(b) {
                    match (f, v) {
                        (1, Field::Int(n)) => id = n,
                        (4, Field::Bytes(line)) if function.is_none() => {
                            function = fields(line).into_iter().find_map(|(f, v)| match (f, v) {
                                (1, Field::Int(n)) => Some(n),
                                _ => None,
                            })
                        }
                        _ => {}
                    }
                }
                locations.insert(id, function.unwrap_or(0));
            }
            (5, Field::Bytes(b)) => {
                let (mut id, mut name) = (0, 0);
                for (f, v) in fields(b) {
                    match (f, v) {
                        (1, Field::Int(n)) => id = n,
                        (2, Field::Int(n)) => name = n,
                        _ => {}
                    }
                }
                functions.insert(id, name);
            }
            (6, Field::Bytes(b)) => strings.push(String::from_utf8_lossy(b).into_owned()),
            _ => {}
        }
    }
    let mut by_leaf = std::collections::HashMap::new();
    for (locs, vals) in samples {
        let leaf = locs
            .first()
            .and_then(|l| locations.get(l))
            .and_then(|f| functions.get(f))
            .map(|&s| strings[s as usize].clone())
            .unwrap_or_default();
        // value[1]: inuse_space (two's complement for the base's negative values).
        *by_leaf.entry(leaf).or_insert(0.0) += vals.get(1).map(|&v| v as i64 as f64).unwrap_or(0.0);
    }
    by_leaf
}

enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn varints(b: &[u8]) -> Vec<u64> {
    let mut i = 0;
    let mut v = vec![];
    while i < b.len() {
        v.push(varint(b, &mut i));
    }
    v
}

fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut i = 0;
    let mut out = vec![];
    while i < b.len() {
        let key = varint(b, &mut i);
        match key & 7 {
            0 => out.push((key >> 3, Field::Int(varint(b, &mut i)))),
            2 => {
                let n = varint(b, &mut i) as usize;
                out.push((key >> 3, Field::Bytes(&b[i..i + n])));
                i += n;
            }
            1 => i += 8,
            5 => i += 4,
            t => panic!("protobuf wire type {t}"),
        }
    }
    out
}

/// The leak program run to its end with profiling into `dir`; its exit dump.
fn leak_at_exit(program: &Path, dir: &Path, base: &str, leak: &str) -> PathBuf {
    let out = run(program, &[base, leak])
        .env("ALLOCSHIM_PROFILE", dir)
        .env("MALLOC_CONF", FINE)
        .env("ALLOCSHIM_VERBOSE", "1")
        .success()
        .unwrap_or_else(|e| panic!("{e}"));
    // No backend variable: profiling alone chose jemalloc.
    assert!(out.stderr.contains(&format!("backend jemalloc 5.3.1 (ALLOCSHIM_PROFILE={})", dir.display())), "{}", out.stderr);
    // One exit dump (a slow machine may also have written growth dumps meanwhile).
    let found: Vec<PathBuf> = dumps(dir).into_iter().filter(|p| p.to_string_lossy().ends_with(".exit.heap")).collect();
    assert_eq!(found.len(), 1, "one exit dump expected in {}: {:?}\n{}", dir.display(), dumps(dir), out.stderr);
    assert!(out.stderr.contains(&format!("heap profile {} (exit)", found[0].display())), "{}", out.stderr);
    found[0].clone()
}

/// Checks the table, the flame graph and the pprof file of `dump` attribute
/// `leaked` bytes to `function` (within 10 %), and returns the command's output.
fn attributed(args: &[&str], prefix: &Path, function: &str, leaked: f64) -> Output {
    let p = prefix.display().to_string();
    let out = profile(&[args, &["-o", &p]].concat());
    assert!(out.status.success() && !out.stderr.contains("panicked"), "{}\n{}", out.stdout, out.stderr);
    let flat = table_flat(&out, function).unwrap_or_else(|| panic!("{function} not in the table:\n{}", out.stdout));
    assert!(flat >= 0.9 * leaked && flat <= 1.1 * leaked, "table: {function} {flat} of {leaked} leaked:\n{}", out.stdout);
    let svg = PathBuf::from(format!("{p}.svg"));
    let drawn = svg_bytes(&svg, function);
    assert!(drawn >= 0.9 * leaked && drawn <= 1.1 * leaked, "flame graph: {function} {drawn} of {leaked}");
    let png = PathBuf::from(format!("{p}.png"));
    let rsvg = Command::new("rsvg-convert").arg("-o").arg(&png).arg(&svg).status().expect("rsvg-convert");
    assert!(rsvg.success() && std::fs::metadata(&png).unwrap().len() > 1000, "the flame graph does not render");
    let by_leaf = pprof_by_leaf(Path::new(&format!("{p}.pb.gz")));
    let in_pprof = by_leaf.get(function).copied().unwrap_or(0.0);
    assert!(in_pprof >= 0.9 * leaked && in_pprof <= 1.1 * leaked, "pprof: {function} {in_pprof} of {leaked}: {by_leaf:?}");
    out
}

#[test]
fn a_leak_is_attributed_to_its_function() {
    let dir = fresh_dir("exit");
    let dump = leak_at_exit(&c_program("leak"), &dir, "8", "96");
    let out = attributed(&[&dump.display().to_string()], &dir.join("out"), "leak_here", 96.0 * MIB);
    // With debug information: the source line, and no warning about its absence.
    assert!(out.stdout.contains("leak_here (leak.c:"), "{}", out.stdout);
    assert!(!out.stdout.contains("without debug information"), "{}", out.stdout);
    // Freed memory is not live: churn_there allocated 64 MiB and freed it.
    assert!(table_flat(&out, "churn_there").is_none(), "{}", out.stdout);
    let kept = table_flat(&out, "keep_base").unwrap_or(0.0);
    assert!(kept > 6.0 * MIB && kept < 10.0 * MIB, "keep_base: {kept}\n{}", out.stdout);
}

#[test]
fn without_debug_information_names_come_from_the_symbol_table() {
    let dir = fresh_dir("nodebug");
    std::fs::create_dir_all(&dir).unwrap();
    let src = workspace().join("tests/c/leak.c");
    let (symtab, stripped) = (dir.join("leak-symtab"), dir.join("leak-stripped"));
    assert!(Command::new("cc").args(["-O1", "-g0", "-o"]).arg(&symtab).arg(&src).status().unwrap().success());
    assert!(Command::new("cc").args(["-O1", "-g0", "-s", "-o"]).arg(&stripped).arg(&src).status().unwrap().success());

    let dump = leak_at_exit(&symtab, &dir.join("a"), "1", "64");
    let out = attributed(&[&dump.display().to_string()], &dir.join("a/out"), "leak_here", 64.0 * MIB);
    assert!(out.stdout.contains("without debug information") && out.stdout.contains("leak-symtab"), "{}", out.stdout);
    assert!(!out.stdout.contains("leak.c:"), "no line numbers without DWARF:\n{}", out.stdout);

    // Stripped: the static names are gone; the site is still one place, by offset.
    let dump = leak_at_exit(&stripped, &dir.join("b"), "1", "64");
    let out = profile(&[&dump.display().to_string(), "-o", &dir.join("b/out").display().to_string()]);
    assert!(out.status.success(), "{}", out.stderr);
    let top = out.stdout.lines().find(|l| l.contains("leak-stripped+0x")).unwrap_or_else(|| panic!("{}", out.stdout));
    let w: Vec<&str> = top.split_whitespace().collect();
    assert!(bytes_of(w[0], w[1]) >= 0.9 * 64.0 * MIB, "{}", out.stdout);
}

/// The leak program started in `mode` with profiling into `dir`, its stdin and stdout piped.
fn start_leak(dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut r = run(c_program("leak"), args).env("ALLOCSHIM_PROFILE", dir).env("MALLOC_CONF", FINE);
    for (k, v) in extra {
        r = r.env(k, v);
    }
    let mut child = r.command().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn read_until(out: &mut BufReader<std::process::ChildStdout>, word: &str) -> Vec<String> {
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push(line.trim().to_owned());
        if line.trim().starts_with(word) {
            return seen;
        }
    }
    panic!("no line {word:?} from the leak program: {seen:?}");
}

#[test]
fn the_growth_since_a_base_dump_and_only_that() {
    let dir = fresh_dir("growth");
    let (mut child, mut out) = start_leak(&dir, &["32", "96", "wait"], &[("ALLOCSHIM_PROFILE", &format!("{},growth=0", dir.display()))]);
    let pid = child.id().to_string();
    read_until(&mut out, "base");
    let first = profile(&["--dump", &pid, "-o", &dir.join("first").display().to_string()]);
    assert!(first.status.success(), "{}", first.stderr);
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    read_until(&mut out, "leaked");
    let second = profile(&["--dump", &pid, "-o", &dir.join("second").display().to_string()]);
    assert!(second.status.success(), "{}", second.stderr);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    let found: Vec<PathBuf> = dumps(&dir).into_iter().filter(|p| p.to_string_lossy().ends_with(".signal.heap")).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    let (base, later) = (found[0].display().to_string(), found[1].display().to_string());
    assert!(base.contains(&format!(".{pid}.0.signal")) && later.contains(&format!(".{pid}.1.signal")), "{found:?}");
    let out = attributed(&[&later, &base], &dir.join("growth"), "leak_here", 96.0 * MIB);
    assert!(out.stdout.contains(&format!("since {base}")), "{}", out.stdout);
    // Only the growth: the 32 MiB kept before the base are not in it.
    assert!(table_flat(&out, "keep_base").is_none(), "{}", out.stdout);
    assert_eq!(svg_bytes(&dir.join("growth.svg"), "keep_base"), 0.0);
    // The first dump alone shows the base, not the leak.
    let alone = profile(&[&base, "-o", &dir.join("base").display().to_string()]);
    assert!(table_flat(&alone, "leak_here").is_none() && table_flat(&alone, "keep_base").is_some(), "{}", alone.stdout);
}

#[test]
fn a_forked_child_profiles_itself_on_demand() {
    let dir = fresh_dir("fork");
    let (mut parent, mut out) = start_leak(&dir, &["1", "48", "fork"], &[]);
    let lines = read_until(&mut out, "leaked");
    let child = lines.iter().find_map(|l| l.strip_prefix("child=")).expect("child pid").to_owned();
    assert_ne!(child, parent.id().to_string());
    let got = profile(&["--dump", &child, "-o", &dir.join("child").display().to_string()]);
    assert!(got.status.success(), "{}", got.stderr);
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        dumps(&dir).iter().map(name).any(|n| n.starts_with(&format!("leak.{child}.")) && n.ends_with(".signal.heap")),
        "{:?}",
        dumps(&dir)
    );
    let flat = table_flat(&got, "leak_here").unwrap_or(0.0);
    assert!(flat >= 0.9 * 48.0 * MIB, "{}", got.stdout);
    drop(parent.stdin.take());
    assert!(parent.wait().unwrap().success());
}

/// The leak program's own `sigcgt=` line: does it catch `signal`?
fn catches(envs: &[(&str, &str)], signal: i32) -> bool {
    let mut r = run(c_program("leak"), &["0", "0"]);
    for (k, v) in envs {
        r = r.env(k, v);
    }
    let out = r.success().unwrap_or_else(|e| panic!("{e}"));
    let mask = u64::from_str_radix(out.field("sigcgt").unwrap().trim(), 16).unwrap();
    mask & (1 << (signal - 1)) != 0
}

#[test]
fn the_signal_is_taken_only_when_profiling_and_only_if_free() {
    let dir = fresh_dir("signal");
    let d = dir.display().to_string();
    // SIGRTMIN+5 (glibc's SIGRTMIN is 34 in every process on the machine).
    let rt5 = 39;
    assert!(!catches(&[("JEMALLOC_ENABLED", "true")], rt5), "jemalloc without profiling catches a signal");
    assert!(!catches(&[], rt5));
    assert!(catches(&[("ALLOCSHIM_PROFILE", &d)], rt5));
    assert!(!catches(&[("ALLOCSHIM_PROFILE", &format!("{d},signal=none"))], rt5));
    assert!(catches(&[("ALLOCSHIM_PROFILE", &format!("{d},signal=RTMIN+7"))], 41));
    assert!(!catches(&[("ALLOCSHIM_PROFILE", &format!("{d},signal=RTMIN+7"))], rt5));

    // --dump on a process that does not profile: refused, and the process lives on.
    let mut r = run(c_program("leak"), &["0", "0", "wait"]).env("JEMALLOC_ENABLED", "true").env("ALLOCSHIM_PROFILE", "0");
    let mut child = r.command().stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "base");
    let refused = profile(&["--dump", &child.id().to_string()]);
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("profiling off"), "{}", refused.stderr);
    assert!(child.try_wait().unwrap().is_none(), "the process died");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let mut r = run(c_program("leak"), &["0", "0", "wait"]).env("JEMALLOC_ENABLED", "true");
    let mut child = r.command().stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "base");
    let refused = profile(&["--dump", &child.id().to_string()]);
    assert!(refused.stderr.contains("started without ALLOCSHIM_PROFILE"), "{}", refused.stderr);
    assert!(child.try_wait().unwrap().is_none(), "the process died");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn another_backend_chosen_by_name_wins_with_a_warning() {
    let dir = fresh_dir("overridden");
    let out = run(c_program("leak"), &["1", "8"])
        .env("ALLOCSHIM_PROFILE", &dir)
        .env("ALLOCSHIM_BACKEND", "mimalloc")
        .success()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.stderr
            .contains("ALLOCSHIM_PROFILE needs jemalloc, but ALLOCSHIM_BACKEND=mimalloc chose mimalloc: no heap profiles in this process"),
        "{}",
        out.stderr
    );
    assert!(dumps(&dir).is_empty());
    // The command decides as the library does: the profile variable alone asks for the library.
    let enabled = run(cli(), &["enabled"]).no_preload().env("ALLOCSHIM_PROFILE", &dir).output();
    assert!(enabled.status.success() && enabled.stdout.starts_with("jemalloc (ALLOCSHIM_PROFILE="), "{}", enabled.stdout);
}

#[test]
fn an_unwritable_directory_is_one_warning_and_the_program_runs() {
    for (dir, why) in [("/dev/null/profiles", "a part of it is not a directory"), ("/proc/allocshim-test", "")] {
        let out = run(c_program("leak"), &["1", "8"]).env("ALLOCSHIM_PROFILE", dir).success().unwrap_or_else(|e| panic!("{e}"));
        let expected = format!("allocshim: ALLOCSHIM_PROFILE: cannot write heap profiles to {dir}: {why}");
        assert!(out.stderr.contains(&expected) && out.stderr.contains("; profiling off"), "{dir}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    // A bad option is named, and the rest of the value still counts.
    let dir = fresh_dir("option");
    let out = run(c_program("leak"), &["1", "8"]).env("ALLOCSHIM_PROFILE", format!("{},every=soon", dir.display())).success().unwrap();
    assert!(out.stderr.contains("ignoring \"every=soon\" in ALLOCSHIM_PROFILE: every= takes seconds"), "{}", out.stderr);
    assert_eq!(dumps(&dir).iter().filter(|p| p.to_string_lossy().ends_with(".exit.heap")).count(), 1, "{}", out.stderr);
}

#[test]
fn bad_dumps_are_errors_naming_the_file_and_the_problem() {
    let dir = fresh_dir("bad");
    let dump = leak_at_exit(&c_program("leak"), &dir.join("d"), "1", "8");
    let text = std::fs::read_to_string(&dump).unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let cases = [
        (write("empty.heap", b""), "empty file".to_owned()),
        (write("garbage.heap", b"\x7fELF\x02\x01\x01\0garbage"), "not a jemalloc heap profile".to_owned()),
        (write("half.heap", &text.as_bytes()[..text.len() / 3]), "cut short".to_owned()),
        (write("tail.heap", &text.as_bytes()[..text.len() - 7]), "cut short".to_owned()),
        (write("other-machine.heap", other_machine(&text, &c_program("leak")).as_bytes()), "is not the file the process mapped".to_owned()),
        (
            write("moved.heap", text.replace(&c_program("leak").display().to_string(), "/opt/elsewhere/leak").as_bytes()),
            "/opt/elsewhere/leak".to_owned(),
        ),
        (dir.join("missing.heap").display().to_string(), "cannot read".to_owned()),
    ];
    for (file, why) in cases {
        let out = profile(&[&file, "-o", &dir.join("x").display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.starts_with("allocshim: error: ") && out.stderr.contains(&file) && out.stderr.contains(&why),
            "{file}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // A base of another kind is named too.
    let out = profile(&[&dump.display().to_string(), &dir.join("garbage.heap").display().to_string()]);
    assert!(out.stderr.contains("garbage.heap: not a jemalloc heap profile"), "{}", out.stderr);
}

/// `text` as if recorded elsewhere: the program's mappings carry another inode.
fn other_machine(text: &str, program: &Path) -> String {
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(program).unwrap());
    let p = program.display().to_string();
    text.lines()
        .map(|l| if l.ends_with(&p) { l.replacen(&format!(" {ino} "), &format!(" {} ", ino + 1), 1) } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A server (`program args`) profiled under load: every request served while it is
/// asked for a dump, and the dump renders: a table, and a flame graph whose stacks
/// name the interpreter's own functions (`expect`: exported names, which a stripped
/// interpreter keeps too).
fn server_keeps_serving(name: &str, program: &str, args: &[&str], expect: &[&str]) {
    let dir = fresh_dir(name);
    let port = free_port();
    let mut r = run(program, args).env("ALLOCSHIM_PROFILE", &dir).env("PORT", port.to_string());
    let mut server = r.command().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(ready.elapsed() < Duration::from_secs(30), "{name} did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let load = Command::new("python3")
        .arg(workspace().join("tests/py/load.py"))
        .args(["3000", "4"])
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let got = profile(&["--dump", &server.id().to_string(), "-o", &dir.join("out").display().to_string()]);
    let load = load.wait_with_output().unwrap();
    let _ = server.kill();
    let status = server.wait().unwrap();
    let mut err = String::new();
    server.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.signal_was_kill(), "{name} died under profiling: {status}\n{err}");
    let load_out = String::from_utf8_lossy(&load.stdout);
    assert!(load.status.success() && !load_out.contains("Non-2xx"), "{name}: failed requests:\n{load_out}");
    assert!(load_out.contains("allocshim-metric requests 3000 count"), "{name}: {load_out}");
    assert!(got.status.success(), "{name}: {}\n{err}", got.stderr);
    assert!(got.stdout.contains(" in use, estimated from ") && got.stdout.contains("%  "), "{name}: no table:\n{}", got.stdout);
    let svg = std::fs::read_to_string(dir.join("out.svg")).unwrap();
    for e in expect {
        assert!(svg.contains(e), "{name}: no {e:?} in the flame graph; the table:\n{}", got.stdout);
    }
}

trait KilledBy {
    fn signal_was_kill(&self) -> bool;
}

impl KilledBy for std::process::ExitStatus {
    fn signal_was_kill(&self) -> bool {
        std::os::unix::process::ExitStatusExt::signal(self) == Some(9)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn python_and_ruby_servers_keep_serving_while_profiled() {
    let py = workspace().join("tests/py/server.py").display().to_string();
    server_keeps_serving("python", "python3", &[&py], &["_PyEval_EvalFrameDefault"]);
    let rb = workspace().join("tests/rb/server.rb").display().to_string();
    server_keeps_serving("ruby", "ruby", &[&rb], &["rb_"]);
}
