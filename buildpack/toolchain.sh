# shellcheck shell=bash
# Sourced by bin/compile and bin/build: a Rust toolchain for the source build, of the
# version rust-toolchain.toml pins. cargo and rustc from PATH when they are that
# version; otherwise a minimal toolchain that rustup-init installs into the build cache
# (never on the app's PATH, never in the slug). The caller defines `config NAME` and
# sets `buildpack` and `arch`.
# shellcheck disable=SC2154 # arch and buildpack are the caller's

# rustup-init is downloaded from here (ALLOCSHIM_RUSTUP_URL replaces it: a mirror,
# file:// or a directory, with <triple>/rustup-init and rustup-init.sha256 inside).
readonly TOOLCHAIN_RUSTUP_VERSION=1.29.0
readonly TOOLCHAIN_RUSTUP_URL="https://static.rust-lang.org/rustup/archive/$TOOLCHAIN_RUSTUP_VERSION"
# Its SHA-256 per target, pinned: as published beside it there (read 2026-11-30; the
# x86_64 one is also that of the rustup 1.29.0 the development machines run). A
# download from ALLOCSHIM_RUSTUP_URL, which may serve another build, is checked against
# the checksum published beside it in that mirror instead.
declare -rA TOOLCHAIN_RUSTUP_SHA256=(
    [x86_64-unknown-linux-gnu]=4acc9acc76d5079515b46346a485974457b5a79893cfb01112423c89aeb5aa10
    [aarch64-unknown-linux-gnu]=9732d6c5e2a098d3521fca8145d826ae0aaa067ef2385ead08e6feac88fa5792
)

# The version rust-toolchain.toml pins, e.g. 1.95.0.
toolchain::pin() {
    sed -n 's/^channel *= *"\(.*\)"/\1/p' "$buildpack/rust-toolchain.toml"
}

# Whether the cargo and rustc on PATH are version $1 (asked from inside the repository,
# where a rustup proxy honours rust-toolchain.toml; never letting rustup download).
toolchain::satisfies() {
    local pin="$1"
    command -v cargo >/dev/null && command -v rustc >/dev/null || return 1
    [[ "$(cd "$buildpack" && RUSTUP_AUTO_INSTALL=0 cargo --version 2>/dev/null)" == "cargo $pin "* ]] &&
        [[ "$(cd "$buildpack" && RUSTUP_AUTO_INSTALL=0 rustc --version 2>/dev/null)" == "rustc $pin "* ]]
}

# Makes `cargo` of the pinned version available to this build: exports CARGO_HOME (the
# registry cache, and the rustup install if any, under $1) and, for a rustup install,
# RUSTUP_HOME and PATH. $2 is the build log.
toolchain::ensure() {
    local cache_root="$1" log="$2" pin start
    pin="$(toolchain::pin)"
    [[ -n "$pin" ]] || output::error "no channel in $buildpack/rust-toolchain.toml"
    export CARGO_HOME="$cache_root/cargo"
    if toolchain::satisfies "$pin"; then
        output::info "toolchain: $(cd "$buildpack" && cargo --version) from PATH (rust-toolchain.toml pins $pin)"
        return
    fi
    export RUSTUP_HOME="$cache_root/rustup"
    export PATH="$CARGO_HOME/bin:$PATH"
    if toolchain::satisfies "$pin"; then
        output::info "toolchain: Rust $pin, installed by rustup-init on an earlier build (build cache)"
        return
    fi
    start=$SECONDS
    output::info "toolchain: no cargo $pin on PATH; installing Rust $pin (minimal profile) with rustup-init $TOOLCHAIN_RUSTUP_VERSION"
    local installer
    installer="$(mktemp -d)"
    toolchain::fetch_rustup_init "$installer"
    if ! RUSTUP_INIT_SKIP_PATH_CHECK=yes "$installer/rustup-init" -y --no-modify-path --profile minimal \
        --default-toolchain "$pin" >>"$log" 2>&1; then
        rm -rf "$installer" "${RUSTUP_HOME:?}" "${CARGO_HOME:?}/bin"
        output::log_failure "$log" "rustup-init" "nothing was installed"
    fi
    rm -rf "$installer"
    toolchain::satisfies "$pin" || output::error "rustup-init finished but cargo $pin is not in $CARGO_HOME/bin; see $log"
    output::info "toolchain: Rust $pin installed into the build cache in $(output::elapsed "$start")"
}

# Downloads rustup-init for this architecture into directory $1 and verifies it: against
# the pinned SHA-256 for the default location, else against the one published beside it.
# A mismatch removes it and ends the build.
toolchain::fetch_rustup_init() {
    local dir="$1" triple base url expected got how
    case "$arch" in
        x86_64 | aarch64) triple="$arch-unknown-linux-gnu" ;;
        *) output::error "no rustup-init for architecture $arch (supported: x86_64, aarch64)" ;;
    esac
    base="$(config ALLOCSHIM_RUSTUP_URL)"
    base="${base:-$TOOLCHAIN_RUSTUP_URL}"
    url="$base/$triple/rustup-init"
    output::info "downloading $url"
    artifact::download "$url" "$dir/rustup-init"
    if [[ "$base" == "$TOOLCHAIN_RUSTUP_URL" && -n "${TOOLCHAIN_RUSTUP_SHA256[$triple]:-}" ]]; then
        expected="${TOOLCHAIN_RUSTUP_SHA256[$triple]}"
        how="the SHA-256 pinned in buildpack/toolchain.sh"
    else
        artifact::download "$url.sha256" "$dir/rustup-init.sha256"
        expected="$(cut -d' ' -f1 <"$dir/rustup-init.sha256")"
        how="the SHA-256 published beside it ($url.sha256)"
    fi
    got="$(sha256sum "$dir/rustup-init" | cut -d' ' -f1)"
    if [[ ! "$expected" =~ ^[0-9a-f]{64}$ || "$got" != "$expected" ]]; then
        rm -rf "$dir"
        output::error "rustup-init checksum mismatch: expected '$expected' ($how), the download is $got; nothing was installed"
    fi
    output::info "rustup-init verified: sha256 $got, $how"
    chmod 0755 "$dir/rustup-init"
}
