//! Reading the environment without allocating.
//!
//! `std::env` copies values into heap strings, and at our first call libc's
//! `environ` may not be set yet (ld.so switches to the real malloc before libc's
//! initialiser runs). So the environment is a raw `envp` block scanned in place: the
//! one given to our ELF initialiser, or libc's `environ` once it exists.
use core::ffi::c_char;

pub struct Env {
    envp: *const *const c_char,
}

extern "C" {
    static environ: *const *const c_char;
}

impl Env {
    /// libc's environment, or None while libc has not initialised it yet.
    pub fn from_libc() -> Option<Env> {
        let envp = unsafe { environ };
        (!envp.is_null()).then_some(Env { envp })
    }

    pub fn from_envp(envp: *const *const c_char) -> Option<Env> {
        (!envp.is_null()).then_some(Env { envp })
    }

    /// The value of `name`, borrowed from the environment block.
    pub fn get(&self, name: &[u8]) -> Option<&'static [u8]> {
        let mut p = self.envp;
        unsafe {
            while !(*p).is_null() {
                let entry = cstr_bytes(*p);
                if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                    return Some(&entry[name.len() + 1..]);
                }
                p = p.add(1);
            }
        }
        None
    }

    /// The raw C string of the value, for handing to C code (jemalloc's conf).
    pub fn get_c(&self, name: &[u8]) -> Option<*const c_char> {
        self.get(name).map(|v| v.as_ptr().cast())
    }
}

/// Setuid/setgid and similar: the kernel's AT_SECURE, which is what `secure_getenv`
/// consults. In that mode the shim reads no configuration at all.
pub fn secure_mode() -> bool {
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

unsafe fn cstr_bytes(p: *const c_char) -> &'static [u8] {
    core::slice::from_raw_parts(p.cast(), libc::strlen(p))
}
