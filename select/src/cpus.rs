//! How many CPUs a process may really use: the CPUs of its affinity mask, capped by
//! the CPU quota of its cgroup (cgroup v2 `cpu.max`, cgroup v1 `cpu.cfs_quota_us` over
//! `cpu.cfs_period_us`), on its own cgroup or any parent. A dyno or pod on a large
//! host sees all the host's CPUs in `sysconf(_SC_NPROCESSORS_ONLN)`, which is what
//! jemalloc sizes its arenas by (4 per CPU): dozens of arenas, each holding its own
//! free pages, in a container that may run on one or two CPUs' worth of time.
//!
//! This module only reads the files' text; the library does the reading
//! (`shim/src/cpus.rs`), without allocating, and tests give it text in memory.

/// The files and mount points read, in order: cgroup v2 (unified, and hybrid
/// layouts), then cgroup v1's cpu controller (joined with cpuacct, or alone).
pub const V2_MOUNTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
pub const V1_MOUNTS: [&str; 2] = ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"];
pub const V2_FILE: &str = "/cpu.max";
pub const V1_QUOTA: &str = "/cpu.cfs_quota_us";
pub const V1_PERIOD: &str = "/cpu.cfs_period_us";

/// CPUs from a quota of `quota` µs of CPU time per `period` µs: rounded up (1.5 CPUs
/// of time keep two threads busy), at least 1. None for no quota (negative) or a
/// period of 0.
pub fn from_quota(quota: i64, period: i64) -> Option<u32> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    Some(u32::try_from((quota + period - 1) / period).unwrap_or(u32::MAX).max(1))
}

/// cgroup v2's `cpu.max`: "QUOTA PERIOD" ("150000 100000"), or "max PERIOD" for none.
#[inline(never)]
#[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
pub fn quota_v2(cpu_max: &[u8]) -> Option<u32> {
    let mut words = cpu_max.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
    let (quota, period) = (words.next()?, words.next()?);
    from_quota(number(quota)?, number(period)?)
}

/// cgroup v1's `cpu.cfs_quota_us` ("-1" for none) and `cpu.cfs_period_us`.
#[inline(never)]
#[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
pub fn quota_v1(quota: &[u8], period: &[u8]) -> Option<u32> {
    from_quota(number(quota.trim_ascii())?, number(period.trim_ascii())?)
}

/// The path of this process's cgroup in `/proc/self/cgroup`: the v2 one ("0::/PATH")
/// when `v1_controller` is None, else the v1 hierarchy whose controllers include it
/// ("4:cpu,cpuacct:/PATH").
pub fn cgroup_path<'a>(proc_cgroup: &'a [u8], v1_controller: Option<&[u8]>) -> Option<&'a [u8]> {
    for line in proc_cgroup.split(|&b| b == b'\n') {
        let mut fields = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let matches = match v1_controller {
            None => id == b"0" && controllers.is_empty(),
            Some(c) => controllers.split(|&b| b == b',').any(|x| x == c),
        };
        if matches && path.first() == Some(&b'/') {
            return Some(path);
        }
    }
    None
}

/// The parent of a cgroup path ("/a/b" -> "/a", "/a" -> "/"), None at the root.
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" || path.is_empty() {
        return None;
    }
    let cut = path.iter().rposition(|&b| b == b'/')?;
    Some(if cut == 0 { b"/" } else { &path[..cut] })
}

/// The effective CPU count: the affinity mask's, capped by the smallest quota found.
pub fn effective(affinity: u32, quota: Option<u32>) -> u32 {
    let cpus = affinity.max(1);
    quota.map_or(cpus, |q| cpus.min(q))
}

fn number(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 18 {
        return None;
    }
    let v = digits.iter().fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_quotas() {
        assert_eq!(quota_v2(b"max 100000\n"), None);
        assert_eq!(quota_v2(b"100000 100000\n"), Some(1));
        assert_eq!(quota_v2(b"150000 100000\n"), Some(2), "1.5 CPUs of time: 2");
        assert_eq!(quota_v2(b"800000 100000"), Some(8));
        assert_eq!(quota_v2(b"1000 100000"), Some(1), "a sliver of a CPU is still one");
        assert_eq!(quota_v2(b""), None);
        assert_eq!(quota_v2(b"garbage"), None);
    }

    #[test]
    fn v1_quotas() {
        assert_eq!(quota_v1(b"-1\n", b"100000\n"), None);
        assert_eq!(quota_v1(b"50000\n", b"100000\n"), Some(1));
        assert_eq!(quota_v1(b"400000\n", b"100000\n"), Some(4));
        assert_eq!(quota_v1(b"400000\n", b"0\n"), None);
        assert_eq!(quota_v1(b"x", b"100000"), None);
    }

    #[test]
    fn the_process_cgroup_is_found() {
        let hybrid = b"12:memory:/m\n4:cpu,cpuacct:/dyno/web.1\n0::/system.slice/x.scope\n";
        assert_eq!(cgroup_path(hybrid, Some(b"cpu")), Some(&b"/dyno/web.1"[..]));
        assert_eq!(cgroup_path(hybrid, Some(b"cpuacct")), Some(&b"/dyno/web.1"[..]));
        assert_eq!(cgroup_path(hybrid, None), Some(&b"/system.slice/x.scope"[..]));
        assert_eq!(cgroup_path(b"0::/\n", None), Some(&b"/"[..]));
        assert_eq!(cgroup_path(b"0::/\n", Some(b"cpu")), None);
        assert_eq!(cgroup_path(b"1:cpuset:/\n", Some(b"cpu")), None, "cpuset is not cpu");
    }

    #[test]
    fn parents_up_to_the_root() {
        assert_eq!(parent(b"/a/b"), Some(&b"/a"[..]));
        assert_eq!(parent(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent(b"/"), None);
    }

    #[test]
    fn the_smaller_of_affinity_and_quota() {
        assert_eq!(effective(64, Some(2)), 2);
        assert_eq!(effective(2, Some(8)), 2);
        assert_eq!(effective(4, None), 4);
        assert_eq!(effective(0, None), 1);
    }
}
