//! How a backend reports its effective options (`allocshim_options`, the
//! `ALLOCSHIM_VERBOSE` preset line): `name=value (source), ...`, where the source is
//! the variable the user set it with, the preset, or the backend's default. What each
//! backend sets under `ALLOCSHIM_PRESET`, and how it reads its options back, is in its
//! own module (`backend/<name>.rs`); the values and the measurements behind them:
//! docs/servers.md. Imports nothing of the library.
use allocshim_select::line::Line;
use allocshim_select::preset::Preset;

/// Starts the next option: a separator unless it is the first, then `name=`.
pub fn name<'a>(out: &'a mut Line, name: &str) -> &'a mut Line {
    if !out.is_empty() {
        out.str(", ");
    }
    out.str(name).str("=")
}

/// Ends an option with where its value came from: `user` (the variable that set it),
/// else the preset, else the backend's default.
pub fn source(out: &mut Line, user: Option<&[u8]>, preset: Preset) {
    out.str(" (");
    match user {
        Some(var) => out.bytes(var),
        None if preset != Preset::Default => out.str("preset ").bytes(preset.name().to_bytes()),
        None => out.str("default"),
    };
    out.str(")");
}

/// A signed value (the backends' `-1` means "never", "off").
pub fn signed(out: &mut Line, v: i64) -> &mut Line {
    if v < 0 {
        out.str("-");
    }
    out.num(v.unsigned_abs())
}
