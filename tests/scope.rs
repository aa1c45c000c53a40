//! `ALLOCSHIM_ONLY` and `ALLOCSHIM_EXCEPT` in the library: a program they leave out is
//! served by glibc (proved by the fingerprint, not by the report), says which rule did
//! it, and gets no preset; one they list is served by the backend; the program's names
//! include an interpreter's script; a value that is not a list is named once and ignored.
use std::path::{Path, PathBuf};

use allocshim_tests::*;

/// The fingerprint program under `backend` with `vars`: (who served, reason, stderr).
fn fingerprint(backend: &str, vars: &[(&str, &str)]) -> Result<(String, String, String), String> {
    let mut r = run(c_program("fingerprint"), &[] as &[&str]).backend(backend);
    for (k, v) in vars {
        r = r.env(k, v);
    }
    let out = r.success()?;
    let served = identify(&out);
    if out.field("active") != Some(served.as_str()) {
        return Err(format!("{}: the library reports {:?} but {served} served\n{}", out.label, out.field("active"), out.stdout));
    }
    Ok((served, out.field("reason").unwrap_or("?").to_string(), out.stderr))
}

/// (variables, served by the backend asked for?, reason)
type Case = (&'static [(&'static str, &'static str)], bool, String);

#[test]
fn a_program_left_out_runs_on_system_and_says_which_rule() {
    each_backend(|backend| {
        let asked = enable_var(backend).map(|(var, v)| format!("{var}={v}")).unwrap_or_default();
        let cases: [Case; 6] = [
            (&[("ALLOCSHIM_ONLY", "fingerprint")], true, format!("{asked}; ALLOCSHIM_ONLY=\"fingerprint\": program fingerprint matches fingerprint")),
            (&[("ALLOCSHIM_ONLY", "ruby, finger*")], true, format!("{asked}; ALLOCSHIM_ONLY=\"ruby, finger*\": program fingerprint matches finger*")),
            (
                &[("ALLOCSHIM_ONLY", "ruby,python3*")],
                false,
                format!("left on system by ALLOCSHIM_ONLY=\"ruby,python3*\": program fingerprint is not listed (otherwise {backend}: {asked})"),
            ),
            (
                &[("ALLOCSHIM_EXCEPT", "node*,fing*")],
                false,
                format!("left on system by ALLOCSHIM_EXCEPT=\"node*,fing*\": program fingerprint matches fing* (otherwise {backend}: {asked})"),
            ),
            (
                &[("ALLOCSHIM_ONLY", "*"), ("ALLOCSHIM_EXCEPT", "fingerprint")],
                false,
                format!("left on system by ALLOCSHIM_EXCEPT=\"fingerprint\": program fingerprint matches fingerprint (otherwise {backend}: {asked})"),
            ),
            (&[("ALLOCSHIM_EXCEPT", "ruby")], true, asked.clone()),
        ];
        for (vars, served_by_backend, reason) in cases {
            let (served, got, stderr) = fingerprint(backend, vars)?;
            let expected = if served_by_backend { backend } else { "system" };
            if backend == "system" {
                // Nothing asked: the lists are not even read.
                if (served.as_str(), got.as_str(), stderr.as_str()) != ("system", "default: no allocator variable set", "") {
                    return Err(format!("[system] {vars:?}: {served} ({got}) {stderr}"));
                }
                continue;
            }
            if served != expected || got != reason || !stderr.is_empty() {
                return Err(format!("[{backend}] {vars:?}: served by {served} ({got}), stderr {stderr:?}; expected {expected} ({reason})"));
            }
        }
        Ok(())
    });
}

#[test]
fn verbose_names_the_rule_in_each_process() {
    let out = run("/bin/sh", &["-c", "/bin/true; ruby -e 'exit'"])
        .backend("jemalloc")
        .env("ALLOCSHIM_ONLY", "ruby")
        .env("ALLOCSHIM_VERBOSE", "1")
        .success()
        .unwrap();
    let version = "5.3.1";
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        [
            "allocshim: backend system 2.36 (left on system by ALLOCSHIM_ONLY=\"ruby\": program sh (binary dash) is not listed (otherwise jemalloc: JEMALLOC_ENABLED=true))".replace("2.36", &glibc()),
            "allocshim: backend system 2.36 (left on system by ALLOCSHIM_ONLY=\"ruby\": program true is not listed (otherwise jemalloc: JEMALLOC_ENABLED=true))".replace("2.36", &glibc()),
            format!("allocshim: backend jemalloc {version} (JEMALLOC_ENABLED=true; ALLOCSHIM_ONLY=\"ruby\": program ruby matches ruby)"),
        ],
        "{}",
        out.stderr
    );
}

