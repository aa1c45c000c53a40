//! Heap profiling (`ALLOCSHIM_PROFILE`): jemalloc's sampler, compiled in and dormant
//! unless asked for, and the dumps: at exit, on growth, periodically and on a signal.
//!
//! * At selection (`conf`): the settings are read (`allocshim_select::profile`), the
//!   directory made and proved writable (a probe file), and jemalloc's options
//!   `prof:true,prof_active:false,prof_prefix:DIR/PROGRAM` handed to
//!   `crate::preset::jemalloc_conf`,
//!   before the user's `MALLOC_CONF`, which wins option by option.
//! * At the library's initialiser (`on_load`), never inside malloc: the unwinder is
//!   loaded (unwind.c), sampling started (`prof.active`), the signal handler installed (only if the signal is not
//!   already handled), and one thread started that waits for the signal and checks
//!   the growth every second. A forked child starts its own (`pthread_atfork`).
//! * At exit (`at_exit`): a last dump, unless the heap holds less than one sample.
//!
//! Each dump is `DIR/PROGRAM.PID.SEQ.WHY.heap` (WHY: exit, growth, every, signal),
//! written by jemalloc (`prof.dump`) under a `.tmp` name and renamed, so a reader never
//! sees half a file. Nothing here runs on the malloc path; a failure to write is one
//! warning line, never a crash. What it costs and how to read the dumps:
//! docs/profiling.md.
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr::{addr_of, null, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

use allocshim_backends::jemalloc;
use allocshim_select::profile::{self as settings, Implied, Settings};
use allocshim_select::rules::Choice;
use allocshim_select::vars;
use tikv_jemalloc_sys as je;

use crate::env::Env;
use crate::once::SelectionCell;
use crate::report::{warn, Line};

extern "C" {
    // unwind.c
    fn allocshim_unwinder_load() -> *const c_char;
    // jemalloc.c's option variables (`bool`, `size_t`).
    static _rjem_je_opt_prof: bool;
    static _rjem_je_opt_lg_prof_sample: usize;
    // glibc's name of the program (errno.h, _GNU_SOURCE): the basename of argv[0].
    static program_invocation_short_name: *const c_char;
}

/// The longest directory accepted: it goes into jemalloc's options (whose buffer,
/// with the preset's and the user's, is 1 KiB) and into every file name.
const DIR_MAX: usize = 480;
const NAME_MAX: usize = 64;
/// A process holding less than this at exit writes no exit dump (see `at_exit`).
pub const EXIT_MIN_BYTES: u64 = 2 << 20;

/// What the selection decided, read by the thread, the handler and the exit hook.
struct Plan {
    /// Absolute directory, then '/', then the program's name: the dumps' prefix.
    prefix: [u8; DIR_MAX + NAME_MAX + 2],
    prefix_len: usize,
    every: u32,
    growth: u32,
    /// The signal's number; 0: none.
    signal: c_int,
    verbose: bool,
    /// The user's MALLOC_CONF sets prof_active: theirs stands.
    user_active: bool,
}

static ON: AtomicBool = AtomicBool::new(false);
static PLAN: SelectionCell<Plan> = SelectionCell::new(Plan {
    prefix: [0; DIR_MAX + NAME_MAX + 2],
    prefix_len: 0,
    every: 0,
    growth: 0,
    signal: 0,
    verbose: false,
    user_active: false,
});
/// "prof:true,prof_active:false,prof_prefix:<prefix>" for jemalloc's options.
static CONF: SelectionCell<[u8; DIR_MAX + NAME_MAX + 64]> = SelectionCell::new([0; DIR_MAX + NAME_MAX + 64]);
/// Dumps written by this process (reset in a forked child): the SEQ of file names.
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Set by the signal handler, taken by the thread; a futex word.
static WAKE: AtomicU32 = AtomicU32::new(0);
/// Warnings about failed dumps printed so far: a full disk warns a few times, not forever.
static FAILURES: AtomicU32 = AtomicU32::new(0);

/// Profiling implies jemalloc where no variable chose a backend (the shared rule,
/// `allocshim_select::profile::imply`); where one chose another, one warning.
pub fn imply(env: &Env, choice: &mut Choice) {
    if settings::imply(env, choice) == Implied::Overridden {
        warn(&settings::overridden_line(choice));
    }
}

/// jemalloc's profiling options for this process, or None when `ALLOCSHIM_PROFILE`
/// does not ask for profiling or its directory cannot be written (one warning).
///
/// # Safety
/// From the selecting thread, before the choice is published, jemalloc chosen.
pub unsafe fn conf(env: &Env) -> Option<&'static [u8]> {
    let s = settings::read(env, &mut |ignored| warn(&ignored.line()))?;
    // SAFETY: the selecting thread before publication (our contract); the only
    // references to these cells while this function runs.
    let (plan, conf) = unsafe { (PLAN.get_mut(), CONF.get_mut()) };
    if let Err(why) = prepare(&s, plan) {
        let mut l = Line::new();
        l.str(vars::ALLOCSHIM_PROFILE).str(": cannot write heap profiles to ").bytes(s.dir).str(": ").str(why);
        l.str("; profiling off");
        warn(&l);
        return None;
    }
    plan.every = s.every;
    plan.growth = s.growth;
    plan.signal = s.signal.and_then(|sig| sig.number()).unwrap_or(0);
    plan.verbose = crate::select::flag(env, vars::ALLOCSHIM_VERBOSE, &mut |_| {});
    let sets_active = |v: &[u8]| v.split(|&b| b == b',').any(|pair| pair.trim_ascii().starts_with(b"prof_active:"));
    plan.user_active = [vars::MALLOC_CONF, vars::RJEM_MALLOC_CONF].iter().any(|v| env.get(v).is_some_and(sets_active));
    // Sampling starts once the unwinder is loaded (`on_load`): a sample taken before
    // would have no stack.
    let mut n = 0;
    for part in [&b"prof:true,prof_active:false,prof_prefix:"[..], &plan.prefix[..plan.prefix_len]] {
        conf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    ON.store(true, Relaxed);
    Some(&conf[..n])
}

/// Makes the directory (and its parents), proves it writable with a probe file, and
/// writes the dumps' prefix into `plan`.
fn prepare(s: &Settings, plan: &mut Plan) -> Result<(), &'static str> {
    let p = &mut plan.prefix;
    let mut n = 0;
    if s.dir.first() != Some(&b'/') {
        // Relative: to the directory the program starts in, as the user sees it.
        // SAFETY: getcwd writes at most DIR_MAX bytes, NUL included, into `p`.
        if unsafe { libc::getcwd(p.as_mut_ptr().cast(), DIR_MAX) }.is_null() {
            return Err("it is relative and the working directory is unknown (or too long)");
        }
        n = p.iter().position(|&b| b == 0).unwrap_or(0);
        p[n] = b'/';
        n += 1;
    }
    let dir = s.dir.strip_suffix(b"/").unwrap_or(s.dir);
    if n + dir.len() >= DIR_MAX || dir.contains(&0) {
        return Err("path too long");
    }
    p[n..n + dir.len()].copy_from_slice(dir);
    n += dir.len();
    // mkdir -p: each parent, then the directory; EEXIST is fine, the probe decides.
    for end in 1..=n {
        if end < n && p[end] != b'/' {
            continue;
        }
        let saved = p[end];
        p[end] = 0;
        // SAFETY: `p` is NUL-terminated at `end`.
        unsafe { libc::mkdir(p.as_ptr().cast(), 0o777) };
        p[end] = saved;
    }
    // The probe: DIR/.allocshim-probe-PID, created and removed.
    let mut probe = Line::new();
    // SAFETY: getpid cannot fail.
    probe.bytes(&p[..n]).str("/.allocshim-probe-").num(unsafe { libc::getpid() } as u64).str("\0");
    let path = probe.as_bytes().as_ptr().cast();
    // SAFETY: `path` is NUL-terminated (the line is far below its capacity).
    let fd = unsafe { libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(errno_text(allocshim_select::line::errno()));
    }
    // SAFETY: our own descriptor and NUL-terminated path.
    unsafe {
        libc::close(fd);
        libc::unlink(path);
    }
    p[n] = b'/';
    n += 1;
    // SAFETY: glibc sets it before any initialiser runs; NULL-checked; NUL-terminated.
    let prog = unsafe { program_invocation_short_name };
    let prog = if prog.is_null() { &b"program"[..] } else { unsafe { CStr::from_ptr(prog) }.to_bytes() };
    let prog = &prog[..prog.len().min(NAME_MAX)];
    for &b in prog {
        // Names go into jemalloc's comma-separated options and into file names.
        p[n] = if b == b',' || b == b'/' || b.is_ascii_whitespace() { b'_' } else { b };
        n += 1;
    }
    plan.prefix_len = n;
    Ok(())
}

