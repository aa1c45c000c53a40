//! `allocshim profile`: a jemalloc heap profile (from `ALLOCSHIM_PROFILE`, or any
//! jemalloc built with profiling) turned into a flame graph (SVG), a pprof file
//! (`.pb.gz`) and a table of the top allocation sites on stdout. With a second dump
//! as the base, only what grew between the two. `--dump PID` first asks a running
//! process for a dump. For users: docs/profiling.md.
//!
//! `heap` reads the dump, `symbols` symbolizes it against the files its process had
//! mapped, `pprof` writes the pprof format, `trigger` asks a process for a dump;
//! here: the allocator's own frames cut off, the sites summed, the outputs.
mod heap;
mod pprof;
mod symbols;
mod trigger;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use heap::Dump;
use symbols::{Frame, Symbolizer};

#[derive(clap::Args)]
pub struct Args {
    /// The heap profile (`*.heap`), then optionally an earlier one as the base: only
    /// the growth from the base to the profile is shown.
    #[arg(value_name = "DUMP", num_args = 0..=2)]
    files: Vec<PathBuf>,
    /// Ask the running process PID for a profile now (the signal its ALLOCSHIM_PROFILE
    /// names), wait for the file and read it; a file given is then the base.
    #[arg(long, value_name = "PID")]
    dump: Option<u32>,
    /// Write PREFIX.svg and PREFIX.pb.gz [default: the profile's path without .heap,
    /// plus .growth with a base].
    #[arg(long, short, value_name = "PREFIX")]
    output: Option<PathBuf>,
    /// Rows in the table.
    #[arg(long, default_value_t = 20, value_name = "N")]
    top: usize,
    /// Copies of the files the profiled process had mapped, under DIR as on its
    /// machine (DIR/usr/lib/...), for a profile brought from another machine.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
    /// With --dump: how long to wait for the file.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
}

/// One allocation site: its frames (outermost first) and estimated live bytes and
/// objects (negative for the base's), with its pprof locations (leaf first).
struct Site {
    frames: Vec<Frame>,
    bytes: f64,
    objs: f64,
    locations: Vec<u64>,
}

pub fn run(args: Args) -> Result<()> {
    let (dump_path, base_path) = match (args.dump, args.files.as_slice()) {
        (Some(pid), [base]) => (trigger::dump(pid, args.timeout)?, Some(base.clone())),
        (Some(pid), []) => (trigger::dump(pid, args.timeout)?, None),
        (Some(_), _) => bail!("with --dump PID, give at most one file: the base"),
        (None, [dump]) => (dump.clone(), None),
        (None, [dump, base]) => (dump.clone(), Some(base.clone())),
        (None, _) => bail!("give a heap profile (DUMP), optionally a base (DUMP BASE), or --dump PID"),
    };
    let dump = heap::read(&dump_path)?;
    let base = base_path.as_deref().map(heap::read).transpose()?;
    if let Some(b) = &base {
        if b.period != dump.period {
            eprintln!(
                "allocshim profile: note: {} was sampled 1 in {} bytes and {} 1 in {}: the estimates still compare",
                dump.path.display(),
                dump.period,
                b.path.display(),
                b.period
            );
        }
        if let (Some(p), Some(q)) = (pid_of(&dump.path), pid_of(&b.path)) {
            if p != q {
                eprintln!("allocshim profile: note: the profiles come from two processes (pid {p} and {q}): the growth compares them");
            }
        }
    }

    let mut sym = Symbolizer::new(args.binaries.clone());
    let comments = vec![format!("allocshim profile {}", dump.path.display())];
    let mut pb =
        pprof::Builder::new(&[("inuse_objects", "count"), ("inuse_space", "bytes")], ("space", "bytes", dump.period as i64), &comments);
    let mut sites = sites(&dump, "dump", 1.0, &mut sym, &mut pb)?;
    if let Some(b) = &base {
        sites.extend(sites_of_base(b, &mut sym, &mut pb)?);
    }
    for s in &sites {
        pb.profile
            .sample
            .push(pprof::Sample { location_id: s.locations.clone(), value: vec![s.objs.round() as i64, s.bytes.round() as i64] });
    }

    let prefix = args.output.clone().unwrap_or_else(|| default_prefix(&dump.path, base.is_some()));
    let svg = path_with(&prefix, "svg");
    let pbgz = path_with(&prefix, "pb.gz");

    let samples: usize = dump.stacks.iter().map(|s| s.objs as usize).sum();
    let net: f64 = sites.iter().map(|s| s.bytes).sum();
    let mut head = match &base {
        None => format!(
            "{}: {} in use, estimated from {samples} samples (1 in {} sampled)",
            dump.path.display(),
            size(net),
            size(dump.period as f64)
        ),
        Some(b) => {
            format!("{}: {} since {} (1 in {} sampled)", dump.path.display(), signed(net), b.path.display(), size(dump.period as f64))
        }
    };
    if !sym.without_debug.is_empty() {
        let names: Vec<String> = sym.without_debug.iter().map(|p| symbols::name_of(p)).collect();
        head.push_str(&format!(
            "\nwithout debug information (names from symbol tables, no files or lines, no inlined frames): {}",
            names.join(", ")
        ));
    }
    println!("{head}\n");
    print!("{}", table(&sites, net, args.top));

    let title = match &base {
        None => format!("Heap in use: {}", file_name(&dump.path)),
        Some(b) => format!("Heap growth: {} since {}", file_name(&dump.path), file_name(&b.path)),
    };
    match flame_graph(
        &sites,
        &title,
        &format!("{} in all; hover for bytes per frame", if base.is_some() { signed(net) } else { size(net) }),
    )? {
        Some(bytes) => {
            std::fs::write(&svg, bytes).with_context(|| format!("cannot write {} (choose another place with --output)", svg.display()))?
        }
        None => eprintln!("allocshim profile: no flame graph: no allocation site holds more memory than in the base"),
    }
    let encoded = pb.finish().context("compressing the pprof profile")?;
    std::fs::write(&pbgz, encoded).with_context(|| format!("cannot write {} (choose another place with --output)", pbgz.display()))?;
    eprintln!("allocshim profile: wrote {} and {}", svg.display(), pbgz.display());
    Ok(())
}

