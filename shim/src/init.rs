//! Choosing the backend once per process, before the first allocation it serves.
//!
//! States: UNINIT -> SELECTING (one thread reads the environment and starts the
//! backend) -> READY. Every export dispatches through `ops()`, which until READY is
//! the `BOOT` table: its entries run `ensure()` and then either dispatch again or,
//! while nothing can be chosen yet, serve from the bootstrap arena. After READY the
//! table is the chosen backend's and never changes again; a forked child inherits it,
//! an exec'd program starts over. What the selection recorded (the reason, the preset
//! and the effective options) is read here too, once the choice is published. The
//! library's load and exit hooks, which start the selection at the latest, are
//! `hooks.rs`.
use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};

use allocshim_select::env::Env;
use allocshim_select::line::{warn, Line};
use allocshim_select::preset::{self, Preset};
use allocshim_select::profile::{self, Implied};
use allocshim_select::{rules, scope, vars};

use crate::backend::descriptor::Ops;
use crate::backend::{Backend, BackendExt};
use crate::bootstrap;
use crate::once::{c_string, SelectionCell};
use crate::relocate;
use crate::report;

const UNINIT: u8 = 0;
const SELECTING: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static SELECTOR: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicPtr<Ops> = AtomicPtr::new(&BOOT as *const Ops as *mut Ops);
static CHOSEN: AtomicU8 = AtomicU8::new(Backend::System as u8);
/// Why the chosen backend serves, NUL-terminated for `allocshim_reason`; written by
/// the selection before READY (see `once`).
static REASON: SelectionCell<[u8; 512]> = SelectionCell::new([0; 512]);
/// The preset in force, for `allocshim_preset`; written as REASON is.
static PRESET: SelectionCell<Preset> = SelectionCell::new(Preset::Default);
/// The chosen backend's effective options (`options`), NUL-terminated for
/// `allocshim_options`; written as REASON is.
static OPTIONS: SelectionCell<[u8; 512]> = SelectionCell::new([0; 512]);
static EXIT_STATS: AtomicU8 = AtomicU8::new(0);
/// The global lookup of `malloc` finds ours: the precondition for pre-binding lazy slots.
static INTERPOSED: AtomicBool = AtomicBool::new(false);

/// The entry points of the chosen backend (or of the bootstrap path until then).
#[inline(always)]
pub fn ops() -> &'static Ops {
    // SAFETY: ACTIVE only ever holds the address of a `static Ops` (BOOT, or the
    // chosen backend's table), never NULL: valid and never written for the whole
    // life of the process, whichever of them this load sees.
    unsafe { &*ACTIVE.load(Relaxed) }
}

/// The chosen backend; chooses now if nothing has been chosen yet.
///
/// After it returns, the selection's cells (`once::SelectionCell`) may be read
/// without racing their writes: READY was loaded with Acquire, or `ensure` returned
/// `NotYet`, which it does only in the selecting thread itself (their one writer) or
/// before libc has set up the environment (when the process has one thread and
/// nothing is selecting).
pub fn chosen() -> Backend {
    if STATE.load(Acquire) != READY {
        ensure(None);
    }
    Backend::from_index(CHOSEN.load(Relaxed)).unwrap_or(Backend::System)
}

/// Why the chosen backend serves this process, as a C string.
pub fn reason() -> *const c_char {
    chosen();
    // SAFETY: after `chosen()`, which orders this read after the selection's write
    // (see there). The pointer stays valid: the cell is a static.
    unsafe { REASON.get().as_ptr().cast() }
}

/// The preset in force.
pub fn preset() -> Preset {
    chosen();
    // SAFETY: as in `reason`.
    unsafe { *PRESET.get() }
}

/// The chosen backend's effective options and where each came from, as a C string.
pub fn options() -> *const c_char {
    chosen();
    // SAFETY: as in `reason`.
    unsafe { OPTIONS.get().as_ptr().cast() }
}

/// From the library's initialiser: chooses now with `envp` (the block ld.so passes to
/// initialisers) if nothing chose yet; whether the backend is chosen and started.
pub fn at_load(envp: *const *const c_char) -> bool {
    ensure(Some(envp));
    STATE.load(Acquire) == READY
}

