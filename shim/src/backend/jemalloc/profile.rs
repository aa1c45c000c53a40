//! Heap profiling (`ALLOCSHIM_PROFILE`): jemalloc's sampler, compiled in and dormant
//! unless asked for, and the dumps: at exit, on growth, periodically and on a signal.
//!
//! * At selection (`conf`): the settings are read (`allocshim_select::profile`), the
//!   directory made and proved writable (a probe file, profile.c), and jemalloc's
//!   options `prof:true,prof_active:false,prof_prefix:DIR/PROGRAM` handed to
//!   `conf::merged`, before the user's `MALLOC_CONF`, which wins
//!   option by option.
//! * At the library's initialiser (`on_load`), never inside malloc: the unwinder is
//!   loaded (unwind.c), sampling started (`prof.active`), and profile.c installs the
//!   signal handler (only if nobody handles that signal yet) and starts one thread that
//!   waits for the signal and checks the growth every second. A forked child starts
//!   its own (`pthread_atfork`).
//! * At exit (`at_exit`): a last dump, unless the heap holds less than
//!   [`EXIT_MIN_BYTES`].
//!
//! Each dump is `DIR/PROGRAM.PID.SEQ.WHY.heap` (WHY: exit, growth, every, signal),
//! written by jemalloc (`prof.dump`) under a `.tmp` name and renamed, so a reader never
//! sees half a file. Nothing here runs on the malloc path; a failure to write is a
//! warning line, never a crash. The run time is C (profile.c) so that its libc calls
//! are bound lazily, costing nothing in processes that do not profile. For users:
//! docs/profiling.md.
use core::ffi::{c_char, c_int, CStr};
use core::ptr::{addr_of, null_mut};
use core::sync::atomic::{AtomicBool, Ordering::*};

use allocshim_select::env::Env;
use allocshim_select::line::{warn, Line};
use allocshim_select::profile::{self as settings, Signal};
use allocshim_select::{rules, vars};
use tikv_jemalloc_sys as je;

use crate::once::SelectionCell;

extern "C" {
    // unwind.c
    fn allocshim_unwinder_load() -> *const c_char;
    // profile.c
    fn allocshim_prof_prepare(dir: *const c_char, dir_len: usize, out: *mut c_char, out_cap: usize) -> *const c_char;
    fn allocshim_prof_signal(kind: c_int, n: c_int) -> c_int;
    fn allocshim_prof_start(signal: c_int, every: u32, growth: u32) -> c_int;
    fn allocshim_prof_exit(min: u64, held: *mut u64) -> c_int;
    // jemalloc.c's option variables (`bool`, `size_t`).
    static _rjem_je_opt_prof: bool;
    static _rjem_je_opt_lg_prof_sample: usize;
}

/// A process holding less than this at exit writes no exit dump: the shells, `env`s
/// and other short commands a server runs would each leave one of jemalloc's own
/// ~0.5 MiB.
pub const EXIT_MIN_BYTES: u64 = 2 << 20;

/// What the selection decided, read by `on_load` and `at_exit`.
struct Plan {
    every: u32,
    growth: u32,
    /// The signal's number; 0: none.
    signal: c_int,
    verbose: bool,
    /// The user's MALLOC_CONF sets prof_active: theirs stands.
    user_active: bool,
}

const CONF_PREFIX: &[u8] = b"prof:true,prof_active:false,prof_prefix:";
const CONF_CAP: usize = 640;

