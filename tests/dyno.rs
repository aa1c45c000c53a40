//! Real programs under a dyno-wide preload, as Heroku's `.profile.d` sets it for every
//! process of a dyno: Node with worker threads, headless Chromium rendering a page,
//! ImageMagick's `convert`, git, bash, Python and Ruby, under every backend, without
//! and with `ALLOCSHIM_ONLY`/`ALLOCSHIM_EXCEPT`. Each must do its work, and the
//! library's report in every process it starts (`ALLOCSHIM_VERBOSE`) must be true:
//! served by the backend, left on `system` by the rule that matched it, or passed
//! through because the program brings its own `malloc` (Chromium), and nothing else.
use std::path::{Path, PathBuf};

use allocshim_tests::*;

/// The buildpack's "only my Ruby/Python servers" setting (docs/buildpack.md).
const ONLY: (&str, &str) = ("ALLOCSHIM_ONLY", "ruby*,python*");
/// The programs an app would keep off the allocator (docs/buildpack.md).
const EXCEPT: (&str, &str) = ("ALLOCSHIM_EXCEPT", "node*,chrom*,convert*");
/// The library's words for a process whose `malloc` is not its own.
const PASSED_THROUGH: &str = "malloc in this process is not liballocshim's";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Config {
    /// Only the backend's switch, as `heroku config:set JEMALLOC_ENABLED=true` does.
    Dyno,
    /// With [`ONLY`].
    Only,
    /// With [`EXCEPT`].
    Except,
}

/// What one process's verbose line says.
#[derive(PartialEq, Debug)]
enum Report {
    Served,
    LeftBy(String),
    PassedThrough,
    NothingAsked,
    Other(String),
}

fn reports(stderr: &str, backend: &str) -> Vec<Report> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("allocshim: backend "))
        .map(|r| {
            let (name, rest) = r.split_once(' ').unwrap_or((r, ""));
            let why = rest.split_once(" (").map_or("", |(_, w)| w);
            if name == backend && backend != "system" {
                Report::Served
            } else if let Some(by) = why.strip_prefix("left on system by ").and_then(|w| w.split('=').next()) {
                Report::LeftBy(by.to_string())
            } else if why.starts_with(PASSED_THROUGH) {
                Report::PassedThrough
            } else if name == "system" && why.starts_with("default: no allocator variable set") {
                Report::NothingAsked
            } else {
                Report::Other(r.to_string())
            }
        })
        .collect()
}

/// A real program: how to run it in `dir`, and how to tell it did its work.
struct Program {
    name: &'static str,
    run: fn(&Path, Config) -> Run,
    worked: fn(&Path, &Output, Config) -> bool,
    /// Whether its own processes bring their own `malloc` (the library passes through).
    own_malloc: bool,
    /// Whether [`ONLY`] lists it.
    listed: bool,
    /// Whether [`EXCEPT`] names it (helpers it starts may still be served).
    excepted: bool,
}

