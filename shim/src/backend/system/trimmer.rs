//! glibc under `ALLOCSHIM_PRESET=low-memory`: a helper thread that gives the free pages
//! inside glibc's heaps back to the OS every second (`ALLOCSHIM_TRIM_INTERVAL`), with
//! `malloc_trim(0)` (what Fullstaq Ruby's "malloctrim" builds do after each GC). glibc
//! returns memory on its own only from the top of a heap; a threaded server whose
//! long-lived blocks are spread through its heaps keeps every page it ever touched
//! below them. Measured in docs/servers.md.
//!
//! Started lazily, by the program's first `pthread_create`: the library exports
//! `pthread_create` for that, and in every process that did not ask for trimming the
//! wrapper is one relaxed load and a call to glibc's. A process that never starts a
//! thread (a shell, a short command) never gets the helper: it has one heap, whose top
//! glibc trims itself. A forked child (a Puma or gunicorn worker) has no helper, since
//! fork copies only the calling thread; it starts its own at its own first
//! `pthread_create`. `malloc_trim` takes glibc's arena locks like any malloc call, and
//! glibc's fork takes them all first, so a fork never copies one held by the helper.
//!
//! The helper blocks every signal (an application's handlers never run on it), sleeps
//! with `clock_nanosleep`, allocates nothing itself and holds no lock of ours.
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering::*};

use super::glibc;

/// Milliseconds between two trims, set by the selection when glibc serves the process
/// under a preset that trims; 0: no helper.
static INTERVAL_MS: AtomicU32 = AtomicU32::new(0);
/// The process that started the helper (0: none yet): after a fork, not ours.
static STARTED_IN: AtomicI32 = AtomicI32::new(0);
/// glibc's `pthread_create`, which ours wraps, looked up on first use.
static REAL: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The helper's stack: it calls malloc_trim and sleeps, nothing deeper.
const STACK: usize = 64 * 1024;

type Create = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> c_int;

/// Asks for the helper in this process (and its forked children), trimming every
/// `millis` milliseconds; it starts at the program's next `pthread_create`. Each trim walks
/// glibc's free lists under the arena locks (microseconds on a heap with little free
/// memory) and returns free whole pages with madvise; pages used again fault back in,
/// which is the CPU a shorter interval costs (docs/servers.md).
pub fn want(millis: u32) {
    INTERVAL_MS.store(millis, Relaxed);
}

/// glibc's `pthread_create`, with the helper started first when it is wanted and not
/// running in this process yet.
///
/// # Safety
/// As glibc's `pthread_create`: `thread` writable, `attr` NULL or initialised.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    let Some(real) = real() else { return libc::EAGAIN };
    if INTERVAL_MS.load(Relaxed) != 0 {
        start_helper(real);
    }
    // SAFETY: glibc's pthread_create, with our caller's arguments and contract.
    unsafe { real(thread, attr, start, arg) }
}

fn real() -> Option<Create> {
    let mut f = REAL.load(Relaxed);
    if f.is_null() {
        // SAFETY: a lookup of a NUL-terminated name; the next definition after ours is
        // glibc's (libc.so.6 has held pthread_create since 2.34).
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr()) };
        if f.is_null() {
            return None;
        }
        REAL.store(f, Relaxed);
    }
    // SAFETY: glibc's pthread_create has this type.
    Some(unsafe { core::mem::transmute::<*mut c_void, Create>(f) })
}

/// Starts the helper unless this process already has one (racing first calls agree
/// through STARTED_IN: one of them starts it).
fn start_helper(real: Create) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let seen = STARTED_IN.load(Relaxed);
    if seen == pid || STARTED_IN.compare_exchange(seen, pid, Relaxed, Relaxed).is_err() {
        return;
    }
    // SAFETY: attr and the signal sets are locals initialised by the calls below
    // before use; pthread_sigmask changes only this thread's mask, restored at once.
    // The helper starts with every signal blocked, inheriting the mask in force here.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return;
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, STACK);
        let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = (core::mem::zeroed(), core::mem::zeroed());
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut id: libc::pthread_t = 0;
        let failed = real(&mut id, &attr, helper, core::ptr::null_mut()) != 0;
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if failed {
            STARTED_IN.store(0, Relaxed); // the next pthread_create tries again
        } else {
            libc::pthread_setname_np(id, c"allocshim-trim".as_ptr());
        }
    }
}

extern "C" fn helper(_: *mut c_void) -> *mut c_void {
    let ms = INTERVAL_MS.load(Relaxed);
    let interval = libc::timespec { tv_sec: (ms / 1000) as libc::time_t, tv_nsec: (ms % 1000) as libc::c_long * 1_000_000 };
    loop {
        // SAFETY: a relative sleep on a valid timespec; an interruption just trims early.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &interval, core::ptr::null_mut()) };
        // glibc serves this process: INTERVAL_MS is set only then.
        glibc::malloc_trim(0);
    }
}
