//! What liballocshim.so and the `allocshim` crate both read from each backend,
//! written once: the version compiled in (`VERSION`, from the headers at build time,
//! build.rs), its [`Usage`] figures as `allocshim_select::usage` defines them
//! (`usage`), and jemalloc's `mallctl` helpers.
//!
//! One module per backend, behind the feature of the same name; `system` always.
//! `no_std` and allocation-free: the library calls this from `malloc_stats`, its
//! exit report and `allocshim_usage`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub use allocshim_select::usage::Usage;

/// A build script's version variable as a C string (checked at compile time).
macro_rules! c_version {
    ($var:literal) => {
        match core::ffi::CStr::from_bytes_with_nul(concat!(env!($var), "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("a version with a NUL in it"),
        }
    };
}

#[cfg(feature = "jemalloc")]
pub mod jemalloc {
    //! jemalloc (tikv-jemalloc-sys's prefixed build).
    use core::ffi::{c_int, CStr};
    use core::mem::{size_of, MaybeUninit};
    use core::ptr::null_mut;

    use tikv_jemalloc_sys as je;

    use super::Usage;

    /// The release compiled in, e.g. "5.3.1" (JEMALLOC_VERSION of its header).
    pub const VERSION: &CStr = c_version!("ALLOCSHIM_JEMALLOC_VERSION");

    /// The value of the control `name`, or None if mallctl refuses it (or it is
    /// not `T`'s size). Initialises jemalloc if nothing did yet.
    ///
    /// # Safety
    /// `T` is the C type of the control (every bit pattern jemalloc writes for it is
    /// a valid `T`: `size_t` -> `usize`, `uint64_t` -> `u64`, `bool` -> `bool`, ...).
    pub unsafe fn read<T: Copy>(name: &CStr) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        let mut len = size_of::<T>();
        // SAFETY: `name` is NUL-terminated; mallctl writes at most `len` bytes to `v`
        // whatever the control (a size mismatch copies no more and fails with EINVAL:
        // ctl.c `READ`), and reads no new value (NULL, 0).
        let rc: c_int = unsafe { je::mallctl(name.as_ptr(), v.as_mut_ptr().cast(), &mut len, null_mut(), 0) };
        // SAFETY: success with the full length: jemalloc wrote a whole value of the
        // control's type, which is `T` (our contract).
        (rc == 0 && len == size_of::<T>()).then(|| unsafe { v.assume_init() })
    }

    /// Runs the control `name`, which neither reads nor writes a value (e.g.
    /// "arena.4096.purge"); true if jemalloc did.
    pub fn run(name: &CStr) -> bool {
        // SAFETY: `name` is NUL-terminated; no old value asked for, none given (all
        // NULL/0), so mallctl touches no memory of ours.
        unsafe { je::mallctl(name.as_ptr(), null_mut(), null_mut(), null_mut(), 0) == 0 }
    }

    /// Refreshes jemalloc's cached statistics (the `epoch` control).
    pub fn refresh() {
        let mut epoch: u64 = 1;
        let mut len = size_of::<u64>();
        // SAFETY: "epoch" reads and writes a `uint64_t`: `epoch` is one, both lengths
        // say so, and mallctl is done with both pointers when it returns.
        unsafe { je::mallctl(c"epoch".as_ptr(), (&mut epoch as *mut u64).cast(), &mut len, (&mut epoch as *mut u64).cast(), len) };
    }

    /// `stats.allocated` and `stats.resident`, just refreshed.
    pub fn usage() -> Usage {
        refresh();
        // SAFETY: both statistics are `size_t`.
        unsafe { Usage { allocated: read::<usize>(c"stats.allocated"), resident: read::<usize>(c"stats.resident") } }
    }
}

#[cfg(feature = "mimalloc")]
pub mod mimalloc {
    //! mimalloc (libmimalloc-sys; the 2.x or 3.x line, as the dependent chose).
    use core::ffi::CStr;

    use super::Usage;

    /// The release compiled in, e.g. "2.3.2" (MI_MALLOC_VERSION of its header, which
    /// is what `mi_version()` returns).
    pub const VERSION: &CStr = c_version!("ALLOCSHIM_MIMALLOC_VERSION");

    /// Neither figure. mimalloc keeps no count of live bytes in release builds, and
    /// the only memory figure it keeps, `committed` (what `mi_process_info` reports as
    /// both commit and RSS on Linux), counts whole arenas it commits eagerly when the
    /// OS overcommits: 1 GiB after the first allocation, untouched, whatever the
    /// program uses (measured: 1.0 GiB "committed" at 66 MiB peak RSS).
    pub fn usage() -> Usage {
        Usage::default()
    }
}

#[cfg(feature = "snmalloc")]
pub mod snmalloc {
    //! snmalloc (snmalloc-sys).
    use core::ffi::CStr;

    use snmalloc_sys as sn;

    use super::Usage;

    /// snmalloc has no version API: that of snmalloc-sys, which follows upstream's
    /// numbering, as the build's Cargo.lock names it.
    pub const VERSION: &CStr = c_version!("ALLOCSHIM_SNMALLOC_VERSION");

    /// snmalloc's own (current, peak) bytes of memory it holds from the OS for its
    /// chunks: its `resident` figure and the highest it reached.
    pub fn statistics() -> (usize, usize) {
        let (mut current, mut peak) = (0usize, 0usize);
        // SAFETY: sn_rust_statistics writes one `size_t` through each pointer, both live
        // locals of that type; it reads two global counters and starts nothing.
        unsafe { sn::sn_rust_statistics(&mut current, &mut peak) };
        (current, peak)
    }

    /// snmalloc counts memory it holds, not live bytes.
    pub fn usage() -> Usage {
        Usage { allocated: None, resident: Some(statistics().0) }
    }
}

pub mod system {
    //! The C library's allocator (glibc).
    use core::ffi::{c_char, CStr};

    use super::Usage;

    extern "C" {
        fn gnu_get_libc_version() -> *const c_char;
    }

    /// glibc's version, e.g. "2.36" (the glibc running, not the one built against).
    pub fn version() -> &'static CStr {
        // SAFETY: gnu_get_libc_version takes nothing and returns glibc's constant,
        // NUL-terminated version string, which lives as long as the process.
        unsafe { CStr::from_ptr(gnu_get_libc_version()) }
    }

    /// The figures in what glibc's `mallinfo2()` returned (the caller reaches glibc's
    /// own: the library through `dlsym(RTLD_NEXT)`, past its own export): bytes in use
    /// in the heaps plus mmapped blocks; bytes the heaps took from the OS plus
    /// mmapped blocks.
    pub fn usage(m: &libc::mallinfo2) -> Usage {
        Usage { allocated: Some(m.uordblks + m.hblkhd), resident: Some(m.arena + m.hblkhd) }
    }
}