static ON: AtomicBool = AtomicBool::new(false);
static PLAN: SelectionCell<Plan> = SelectionCell::new(Plan { every: 0, growth: 0, signal: 0, verbose: false, user_active: false });
/// CONF_PREFIX, then the dumps' prefix (DIR/PROGRAM): jemalloc's options.
static CONF: SelectionCell<[u8; CONF_CAP]> = SelectionCell::new([0; CONF_CAP]);

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
    conf[..CONF_PREFIX.len()].copy_from_slice(CONF_PREFIX);
    let out = &mut conf[CONF_PREFIX.len()..];
    // SAFETY: `s.dir` is `dir_len` readable bytes; `out` is `out.len()` writable ones,
    // which profile.c fills with a NUL-terminated string or leaves alone; the message
    // returned is a static string.
    let why = unsafe { allocshim_prof_prepare(s.dir.as_ptr().cast(), s.dir.len(), out.as_mut_ptr().cast(), out.len()) };
    if !why.is_null() {
        let mut l = Line::new();
        l.str(vars::ALLOCSHIM_PROFILE).str(": cannot write heap profiles to ").bytes(s.dir).str(": ");
        // SAFETY: a NUL-terminated static message from profile.c.
        l.bytes(unsafe { CStr::from_ptr(why) }.to_bytes()).str("; profiling off");
        warn(&l);
        return None;
    }
    let len = CONF_PREFIX.len() + out.iter().position(|&b| b == 0).unwrap_or(0);
    plan.every = s.every;
    plan.growth = s.growth;
    plan.signal = s.signal.map_or(0, |sig| {
        let (kind, n) = match sig {
            Signal::RtMin(k) => (0, k),
            Signal::RtMax(k) => (1, k),
            Signal::Number(n) => (2, n),
        };
        // SAFETY: a pure computation on its arguments.
        unsafe { allocshim_prof_signal(kind, n.into()) }
    });
    plan.verbose = rules::flag(env, vars::ALLOCSHIM_VERBOSE, &mut |_| {});
    let sets_active = |v: &[u8]| v.split(|&b| b == b',').any(|pair| pair.trim_ascii().starts_with(b"prof_active:"));
    plan.user_active = [vars::MALLOC_CONF, vars::RJEM_MALLOC_CONF].iter().any(|v| env.get(v).is_some_and(sets_active));
    ON.store(true, Relaxed);
    Some(&conf[..len])
}

fn plan() -> &'static Plan {
    // SAFETY: called only once profiling is on, i.e. after the selection published
    // its choice (from the initialiser and at exit): no writer any more.
    unsafe { PLAN.get() }
}

fn lg_sample() -> usize {
    // SAFETY: a `size_t` written while jemalloc parsed its options, final since.
    unsafe { core::ptr::read_volatile(addr_of!(_rjem_je_opt_lg_prof_sample)) }
}

/// From the library's initialiser, jemalloc chosen and started: loads the unwinder
/// wherever jemalloc samples (also for a plain `MALLOC_CONF=prof:true`), and with
/// `ALLOCSHIM_PROFILE` starts sampling, the signal handler and the dump thread.
pub fn on_load() {
    // SAFETY: a `bool` written while jemalloc parsed its options, final since.
    if !unsafe { core::ptr::read_volatile(addr_of!(_rjem_je_opt_prof)) } {
        // The user's own MALLOC_CONF=prof:false won over ours: nothing to dump.
        ON.store(false, Relaxed);
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
    // SAFETY: the initialiser, once, after jemalloc started; profile.c's contract.
    let signal = unsafe { allocshim_prof_start(plan.signal, plan.every, plan.growth) };
    if signal < 0 {
        let mut l = Line::new();
        l.str("heap profiling: signal ").num(plan.signal as u64).str(" is already handled in this process; no dumps on demand ");
        l.str("(choose another: ").str(vars::ALLOCSHIM_PROFILE).str("=DIR,signal=RTMIN+N)");
        warn(&l);
    }
    if plan.verbose {
        let mut l = Line::new();
        l.str("heap profiling: 1 in ").size(1u64 << lg_sample()).str(" sampled; dumps at exit");
        if plan.growth > 0 {
            l.str(", on growth of ").num(plan.growth.into()).str("%");
        }
        if plan.every > 0 {
            l.str(", every ").num(plan.every.into()).str(" s");
        }
        if signal > 0 {
            l.str(", on signal ").num(signal as u64);
        }
        warn(&l);
    }
}

/// At exit (the library's destructor): the last dump, unless the heap holds less
/// than [`EXIT_MIN_BYTES`] (or one sampling interval).
///
/// # Safety
/// Once, from the destructor, jemalloc chosen.
pub unsafe fn at_exit() {
    if !ON.load(Relaxed) {
        return;
    }
    let min = (1u64 << lg_sample()).max(EXIT_MIN_BYTES);
    let mut held = 0;
    // SAFETY: profile.c's exit hook, with a live local for the figure.
    if unsafe { allocshim_prof_exit(min, &mut held) } == 0 && plan().verbose {
        let mut l = Line::new();
        l.str("heap profiling: no dump at exit: ").size(held).str(" allocated, less than ").size(min);
        warn(&l);
    }
}