/// Whether a backend is chosen and started (READY).
pub fn ready() -> bool {
    STATE.load(Acquire) == READY
}

/// The selection found that the global lookup of `malloc` finds ours: the
/// precondition for pre-binding lazy PLT slots (`rebind`).
pub fn malloc_is_ours() -> bool {
    INTERPOSED.load(Relaxed)
}

/// `ALLOCSHIM_STATS` asked for the exit report.
pub fn stats_at_exit() -> bool {
    EXIT_STATS.load(Relaxed) != 0
}

enum Ready {
    Yes,
    /// Serve from the bootstrap arena: libc has no environment yet, or this thread is
    /// the one starting the backend.
    NotYet,
}

fn ensure(envp: Option<*const *const c_char>) -> Ready {
    loop {
        match STATE.load(Acquire) {
            READY => return Ready::Yes,
            SELECTING => {
                // SAFETY: pthread_self has no preconditions and cannot fail.
                if SELECTOR.load(Relaxed) == unsafe { libc::pthread_self() } as usize {
                    return Ready::NotYet;
                }
                // SAFETY: sched_yield has no preconditions; its result does not matter.
                unsafe { libc::sched_yield() };
            }
            _ => {
                let env = match envp {
                    // SAFETY: the `envp` ld.so passes to ELF initialisers: a
                    // NULL-terminated block that lives as long as the process.
                    Some(p) => unsafe { Env::from_envp(p) },
                    None => Env::from_libc(),
                };
                let Some(env) = env else { return Ready::NotYet };
                if STATE.compare_exchange(UNINIT, SELECTING, Acquire, Relaxed).is_ok() {
                    // SAFETY: pthread_self has no preconditions and cannot fail.
                    SELECTOR.store(unsafe { libc::pthread_self() } as usize, Relaxed);
                    // SAFETY: this thread just moved STATE from UNINIT to SELECTING, so
                    // it is the one selecting thread, once; READY is stored only below.
                    unsafe { select_and_start(&env) };
                    STATE.store(READY, Release);
                    return Ready::Yes;
                }
            }
        }
    }
}

/// Chooses the backend for `env`, starts it and records the choice (`CHOSEN`, the
/// reason, the preset), then points ACTIVE at its table.
///
/// # Safety
/// Only from the selecting thread (the one that moved STATE to SELECTING), once, and
/// before READY is stored: it writes the selection's cells, which nobody reads until then.
unsafe fn select_and_start(env: &Env) {
    let ours = interposed();
    INTERPOSED.store(ours, Relaxed);
    let mut choice = rules::decide(env, &mut |w| w.print());
    // Heap profiling implies jemalloc where no variable chose a backend; where one
    // chose another, one warning.
    if profile::imply(env, &mut choice) == Implied::Overridden {
        warn(&profile::overridden_line(&choice));
    }
    let (mut backend, mut reason, mut preset) = (choice.backend, choice.reason, preset::read(env, &mut |w| w.print()));
    // Only a process the environment asks something of reads ALLOCSHIM_ONLY/EXCEPT
    // and its own names (nothing of this in plain `system` mode, secure mode included).
    let mut dormant = false;
    if backend != Backend::System || preset != Preset::Default {
        let lists = scope::lists(env, &mut |w| w.print());
        // The names are read only when a list is set (the buffers alone would cost a
        // 1.3 KiB memset at every start).
        if !lists.is_empty() {
            let mut own = scope::Own::new();
            let names = own.read();
            let verdict = lists.judge(&names);
            reason = lists.reason(&verdict, &names, backend, preset, reason.as_bytes());
            dormant = verdict.left_on_system();
        }
        if !dormant && !ours {
            // Not ours to serve: glibc, and no preset either (glibc there is the
            // program's own business). Said only when something was asked and lost.
            let mut l = Line::new();
            l.str("malloc in this process is not liballocshim's (loaded with dlopen, or the program brings its own malloc); passing through to glibc");
            warn(&l);
            reason = l;
            dormant = true;
        }
        if dormant {
            (backend, preset) = (Backend::System, Preset::Default);
        }
    }

    // SAFETY: the selecting thread, before the choice is published (our caller's
    // contract), as `apply` and `start` require; nothing ran the backend's code yet.
    if let Err(refusal) = unsafe {
        relocate::apply(backend);
        backend.start(env, preset)
    } {
        let mut l = Line::new();
        l.bytes(backend.name().to_bytes()).str(" refused: ").str(refusal.why);
        if refusal.limit != 0 {
            l.str(" (limit ").size(refusal.limit as u64).str(")");
        }
        l.str("; using system");
        warn(&l);
        reason.str("; ").bytes(l.as_bytes());
        backend = Backend::System;
        // SAFETY: as above; `system` never refuses.
        let _ = unsafe { backend.start(env, preset) };
    }
    // SAFETY: the selecting thread, `backend` started, the choice not yet published
    // (our caller's contract).
    let options = unsafe { record(backend, env, preset) };

    CHOSEN.store(backend as u8, Relaxed);
    // SAFETY: the selecting thread before the choice is published (our caller's
    // contract); the reference is dropped at the end of the statement.
    c_string(unsafe { REASON.get_mut() }, reason.as_bytes());
    ACTIVE.store(backend.ops() as *const Ops as *mut Ops, Release);

    // `flag` reads nothing in secure mode.
    if rules::flag(env, vars::ALLOCSHIM_VERBOSE, &mut |w| w.print()) {
        report::verbose_choice(backend, reason.as_bytes());
        if !dormant && env.get(vars::ALLOCSHIM_PRESET).is_some_and(|v| !v.trim_ascii().is_empty()) {
            report::verbose_options(preset, options.as_bytes());
        }
    }
    if rules::flag(env, vars::ALLOCSHIM_STATS, &mut |w| w.print()) {
        EXIT_STATS.store(1, Relaxed);
    }
}

