//! The environment contract: the name of every variable liballocshim.so, the
//! `allocshim` crate, the `allocshim` command and the buildpack read, written once.
//!
//! Rust code names variables only through these constants (the switches through
//! [`Backend::enable_var`](crate::Backend::enable_var), which is the backend list).
//! The shell scripts cannot import them: the buildpack's start-up scripts ask the
//! command (`allocshim preload --if-enabled`), so they name no selection variable
//! themselves; the build-time variables below are read by `buildpack/artifact.sh`,
//! and listed here so that the whole contract is in one place.
//!
//! Every yes/no variable (the `*_ENABLED` switches, [`ALLOCSHIM_VERBOSE`],
//! [`ALLOCSHIM_STATS`]) takes the one vocabulary of [`rules::switch`](crate::rules::switch).

/// Read by the library and the crate: the backend by name (`jemalloc`, `mimalloc`,
/// `snmalloc`, `system`; any case, blanks around ignored, empty = unset). Wins over
/// the `*_ENABLED` switches. `allocshim run --backend` sets it.
pub const ALLOCSHIM_BACKEND: &str = "ALLOCSHIM_BACKEND";

/// Read by the library and the crate: a switch; on, one line at start naming the
/// backend, its version and why it was chosen. `allocshim run --verbose` sets it.
pub const ALLOCSHIM_VERBOSE: &str = "ALLOCSHIM_VERBOSE";

/// Read by the library: a switch; on, one line of figures at exit.
/// `allocshim run --stats` sets it.
pub const ALLOCSHIM_STATS: &str = "ALLOCSHIM_STATS";

/// Read by the library and the crate when the environment asks for a backend or a
/// preset: the programs that may use it (names and `*` patterns, separated by commas:
/// `ruby,puma*,python3*`); every other program stays on `system`. See `scope`.
pub const ALLOCSHIM_ONLY: &str = "ALLOCSHIM_ONLY";

/// Read with [`ALLOCSHIM_ONLY`]: the programs that never use the backend (same
/// syntax); wins over `ALLOCSHIM_ONLY`. See `scope`.
pub const ALLOCSHIM_EXCEPT: &str = "ALLOCSHIM_EXCEPT";

/// Read by the library (and `allocshim enabled`/`preload`): a named set of allocator
/// options applied to whichever backend serves the process (`default`, `low-memory`;
/// any case; empty = `default`). See `preset`.
pub const ALLOCSHIM_PRESET: &str = "ALLOCSHIM_PRESET";

/// Read by the library under `system` with `ALLOCSHIM_PRESET=low-memory`: seconds
/// between two `malloc_trim(0)` of the preset's trimming helper, to the millisecond
/// (`0.2`; `0`: no helper; unset or empty: the preset's 1). See `preset::trim_interval`.
pub const ALLOCSHIM_TRIM_INTERVAL: &str = "ALLOCSHIM_TRIM_INTERVAL";

/// Read by the library (and `allocshim enabled`/`preload`, `allocshim profile --dump`):
/// jemalloc's heap profiler on, dumps into the directory it names; implies jemalloc
/// when no variable chose a backend. Grammar and defaults: `profile`.
pub const ALLOCSHIM_PROFILE: &str = "ALLOCSHIM_PROFILE";

/// Read by jemalloc's backend in the library when jemalloc is chosen: jemalloc's own
/// options, as a standalone jemalloc reads them. (`_RJEM_MALLOC_CONF` and
/// `MIMALLOC_*` are read by the allocators themselves, not by our code.)
pub const MALLOC_CONF: &str = "MALLOC_CONF";

/// Read by the library when jemalloc is chosen, to tell which options the user set
/// (`ALLOCSHIM_PRESET` gives way to them): the prefixed jemalloc's own variable.
pub const RJEM_MALLOC_CONF: &str = "_RJEM_MALLOC_CONF";

/// Read by the library under `system` with a preset: glibc's own arena limit, which
/// wins over the preset's.
pub const MALLOC_ARENA_MAX: &str = "MALLOC_ARENA_MAX";

/// Read by the library under `system` with a preset: glibc's tunables
/// (`glibc.malloc.*`), which win over the preset's.
pub const GLIBC_TUNABLES: &str = "GLIBC_TUNABLES";

/// Prefix of mimalloc's own option variables (`MIMALLOC_PURGE_DELAY`, ...), which the
/// library checks so that each one the user set wins over the preset's.
pub const MIMALLOC_OPTION_PREFIX: &str = "MIMALLOC_";

/// Read by the command: the path of liballocshim.so, when it is not next to the
/// command or in `../lib` from it.
pub const ALLOCSHIM_LIB: &str = "ALLOCSHIM_LIB";

/// Written by the command (`run`, `preload`), read by ld.so and by `allocshim doctor`.
pub const LD_PRELOAD: &str = "LD_PRELOAD";

/// Build-time config var of the buildpack (`buildpack/obtain.sh`): where the artifact
/// comes from: `auto` (prebuilt when one is listed, else built from source),
/// `prebuilt`, `source`.
pub const ALLOCSHIM_BUILD: &str = "ALLOCSHIM_BUILD";

/// Build-time config var of the buildpack (`buildpack/artifact.sh`): a mirror to
/// download the artifact from (https://, file:// or a directory).
pub const ALLOCSHIM_DIST_URL: &str = "ALLOCSHIM_DIST_URL";

/// Build-time config var of the buildpack: another list of artifacts and checksums.
pub const ALLOCSHIM_ARTIFACTS: &str = "ALLOCSHIM_ARTIFACTS";

/// Build-time config var of the buildpack (`buildpack/toolchain.sh`): where
/// rustup-init is downloaded from for a source build on a machine without Rust.
pub const ALLOCSHIM_RUSTUP_URL: &str = "ALLOCSHIM_RUSTUP_URL";

/// Build-time config vars of the buildpack: version pins, `<BACKEND>_VERSION`
/// (`MIMALLOC_VERSION`, ...) for each backend with a switch.
pub const VERSION_PIN_SUFFIX: &str = "_VERSION";

/// Variables that only change what the library prints, never what it selects.
pub const PRINT_ONLY: [&str; 2] = [ALLOCSHIM_VERBOSE, ALLOCSHIM_STATS];

/// Variables whose effect depends on the program, not only on the environment: the
/// command judges them itself (`allocshim info`, `doctor`) for the program in question.
pub const PER_PROGRAM: [&str; 2] = [ALLOCSHIM_ONLY, ALLOCSHIM_EXCEPT];