fn errno_text(e: c_int) -> &'static str {
    match e {
        libc::EACCES | libc::EPERM => "permission denied",
        libc::EROFS => "read-only file system",
        libc::ENOENT => "a parent does not exist",
        libc::ENOTDIR => "a part of it is not a directory",
        libc::ENOSPC | libc::EDQUOT => "no space left",
        libc::ENAMETOOLONG => "name too long",
        libc::EMFILE | libc::ENFILE => "too many open files",
        _ => "cannot create a file there",
    }
}

fn plan() -> &'static Plan {
    // SAFETY: called only once profiling is on, i.e. after the selection published
    // its choice (from the initialiser, the thread, the handler's thread, at exit):
    // no writer any more.
    unsafe { PLAN.get() }
}

/// From the library's initialiser, jemalloc chosen and started: loads the unwinder
/// wherever jemalloc samples (also for a plain `MALLOC_CONF=prof:true`), and with
/// `ALLOCSHIM_PROFILE` installs the signal handler and starts the dump thread.
pub fn on_load() {
    // SAFETY: a `bool` written while jemalloc parsed its options, final since.
    if !unsafe { core::ptr::read_volatile(addr_of!(_rjem_je_opt_prof)) } {
        return;
    }
    // SAFETY: called here only, in the initialiser, outside malloc.
    let why = unsafe { allocshim_unwinder_load() };
    if !why.is_null() {
        let mut l = Line::new();
        // SAFETY: a NUL-terminated message from unwind.c or dlerror.
        l.str("heap profiling: no stack unwinder (")
            .bytes(unsafe { CStr::from_ptr(why) }.to_bytes())
            .str("); profiles will have no stacks");
        warn(&l);
    }
    if !ON.load(Relaxed) {
        return;
    }
    let plan = plan();
    if !plan.user_active {
        let on = true;
        // SAFETY: "prof.active" takes a `bool`; jemalloc reads it before returning.
        unsafe { je::mallctl(c"prof.active".as_ptr(), null_mut(), null_mut(), (&on as *const bool).cast_mut().cast(), 1) };
    }
    let signal = install_handler(plan.signal);
    if plan.verbose {
        let mut l = Line::new();
        l.str("heap profiling: dumps ").bytes(&plan.prefix[..plan.prefix_len]).str(".PID.SEQ.WHY.heap; 1 in ");
        // SAFETY: as `_rjem_je_opt_prof` above.
        l.size(1u64 << unsafe { core::ptr::read_volatile(addr_of!(_rjem_je_opt_lg_prof_sample)) }).str(" sampled; at exit");
        if plan.growth > 0 {
            l.str(", on growth of ").num(plan.growth.into()).str("%");
        }
        if plan.every > 0 {
            l.str(", every ").num(plan.every.into()).str(" s");
        }
        if signal != 0 {
            l.str(", on signal ").num(signal as u64);
        }
        warn(&l);
    }
    // SAFETY: an fn(void) triple, as pthread_atfork takes; only the child's is needed.
    unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    start_thread();
}

