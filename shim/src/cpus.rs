//! The CPUs this process may really use (`allocshim_select::cpus` says how they are
//! counted): its affinity mask capped by its cgroup's CPU quota, read from
//! `/proc/self/cgroup` and the cgroup files with raw system calls into buffers on the
//! stack. Used by the low-memory preset, once, in the selecting thread.
use crate::sys::{errno, set_errno};
use allocshim_select::cpus::{self, V1_MOUNTS, V1_PERIOD, V1_QUOTA, V2_FILE, V2_MOUNTS};

/// The affinity mask's CPUs capped by the smallest CPU quota of this process's
/// cgroup or its parents (v2 or v1). Leaves errno as it found it: this may run inside
/// the program's first malloc.
pub fn effective() -> u32 {
    let saved = errno();
    let cpus = count();
    set_errno(saved);
    cpus
}

fn count() -> u32 {
    let mut own = [0u8; 2048];
    let quota = read(&[b"/proc/self/cgroup"], &mut own).and_then(|text| {
        let v2 = cpus::cgroup_path(text, None).and_then(|p| smallest(&V2_MOUNTS, p, quota_v2));
        let v1 = cpus::cgroup_path(text, Some(b"cpu")).and_then(|p| smallest(&V1_MOUNTS, p, quota_v1));
        [v2, v1].into_iter().flatten().min()
    });
    cpus::effective(affinity(), quota)
}

/// The smallest quota `read_one` finds under any of `mounts`, at `path` or a parent.
fn smallest(mounts: &[&str], path: &[u8], read_one: impl Fn(&[u8], &[u8]) -> Option<u32>) -> Option<u32> {
    let mut best: Option<u32> = None;
    for mount in mounts {
        let mut at = Some(path);
        while let Some(p) = at {
            if let Some(q) = read_one(mount.as_bytes(), p) {
                best = Some(best.map_or(q, |b| b.min(q)));
            }
            at = cpus::parent(p);
        }
    }
    best
}

fn quota_v2(mount: &[u8], path: &[u8]) -> Option<u32> {
    let mut buf = [0u8; 64];
    cpus::quota_v2(read(&[mount, trimmed(path), V2_FILE.as_bytes()], &mut buf)?)
}

fn quota_v1(mount: &[u8], path: &[u8]) -> Option<u32> {
    let (mut q, mut p) = ([0u8; 32], [0u8; 32]);
    let quota = read(&[mount, trimmed(path), V1_QUOTA.as_bytes()], &mut q)?;
    cpus::quota_v1(quota, read(&[mount, trimmed(path), V1_PERIOD.as_bytes()], &mut p)?)
}

/// The root cgroup "/" adds nothing to a mount point's path.
fn trimmed(path: &[u8]) -> &[u8] {
    if path == b"/" {
        b""
    } else {
        path
    }
}

/// The CPUs of this thread's affinity mask (the selecting thread's: the process's,
/// before the program could change it).
fn affinity() -> u32 {
    // SAFETY: cpu_set_t is a plain bit array, for which all zeroes is valid.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into
    // `set`, a live local of that size.
    if unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return 0; // unknown: `cpus::effective` makes it 1 unless a quota says more
    }
    // SAFETY: counts the bits of a set sched_getaffinity filled in.
    unsafe { libc::CPU_COUNT(&set) as u32 }
}

/// The start of the file whose path is the concatenation of `parts`, read into `buf`;
/// None if the path does not fit or the file cannot be read.
fn read<'a>(parts: &[&[u8]], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut path = [0u8; 512];
    let mut n = 0;
    for part in parts {
        if n + part.len() >= path.len() {
            return None; // no room for the NUL
        }
        path[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    // SAFETY: `path` is NUL-terminated (zeroed past `n`, and n < its length).
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads at most the rest of `buf`, a live buffer, from our own fd.
        let r = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if r <= 0 {
            break;
        }
        len += r as usize;
    }
    // SAFETY: closes the fd opened above, once.
    unsafe { libc::close(fd) };
    Some(&buf[..len])
}
