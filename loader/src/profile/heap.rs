//! Reading a jemalloc heap profile (`heap_v2`, the text `prof.dump` writes): the
//! sampling period, each sampled stack with its counts, and the process's memory
//! map (`MAPPED_LIBRARIES:`, a copy of /proc/self/maps) for symbolizing.
//!
//! Every way a file can be wrong (not a heap profile, cut short, a line that does not
//! parse) is an error naming the file, the line and what was expected.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub struct Dump {
    pub path: PathBuf,
    /// Average bytes between samples (`heap_v2/524288`: 2^lg_prof_sample).
    pub period: u64,
    pub stacks: Vec<Stack>,
    pub maps: Vec<Map>,
}

/// One allocation site as sampled: return addresses, innermost first.
pub struct Stack {
    pub addrs: Vec<u64>,
    /// Sampled objects and bytes still live, as jemalloc wrote them.
    pub objs: u64,
    pub bytes: u64,
}

impl Stack {
    /// Estimated live bytes and objects: jemalloc samples one allocation per `period`
    /// bytes on average, so a site of small objects is seen less often than its share.
    /// jeprof's correction (`AdjustSamples`), which jemalloc's unbiased counts are
    /// written to be read with.
    pub fn estimate(&self, period: u64) -> (f64, f64) {
        if self.objs == 0 || self.bytes == 0 {
            return (0.0, 0.0);
        }
        let ratio = (self.bytes as f64 / self.objs as f64) / period as f64;
        let scale = 1.0 / (1.0 - (-ratio).exp());
        (self.bytes as f64 * scale, self.objs as f64 * scale)
    }
}

/// One line of /proc/PID/maps as the process saw it.
#[derive(Clone, Debug)]
pub struct Map {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub inode: u64,
    /// The file (empty for anonymous memory; `[vdso]` and the like for the kernel's).
    pub path: String,
    /// The kernel marked it "(deleted)": replaced or removed since it was mapped.
    pub deleted: bool,
}

impl Map {
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }
}

pub fn read(path: &Path) -> Result<Dump> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Dump> {
    let p = path.display();
    if bytes.is_empty() {
        bail!("{p}: empty file (not a heap profile; was it still being written?)");
    }
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().unwrap_or((1, ""));
    let period = first.strip_prefix("heap_v2/").and_then(|n| n.trim().parse::<u64>().ok()).filter(|&n| n > 0).with_context(|| {
        format!("{p}: not a jemalloc heap profile: it starts with {:?}, expected \"heap_v2/<sampling period>\"", cut(first))
    })?;
    let mut dump = Dump { path: path.to_owned(), period, stacks: Vec::new(), maps: Vec::new() };
    let mut current: Option<Vec<u64>> = None;
    let mut mapped = false;
    for (no, line) in lines.by_ref() {
        let t = line.trim();
        if t == "MAPPED_LIBRARIES:" {
            mapped = true;
            break;
        }
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix('@') {
            if current.is_some() {
                bail!("{p}:{no}: a stack without its counts before it (expected \"t*: <objects>: <bytes> [...]\")");
            }
            let addrs = rest
                .split_ascii_whitespace()
                .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| anyhow::anyhow!("{p}:{no}: expected \"@\" and hexadecimal addresses, found {:?}", cut(t)))?;
            current = Some(addrs);
        } else if let Some(rest) = t.strip_prefix("t*:") {
            let (objs, bytes) = counts(rest)
                .with_context(|| format!("{p}:{no}: expected \"t*: <objects>: <bytes> [<objects>: <bytes>]\", found {:?}", cut(t)))?;
            // The first t*: is the whole heap's, before any stack.
            if let Some(addrs) = current.take() {
                dump.stacks.push(Stack { addrs, objs, bytes });
            }
        } else if t.starts_with('t') && t.contains(':') {
            // Per-thread counts ("t3: 12: 6496 [0: 0] name"): the t*: line already sums them.
        } else {
            bail!("{p}:{no}: unexpected line {:?} in a heap profile", cut(t));
        }
    }
    if current.is_some() {
        bail!("{p}: cut short: the last stack has no counts (the file is truncated)");
    }
    if !mapped {
        bail!("{p}: cut short: no MAPPED_LIBRARIES section, which jemalloc writes last (the file is truncated, or the process died while writing it)");
    }
    if !bytes.ends_with(b"\n") {
        bail!("{p}: cut short: the last line has no end (the file is truncated)");
    }
    for (no, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        dump.maps.push(map_line(line).with_context(|| format!("{p}:{no}: expected a /proc/PID/maps line, found {:?}", cut(line)))?);
    }
    if dump.maps.is_empty() {
        bail!("{p}: cut short: the MAPPED_LIBRARIES section is empty (the file is truncated)");
    }
    Ok(dump)
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

