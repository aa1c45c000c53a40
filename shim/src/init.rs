//! Choosing the backend once per process, before the first allocation it serves.
//!
//! States: UNINIT -> SELECTING (one thread reads the environment and starts the
//! backend) -> READY. Every export dispatches through `ops()`, which until READY is
//! the `BOOT` table: its entries run `ensure()` and then either dispatch again or,
//! while nothing can be chosen yet, serve from the bootstrap arena. After READY the
//! table is the chosen backend's and never changes again; a forked child inherits it,
//! an exec'd program starts over.
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};

use crate::backend::{Backend, BackendExt, Ops};
use crate::bootstrap;
use crate::rebind;
use crate::env::{self, Env};
use crate::report::{self, Line};
use crate::{select, vars};
use allocshim_select::preset::{self, Preset};

const UNINIT: u8 = 0;
const SELECTING: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static SELECTOR: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicPtr<Ops> = AtomicPtr::new(&BOOT as *const Ops as *mut Ops);
static CHOSEN: AtomicU8 = AtomicU8::new(Backend::System as u8);
static mut REASON: Line = Line::new();
static EXIT_STATS: AtomicU8 = AtomicU8::new(0);
/// The global lookup of `malloc` finds ours: the precondition for pre-binding lazy slots.
static INTERPOSED: AtomicBool = AtomicBool::new(false);

/// The entry points of the chosen backend (or of the bootstrap path until then).
#[inline(always)]
pub fn ops() -> &'static Ops {
    unsafe { &*ACTIVE.load(Relaxed) }
}

/// The chosen backend; chooses now if nothing has been chosen yet.
pub fn chosen() -> Backend {
    if STATE.load(Acquire) != READY {
        ensure(None);
    }
    Backend::from_index(CHOSEN.load(Relaxed)).unwrap_or(Backend::System)
}

pub fn reason() -> &'static [u8] {
    chosen();
    unsafe { (*core::ptr::addr_of!(REASON)).as_bytes() }
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
                if SELECTOR.load(Relaxed) == unsafe { libc::pthread_self() } as usize {
                    return Ready::NotYet;
                }
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
                    SELECTOR.store(unsafe { libc::pthread_self() } as usize, Relaxed);
                    unsafe { select_and_start(&env) };
                    STATE.store(READY, Release);
                    return Ready::Yes;
                }
            }
        }
    }
}

unsafe fn select_and_start(env: &Env) {
    let ours = interposed();
    INTERPOSED.store(ours, Relaxed);
    // A process whose malloc is not ours gets no preset either: glibc there is the
    // program's own business.
    let (mut backend, mut reason, preset) = if !env::secure_mode() && !ours {
        let mut l = Line::new();
        l.str("malloc in this process is not liballocshim's (loaded with dlopen, or the program brings its own malloc); passing through to glibc");
        report::warn(&l);
        (Backend::System, l, Preset::Default)
    } else {
        let choice = select::decide(env, &mut |w| w.print());
        (choice.backend, choice.reason, preset::read(env, &mut |w| w.print()))
    };

    if let Err(refusal) = backend.start(env, preset) {
        let mut l = Line::new();
        l.bytes(backend.name().to_bytes()).str(" refused: ").str(refusal.why);
        if refusal.limit != 0 {
            l.str(" (limit ").size(refusal.limit as u64).str(")");
        }
        l.str("; using system");
        report::warn(&l);
        reason.str("; ").bytes(l.as_bytes());
        backend = Backend::System;
        let _ = backend.start(env, preset); // system never refuses
    }
    crate::preset::record(backend, env, preset);

    CHOSEN.store(backend as u8, Relaxed);
    REASON = reason;
    ACTIVE.store(backend.ops() as *const Ops as *mut Ops, Release);

    // `flag` reads nothing in secure mode.
    if select::flag(env, vars::ALLOCSHIM_VERBOSE, &mut |w| w.print()) {
        report::verbose_choice(backend, reason.as_bytes());
        if env.get(vars::ALLOCSHIM_PRESET).is_some_and(|v| !v.trim_ascii().is_empty()) {
            report::verbose_options(preset, crate::preset::options_now());
        }
    }
    if select::flag(env, vars::ALLOCSHIM_STATS, &mut |w| w.print()) {
        EXIT_STATS.store(1, Relaxed);
    }
}