fn sites_of_base(b: &Dump, sym: &mut Symbolizer, pb: &mut pprof::Builder) -> Result<Vec<Site>> {
    sites(b, "base", -1.0, sym, pb)
}

/// The dump's stacks, symbolized, without the allocator's own frames, with `sign`
/// applied to the estimates; each address gets one pprof location.
fn sites(dump: &Dump, key: &str, sign: f64, sym: &mut Symbolizer, pb: &mut pprof::Builder) -> Result<Vec<Site>> {
    let mut by_addr: HashMap<u64, (Vec<Frame>, u64)> = HashMap::new();
    let mut out = Vec::new();
    for stack in &dump.stacks {
        let (bytes, objs) = stack.estimate(dump.period);
        let addrs = without_allocator(dump, &stack.addrs);
        let mut frames = Vec::new();
        let mut locations = Vec::new();
        for &a in addrs {
            if let std::collections::hash_map::Entry::Vacant(e) = by_addr.entry(a) {
                e.insert(location(dump, key, a, sym, pb)?);
            }
            let (f, loc) = &by_addr[&a];
            frames.extend(f.iter().cloned());
            locations.push(*loc);
        }
        frames.reverse();
        if frames.is_empty() {
            frames.push(Frame { function: "(no stack)".into(), file: None, line: None, object: String::new(), named: false });
        }
        out.push(Site { frames, bytes: sign * bytes, objs: sign * objs, locations });
    }
    Ok(out)
}

/// The frames of address `a` and its pprof location (with its mapping, once per
/// mapping of this dump).
fn location(dump: &Dump, key: &str, a: u64, sym: &mut Symbolizer, pb: &mut pprof::Builder) -> Result<(Vec<Frame>, u64)> {
    let r = sym.resolve(dump, a)?;
    let mapping = match r.map {
        Some(i) => {
            let m = &dump.maps[i];
            let files = r.frames.iter().any(|f| f.file.is_some());
            let proto = pprof::Mapping {
                memory_start: m.start,
                memory_limit: m.end,
                file_offset: m.offset,
                has_functions: true,
                has_filenames: files,
                has_line_numbers: files,
                has_inline_frames: r.frames.len() > 1,
                ..Default::default()
            };
            pb.mapping(&format!("{key}:{i}"), proto, &m.path, "")
        }
        None => 0,
    };
    let lines = r
        .frames
        .iter()
        .map(|f| pprof::Line { function_id: pb.function(&f.function, f.file.as_deref().unwrap_or("")), line: f.line.unwrap_or(0).into() })
        .collect();
    Ok((r.frames, pb.location(mapping, a, lines)))
}

/// The stack without the allocator's frames on top: those in the file that holds the
/// innermost frame (jemalloc's sampler runs in the allocator: liballocshim.so, or a
/// standalone libjemalloc). A stack entirely in one file is kept whole.
fn without_allocator<'a>(dump: &Dump, addrs: &'a [u64]) -> &'a [u64] {
    let file = |a: u64| Symbolizer::map_of(dump, a).map(|i| dump.maps[i].path.as_str());
    let Some(&first) = addrs.first() else { return addrs };
    let top = file(first);
    match addrs.iter().position(|&a| file(a) != top) {
        Some(i) if top.is_some() => &addrs[i..],
        _ => addrs,
    }
}

