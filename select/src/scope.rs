//! `ALLOCSHIM_ONLY` and `ALLOCSHIM_EXCEPT`: which programs the chosen backend serves.
//!
//! A preload set for a whole dyno (Heroku's `.profile.d`, a container's environment)
//! reaches every program started there: the web server, but also shells, Node asset
//! tools, headless Chrome, ImageMagick. These two lists say which of them get the
//! backend; every other program runs on `system`, the library loaded but dormant
//! (glibc's allocator, no preset, no warning about the program's own `malloc`).
//!
//! * **Names.** A program is known by up to three names, each a file name without its
//!   directory: `program`, the path it was started by (`AT_EXECFN`: for a `#!`
//!   script run directly, the script itself); `binary`, the file really running
//!   (`/proc/self/exe`, symlinks resolved: `python3.11` for `python3`, `ruby3.1` for
//!   `ruby`); and, for an interpreter (a program or binary matching [`INTERPRETERS`]),
//!   its `script` (see [`script`]): `app.py` in `python3 app.py`, `app.rb` when a
//!   `#!/usr/bin/env ruby` script runs, `gunicorn` in `python3 -m gunicorn`.
//! * **Patterns.** A name or a pattern where `*` matches any characters (`ruby`,
//!   `puma*`, `python3*`), compared with the whole name, case-sensitively. Lists
//!   separate them with commas (blanks around them are ignored; blanks also separate).
//! * **Rules.** A program one of whose names matches a pattern of `ALLOCSHIM_EXCEPT`
//!   is left on `system`; so is one none of whose names matches a pattern of
//!   `ALLOCSHIM_ONLY`, when that is set. `EXCEPT` wins over `ONLY`.
//! * A list that is not one ([`check`]) gets one [`Warning`] naming the variable, the
//!   value and what is accepted, and is ignored (treated as unset); empty = unset.
//! * The lists, and the program's names, are read only when the environment asks the
//!   library for something (a backend, or a preset): a process that runs on `system`
//!   anyway pays nothing. In secure mode nothing is read at all (`rules::decide`).
//!
//! No allocation: the names are read into a caller's buffer ([`Own`]) with raw system
//! calls, the lists are parsed in place at each use.
use core::ffi::{c_char, CStr};

use crate::env::Env;
use crate::line::Line;
use crate::preset::Preset;
use crate::rules::Warning;
use crate::vars::{ALLOCSHIM_EXCEPT, ALLOCSHIM_ONLY};
use crate::Backend;

/// Programs whose script is one of their names ([`script`]): shells and the
/// interpreters of the stacks a dyno runs.
pub const INTERPRETERS: [&str; 10] = ["sh", "bash", "dash", "zsh", "ruby*", "python*", "perl*", "node", "nodejs", "php*"];

/// An example of a list, for the warning and the docs.
pub const EXAMPLE: &str = "ruby,puma*,python3*";

/// Whether `pattern` matches the whole of `name`; `*` matches any run of bytes.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it is being tried against.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&q) if q == c => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more byte and retry after it.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|&c| c == b'*')
}

/// The file name of `path`: what follows its last `/`.
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => path.get(i + 1..).unwrap_or_default(),
        None => path,
    }
}

/// Whether a program or binary called `name` is one of the [`INTERPRETERS`].
pub fn is_interpreter(name: &[u8]) -> bool {
    INTERPRETERS.iter().any(|p| matches(p.as_bytes(), name))
}

/// Options that take their value as the next argument, skipped with it.
const WITH_VALUE: [&str; 9] = ["-I", "-r", "-C", "-E", "-W", "-X", "--require", "--import", "--loader"];