/// Runs `p` under `backend` with `config`; checks its work and every process's report.
fn check(p: &Program, backend: &str, config: Config) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("allocshim-dyno-{}-{}-{backend}-{config:?}", std::process::id(), p.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = (p.run)(&dir, config).backend(backend).env("ALLOCSHIM_VERBOSE", "1").timeout(90);
    match config {
        Config::Dyno => {}
        Config::Only => r = r.env(ONLY.0, ONLY.1),
        Config::Except => r = r.env(EXCEPT.0, EXCEPT.1),
    }
    let out = r.success()?;
    let worked = (p.worked)(&dir, &out, config);
    let _ = std::fs::remove_dir_all(&dir);
    let context = || format!("[{backend}] {} ({config:?})\n--- stdout\n{}\n--- stderr\n{}", p.name, out.stdout, out.stderr);
    if !worked {
        return Err(format!("did not do its work: {}", context()));
    }
    let got = reports(&out.stderr, backend);
    let bad: Vec<&Report> = got
        .iter()
        .filter(|r| match (backend, config, r) {
            ("system", _, Report::NothingAsked) => false,
            ("system", _, _) => true,
            (_, Config::Dyno, Report::Served) => false,
            (_, Config::Dyno, Report::PassedThrough) => !p.own_malloc,
            (_, Config::Only, Report::Served) => !p.listed,
            (_, Config::Only, Report::LeftBy(by)) => p.listed || by != ONLY.0,
            (_, Config::Except, Report::Served) => false,
            (_, Config::Except, Report::LeftBy(by)) => !p.excepted || by != EXCEPT.0,
            _ => true,
        })
        .collect();
    // Each kind of process the rules are about shows up: the program itself served,
    // left out, or passed through.
    let expected = match (backend, config) {
        ("system", _) => Report::NothingAsked,
        (_, Config::Dyno) if p.own_malloc => Report::PassedThrough,
        (_, Config::Dyno) => Report::Served,
        (_, Config::Only) if p.listed => Report::Served,
        (_, Config::Only) => Report::LeftBy(ONLY.0.into()),
        (_, Config::Except) if p.excepted => Report::LeftBy(EXCEPT.0.into()),
        (_, Config::Except) => Report::Served,
    };
    // A warning line is owed only where something asked for was lost.
    let warned = out.stderr.lines().any(|l| l.starts_with(&format!("allocshim: {PASSED_THROUGH}")));
    let warning_owed = backend != "system" && config == Config::Dyno && p.own_malloc;
    if !bad.is_empty() || !got.contains(&expected) || warned != warning_owed {
        return Err(format!("untrue or missing reports {bad:?} (expected {expected:?} among {} lines): {}", got.len(), context()));
    }
    Ok(())
}

