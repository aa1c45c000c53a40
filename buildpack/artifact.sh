# Shared by bin/compile (classic) and bin/build (Cloud Native): choosing, fetching,
# verifying and unpacking the allocshim artifact. Sourced, not run. The caller defines
# `config NAME` (a config var's value, or empty), and sets `buildpack` (this
# repository) and `arch` (x86_64, aarch64).
# shellcheck disable=SC2154 # arch and buildpack are the caller's

step() { echo "-----> $*"; }
info() { echo "       $*"; }
fail() {
    echo " !     $*" >&2
    exit 1
}

# Sets shim, mimalloc, jemalloc, snmalloc, sha256 and name from the artifact list
# (vendor/artifacts.txt or ALLOCSHIM_ARTIFACTS) and the *_VERSION pins.
resolve_artifact() {
    artifacts="$(config ALLOCSHIM_ARTIFACTS)"
    artifacts="${artifacts:-$buildpack/vendor/artifacts.txt}"
    [[ -r "$artifacts" ]] || fail "ALLOCSHIM_ARTIFACTS=$artifacts is not a readable file"

    # Candidate artifacts for this architecture: "shim arch mimalloc jemalloc snmalloc sha256".
    mapfile -t candidates < <(awk -v arch="$arch" '$1 !~ /^#/ && NF == 6 && $2 == arch' "$artifacts")
    ((${#candidates[@]})) || fail "no allocshim artifact for $arch is listed in $artifacts; see the README (\"Buildpack\") to build and serve one with scripts/dist"

    # Narrow down by each pin; an unknown value names the variable and what exists.
    column=3
    for backend in mimalloc jemalloc snmalloc; do
        var="$(tr '[:lower:]' '[:upper:]' <<<"$backend")_VERSION"
        pin="$(config "$var")"
        if [[ -n "$pin" ]]; then
            available="$(printf '%s\n' "${candidates[@]}" | awk -v c="$column" '{ print $c }' | sort -Vu | paste -sd, - | sed 's/,/, /g')"
            mapfile -t candidates < <(printf '%s\n' "${candidates[@]}" | awk -v c="$column" -v v="$pin" '$c == v')
            ((${#candidates[@]})) || fail "$var=$pin is not available for $arch (available: $available)"
        else
            # Unpinned: the default line of vendor/backends.txt where an artifact has it
            # (mimalloc 2.x, the line the mimalloc buildpack ships, over 3.x).
            default="$(awk -v b="$backend" '$1 == b { print $2; exit }' "$buildpack/vendor/backends.txt")"
            mapfile -t with_default < <(printf '%s\n' "${candidates[@]}" | awk -v c="$column" -v v="$default" '$c == v')
            ((${#with_default[@]})) && candidates=("${with_default[@]}")
        fi
        column=$((column + 1))
    done
    # Several left: the newest shim, then the newest backends.
    chosen="$(printf '%s\n' "${candidates[@]}" | sort -V -k1,1 -k3,3 -k4,4 -k5,5 | tail -n 1)"
    read -r shim _ mimalloc jemalloc snmalloc sha256 <<<"$chosen"
    name="allocshim-$shim-$arch-mimalloc$mimalloc-jemalloc$jemalloc-snmalloc$snmalloc"
    info "shim $shim for $arch: mimalloc $mimalloc, jemalloc $jemalloc, snmalloc $snmalloc"
}

# Leaves the verified artifact in "$1/$name.tar.gz" (downloading it unless a verified
# copy is there) and sets `tarball`. Pruning the rest is the caller's: only the
# classic build keeps a cache of its own.
fetch_artifact() {
    # Download (or reuse the cached copy), keyed by architecture and versions.
    base="$(config ALLOCSHIM_DIST_URL)"
    base="${base:-https://github.com/allocshim/allocshim/releases/download/v$shim}"
    cache="$1"
    if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
        fail "cannot write the cache directory $cache"
    fi
    tarball="$cache/$name.tar.gz"
    info "source $base/$name.tar.gz"
    verified() { [[ -f "$1" ]] && echo "$sha256  $1" | sha256sum --status -c -; }
    if verified "$tarball"; then
        info "from the build cache"
    else
        rm -f "$tarball"
        partial="$tarball.part"
        case "$base" in
            http://* | https://*)
                info "downloading"
                curl --fail --silent --show-error --location --retry 3 --connect-timeout 10 -o "$partial" "$base/$name.tar.gz" ||
                    { rm -f "$partial"; fail "cannot download $base/$name.tar.gz"; }
                ;;
            *)
                dir="${base#file://}"
                [[ -d "$dir" ]] || fail "ALLOCSHIM_DIST_URL=$base: no such directory"
                [[ -f "$dir/$name.tar.gz" ]] || fail "$name.tar.gz is not in $dir"
                info "copying"
                cp "$dir/$name.tar.gz" "$partial" || { rm -f "$partial"; fail "cannot copy $dir/$name.tar.gz into the cache"; }
                ;;
        esac
        if ! verified "$partial"; then
            got="$(sha256sum "$partial" | cut -d' ' -f1)"
            rm -f "$partial"
            fail "checksum mismatch for $name.tar.gz: expected $sha256, got $got; nothing was installed"
        fi
        mv "$partial" "$tarball"
    fi
    info "checksum verified (sha256 $sha256)"
}

# Unpacks "$tarball" and moves its allocshim/ directory to "$1" (replacing it), going
# through a staging directory beside it: a failure leaves no half install.
unpack_artifact() {
    local dest="$1" stage
    stage="$(mktemp -d "$(dirname "$dest")/.allocshim-XXXXXX")"
    if ! tar -xzf "$tarball" -C "$stage" || [[ ! -f "$stage/allocshim/lib/liballocshim.so" ]]; then
        rm -rf "$stage"
        fail "$name.tar.gz cannot be unpacked or holds no lib/liballocshim.so"
    fi
    rm -rf "$dest"
    mv "$stage/allocshim" "$dest"
    rm -rf "$stage"
}
