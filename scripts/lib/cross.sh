# shellcheck shell=bash
# Sourced by scripts/dist and scripts/test-aarch64: the one place that knows how to
# cross-build liballocshim.so and the allocshim command for another architecture on
# an x86_64 Debian machine, and how to run the result there (docs/aarch64.md).
#
#   cross_install ARCH [PKG...]  apt-get the toolchain, the target's Rust std, qemu and PKGs
#   cross_env ARCH         export the build environment, set cross_target (the triple)
#   cross_binfmt           make the kernel run aarch64 executables through qemu
#
# Only aarch64 is known. Cargo is ours (rustup); rustc is Debian's rustc-web, because
# rustup's toolchain has no aarch64 standard library here and Debian ships one
# (libstd-rust-web-dev:arm64) built for that very rustc. Callers build with
# `--target "$cross_target"` in a target directory of its own (target/cross): a
# different rustc must not share build-script fingerprints with the host build.

# Debian packages the aarch64 cross build and its runs need.
cross_packages=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
    binutils-aarch64-linux-gnu qemu-user-static libc6:arm64)

# The Rust target triple for ARCH (as `uname -m` spells it), or an error naming it.
cross_triple() {
    case "$1" in
        aarch64) echo aarch64-unknown-linux-gnu ;;
        *) echo "cross: unknown architecture '$1' (accepted: aarch64)" >&2; return 2 ;;
    esac
}

cross_install() {
    cross_triple "$1" >/dev/null || return
    local missing=() p
    for p in "${cross_packages[@]}" "${@:2}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "==> installing ${missing[*]}" >&2
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

cross_env() {
    cross_target="$(cross_triple "$1")" || return
    local upper="${cross_target^^}"
    upper="${upper//-/_}"
    local prefix="aarch64-linux-gnu"
    # Debian's rustc (1.96) with the aarch64 std beside the host one; our cargo.
    # (rustc-web installs /usr/bin/rustc; rustup's proxy comes first on PATH.)
    RUSTC=/usr/bin/rustc
    local libdir
    libdir="$("$RUSTC" --print target-libdir --target "$cross_target" 2>/dev/null)" || libdir=""
    if [[ ! -d "$libdir" || -z "$(ls -A "$libdir")" ]]; then
        echo "cross: no Rust standard library for $cross_target beside $RUSTC (install: ${cross_packages[*]})" >&2
        return 1
    fi
    export RUSTC
    export "CARGO_TARGET_${upper}_LINKER=$prefix-gcc"
    # The cc crate (mimalloc, snmalloc, the shim's C) and jemalloc's configure.
    export "CC_${cross_target//-/_}=$prefix-gcc" "CXX_${cross_target//-/_}=$prefix-g++" "AR_${cross_target//-/_}=$prefix-ar"
    # jemalloc fixes its page size when it is built, and refuses to start on a kernel
    # whose pages are larger. aarch64 kernels use 4, 16 or 64 KiB pages: 2^16 works on
    # all of them (the cost is in docs/aarch64.md). Target-prefixed: the host build keeps 4 KiB.
    export "${upper}_JEMALLOC_SYS_WITH_LG_PAGE=16"
    # snmalloc's page size is a constant too (4 KiB on aarch64): it returns memory to
    # the kernel with madvise in page units, which a 64 KiB-page kernel rounds out to
    # neighbouring live memory. 64 KiB, as snmalloc itself uses on 64 KiB-page PowerPC.
    # Added to .cargo/config.toml's CXXFLAGS by the cc crate (it joins CXXFLAGS_<target>).
    export "CXXFLAGS_${cross_target//-/_}=-DSNMALLOC_PAGESIZE=0x10000"
}

# aarch64 executables run through qemu-user-static, registered with binfmt_misc (the
# registration Debian ships in /usr/lib/binfmt.d). With it, every aarch64 program runs
# as if native: its children, LD_PRELOAD, `allocshim`'s self-probe, bash starting it.
# The interpreter is statically linked, so LD_PRELOAD reaches the guest's ld.so only.
cross_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [[ -f "$dir/qemu-aarch64" ]] && return 0
    [[ -f "$dir/register" ]] || mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || {
        echo "cross: cannot mount binfmt_misc on $dir (needs root outside an unprivileged container); aarch64 programs cannot run here" >&2
        return 1
    }
    [[ -f "$dir/qemu-aarch64" ]] && return 0
    [[ -f "$conf" ]] || { echo "cross: $conf is missing (install qemu-user-static)" >&2; return 1; }
    grep -v '^#' "$conf" >"$dir/register" || {
        echo "cross: the kernel refused the qemu-aarch64 binfmt registration from $conf" >&2
        return 1
    }
}