/// The script an interpreter runs, from its arguments after `argv[0]`, as a file name:
/// the first argument that is not an option (after `--`, the next one). `-m MODULE`
/// gives the module (`python3 -m gunicorn`); options that take a value in the next
/// argument ([`WITH_VALUE`]: `ruby -I lib app.rb`) are skipped with it; a program
/// given on the command line (`-c`, `-e`, `-p`, `--eval`, `--print`, or a short
/// cluster ending in `c` or `e` such as `bash -lc`, `perl -ne`) or on stdin (`-`)
/// means no script. Empty when there is none.
pub fn script<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> &'a [u8] {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg {
            b"--" | b"-m" => return args.next().map(basename).unwrap_or_default(),
            b"-" | b"-p" | b"--eval" | b"--print" => return &[],
            _ if WITH_VALUE.iter().any(|o| arg == o.as_bytes()) => {
                args.next();
            }
            [b'-', b'-', ..] => {}
            [b'-', letters @ ..] => {
                let inline =
                    letters.len() <= 2 && letters.iter().all(u8::is_ascii_alphabetic) && matches!(letters.last(), Some(b'c' | b'e'));
                if inline {
                    return &[];
                }
            }
            _ => return basename(arg),
        }
    }
    &[]
}

/// The names a program is known by (see the module's documentation); empty when not
/// known.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Names<'a> {
    /// The file name of the path it was started by (`AT_EXECFN`).
    pub program: &'a [u8],
    /// The file name of the file really running (`/proc/self/exe`).
    pub binary: &'a [u8],
    /// For an interpreter: the file name of its script, or the module it runs.
    pub script: &'a [u8],
}

impl<'a> Names<'a> {
    /// The names of a program started by the path `started`, running the file
    /// `binary` (either may be empty when unknown; both are reduced to file names),
    /// with `args` after `argv[0]`.
    pub fn new(started: &'a [u8], binary: &'a [u8], args: impl IntoIterator<Item = &'a [u8]>) -> Names<'a> {
        let (program, binary) = (basename(started), basename(binary));
        let binary = binary.strip_suffix(b" (deleted)").unwrap_or(binary);
        let script = if is_interpreter(program) || is_interpreter(binary) { script(args) } else { &[] };
        Names { program, binary, script }
    }

    /// Each name with what it is, the known ones only, each once.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> {
        let Names { program, binary, script } = *self;
        [("program", program), ("binary", binary), ("script", script)]
            .into_iter()
            .enumerate()
            .filter(move |(i, (_, n))| !n.is_empty() && ![program, binary].iter().take(*i).any(|earlier| earlier == n))
            .map(|(_, named)| named)
    }

    /// "program node (binary nodejs, script app.js)", or "an unknown program".
    pub fn describe(&self, l: &mut Line) {
        let mut each = self.each();
        match each.next() {
            None => {
                l.str("an unknown program");
            }
            Some((kind, name)) => {
                l.str(kind).str(" ").bytes(name);
                for (i, (kind, name)) in each.enumerate() {
                    l.str(if i == 0 { " (" } else { ", " }).str(kind).str(" ").bytes(name);
                }
                if self.each().nth(1).is_some() {
                    l.str(")");
                }
            }
        }
    }
}

/// Buffers for this process's names, filled by [`Own::read`]: the running file's path
/// and the start of the command line (what does not fit is not read).
pub struct Own {
    exe: [u8; 256],
    cmdline: [u8; 1024],
}

impl Default for Own {
    fn default() -> Own {
        Own::new()
    }
}

impl Own {
    pub const fn new() -> Own {
        Own { exe: [0; 256], cmdline: [0; 1024] }
    }