/// Whether the process resolves `malloc` to this library. It does not when the
/// library was dlopen'ed after start-up (libc's malloc then serves everything) or
/// when the executable defines malloc itself; in both cases the only safe choice is
/// to pass through to glibc.
unsafe fn interposed() -> bool {
    const RTLD_DL_SYMENT: libc::c_int = 1; // <dlfcn.h>; not in the libc crate
    let global = libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
    let mut found: libc::Dl_info = core::mem::zeroed();
    let mut sym: *const libc::Elf64_Sym = core::ptr::null();
    let mut ours: libc::Dl_info = core::mem::zeroed();
    if global.is_null()
        || libc::dladdr1(global, &mut found, (&mut sym as *mut *const libc::Elf64_Sym).cast(), RTLD_DL_SYMENT) == 0
        || libc::dladdr(core::ptr::addr_of!(STATE).cast(), &mut ours) == 0
    {
        return true; // cannot tell: assume the normal, preloaded case
    }
    // A non-PIE executable that takes malloc's address exports an undefined `malloc`
    // whose value is its PLT stub; the stub leads to the real definition, which this
    // lookup cannot see. Only a real definition elsewhere is proof of another malloc.
    let defined_elsewhere = found.dli_fbase != ours.dli_fbase && !sym.is_null() && (*sym).st_shndx != 0;
    !defined_elsewhere
}

// ---------------------------------------------------------------------------------
// Load and exit hooks. Written as raw .init_array/.fini_array entries rather than with
// the `ctor` crate because the initialiser needs its `envp` argument (libc's `environ`
// is not guaranteed to be set for it) and an explicit priority: 100 runs before the
// default-priority constructors of anything else linked into this library.

#[used]
#[link_section = ".init_array.00100"]
static ON_LOAD: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = on_load;

extern "C" fn on_load(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    ensure(Some(envp));
    if STATE.load(Acquire) != READY {
        return;
    }
    // Here, not inside the selection: that may run inside a malloc called by ld.so
    // with its locks held, and the walk over the loaded objects takes one of them.
    // A selection that happened earlier is rebound now, before main.
    // SAFETY: the backend is chosen and started (READY), and this is the library's
    // initialiser: this thread holds no ld.so lock but the ones ld.so takes around
    // initialisers, which dl_iterate_phdr and dladdr may take again.
    unsafe { rebind::rebind(chosen(), INTERPOSED.load(Relaxed)) };
}

#[used]
#[link_section = ".fini_array.00100"]
static ON_EXIT: extern "C" fn() = on_exit;

extern "C" fn on_exit() {
    if STATE.load(Acquire) != READY {
        return;
    }
    let backend = chosen();
    if EXIT_STATS.load(Relaxed) != 0 {
        report::exit_stats(backend);
    }
    unsafe { backend.at_exit() };
}

// ---------------------------------------------------------------------------------
// The table in force until a backend is chosen.

static BOOT: Ops = Ops {
    malloc: boot_malloc,
    calloc: boot_calloc,
    realloc: boot_realloc,
    free: boot_free,
    memalign: boot_memalign,
    usable_size: boot_usable_size,
};

unsafe extern "C" fn boot_malloc(size: usize) -> *mut c_void {
    match ensure(None) {
        Ready::Yes => (ops().malloc)(size),
        Ready::NotYet => or_enomem(bootstrap::alloc(size, 16)),
    }
}

/// The exported malloc and calloc leave errno to whatever serves them; so does the arena.
fn or_enomem(p: *mut c_void) -> *mut c_void {
    if p.is_null() {
        unsafe { *libc::__errno_location() = libc::ENOMEM };
    }
    p
}

unsafe extern "C" fn boot_calloc(n: usize, size: usize) -> *mut c_void {
    match ensure(None) {
        Ready::Yes => (ops().calloc)(n, size),
        Ready::NotYet => or_enomem(bootstrap::alloc(n * size, 16)), // caller checked the product; arena is zeroed
    }
}

unsafe extern "C" fn boot_memalign(align: usize, size: usize) -> *mut c_void {
    match ensure(None) {
        Ready::Yes => (ops().memalign)(align, size),
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

unsafe extern "C" fn boot_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    (owner().realloc)(p, size)
}

unsafe extern "C" fn boot_free(p: *mut c_void) {
    (owner().free)(p)
}

unsafe extern "C" fn boot_usable_size(p: *mut c_void) -> usize {
    (owner().usable_size)(p)
}