/// Installs the on-demand handler for `signal` if nobody handles it yet; returns the
/// number installed, 0 if none.
fn install_handler(signal: c_int) -> c_int {
    if signal == 0 {
        return 0;
    }
    // SAFETY: sigaction structs are plain C data, all zeroes valid; querying with a
    // NULL new action changes nothing.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    if unsafe { libc::sigaction(signal, null(), &mut old) } != 0 {
        return 0;
    }
    if old.sa_sigaction != libc::SIG_DFL {
        let mut l = Line::new();
        l.str("heap profiling: signal ").num(signal as u64).str(" is already handled in this process; no dumps on demand ");
        l.str("(choose another: ").str(vars::ALLOCSHIM_PROFILE).str("=DIR,signal=RTMIN+N)");
        warn(&l);
        return 0;
    }
    // SAFETY: as above; the handler is async-signal-safe (an atomic store and a
    // futex wake, errno kept).
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = on_signal as extern "C" fn(c_int) as usize;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: a valid action for a real-time signal (the settings checked its range).
    (unsafe { libc::sigaction(signal, &act, null_mut()) } == 0).then_some(signal).unwrap_or(0)
}

extern "C" fn on_signal(_: c_int) {
    let saved = allocshim_select::line::errno();
    WAKE.store(1, Release);
    // SAFETY: FUTEX_WAKE on a live static word; a system call, async-signal-safe.
    unsafe { libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
    allocshim_select::line::set_errno(saved);
}

extern "C" fn in_child() {
    SEQ.store(0, Relaxed);
    WAKE.store(0, Relaxed);
    FAILURES.store(0, Relaxed);
    start_thread();
}

fn start_thread() {
    // The thread takes no signal but ours: a program that waits for its signals in
    // one thread (sigwait) must not find them handled on ours.
    // SAFETY: sigset_t and pthread_attr_t are plain C data initialised by the calls
    // below before use; each call gets live locals.
    unsafe {
        let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = (core::mem::zeroed(), core::mem::zeroed());
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        let mut t: libc::pthread_t = 0;
        if libc::pthread_create(&mut t, &attr, thread_main, null_mut()) != 0 {
            let mut l = Line::new();
            l.str("heap profiling: cannot start its thread; dumps only at exit");
            warn(&l);
        }
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, null_mut());
    }
}

