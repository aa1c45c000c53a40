//! Where the library is: `ALLOCSHIM_LIB`, next to this binary, `../lib` from it (the
//! layout of a release tarball), or the build tree this binary was built from.
use std::path::{Path, PathBuf};

use allocshim_select::vars::{ALLOCSHIM_LIB, LD_PRELOAD};
use anyhow::{bail, Context, Result};

pub const FILE_NAME: &str = "liballocshim.so";

pub struct Found {
    pub path: PathBuf,
    /// Which rule found it, for `info`.
    pub how: &'static str,
}

pub fn library() -> Result<Found> {
    // An explicit setting is obeyed or refused, never silently replaced by a guess.
    if let Some(v) = std::env::var_os(ALLOCSHIM_LIB) {
        let p = PathBuf::from(&v);
        if !p.is_file() {
            bail!("{ALLOCSHIM_LIB}={} is not a file; point it at {FILE_NAME} or unset it", p.display());
        }
        return found(&p, ALLOCSHIM_LIB);
    }
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let build_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    let candidates = [
        (dir.to_path_buf(), "next to the allocshim binary"),
        (dir.join("../lib"), "../lib from the allocshim binary"),
        (build_tree, "the build tree"),
    ];
    for (d, how) in &candidates {
        let p = d.join(FILE_NAME);
        if p.is_file() {
            return found(&p, how);
        }
    }
    let looked: Vec<String> = candidates.iter().map(|(d, how)| format!("  {} ({how})", d.join(FILE_NAME).display())).collect();
    bail!(
        "cannot find {FILE_NAME}; looked at:\n  {ALLOCSHIM_LIB} (not set)\n{}\nset {ALLOCSHIM_LIB}=/path/to/{FILE_NAME}, or build it with `cargo build --release -p allocshim-shim`",
        looked.join("\n")
    )
}

fn found(p: &Path, how: &'static str) -> Result<Found> {
    // Absolute, so that LD_PRELOAD keeps working after a child changes directory.
    let path = p.canonicalize().with_context(|| format!("cannot resolve {}", p.display()))?;
    preloadable(&path)?;
    Ok(Found { path, how })
}

/// A library given by path (`allocshim preload --lib`), used as given: an absolute
/// path to a file, fit for LD_PRELOAD.
pub fn given(p: &Path) -> Result<Found> {
    if !p.is_absolute() || !p.is_file() {
        bail!("--lib {} is not an absolute path to a file; give the full path of {FILE_NAME}", p.display());
    }
    preloadable(p)?;
    Ok(Found { path: p.to_path_buf(), how: "--lib" })
}

fn preloadable(path: &Path) -> Result<()> {
    if path.to_string_lossy().contains([' ', ':']) {
        bail!("{} contains a space or ':', which {LD_PRELOAD} uses as separators; move the library", path.display());
    }
    Ok(())
}