fn all_configs(p: &Program) {
    each_backend(|backend| [Config::Dyno, Config::Only, Config::Except].into_iter().try_for_each(|c| check(p, backend, c)));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const WORKERS_JS: &str = r#"
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
if (isMainThread) {
  let done = 0, total = 0;
  for (let i = 0; i < 4; i++) {
    const w = new Worker(__filename, { workerData: i });
    w.on('message', (m) => { total += m; if (++done === 4) console.log('node-ok', total); });
    w.on('error', (e) => { console.error('worker error', e); process.exit(1); });
  }
} else {
  const a = [];
  for (let i = 0; i < 200000; i++) { a.push({ k: 'x'.repeat(i % 100) + workerData }); if (a.length > 5000) a.shift(); }
  parentPort.postMessage(a.length + Buffer.alloc(1 << 20, 1)[10]);
}
"#;

#[test]
fn nodejs_with_worker_threads() {
    all_configs(&Program {
        name: "node",
        run: |dir, _| run("node", &[write(dir, "workers.js", WORKERS_JS)]),
        worked: |_, out, _| out.stdout.contains("node-ok 20004"),
        own_malloc: false,
        listed: false,
        excepted: true,
    });
}

const PAGE: &str = "<html><body><h1 id=t>allocshim page</h1><script>document.getElementById('t').textContent += ' rendered by script';</script></body></html>";

#[test]
fn chromium_headless_renders_a_local_page() {
    all_configs(&Program {
        name: "chromium",
        run: |dir, config| {
            let page = write(dir, "page.html", PAGE);
            let profile = format!("--user-data-dir={}", dir.join("profile").display());
            // The flags a container without a display, a GPU or a network needs
            // (docs/testing.md); as root, also --no-sandbox.
            let mut args = vec![
                "--headless".to_string(),
                "--no-sandbox".into(),
                "--disable-gpu".into(),
                "--disable-background-networking".into(),
                "--disable-component-update".into(),
                "--disable-sync".into(),
                "--disable-quic".into(),
                "--no-first-run".into(),
                profile,
            ];
            // The PDF under the plain dyno preload, the DOM with the lists.
            if config == Config::Dyno {
                args.push(format!("--print-to-pdf={}", dir.join("page.pdf").display()));
            } else {
                args.push("--dump-dom".into());
            }
            args.push(format!("file://{}", page.display()));
            run("chromium", &args)
        },
        worked: |dir, out, config| match config {
            Config::Dyno => std::fs::read(dir.join("page.pdf")).is_ok_and(|pdf| pdf.starts_with(b"%PDF-") && pdf.len() > 1000),
            _ => out.stdout.contains("allocshim page rendered by script"),
        },
        own_malloc: true,
        listed: false,
        excepted: true,
    });
}

#[test]
fn imagemagick_convert() {
    all_configs(&Program {
        name: "convert",
        // Debian's, by its path: another `convert` may come first on PATH.
        run: |dir, _| {
            let png = dir.join("out.png");
            let args = ["-size", "800x600", "gradient:red-blue", "-swirl", "90", "-blur", "0x3", "-resize", "50%", png.to_str().unwrap()];
            run("/usr/bin/convert", &args)
        },
        // A PNG of 400x300: width and height are the first fields of its IHDR chunk.
        worked: |dir, _, _| {
            std::fs::read(dir.join("out.png"))
                .is_ok_and(|png| png.starts_with(b"\x89PNG") && png.get(16..24) == Some(&[0, 0, 1, 144, 0, 0, 1, 44]))
        },
        own_malloc: false,
        listed: false,
        excepted: true,
    });
}

#[test]
fn git_commit_and_gc() {
    all_configs(&Program {
        name: "git",
        run: |dir, _| {
            for i in 0..50 {
                std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n").repeat(i + 1)).unwrap();
            }
            let script = "g() { git -c user.name=t -c user.email=t@example.invalid -c init.defaultBranch=main \"$@\"; }
                g init -q && g add . && g commit -qm first && g gc -q && g log --oneline && g ls-files | wc -l";
            run("/bin/sh", &["-c", script]).current_dir(dir)
        },
        worked: |_, out, _| out.stdout.contains("first") && out.stdout.lines().last().map(str::trim) == Some("50"),
        own_malloc: false,
        listed: false,
        excepted: false,
    });
}

const BASH: &str = r#"
declare -A seen
words=()
for i in $(seq 1 3000); do w="w$((i % 97))"; words+=("$w"); seen[$w]=$(( ${seen[$w]:-0} + 1 )); done
sorted=$(printf '%s\n' "${words[@]}" | sort | uniq -c | wc -l)
echo "bash-ok ${#seen[@]} $sorted $(echo "${words[*]}" | tr ' ' '\n' | grep -c '^w1$')"
"#;

#[test]
fn bash_with_pipelines() {
    all_configs(&Program {
        name: "bash",
        run: |dir, _| run("bash", &[write(dir, "work.sh", BASH)]),
        worked: |_, out, _| out.stdout.contains("bash-ok 97 97 31"),
        own_malloc: false,
        listed: false,
        excepted: false,
    });
}

#[test]
fn python3_with_threads() {
    all_configs(&Program {
        name: "python3",
        run: |_, _| {
            let code = "import threading, json\nr = []\ndef work(n): r.append(sum(len(v) for v in {str(i): [i] * (i % 50) for i in range(n)}.values()))\nts = [threading.Thread(target=work, args=(20000,)) for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint('python-ok', sum(r), len(json.dumps(list(range(10000)))))";
            run("/usr/bin/python3", &["-c", code])
        },
        worked: |_, out, _| out.stdout.contains("python-ok 1960000 58890"),
        own_malloc: false,
        listed: true,
        excepted: false,
    });
}

#[test]
fn ruby_with_threads_and_gc() {
    all_configs(&Program {
        name: "ruby",
        run: |_, _| {
            let code = "t = 4.times.map { |n| Thread.new { a = []; 20_000.times { |i| a << ('x' * (i % 300)) + n.to_s; a.shift if a.size > 1000 }; a.size } }; s = t.sum(&:value); GC.start; puts \"ruby-ok #{s}\"";
            run("ruby", &["-e", code])
        },
        worked: |_, out, _| out.stdout.contains("ruby-ok 4000"),
        own_malloc: false,
        listed: true,
        excepted: false,
    });
}