fn now() -> u64 {
    // SAFETY: timespec is plain C data; clock_gettime writes only it.
    let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64
}

fn allocated() -> u64 {
    jemalloc::usage().allocated.unwrap_or(0) as u64
}

extern "C" fn thread_main(_: *mut c_void) -> *mut c_void {
    let plan = plan();
    // SAFETY: naming this thread (visible in top -H) and unmasking our one signal;
    // live locals only.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), c"allocshim-prof".as_ptr());
        if plan.signal != 0 {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, plan.signal);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, null_mut());
        }
    }
    let mut mark = allocated();
    let mut next = now() + u64::from(plan.every);
    loop {
        let second = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: FUTEX_WAIT on a live static word with a relative timeout; returns
        // at once if the word is not 0 (a signal arrived meanwhile).
        unsafe {
            libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 0, &second as *const libc::timespec)
        };
        if WAKE.swap(0, Acquire) != 0 {
            dump("signal");
        }
        if plan.every > 0 && now() >= next {
            dump("every");
            next = now() + u64::from(plan.every);
        }
        if plan.growth > 0 {
            let a = allocated();
            let step = (mark / 100 * u64::from(plan.growth)).max(settings::GROWTH_MIN_BYTES);
            if a >= mark.saturating_add(step) {
                dump("growth");
                mark = a;
            }
        }
    }
}

/// At exit (the library's destructor): the last dump, unless the heap holds less
/// than [`EXIT_MIN_BYTES`] (or one sampling interval): the shells, `env`s and other
/// short commands a server runs would each leave a dump of jemalloc's own ~0.5 MiB.
///
/// # Safety
/// Once, from the destructor, jemalloc chosen.
pub unsafe fn at_exit() {
    if !ON.load(Relaxed) {
        return;
    }
    // SAFETY: as in `on_load`.
    let interval = (1u64 << unsafe { core::ptr::read_volatile(addr_of!(_rjem_je_opt_lg_prof_sample)) }).max(EXIT_MIN_BYTES);
    let a = allocated();
    if a >= interval {
        dump("exit");
    } else if plan().verbose {
        let mut l = Line::new();
        l.str("heap profiling: no dump at exit: ").size(a).str(" allocated, less than ").size(interval);
        warn(&l);
    }
}

/// Writes one dump: `PREFIX.PID.SEQ.WHY.heap`, through a `.tmp` name.
fn dump(why: &str) {
    let plan = plan();
    let seq = SEQ.fetch_add(1, Relaxed);
    let mut name = [0u8; DIR_MAX + NAME_MAX + 64];
    let mut n = 0;
    let mut num = Line::new();
    // SAFETY: getpid cannot fail.
    num.str(".").num(unsafe { libc::getpid() } as u64).str(".").num(seq).str(".").str(why).str(".heap");
    for part in [&plan.prefix[..plan.prefix_len], num.as_bytes()] {
        // Fits: the prefix is at most DIR_MAX + NAME_MAX + 1, the rest below 60.
        name[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let final_len = n;
    name[n..n + 4].copy_from_slice(b".tmp");
    let tmp = name;
    name[final_len] = 0;
    let tmp_ptr: *const c_char = tmp.as_ptr().cast();
    // SAFETY: "prof.dump" takes a `const char *` file name (NUL-terminated: `tmp` was
    // zero-filled past `n`); jemalloc is done with it when mallctl returns.
    let rc = unsafe {
        je::mallctl(c"prof.dump".as_ptr(), null_mut(), null_mut(), (&tmp_ptr as *const *const c_char).cast_mut().cast(), size_of_ptr())
    };
    let e = allocshim_select::line::errno();
    // SAFETY: both NUL-terminated.
    let renamed = rc == 0 && unsafe { libc::rename(tmp_ptr, name.as_ptr().cast()) } == 0;
    let mut l = Line::new();
    if renamed {
        l.str("heap profile ").bytes(&name[..final_len]).str(" (").str(why).str(")");
        warn(&l);
    } else if FAILURES.fetch_add(1, Relaxed) < 3 {
        l.str("heap profile ").bytes(&name[..final_len]).str(" not written: ").str(errno_text(e));
        warn(&l);
        // SAFETY: NUL-terminated; removing what a failed write may have left.
        unsafe { libc::unlink(tmp_ptr) };
    }
}

const fn size_of_ptr() -> usize {
    core::mem::size_of::<*const c_char>()
}
