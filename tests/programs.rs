//! Real programs under every backend: interpreters with their own GCs, threads and
//! fork, and git. Each must exit 0 with the expected output, and the library's
//! self-report must name the backend.
use allocshim_tests::*;

fn real(program: &str, args: &[&str], expect: &str) {
    each_backend(|backend| {
        let out = run(program, args).backend(backend).env("ALLOCSHIM_VERBOSE", "1").timeout(300).success()?;
        if !out.stdout.contains(expect) {
            return Err(format!("[{backend}] {program}: expected {expect:?} in stdout:\n{}", out.stdout));
        }
        if !out.stderr.contains(&format!("allocshim: backend {backend} ")) {
            return Err(format!("[{backend}] {program}: library not active: {}", out.stderr));
        }
        Ok(())
    });
}

const PYTHON: &str = r#"
import multiprocessing as mp, threading, json
def work(n):
    d = {str(i): [i] * (i % 50) for i in range(n)}
    return sum(len(v) for v in d.values())
if __name__ == "__main__":
    ts = [threading.Thread(target=work, args=(20000,)) for _ in range(4)]
    [t.start() for t in ts]
    with mp.get_context("fork").Pool(4) as pool:
        r = pool.map(work, [20000 + i for i in range(16)])
    [t.join() for t in ts]
    print("python-ok", sum(r), len(json.dumps({"k": list(range(100000))})))
"#;

#[test]
fn python3_with_threads_and_fork_multiprocessing() {
    real("/usr/bin/python3", &["-c", PYTHON], "python-ok");
}

#[test]
fn python3_with_everything_through_malloc() {
    each_backend(|backend| {
        let out = run("/usr/bin/python3", &["-c", "print('pm', len(''.join(str(i) for i in range(300000))))"])
            .backend(backend)
            .env("PYTHONMALLOC", "malloc")
            .success()?;
        if out.stdout.contains("pm 1688890") {
            Ok(())
        } else {
            Err(format!("[{backend}] {}", out.stdout))
        }
    });
}

const RUBY: &str = r#"
threads = 4.times.map do |t|
  Thread.new do
    a = []
    50_000.times { |i| a << ("x" * (i % 300)) + t.to_s; a.shift if a.size > 1000 }
    a.size
  end
end
sizes = threads.map(&:value)
GC.start
Process.warmup if Process.respond_to?(:warmup)
pid = fork { h = {}; 10_000.times { |i| h[i] = i.to_s * 10 }; exit!(h.size == 10_000 ? 0 : 1) }
Process.wait(pid)
puts "ruby-ok #{sizes.sum} #{$?.exitstatus}"
"#;

#[test]
fn ruby_with_threads_gc_and_fork() {
    real("ruby", &["-e", RUBY], "ruby-ok 4000 0");
}

#[test]
fn perl_hashes_and_regexes() {
    let script = r#"my %h; for my $i (1..200000) { $h{"k$i"} = "v" x ($i % 64) } my $n = grep { /7/ } keys %h; print "perl-ok ", scalar(keys %h), " $n\n";"#;
    real("perl", &["-e", script], "perl-ok 200000");
}

#[test]
fn git_init_commit_log_gc() {
    each_backend(|backend| {
        let dir = std::env::temp_dir().join(format!("allocshim-git-{}-{backend}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..200 {
            std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n").repeat(i + 1)).unwrap();
        }
        let git = |args: &[&str]| {
            let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"];
            all.extend_from_slice(args);
            run("git", &all).backend(backend).current_dir(&dir).env("ALLOCSHIM_VERBOSE", "1").success()
        };
        git(&["init", "-q"])?;
        git(&["add", "."])?;
        git(&["commit", "-q", "-m", "first"])?;
        git(&["gc", "-q"])?;
        let log = git(&["log", "--oneline"])?;
        let files = git(&["ls-files"])?;
        let _ = std::fs::remove_dir_all(&dir);
        if !log.stdout.contains("first") || files.stdout.lines().count() != 200 {
            return Err(format!("[{backend}] git: {} / {} files", log.stdout, files.stdout.lines().count()));
        }
        if !log.stderr.contains(&format!("allocshim: backend {backend} ")) {
            return Err(format!("[{backend}] git: library not active: {}", log.stderr));
        }
        Ok(())
    });
}