    /// This process's names: `AT_EXECFN` from the auxiliary vector, the target of
    /// `/proc/self/exe` and the arguments in `/proc/self/cmdline`, read into `self`
    /// (no allocation, `errno` untouched: see [`raw`]). A name that cannot be read (no
    /// `/proc`) is left empty.
    pub fn read(&mut self) -> Names<'_> {
        // SAFETY: getauxval only reads the auxiliary vector; AT_EXECFN is 0 or the
        // address of the NUL-terminated path the kernel put on the initial stack,
        // which stays there for the life of the process.
        let execfn = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const c_char;
        // SAFETY: non-NULL, so a NUL-terminated string that lives as long as the process.
        let started: &'static [u8] = if execfn.is_null() { &[] } else { unsafe { CStr::from_ptr(execfn) }.to_bytes() };
        let n = raw::readlink(c"/proc/self/exe", &mut self.exe);
        // A result that fills the buffer may have been cut: no name rather than a wrong one.
        let exe_len = if n < self.exe.len() { n } else { 0 };
        let cmd_len = raw::read_file(c"/proc/self/cmdline", &mut self.cmdline);

        let args = arguments(self.cmdline.get(..cmd_len).unwrap_or_default(), cmd_len == self.cmdline.len());
        Names::new(started, self.exe.get(..exe_len).unwrap_or_default(), args)
    }
}

/// The arguments after `argv[0]` in the start of a `/proc/PID/cmdline` (each ends
/// with a NUL); `cut`: the read may have stopped inside an argument, which is dropped.
pub fn arguments(cmdline: &[u8], cut: bool) -> impl Iterator<Item = &[u8]> {
    let whole = match cmdline.iter().rposition(|&c| c == 0) {
        Some(end) if cut => cmdline.get(..end + 1).unwrap_or_default(),
        _ => cmdline,
    };
    whole.strip_suffix(&[0]).unwrap_or(whole).split(|&c| c == 0).skip(1)
}

/// Reading a file with raw system calls. Not libc's `open`/`read`/`readlink`/`close`:
/// the library calls those through GOT entries that ld.so binds at every start of
/// every process (about 600 instructions each, measured on `/bin/true`), even where
/// nothing here runs; a `syscall` instruction costs nothing until it runs. They also
/// leave `errno` alone (the result carries the error), as code inside `malloc` must.
pub mod raw {
    use core::ffi::CStr;

    /// The system call `nr` with up to four arguments: its result, or `-errno`.
    ///
    /// # Safety
    /// The arguments are what that system call expects (pointers valid for it).
    #[cfg(target_arch = "x86_64")]
    unsafe fn syscall(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: the Linux x86-64 system call convention: number and result in rax,
        // arguments in rdi, rsi, rdx, r10; the kernel clobbers rcx and r11, uses no
        // stack of ours; the pointers are valid (our caller's contract).
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// As above, for arm64.
    ///
    /// # Safety
    /// The arguments are what that system call expects (pointers valid for it).
    #[cfg(target_arch = "aarch64")]
    unsafe fn syscall(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: the Linux arm64 system call convention: number in x8, arguments in
        // x0-x3, result in x0; nothing else is clobbered, no stack of ours is used;
        // the pointers are valid (our caller's contract).
        unsafe {
            core::arch::asm!("svc 0", in("x8") nr, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c, in("x3") d,
                options(nostack));
        }
        ret
    }

    /// Elsewhere (not a supported platform, but it builds): libc's `syscall`.
    ///
    /// # Safety
    /// The arguments are what that system call expects (pointers valid for it).
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    unsafe fn syscall(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        // SAFETY: our caller's contract, passed on.
        let r = unsafe { libc::syscall(nr, a, b, c, d) } as isize;
        if r < 0 {
            -(crate::errno::errno() as isize)
        } else {
            r
        }
    }

    /// The target of the symbolic link at `path`, written into `buf`; returns its
    /// length (0 on failure; `buf.len()` when it may have been cut).
    pub fn readlink(path: &CStr, buf: &mut [u8]) -> usize {
        let (at, p, b) = (libc::AT_FDCWD as usize, path.as_ptr() as usize, buf.as_mut_ptr() as usize);
        // SAFETY: readlinkat reads the NUL-terminated path and writes at most
        // `buf.len()` bytes into `buf`, a live buffer.
        let n = unsafe { syscall(libc::SYS_readlinkat, at, p, b, buf.len()) };
        n.max(0) as usize
    }

    /// Reads the start of the file at `path` into `buf`; returns how many bytes were
    /// read (0 on any failure).
    pub fn read_file(path: &CStr, buf: &mut [u8]) -> usize {
        let (at, p, flags) = (libc::AT_FDCWD as usize, path.as_ptr() as usize, (libc::O_RDONLY | libc::O_CLOEXEC) as usize);
        // SAFETY: openat reads the NUL-terminated path; no other pointer is passed.
        let fd = unsafe { syscall(libc::SYS_openat, at, p, flags, 0) };
        if fd < 0 {
            return 0;
        }
        let mut len = 0;
        while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
            // SAFETY: read writes at most `rest.len()` bytes into `rest`, a live slice.
            let n = unsafe { syscall(libc::SYS_read, fd as usize, rest.as_mut_ptr() as usize, rest.len(), 0) };
            if n > 0 {
                len += n as usize;
            } else if n != -(libc::EINTR as isize) {
                break;
            }
        }
        // SAFETY: `fd` is the descriptor opened above, closed once; no pointer passed.
        unsafe { syscall(libc::SYS_close, fd as usize, 0, 0, 0) };
        len
    }
}

