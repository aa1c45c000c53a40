//! Reading the environment without allocating.
//!
//! `std::env` copies values into heap strings, and at our first call libc's
//! `environ` may not be set yet (ld.so switches to the real malloc before libc's
//! initialiser runs). So the environment is a raw `envp` block scanned in place: the
//! one given to our ELF initialiser, or libc's `environ` once it exists. Tests and
//! `allocshim doctor` (which judges another process's environment) use an in-memory
//! block instead ([`Env::from_entries`]).
use core::ffi::{c_char, CStr};
use core::marker::PhantomData;

/// An environment: `NAME=value` entries, read in place.
pub struct Env<'a> {
    block: Block<'a>,
}

enum Block<'a> {
    /// A NULL-terminated array of C strings, as `environ` and `envp`.
    Raw(*const *const c_char, PhantomData<&'a CStr>),
    /// Entries held by the caller.
    Entries(&'a [&'a CStr]),
}

extern "C" {
    static environ: *const *const c_char;
}

impl Env<'static> {
    /// libc's environment, or None while libc has not initialised it yet.
    pub fn from_libc() -> Option<Env<'static>> {
        // SAFETY: a pointer-sized read of libc's `environ`: NULL until libc's
        // initialiser sets it, then changed only by setenv/putenv/clearenv, which
        // POSIX already forbids to race with getenv (and so with this reader).
        let envp = unsafe { environ };
        // SAFETY: libc's environment block is NULL-terminated and its strings live
        // for the process (we never call setenv/putenv while reading it).
        unsafe { Env::from_envp(envp) }
    }

    /// The block at `envp`, or None if `envp` is NULL.
    ///
    /// # Safety
    /// `envp` is NULL or points to a NULL-terminated array of NUL-terminated strings
    /// that stay valid and unchanged for the rest of the process (the `envp` an ELF
    /// initialiser receives, or `environ`).
    pub unsafe fn from_envp(envp: *const *const c_char) -> Option<Env<'static>> {
        (!envp.is_null()).then_some(Env { block: Block::Raw(envp, PhantomData) })
    }
}

impl<'a> Env<'a> {
    /// An environment held in memory, `NAME=value` per entry (no allocation here;
    /// the caller owns the strings). For tests, and for judging an environment other
    /// than this process's.
    pub fn from_entries(entries: &'a [&'a CStr]) -> Env<'a> {
        Env { block: Block::Entries(entries) }
    }

    /// The value of `name` (the first entry that sets it, as `getenv`), borrowed
    /// from the environment block.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        self.get_cstr(name.as_ref()).map(CStr::to_bytes)
    }

    /// The raw C string of the value, for handing to C code (jemalloc's conf).
    pub fn get_c(&self, name: impl AsRef<[u8]>) -> Option<*const c_char> {
        self.get_cstr(name.as_ref()).map(CStr::as_ptr)
    }

    fn get_cstr(&self, name: &[u8]) -> Option<&'a CStr> {
        match self.block {
            Block::Raw(mut p, _) => {
                // SAFETY: `from_envp`'s contract: a NULL-terminated array of C strings
                // valid for 'a. `named` reads an entry only up to its first byte that
                // differs from `name=` (its NUL at the latest), and a match is followed
                // by the value's own NUL.
                unsafe {
                    while !(*p).is_null() {
                        if named(*p, name) {
                            return Some(CStr::from_ptr((*p).add(name.len() + 1)));
                        }
                        p = p.add(1);
                    }
                }
                None
            }
            Block::Entries(entries) => entries.iter().find_map(|e| value(e, name)),
        }
    }
}

/// Whether the C string `entry` starts with `name=`, read byte by byte up to the first
/// difference: the environment is scanned once per variable at every process start, so
/// no entry is measured (strlen) unless it is the one asked for.
///
/// # Safety
/// `entry` points to a NUL-terminated string; `name` holds no NUL byte.
unsafe fn named(entry: *const c_char, name: &[u8]) -> bool {
    let entry = entry.cast::<u8>();
    // SAFETY: each byte read is at most the first one differing from `name` (a NUL
    // differs from every byte of `name`), so no read passes the string's NUL.
    unsafe { name.iter().enumerate().all(|(i, &b)| *entry.add(i) == b) && *entry.add(name.len()) == b'=' }
}

/// A value's decimal digits (1 to 12 of them, nothing else) as a number.
pub(crate) fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 12 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The value part of `entry` if it is `name=...`.
fn value<'a>(entry: &'a CStr, name: &[u8]) -> Option<&'a CStr> {
    let bytes = entry.to_bytes_with_nul();
    if bytes.len() > name.len() + 1 && bytes.starts_with(name) && bytes[name.len()] == b'=' {
        CStr::from_bytes_with_nul(&bytes[name.len() + 1..]).ok()
    } else {
        None
    }
}

/// Setuid/setgid and similar: the kernel's AT_SECURE, which is what `secure_getenv`
/// consults. In that mode the shim reads no configuration at all.
pub fn secure_mode() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_exact_name() {
        let block = [c"JEMALLOC_ENABLED_X=1", c"JEMALLOC=2", c"JEMALLOC_ENABLED=true", c"JEMALLOC_ENABLED=no", c"EMPTY="];
        let env = Env::from_entries(&block);
        assert_eq!(env.get("JEMALLOC_ENABLED"), Some(&b"true"[..]));
        assert_eq!(env.get(b"JEMALLOC"), Some(&b"2"[..]));
        assert_eq!(env.get("EMPTY"), Some(&b""[..]));
        assert_eq!(env.get("MISSING"), None);
        assert_eq!(env.get("JEMALLOC_ENABLED_"), None);
        // SAFETY: the pointer is into `block`, which is alive and NUL-terminated.
        let c = unsafe { CStr::from_ptr(env.get_c("JEMALLOC").unwrap()) };
        assert_eq!(c, c"2");
    }

    #[test]
    fn a_raw_block_reads_the_same() {
        let strings = [c"A=1", c"B=two"];
        let ptrs = [strings[0].as_ptr(), strings[1].as_ptr(), core::ptr::null()];
        // SAFETY: NULL-terminated, and the strings outlive `env` (statics).
        let env = unsafe { Env::from_envp(ptrs.as_ptr()) }.unwrap();
        assert_eq!(env.get("B"), Some(&b"two"[..]));
        assert_eq!(env.get("C"), None);
        // SAFETY: NULL is allowed and gives None.
        assert!(unsafe { Env::from_envp(core::ptr::null()) }.is_none());
    }
}