fn table(sites: &[Site], net: f64, top: usize) -> String {
    let mut flat: HashMap<&str, f64> = HashMap::new();
    let mut cum: HashMap<&str, f64> = HashMap::new();
    let mut place: HashMap<&str, String> = HashMap::new();
    for s in sites {
        if let Some(leaf) = s.frames.last() {
            *flat.entry(&leaf.function).or_default() += s.bytes;
        }
        if let Some(leaf) = s.frames.last().filter(|f| !f.named) {
            // Unnamed (a static function of a stripped file): say which named function
            // it was called from.
            if let Some(caller) = s.frames.iter().rev().find(|f| f.named) {
                place.entry(&leaf.function).or_insert_with(|| format!("{}, called from {}", leaf.object, caller.function));
            }
        }
        let mut seen = HashSet::new();
        for f in &s.frames {
            if seen.insert(f.function.as_str()) {
                *cum.entry(&f.function).or_default() += s.bytes;
            }
            place.entry(&f.function).or_insert_with(|| match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{}:{line}", symbols::name_of(file)),
                (Some(file), None) => symbols::name_of(file),
                _ => f.object.clone(),
            });
        }
    }
    let mut rows: Vec<(&str, f64)> = flat.iter().filter(|(_, v)| v.abs() >= 1.0).map(|(k, v)| (*k, *v)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let pct = |v: f64| if net.abs() > 0.0 { format!("{:.1}%", 100.0 * v / net) } else { "-".into() };
    let mut out = format!("{:>11} {:>6} {:>6} {:>11} {:>6}  {}\n", "flat", "flat%", "sum%", "cum", "cum%", "function (where)");
    let mut sum = 0.0;
    for (name, v) in rows.iter().take(top) {
        sum += v;
        let c = cum.get(name).copied().unwrap_or(0.0);
        let place = if place[name].is_empty() { String::new() } else { format!(" ({})", place[name]) };
        out += &format!("{:>11} {:>6} {:>6} {:>11} {:>6}  {name}{place}\n", size(*v), pct(*v), pct(sum), size(c), pct(c));
    }
    if rows.len() > top {
        out += &format!("({} more functions; --top N for more)\n", rows.len() - top);
    }
    let shrank: f64 = rows.iter().filter(|r| r.1 < 0.0).map(|r| r.1).sum();
    if shrank < 0.0 {
        out += &format!("{} freed since the base in {} functions\n", size(shrank), rows.iter().filter(|r| r.1 < 0.0).count());
    }
    out
}

/// The flame graph of the sites' bytes (with a base, only the stacks that grew); None
/// when nothing is left to draw.
fn flame_graph(sites: &[Site], title: &str, subtitle: &str) -> Result<Option<Vec<u8>>> {
    let mut folded: BTreeMap<String, f64> = BTreeMap::new();
    for s in sites {
        let names: Vec<String> = s.frames.iter().map(|f| f.function.replace(';', ":")).collect();
        *folded.entry(names.join(";")).or_default() += s.bytes;
    }
    let lines: Vec<String> = folded.into_iter().filter(|(_, v)| *v >= 1.0).map(|(k, v)| format!("{k} {}", v.round() as u64)).collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_owned();
    opts.subtitle = Some(subtitle.to_owned());
    opts.count_name = "bytes".into();
    opts.colors = inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg).context("drawing the flame graph")?;
    Ok(Some(svg))
}

fn pid_of(path: &Path) -> Option<u32> {
    // PROGRAM.PID.SEQ.WHY.heap (ours), or PREFIX.PID.SEQ.x.heap (jemalloc's).
    let name = path.file_name()?.to_str()?;
    let parts: Vec<&str> = name.rsplitn(5, '.').collect();
    (parts.len() == 5).then(|| parts[3].parse().ok()).flatten()
}

fn default_prefix(dump: &Path, growth: bool) -> PathBuf {
    let s = dump.to_string_lossy();
    let stem = s.strip_suffix(".heap").unwrap_or(&s);
    PathBuf::from(if growth { format!("{stem}.growth") } else { stem.to_owned() })
}

fn path_with(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn size(b: f64) -> String {
    let a = b.abs();
    let (v, unit) = match a {
        a if a >= (1u64 << 30) as f64 => (a / (1u64 << 30) as f64, "GiB"),
        a if a >= (1u64 << 20) as f64 => (a / (1u64 << 20) as f64, "MiB"),
        a if a >= 1024.0 => (a / 1024.0, "KiB"),
        _ => return format!("{}{} B", if b < 0.0 { "-" } else { "" }, a.round()),
    };
    format!("{}{v:.1} {unit}", if b < 0.0 { "-" } else { "" })
}

fn signed(b: f64) -> String {
    if b >= 0.0 {
        format!("+{}", size(b))
    } else {
        size(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names() {
        assert_eq!(size(512.0), "512 B");
        assert_eq!(size(1536.0), "1.5 KiB");
        assert_eq!(size(-3.0 * 1048576.0), "-3.0 MiB");
        assert_eq!(signed(2048.0), "+2.0 KiB");
        assert_eq!(pid_of(Path::new("/p/ruby.123.4.exit.heap")), Some(123));
        assert_eq!(pid_of(Path::new("/p/jeprof.77.0.f.heap")), Some(77));
        assert_eq!(pid_of(Path::new("x.heap")), None);
        assert_eq!(default_prefix(Path::new("/p/a.1.2.exit.heap"), true), PathBuf::from("/p/a.1.2.exit.growth"));
        assert_eq!(path_with(Path::new("/p/a"), "pb.gz"), PathBuf::from("/p/a.pb.gz"));
    }
}
