//! No server left behind when `compare` itself is stopped. A server and its load run
//! in process groups of their own, so the terminal's Ctrl-C (sent to `compare`'s
//! group) never reaches them, and a SIGTERM to `compare` (from a CI job's timeout, or
//! a script being stopped) would end `compare` without running any destructor. The
//! groups alive at any moment are registered here; on SIGINT, SIGTERM or SIGHUP the
//! handler SIGKILLs them all, then lets the signal end `compare` as it would have.
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::sync::Once;

/// Process groups alive now (0: a free slot). A run has at most three at once: the
/// server, the load, a readiness check.
static GROUPS: [AtomicI32; 8] = [const { AtomicI32::new(0) }; 8];

/// Registers process group `pgid` until `forget`; installs the handler on first use.
pub fn register(pgid: libc::pid_t) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    for slot in &GROUPS {
        if slot.compare_exchange(0, pgid, SeqCst, SeqCst).is_ok() {
            return;
        }
    }
}

pub fn forget(pgid: libc::pid_t) {
    for slot in &GROUPS {
        let _ = slot.compare_exchange(pgid, 0, SeqCst, SeqCst);
    }
}

fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction with a zeroed struct (a valid, empty mask) naming a handler
        // that does only async-signal-safe work (atomic loads, kill, signal, raise).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    for slot in &GROUPS {
        let pgid = slot.load(SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe and touches no memory of ours.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
    // SAFETY: both are async-signal-safe; with the default action restored, raising
    // the signal again ends this process as the signal would have without us.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