/// The entries of a list: separated by commas or blanks, empty ones skipped.
pub fn entries(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&c| c == b',' || c.is_ascii_whitespace()).filter(|e| !e.is_empty())
}

/// What a name may hold besides letters, digits and the bytes of UTF-8 characters
/// (and `*` in a pattern).
pub const PUNCTUATION: &str = "._-+@";

/// The first entry of `list` that is not a name or pattern, if any: a path, a `:` or
/// `;` list, quotes, another wildcard syntax (`?`, `[...]`).
pub fn check(list: &[u8]) -> Option<&[u8]> {
    let allowed = |c: &u8| c.is_ascii_alphanumeric() || !c.is_ascii() || *c == b'*' || PUNCTUATION.as_bytes().contains(c);
    entries(list).find(|e| !e.iter().all(allowed))
}

/// The lists in an environment, each checked: a value that is not a list was warned
/// about and is None here, as is an unset or empty one.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Lists<'a> {
    pub only: Option<&'a [u8]>,
    pub except: Option<&'a [u8]>,
}

/// `ALLOCSHIM_ONLY` and `ALLOCSHIM_EXCEPT` in `env`; each value that is not a list
/// gets one warning and is ignored. (Secure mode is the caller's: `rules::decide`
/// returns `system` before anything is read.)
pub fn lists<'a>(env: &Env<'a>, warn: &mut dyn FnMut(&Warning<'a>)) -> Lists<'a> {
    let mut read = |var: &'static str| {
        let value = env.get(var)?;
        entries(value).next()?;
        match check(value) {
            Some(entry) => {
                warn(&Warning::NotAProgramList { var, value, entry });
                None
            }
            None => Some(value),
        }
    };
    Lists { only: read(ALLOCSHIM_ONLY), except: read(ALLOCSHIM_EXCEPT) }
}