/// Records the preset and the effective options of the started backend (for the
/// query API), and returns the options' text (for the verbose line).
///
/// # Safety
/// Only from the selecting thread, after `backend` started, before the choice is published.
unsafe fn record(backend: Backend, env: &Env, preset: Preset) -> Line {
    let mut out = Line::new();
    backend.describe(env, preset, &mut out);
    // SAFETY: the selecting thread before the choice is published (our caller's
    // contract); each reference is the only one to its cell while it is used.
    unsafe {
        *PRESET.get_mut() = preset;
        c_string(OPTIONS.get_mut(), out.as_bytes());
    }
    out
}

/// Whether the process resolves `malloc` to this library. It does not when the
/// library was dlopen'ed after start-up (libc's malloc then serves everything) or
/// when the executable defines malloc itself; in both cases the only safe choice is
/// to pass through to glibc.
fn interposed() -> bool {
    // <dlfcn.h>; not in the libc crate.
    const RTLD_DL_SYMENT: libc::c_int = 1;
    // SAFETY: a lookup of a NUL-terminated name in the global scope; dlsym reads
    // nothing of ours but the name. (If it fails it may call malloc for its error
    // text: from the selecting thread, that is served by the bootstrap arena.)
    let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    if global.is_null() {
        return true; // cannot tell: assume the normal, preloaded case
    }
    // SAFETY: Dl_info is plain C data (pointers and integers), for which all zeroes
    // is a valid value.
    let (mut found, mut ours): (libc::Dl_info, libc::Dl_info) = unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
    let mut sym: *const libc::Elf64_Sym = core::ptr::null();
    // SAFETY: dladdr1 with RTLD_DL_SYMENT writes `found` and, through its last
    // argument, one `const Elf64_Sym *` into `sym`; `global` is non-NULL; all are live
    // locals.
    let found_ok = unsafe { libc::dladdr1(global, &mut found, (&mut sym as *mut *const libc::Elf64_Sym).cast(), RTLD_DL_SYMENT) } != 0;
    // SAFETY: dladdr writes only `ours`, a live local; STATE's address is in this library.
    let ours_ok = unsafe { libc::dladdr(core::ptr::addr_of!(STATE).cast(), &mut ours) } != 0;
    if !found_ok || !ours_ok {
        return true; // cannot tell: assume the normal, preloaded case
    }
    // A non-PIE executable that takes malloc's address exports an undefined `malloc`
    // whose value is its PLT stub; the stub leads to the real definition, which this
    // lookup cannot see. Only a real definition elsewhere is proof of another malloc.
    // SAFETY: dladdr1 succeeded, so a non-NULL `sym` points at the symbol table entry
    // of the loaded object that `global` belongs to, mapped while that object is.
    let defined_elsewhere = found.dli_fbase != ours.dli_fbase && !sym.is_null() && unsafe { (*sym).st_shndx } != 0;
    !defined_elsewhere
}

