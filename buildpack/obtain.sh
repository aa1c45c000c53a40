# shellcheck shell=bash
# Sourced by bin/compile and bin/build: getting a verified allocshim artifact into the
# build cache, prebuilt when one is listed for this architecture and these pins, else
# built from this repository's sources. ALLOCSHIM_BUILD: auto (the default), prebuilt
# (fail when none is listed), source (always build from source).
# shellcheck disable=SC2154 # arch and buildpack are the caller's
# shellcheck source=scripts/lib/backends.sh
source "$buildpack/scripts/lib/backends.sh"
# shellcheck source=buildpack/output.sh
source "$buildpack/buildpack/output.sh"
# shellcheck source=buildpack/artifact.sh
source "$buildpack/buildpack/artifact.sh"
# shellcheck source=buildpack/toolchain.sh
source "$buildpack/buildpack/toolchain.sh"
# shellcheck source=buildpack/source.sh
source "$buildpack/buildpack/source.sh"

# Leaves the artifact in the cache directory $1 (kept between builds) and sets
# tarball, name, sha256, shim and the backend versions. Only what this build used
# stays in the cache.
obtain::artifact() {
    local cache_root="$1" mode
    if ! mkdir -p "$cache_root" 2>/dev/null || [[ ! -w "$cache_root" ]]; then
        output::error "cannot write the cache directory $cache_root"
    fi
    cache_root="$(cd "$cache_root" && pwd)"
    mode="$(config ALLOCSHIM_BUILD)"
    case "${mode:=auto}" in
        auto | prebuilt | source) ;;
        *) output::error "ALLOCSHIM_BUILD=$mode is not a build mode (accepted: auto, prebuilt, source)" ;;
    esac
    if [[ "$mode" != source ]] && artifact::find; then
        output::step "allocshim"
        output::info "prebuilt: shim $shim for $arch: mimalloc $mimalloc, jemalloc $jemalloc, snmalloc $snmalloc"
        rm -rf "$cache_root/built" "$cache_root/cargo" "$cache_root/rustup" "$cache_root/target" "$cache_root/build.log"
        artifact::fetch "$cache_root/prebuilt"
        find "$cache_root/prebuilt" -type f ! -path "$tarball" -delete
    elif [[ "$mode" == prebuilt ]]; then
        output::error "$artifact_missing, and ALLOCSHIM_BUILD=prebuilt rules out a source build
unset ALLOCSHIM_BUILD to build from source, or see docs/buildpack.md (\"Releases\") to serve an artifact built with scripts/dist"
    else
        rm -rf "$cache_root/prebuilt"
        if [[ "$mode" == source ]]; then
            source::build "$cache_root" "ALLOCSHIM_BUILD=source:"
        else
            source::build "$cache_root" "no prebuilt artifact for"
        fi
    fi
}