/// What the lists decide for a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Neither list is set: the choice stands.
    Unscoped,
    /// A name matches a pattern of `ALLOCSHIM_ONLY` (and none of `ALLOCSHIM_EXCEPT`):
    /// the choice stands.
    Listed { kind: &'static str, name: &'a [u8], pattern: &'a [u8] },
    /// `ALLOCSHIM_ONLY` is set and no name matches it: left on `system`.
    NotListed,
    /// A name matches a pattern of `ALLOCSHIM_EXCEPT`: left on `system`.
    Excepted { kind: &'static str, name: &'a [u8], pattern: &'a [u8] },
}

impl<'a> Lists<'a> {
    pub fn is_empty(&self) -> bool {
        self.only.is_none() && self.except.is_none()
    }

    /// The rules on `names`.
    pub fn judge<'n>(&self, names: &Names<'n>) -> Verdict<'n>
    where
        'a: 'n,
    {
        let first_match = |list: &'n [u8]| {
            names.each().find_map(|(kind, name)| entries(list).find(|p| matches(p, name)).map(|pattern| (kind, name, pattern)))
        };
        if let Some((kind, name, pattern)) = self.except.and_then(first_match) {
            return Verdict::Excepted { kind, name, pattern };
        }
        match self.only.map(first_match) {
            None => Verdict::Unscoped,
            Some(Some((kind, name, pattern))) => Verdict::Listed { kind, name, pattern },
            Some(None) => Verdict::NotListed,
        }
    }

    /// Why the verdict is what it is: "ALLOCSHIM_ONLY=\"ruby*\": binary ruby3.1
    /// matches ruby*", "left on system by ALLOCSHIM_EXCEPT=\"node*\": program node
    /// matches node*", "left on system by ALLOCSHIM_ONLY=\"ruby\": program node
    /// (binary nodejs, script app.js) is not listed". Nothing for `Unscoped`.
    #[inline(never)]
    #[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
    pub fn explain(&self, verdict: &Verdict, names: &Names, l: &mut Line) {
        let (var, value) = match verdict {
            Verdict::Unscoped => return,
            Verdict::Excepted { .. } => (ALLOCSHIM_EXCEPT, self.except),
            Verdict::Listed { .. } | Verdict::NotListed => (ALLOCSHIM_ONLY, self.only),
        };
        if verdict.left_on_system() {
            l.str("left on system by ");
        }
        l.str(var).str("=\"").bytes(value.unwrap_or_default()).str("\": ");
        match *verdict {
            Verdict::Listed { kind, name, pattern } | Verdict::Excepted { kind, name, pattern } => {
                l.str(kind).str(" ").bytes(name).str(" matches ").bytes(pattern);
            }
            Verdict::NotListed => {
                names.describe(l);
                l.str(" is not listed");
            }
            Verdict::Unscoped => {}
        }
    }

    /// The reason a process gives for its backend once the verdict is applied to the
    /// environment's choice (`backend` for `reason`, with `preset`): for a program
    /// left on system the rule, then what it would have had; otherwise the reason,
    /// then which pattern listed it.
    pub fn reason(&self, verdict: &Verdict, names: &Names, backend: Backend, preset: Preset, reason: &[u8]) -> Line {
        let mut l = Line::new();
        if verdict.left_on_system() {
            self.explain(verdict, names, &mut l);
            l.str(" (otherwise ").bytes(backend.name().to_bytes());
            if preset != Preset::Default {
                l.str(" with preset ").bytes(preset.name().to_bytes());
            }
            l.str(": ").bytes(reason).str(")");
        } else {
            l.bytes(reason);
            if *verdict != Verdict::Unscoped {
                l.str("; ");
                self.explain(verdict, names, &mut l);
            }
        }
        l
    }
}

