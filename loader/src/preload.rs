//! The one `LD_PRELOAD` editor: `allocshim run`, `allocshim preload` (which the
//! buildpack's `.profile.d` and `exec.d` scripts call) and `allocshim doctor` all
//! read and write the list here.
//!
//! The rules:
//! * ld.so splits the list on spaces and colons and skips empty entries; so do we
//!   when reading (other tools leave spaces), but we write `:` only.
//! * The library goes first, so that no library before it can define `malloc`.
//! * Never twice, judged by **file name**: every entry named `liballocshim.so` is
//!   dropped, wherever it is. The same path twice would be harmless, but a second
//!   copy (an older install elsewhere) is loaded as well, defines `malloc` too and
//!   starts its own selection; one process must have one copy, the one we prepend.
//!   A copy renamed to something else is not recognised.
//! * Everything else is kept, in its order, even repeated entries (not ours to judge;
//!   `doctor` points them out).
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::locate;

/// The entries of an `LD_PRELOAD` value, as ld.so reads them.
pub fn entries(value: &OsStr) -> impl Iterator<Item = &OsStr> {
    value.as_bytes().split(|&b| b == b' ' || b == b':').filter(|e| !e.is_empty()).map(OsStr::from_bytes)
}

/// Whether `entry` is a copy of liballocshim.so (by file name).
pub fn is_library(entry: &OsStr) -> bool {
    Path::new(entry).file_name() == Some(OsStr::new(locate::FILE_NAME))
}

/// `existing` with `lib` first, `:`-separated, without other copies of the library.
pub fn prepend(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut out = OsString::from(lib);
    for entry in entries(existing.unwrap_or_default()).filter(|e| !is_library(e)) {
        out.push(":");
        out.push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepended(existing: Option<&str>) -> String {
        prepend(Path::new("/app/vendor/allocshim/lib/liballocshim.so"), existing.map(OsStr::new)).into_string().unwrap()
    }

    #[test]
    fn the_library_goes_first_and_the_rest_stays_in_order() {
        assert_eq!(prepended(None), "/app/vendor/allocshim/lib/liballocshim.so");
        assert_eq!(prepended(Some("")), "/app/vendor/allocshim/lib/liballocshim.so");
        assert_eq!(prepended(Some("/x/libfoo.so")), "/app/vendor/allocshim/lib/liballocshim.so:/x/libfoo.so");
        assert_eq!(
            prepended(Some("/x/libb.so:/x/liba.so:/x/libb.so")),
            "/app/vendor/allocshim/lib/liballocshim.so:/x/libb.so:/x/liba.so:/x/libb.so"
        );
    }

    #[test]
    fn spaces_and_empty_entries_from_other_tools_are_tolerated() {
        assert_eq!(
            prepended(Some(" /x/libfoo.so  /y/libbar.so: :/z/libz.so: ")),
            "/app/vendor/allocshim/lib/liballocshim.so:/x/libfoo.so:/y/libbar.so:/z/libz.so"
        );
        assert_eq!(prepended(Some(" : ")), "/app/vendor/allocshim/lib/liballocshim.so");
    }

    #[test]
    fn the_library_is_never_listed_twice() {
        // Already there by the same path: editing again changes nothing.
        let once = prepended(Some("/x/libfoo.so"));
        assert_eq!(prepended(Some(&once)), once);
        assert_eq!(prepended(Some("/x/libfoo.so:/app/vendor/allocshim/lib/liballocshim.so")), once);
        // An older copy elsewhere, even several, by path or bare name: dropped.
        assert_eq!(prepended(Some("/old/lib/liballocshim.so /x/libfoo.so liballocshim.so")), once);
        // Only the exact file name counts.
        assert_eq!(
            prepended(Some("/x/liballocshim.so.1:/x/libnotallocshim.so")),
            "/app/vendor/allocshim/lib/liballocshim.so:/x/liballocshim.so.1:/x/libnotallocshim.so"
        );
    }

    #[test]
    fn entries_split_like_ld_so() {
        let got: Vec<&OsStr> = entries(OsStr::new(" a:b  c::")).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert!(is_library(OsStr::new("/a/b/liballocshim.so")));
        assert!(is_library(OsStr::new("liballocshim.so")));
        assert!(!is_library(OsStr::new("/a/liballocshim.so/x")));
    }
}