/// " 158: 647172 [0: 0]" -> (158, 647172)
fn counts(s: &str) -> Option<(u64, u64)> {
    let mut w = s.split_ascii_whitespace();
    let objs = w.next()?.strip_suffix(':')?.parse().ok()?;
    let bytes = w.next()?.parse().ok()?;
    Some((objs, bytes))
}

/// "7f72b94dc000-7f72b94f1000 r-xp 00001000 fe:00 1234   /usr/lib/x.so (deleted)"
fn map_line(line: &str) -> Option<Map> {
    let mut rest = line;
    let mut field = || {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        Some(f).filter(|f| !f.is_empty())
    };
    let (range, _perms, offset, _dev, inode) = (field()?, field()?, field()?, field()?, field()?);
    let (start, end) = range.split_once('-')?;
    let mut path = rest.trim().to_owned();
    let deleted = path.ends_with(" (deleted)");
    if deleted {
        path.truncate(path.len() - " (deleted)".len());
    }
    Some(Map {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "heap_v2/524288\n  t*: 3: 100 [0: 0]\n  t0: 3: 100 [0: 0]\n@ 0x10 0x2a\n  t*: 2: 64 [0: 0]\n  t0: 2: 64 [0: 0]\n@\n  t*: 1: 36 [0: 0]\n\nMAPPED_LIBRARIES:\n00400000-00401000 r-xp 00001000 fe:00 42                   /usr/bin/x\n7f00-8f00 rw-p 00000000 00:00 0 \n9000-a000 r-xp 00000000 08:01 7  /lib/y.so (deleted)\n";

    fn err(text: &str) -> String {
        format!("{:#}", parse(Path::new("d.heap"), text.as_bytes()).err().expect("an error"))
    }

    #[test]
    fn reads_stacks_counts_and_maps() {
        let d = parse(Path::new("d.heap"), GOOD.as_bytes()).unwrap();
        assert_eq!(d.period, 524288);
        assert_eq!(d.stacks.len(), 2);
        assert_eq!((d.stacks[0].addrs.clone(), d.stacks[0].objs, d.stacks[0].bytes), (vec![0x10, 0x2a], 2, 64));
        assert!(d.stacks[1].addrs.is_empty());
        assert_eq!(d.maps.len(), 3);
        assert_eq!((d.maps[0].start, d.maps[0].end, d.maps[0].offset, d.maps[0].inode), (0x400000, 0x401000, 0x1000, 42));
        assert_eq!(d.maps[0].path, "/usr/bin/x");
        assert!(!d.maps[1].is_file());
        assert!(d.maps[2].deleted && d.maps[2].path == "/lib/y.so");
    }

    #[test]
    fn estimates_unbias_small_objects_more() {
        let s = Stack { addrs: vec![], objs: 100, bytes: 100 * 4096 };
        let (b, o) = s.estimate(524288);
        assert!((b / (100.0 * 4096.0) - 128.5).abs() < 1.0, "{b}");
        assert!((o / 100.0 - 128.5).abs() < 1.0, "{o}");
        // A sampled object far above the period stands for itself.
        let big = Stack { addrs: vec![], objs: 1, bytes: 64 << 20 };
        assert!((big.estimate(524288).0 - (64u64 << 20) as f64).abs() < 1.0);
    }

    #[test]
    fn bad_input_names_the_file_the_line_and_the_problem() {
        assert!(err("").contains("d.heap: empty file"));
        assert!(err("\u{7f}ELF\u{2}\u{1}").contains("d.heap: not a jemalloc heap profile"));
        assert!(err("heap_v2/x\n").contains("expected \"heap_v2/<sampling period>\""));
        let cut = &GOOD[..GOOD.find("MAPPED").unwrap() - 3];
        assert!(err(cut).contains("d.heap: cut short: no MAPPED_LIBRARIES section"), "{}", err(cut));
        let stackless = "heap_v2/524288\n@ 0x10\n";
        assert!(err(stackless).contains("cut short: the last stack has no counts"));
        assert!(err(&GOOD[..GOOD.len() - 5]).contains("last line has no end"));
        assert!(err(&GOOD.replace("@ 0x10 0x2a", "@ 0x10 zz")).contains("d.heap:4: expected \"@\" and hexadecimal addresses"));
        assert!(err(&GOOD.replace("  t*: 2: 64", "  t*: two: 64")).contains("d.heap:5: expected \"t*: <objects>: <bytes>"));
        assert!(err(&GOOD.replace("9000-a000", "garbage")).contains("d.heap:13: expected a /proc/PID/maps line"));
        assert!(err(&GOOD.replace("@ 0x10 0x2a\n", "@ 0x10 0x2a\n@ 0x1\n")).contains("d.heap:5: a stack without its counts"));
        assert!(err("heap_v2/512\nhello\n").contains("d.heap:2: unexpected line \"hello\""));
    }
}