impl Verdict<'_> {
    /// Whether the program runs on `system` because of the lists.
    pub fn left_on_system(&self) -> bool {
        matches!(self, Verdict::NotListed | Verdict::Excepted { .. })
    }

    /// The variable that decided, if one did.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            Verdict::Unscoped => None,
            Verdict::Listed { .. } | Verdict::NotListed => Some(ALLOCSHIM_ONLY),
            Verdict::Excepted { .. } => Some(ALLOCSHIM_EXCEPT),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::ffi::{CStr, CString};
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    fn text(l: &Line) -> String {
        String::from_utf8(l.as_bytes().to_vec()).unwrap()
    }

    /// Runs `f` on the lists of an in-memory environment holding `vars`, with the
    /// warnings' text.
    fn with_lists<T>(vars: &[(&str, &str)], f: impl FnOnce(Lists, Vec<String>) -> T) -> T {
        let owned: Vec<CString> = vars.iter().map(|(k, v)| CString::new(std::format!("{k}={v}")).unwrap()).collect();
        let entries: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        let env = Env::from_entries(&entries);
        let mut warnings = Vec::new();
        let l = lists(&env, &mut |w| warnings.push(text(&w.line())));
        f(l, warnings)
    }

    fn names<'a>(started: &'a str, binary: &'a str, args: &[&'a str]) -> Names<'a> {
        Names::new(started.as_bytes(), binary.as_bytes(), args.iter().map(|a| a.as_bytes()))
    }

    /// (left on system, reason) for a program under `vars`, chosen jemalloc by
    /// JEMALLOC_ENABLED=true.
    fn verdict(vars: &[(&str, &str)], n: &Names) -> (bool, String) {
        with_lists(vars, |l, w| {
            assert!(w.is_empty(), "{w:?}");
            let v = l.judge(n);
            (v.left_on_system(), text(&l.reason(&v, n, Backend::Jemalloc, Preset::Default, b"JEMALLOC_ENABLED=true")))
        })
    }

    #[test]
    fn patterns_match_whole_names_with_stars() {
        let yes = [("ruby", "ruby"), ("puma*", "puma"), ("puma*", "puma-worker"), ("python3*", "python3.11"), ("*", "x"), ("*", "")];
        let yes2 = [("*js", "nodejs"), ("p*n*", "python3"), ("a*b*c", "aXbYbZc"), ("**", "ab"), ("n*e", "node")];
        for (p, n) in yes.iter().chain(&yes2) {
            assert!(matches(p.as_bytes(), n.as_bytes()), "{p} should match {n}");
        }
        let no =
            [("ruby", "ruby3.1"), ("ruby", "rub"), ("Ruby", "ruby"), ("puma*", "pum"), ("*js", "node"), ("a*b*c", "aXbYbZ"), ("", "x")];
        for (p, n) in no {
            assert!(!matches(p.as_bytes(), n.as_bytes()), "{p} should not match {n}");
        }
        assert!(matches(b"", b""));
    }

    #[test]
    fn interpreters_give_their_script_as_a_name() {
        // python3 app.py: started by PATH lookup, binary is the versioned file.
        assert_eq!(names("/usr/bin/python3", "/usr/bin/python3.11", &["app.py"]).script, b"app.py");
        // #!/usr/bin/env ruby: env runs ruby with the script's path.
        let n = names("/usr/bin/ruby", "/usr/bin/ruby3.1", &["/app/bin/puma", "-C", "config/puma.rb"]);
        assert_eq!((n.program, n.binary, n.script), (&b"ruby"[..], &b"ruby3.1"[..], &b"puma"[..]));
        // #!/usr/bin/ruby run directly: the kernel gives the script as AT_EXECFN.
        let n = names("./bin/worker", "/usr/bin/ruby3.1", &["./bin/worker", "--queue", "x"]);
        assert_eq!((n.program, n.script), (&b"worker"[..], &b"worker"[..]));
        assert_eq!(names("python3", "", &["-u", "-W", "ignore", "-X", "dev", "-m", "gunicorn", "app:app"]).script, b"gunicorn");
        assert_eq!(names("ruby", "", &["-I", "lib", "-rjson", "-W0", "--", "exe/tool"]).script, b"tool");
        assert_eq!(names("node", "", &["--require", "dotenv/config", "--max-old-space-size=512", "server.js"]).script, b"server.js");
        assert_eq!(names("bash", "", &["-x", "deploy.sh", "now"]).script, b"deploy.sh");
        // A program given on the command line or stdin has no script.
        for args in
            [&["-c", "print(1)"][..], &["-e", "p 1"], &["-lc", "bundle exec puma"], &["-ne", "print"], &["--eval", "1"], &["-"], &[]]
        {
            assert_eq!(names("python3", "", args).script, b"", "{args:?}");
        }
        // Other programs' arguments are not names: git commit is git.
        assert_eq!(names("/usr/bin/git", "/usr/bin/git", &["commit"]).script, b"");
        assert_eq!(names("/usr/bin/convert", "/usr/bin/convert-im6.q16", &["in.png", "out.pdf"]).script, b"");
        // The interpreter is known by its binary too (a renamed link).
        assert_eq!(names("/app/bin/myruby", "/usr/bin/ruby3.1", &["app.rb"]).script, b"app.rb");
    }

    #[test]
    fn names_are_listed_once_each() {
        let mut l = Line::new();
        names("/usr/bin/node", "/usr/bin/node", &["app.js"]).describe(&mut l);
        assert_eq!(text(&l), "program node (script app.js)");
        let mut l = Line::new();
        names("/usr/bin/python3", "/usr/bin/python3.11", &["-c", "x"]).describe(&mut l);
        assert_eq!(text(&l), "program python3 (binary python3.11)");
        let mut l = Line::new();
        names("true", "true", &[]).describe(&mut l);
        assert_eq!(text(&l), "program true");
        let mut l = Line::new();
        Names::default().describe(&mut l);
        assert_eq!(text(&l), "an unknown program");
        assert_eq!(names("/x/deleted", "/usr/bin/ruby3.1 (deleted)", &[]).binary, b"ruby3.1");
    }

    #[test]
    fn only_leaves_every_unlisted_program_on_system() {
        let only = [("ALLOCSHIM_ONLY", "ruby, puma*,python3*")];
        assert_eq!(
            verdict(&only, &names("/usr/bin/ruby", "/usr/bin/ruby3.1", &["-e", "1"])),
            (false, "JEMALLOC_ENABLED=true; ALLOCSHIM_ONLY=\"ruby, puma*,python3*\": program ruby matches ruby".into())
        );
        assert_eq!(
            verdict(&only, &names("/usr/bin/python3", "/usr/bin/python3.11", &["app.py"])).1,
            "JEMALLOC_ENABLED=true; ALLOCSHIM_ONLY=\"ruby, puma*,python3*\": program python3 matches python3*"
        );
        assert_eq!(
            verdict(&only, &names("/usr/bin/node", "/usr/bin/node", &["app.js"])),
            (
                true,
                "left on system by ALLOCSHIM_ONLY=\"ruby, puma*,python3*\": program node (script app.js) is not listed (otherwise jemalloc: JEMALLOC_ENABLED=true)"
                    .into()
            )
        );
        // By the script: a Ruby server started through `#!/usr/bin/env ruby`.
        let (left, why) = verdict(&[("ALLOCSHIM_ONLY", "puma")], &names("/usr/bin/ruby", "/usr/bin/ruby3.1", &["/app/bin/puma"]));
        assert!(!left && why.ends_with("script puma matches puma"), "{why}");
    }

    #[test]
    fn except_wins_over_only() {
        let vars = [("ALLOCSHIM_ONLY", "*"), ("ALLOCSHIM_EXCEPT", "node*,chrom*")];
        assert_eq!(
            verdict(&vars, &names("/usr/bin/nodejs", "/usr/bin/node", &["build.js"])),
            (true, "left on system by ALLOCSHIM_EXCEPT=\"node*,chrom*\": program nodejs matches node* (otherwise jemalloc: JEMALLOC_ENABLED=true)".into())
        );
        assert!(!verdict(&vars, &names("git", "git", &[])).0);
        let (left, why) = verdict(&[("ALLOCSHIM_EXCEPT", "chromium")], &names("/usr/bin/chromium", "/usr/bin/dash", &[]));
        assert!(left && why.contains("program chromium matches chromium"), "{why}");
        // Unscoped: the reason is the choice's own.
        assert_eq!(verdict(&[("ALLOCSHIM_EXCEPT", "chromium")], &names("ruby", "ruby3.1", &[])), (false, "JEMALLOC_ENABLED=true".into()));
        assert_eq!(verdict(&[], &names("ruby", "ruby3.1", &[])), (false, "JEMALLOC_ENABLED=true".into()));
    }

    #[test]
    fn a_preset_alone_is_scoped_too() {
        with_lists(&[("ALLOCSHIM_ONLY", "ruby")], |l, _| {
            let n = names("git", "git", &[]);
            let v = l.judge(&n);
            let why = text(&l.reason(&v, &n, Backend::System, Preset::LowMemory, b"default: no allocator variable set"));
            assert_eq!(
                why,
                "left on system by ALLOCSHIM_ONLY=\"ruby\": program git is not listed (otherwise system with preset low-memory: default: no allocator variable set)"
            );
        });
    }

    #[test]
    fn a_value_that_is_not_a_list_is_named_and_ignored() {
        for (value, entry, what) in [
            ("ruby;puma", "ruby;puma", "is not a program name"),
            ("ruby:python3", "ruby:python3", "is not a program name"),
            ("ruby, /usr/bin/node", "/usr/bin/node", "is a path, not a program name"),
            ("python?", "python?", "is not a program name"),
            ("\"ruby\"", "\"ruby\"", "is not a program name"),
        ] {
            with_lists(&[("ALLOCSHIM_EXCEPT", value)], |l, w| {
                assert_eq!(l, Lists::default(), "{value}");
                assert_eq!(
                    w,
                    [std::format!(
                        "ignoring ALLOCSHIM_EXCEPT=\"{value}\": \"{entry}\" {what}; expected names separated by commas, such as ruby,puma*,python3* (letters, digits and ._-+@; * matches any characters)"
                    )]
                );
            });
        }
        // Only the bad variable is ignored.
        with_lists(&[("ALLOCSHIM_ONLY", "ruby"), ("ALLOCSHIM_EXCEPT", "a/b")], |l, w| {
            assert_eq!((l.only, l.except, w.len()), (Some(&b"ruby"[..]), None, 1));
        });
        // Empty, blank or only separators: unset, silently.
        for value in ["", "  ", ",", " , ,"] {
            with_lists(&[("ALLOCSHIM_ONLY", value)], |l, w| assert_eq!((l, w.len()), (Lists::default(), 0), "{value:?}"));
        }
        // Blanks separate too; UTF-8 names are names.
        with_lists(&[("ALLOCSHIM_ONLY", "ruby puma*\tnode-äpp")], |l, w| {
            assert!(w.is_empty());
            assert_eq!(entries(l.only.unwrap()).count(), 3);
        });
    }

    #[test]
    fn arguments_come_from_the_command_line_without_a_cut_one() {
        let all: Vec<&[u8]> = arguments(b"ruby\0-W0\0app.rb\0", false).collect();
        assert_eq!(all, [&b"-W0"[..], b"app.rb"]);
        let cut: Vec<&[u8]> = arguments(b"ruby\0-W0\0app.r", true).collect();
        assert_eq!(cut, [&b"-W0"[..]]);
        assert_eq!(arguments(b"a-very-long-argv0", true).count(), 0);
        assert_eq!(arguments(b"", false).count(), 0);
    }

    #[test]
    fn this_process_has_names() {
        let mut own = Own::new();
        let n = own.read();
        // The test binary: started by its path, no script (not an interpreter).
        let exe = std::env::current_exe().unwrap();
        let file = exe.file_name().unwrap().to_str().unwrap().as_bytes();
        assert_eq!(n.binary, file);
        assert!(!n.program.is_empty() && n.script.is_empty(), "{n:?}");
        let lists = Lists { only: Some(b"nothing-like-this"), except: None };
        assert_eq!(lists.judge(&n), Verdict::NotListed);
        assert_eq!(Lists::default().judge(&n), Verdict::Unscoped);
    }
}