// ---------------------------------------------------------------------------------
// The table in force until a backend is chosen. Each entry has the contract of the
// `Ops` field it fills, which the exported functions have already established. Once
// `ensure` reports READY (loaded with Acquire, after the Release store that followed
// the store of ACTIVE), `ops()` is the chosen backend's table, never BOOT again.

static BOOT: Ops = Ops {
    malloc: boot_malloc,
    calloc: boot_calloc,
    realloc: boot_realloc,
    free: boot_free,
    memalign: boot_memalign,
    usable_size: boot_usable_size,
};

/// # Safety
/// None beyond `Ops::malloc`'s: any size.
unsafe extern "C" fn boot_malloc(size: usize) -> *mut c_void {
    match ensure(None) {
        // SAFETY: the chosen backend's malloc, given what ours was (any size).
        Ready::Yes => unsafe { (ops().malloc)(size) },
        Ready::NotYet => or_enomem(bootstrap::alloc(size, 16)),
    }
}

/// The exported malloc and calloc leave errno to whatever serves them; so does the arena.
fn or_enomem(p: *mut c_void) -> *mut c_void {
    if p.is_null() {
        crate::sys::set_errno(libc::ENOMEM);
    }
    p
}

/// # Safety
/// As for `Ops::calloc`: `n * size` does not overflow.
unsafe extern "C" fn boot_calloc(n: usize, size: usize) -> *mut c_void {
    match ensure(None) {
        // SAFETY: the chosen backend's calloc, with our caller's guarantee.
        Ready::Yes => unsafe { (ops().calloc)(n, size) },
        Ready::NotYet => or_enomem(bootstrap::alloc(n * size, 16)), // caller checked the product; arena is zeroed
    }
}

/// # Safety
/// As for `Ops::memalign`: `align` is a power of two above `size_of::<usize>()`.
unsafe extern "C" fn boot_memalign(align: usize, size: usize) -> *mut c_void {
    match ensure(None) {
        // SAFETY: the chosen backend's memalign, with our caller's guarantee.
        Ready::Yes => unsafe { (ops().memalign)(align, size) },
        Ready::NotYet => bootstrap::alloc(size, align),
    }
}

// The pointer-taking entries see a pointer that is not from the arena. Once a
// backend is chosen it owns such pointers; before that, only glibc can have made it.
fn owner() -> &'static Ops {
    match ensure(None) {
        Ready::Yes => ops(),
        Ready::NotYet => Backend::System.ops(),
    }
}

/// # Safety
/// As for `Ops::realloc`: `p` is a live block, not NULL and not from the bootstrap
/// arena; `size > 0`.
unsafe extern "C" fn boot_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: `owner()` is the allocator that made `p` (see there); our caller's
    // guarantees are those its realloc needs.
    unsafe { (owner().realloc)(p, size) }
}

/// # Safety
/// As for `Ops::free`: `p` is a live block, not NULL and not from the bootstrap arena.
unsafe extern "C" fn boot_free(p: *mut c_void) {
    // SAFETY: as in `boot_realloc`.
    unsafe { (owner().free)(p) }
}

/// # Safety
/// As for `Ops::usable_size`: `p` is a live block, not NULL and not from the
/// bootstrap arena.
unsafe extern "C" fn boot_usable_size(p: *mut c_void) -> usize {
    // SAFETY: as in `boot_realloc`.
    unsafe { (owner().usable_size)(p) }
}
