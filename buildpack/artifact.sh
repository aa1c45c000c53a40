# shellcheck shell=bash
# Sourced by bin/compile and bin/build: finding, fetching, verifying and unpacking a
# prebuilt allocshim artifact (one that scripts/dist built and a release published).
# The caller defines `config NAME` (a config var's value, or empty) and sets
# `buildpack` (this repository) and `arch` (x86_64, aarch64).
# shellcheck disable=SC2154,SC2034 # arch and buildpack are the caller's; what it sets is theirs

# Looks for a listed artifact (vendor/artifacts.txt, or the file ALLOCSHIM_ARTIFACTS
# names) that fits this architecture and the *_VERSION pins. Found: sets shim,
# mimalloc, jemalloc, snmalloc, sha256 and name, and returns 0. None: sets
# artifact_missing (why, in words) and returns 1.
artifact::find() {
    local artifacts backend var pin available default column=3 chosen
    local -a candidates with_default
    artifacts="$(config ALLOCSHIM_ARTIFACTS)"
    artifacts="${artifacts:-$buildpack/vendor/artifacts.txt}"
    [[ -r "$artifacts" ]] || output::error "ALLOCSHIM_ARTIFACTS=$artifacts is not a readable file"

    # Rows for this architecture: "shim arch mimalloc jemalloc snmalloc sha256".
    mapfile -t candidates < <(awk -v arch="$arch" '$1 !~ /^#/ && NF == 6 && $2 == arch' "$artifacts")
    if ((${#candidates[@]} == 0)); then
        artifact_missing="no allocshim artifact for $arch is listed in $artifacts"
        return 1
    fi
    # Narrow down by each pin; the columns follow vendor/backends.txt's order.
    for backend in $(backends_names); do
        var="${backend^^}_VERSION"
        pin="$(config "$var")"
        if [[ -n "$pin" ]]; then
            available="$(printf '%s\n' "${candidates[@]}" | awk -v c="$column" '{ print $c }' | sort -Vu | paste -sd, - | sed 's/,/, /g')"
            mapfile -t candidates < <(printf '%s\n' "${candidates[@]}" | awk -v c="$column" -v v="$pin" '$c == v')
            if ((${#candidates[@]} == 0)); then
                artifact_missing="$var=$pin is not available for $arch (available: $available)"
                return 1
            fi
        else
            # Unpinned: the default line of vendor/backends.txt where an artifact has it
            # (mimalloc 2.x, the line the mimalloc buildpack ships, over 3.x).
            default="$(backends_default "$backend")"
            mapfile -t with_default < <(printf '%s\n' "${candidates[@]}" | awk -v c="$column" -v v="$default" '$c == v')
            ((${#with_default[@]})) && candidates=("${with_default[@]}")
        fi
        column=$((column + 1))
    done
    # Several left: the newest shim, then the newest backends.
    chosen="$(printf '%s\n' "${candidates[@]}" | sort -V -k1,1 -k3,3 -k4,4 -k5,5 | tail -n 1)"
    read -r shim _ mimalloc jemalloc snmalloc sha256 <<<"$chosen"
    name="allocshim-$shim-$arch-mimalloc$mimalloc-jemalloc$jemalloc-snmalloc$snmalloc"
}

# Leaves the verified artifact in "$1/$name.tar.gz" (downloading it unless a verified
# copy is there) and sets `tarball`. Pruning the rest is the caller's.
artifact::fetch() {
    local base cache partial dir got
    base="$(config ALLOCSHIM_DIST_URL)"
    base="${base:-https://github.com/allocshim/allocshim/releases/download/v$shim}"
    cache="$1"
    mkdir -p "$cache" # inside the cache root obtain::artifact checked
    tarball="$cache/$name.tar.gz"
    output::info "source $base/$name.tar.gz"
    if artifact::verified "$tarball" "$sha256"; then
        output::info "from the build cache"
    else
        rm -f "$tarball"
        partial="$tarball.part"
        case "$base" in
            http://* | https://*) output::info "downloading" ;;
            *)
                dir="${base#file://}"
                [[ -d "$dir" ]] || output::error "ALLOCSHIM_DIST_URL=$base: no such directory"
                [[ -f "$dir/$name.tar.gz" ]] || output::error "$name.tar.gz is not in $dir"
                output::info "copying"
                ;;
        esac
        artifact::download "$base/$name.tar.gz" "$partial"
        if ! artifact::verified "$partial" "$sha256"; then
            got="$(sha256sum "$partial" | cut -d' ' -f1)"
            rm -f "$partial"
            output::error "checksum mismatch for $name.tar.gz: expected $sha256, got $got; nothing was installed"
        fi
        mv "$partial" "$tarball"
    fi
    output::info "checksum verified (sha256 $sha256)"
}

# Fetches URL $1 (https://, file:// or a plain path) to file $2; a failure removes
# what was fetched and ends the build.
artifact::download() {
    case "$1" in
        http://* | https://*)
            curl --fail --silent --show-error --location --retry 3 --connect-timeout 10 -o "$2" "$1" ||
                { rm -f "$2"; output::error "cannot download $1"; }
            ;;
        *) cp "${1#file://}" "$2" 2>/dev/null || { rm -f "$2"; output::error "cannot read ${1#file://}"; } ;;
    esac
}

# Whether file $1 exists and has SHA-256 $2.
artifact::verified() {
    [[ -f "$1" ]] && echo "$2  $1" | sha256sum --status -c -
}

# Unpacks "$tarball" and moves its allocshim/ directory to "$1" (replacing it), going
# through a staging directory beside it: a failure leaves no half install.
artifact::unpack() {
    local dest="$1" stage
    stage="$(mktemp -d "$(dirname "$dest")/.allocshim-XXXXXX")"
    if ! tar -xzf "$tarball" -C "$stage" || [[ ! -f "$stage/allocshim/lib/liballocshim.so" ]]; then
        rm -rf "$stage"
        output::error "$name.tar.gz cannot be unpacked or holds no lib/liballocshim.so"
    fi
    rm -rf "$dest"
    mv "$stage/allocshim" "$dest"
    rm -rf "$stage"
}