/// The running glibc's version, as the `system` backend reports it.
fn glibc() -> String {
    let out = run("/bin/true", &[] as &[&str]).env("ALLOCSHIM_VERBOSE", "1").success().unwrap();
    out.stderr.trim().strip_prefix("allocshim: backend system ").and_then(|r| r.split(' ').next()).unwrap_or("?").to_string()
}

#[test]
fn a_preset_is_not_applied_to_a_program_left_out() {
    // ALLOCSHIM_PRESET tunes glibc too: a program left out keeps glibc's defaults.
    let out = run(c_program("fingerprint"), &[] as &[&str])
        .env("ALLOCSHIM_PRESET", "low-memory")
        .env("ALLOCSHIM_ONLY", "ruby")
        .env("ALLOCSHIM_VERBOSE", "1")
        .success()
        .unwrap();
    assert_eq!(identify(&out), "system");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "no preset line for a dormant library: {}", out.stderr);
    assert!(
        lines[0]
            .ends_with("program fingerprint is not listed (otherwise system with preset low-memory: default: no allocator variable set))"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_value_that_is_not_a_list_is_named_once_and_ignored() {
    each_backend(|backend| {
        for (var, value, entry) in
            [("ALLOCSHIM_ONLY", "ruby;python3", "ruby;python3"), ("ALLOCSHIM_EXCEPT", "/usr/bin/fingerprint", "/usr/bin/fingerprint")]
        {
            let (served, _, stderr) = fingerprint(backend, &[(var, value)])?;
            if backend == "system" {
                // Not read when nothing is asked of the library.
                if !stderr.is_empty() {
                    return Err(format!("[system] {var}={value}: {stderr:?}"));
                }
                continue;
            }
            let what = if entry.contains('/') { "is a path, not a program name" } else { "is not a program name" };
            let warning = format!(
                "allocshim: ignoring {var}=\"{value}\": \"{entry}\" {what}; expected names separated by commas, such as ruby,puma*,python3* (letters, digits and ._-+@; * matches any characters)\n"
            );
            if served != backend || stderr != warning {
                return Err(format!("[{backend}] {var}={value}: served by {served}, stderr {stderr:?}"));
            }
        }
        Ok(())
    });
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The verbose lines of a run, one per process, as (backend, reason).
fn reports(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("allocshim: backend "))
        .map(|r| {
            let (name, rest) = r.split_once(' ').unwrap_or((r, ""));
            (name.to_string(), rest.split_once(" (").map(|(_, why)| why.trim_end_matches(')')).unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn an_interpreters_script_is_one_of_its_names() {
    let dir = std::env::temp_dir().join(format!("allocshim-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rb = script(&dir, "web-server.rb", "#!/usr/bin/env ruby\nputs \"rb-ok #{(1..1000).map(&:to_s).join.size}\"\n");
    let py = script(&dir, "web-app.py", "#!/usr/bin/python3\nprint('py-ok', len(''.join(map(str, range(1000)))))\n");
    let plain = script(&dir, "tool.py", "print('tool-ok')\n");
    // (command, expected stdout, backend per process, in order)
    let cases: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        // `#!/usr/bin/env ruby`: env (started as the script) and ruby (running it).
        (vec![rb.to_str().unwrap()], "rb-ok 2893", vec!["jemalloc", "jemalloc"]),
        // `#!/usr/bin/python3`: the kernel starts python3 with the script as AT_EXECFN.
        (vec![py.to_str().unwrap()], "py-ok 2890", vec!["jemalloc"]),
        // `python3 web-app.py`: the script is the first argument.
        (vec!["/usr/bin/python3", "-u", py.to_str().unwrap()], "py-ok 2890", vec!["jemalloc"]),
        // An interpreter running another script, or none, is not listed.
        (vec!["/usr/bin/python3", plain.to_str().unwrap()], "tool-ok", vec!["system"]),
        (vec!["/usr/bin/python3", "-c", "print('web-app.py')"], "web-app.py", vec!["system"]),
        // A program that is not an interpreter: its arguments are not names.
        (vec!["/bin/echo", "web-app.py"], "web-app.py", vec!["system"]),
    ];
    let mut failures = vec![];
    for (cmd, expect, backends) in &cases {
        let out =
            run(cmd[0], &cmd[1..]).backend("jemalloc").env("ALLOCSHIM_ONLY", "web-*").env("ALLOCSHIM_VERBOSE", "1").success().unwrap();
        let got = reports(&out.stderr);
        let names: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
        let scripts_named = got.iter().filter(|(b, _)| b == "jemalloc").all(|(_, why)| why.contains("matches web-*"));
        if !out.stdout.contains(expect) || names != *backends || !scripts_named {
            failures.push(format!("{cmd:?}: {} / {}", out.stdout.trim(), out.stderr));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
