# shellcheck shell=bash
# Sourced by bin/compile and bin/build: building the allocshim artifact from this
# repository's own sources (the buildpack is the repository) when no prebuilt one is
# listed. scripts/dist does the building, exactly as for a release; this file adds the
# toolchain, the cache and the buildpack's output. The caller defines `config NAME` and
# sets `buildpack` and `arch`.
# shellcheck disable=SC2154,SC2034 # arch and buildpack are the caller's; what it sets is theirs

# Sets `pins` to the scripts/dist arguments for the *_VERSION pins; an unknown version
# ends the build naming the variable, the value and what can be built.
source::pin_args() {
    local backend var pin
    pins=()
    for backend in $(backends_names); do
        var="${backend^^}_VERSION"
        pin="$(config "$var")"
        [[ -z "$pin" ]] && continue
        backends_row "$backend" "$pin" >/dev/null ||
            output::error "$var=$pin is not available (allocshim can build $backend $(backends_versions "$backend"))"
        pins+=("--$backend" "$pin")
    done
}

# Leaves the artifact for this architecture and the pinned versions in the cache
# ($1: a directory kept between builds) and sets name, shim, mimalloc, jemalloc,
# snmalloc, sha256 and tarball. Compiles only when the cache has no build of the
# same stack, architecture, versions and sources (checked by its recorded SHA-256);
# then only what changed is recompiled (cargo's registry and target directory are
# cached too). Builds of anything else are pruned.
source::build() {
    local cache_root="$1" why="$2" key built log start stage line description
    local -a pins
    source::pin_args
    declare -A described=()
    description="$("$buildpack/scripts/dist" --describe "${pins[@]}")" ||
        output::error "scripts/dist --describe ${pins[*]} failed"
    while IFS='=' read -r key line; do described[$key]="$line"; done <<<"$description"
    name="${described[name]}" shim="${described[shim]}"
    mimalloc="${described[mimalloc]}" jemalloc="${described[jemalloc]}" snmalloc="${described[snmalloc]}"
    output::step "allocshim: building from source ($why $arch mimalloc $mimalloc jemalloc $jemalloc snmalloc $snmalloc)"

    # Keyed by stack (its glibc and C compiler: STACK on Heroku's classic builds, the
    # target distribution on CNB), architecture and sources; the name carries the versions.
    local stack="${STACK:-${CNB_TARGET_DISTRO_NAME:+$CNB_TARGET_DISTRO_NAME-${CNB_TARGET_DISTRO_VERSION:-}}}"
    built="$cache_root/built/${stack:-unknown-stack}-$arch-${described[source]:0:16}"
    tarball="$built/$name.tar.gz"
    if [[ -f "$built/$name.sha256" ]] && sha256="$(cut -d' ' -f1 <"$built/$name.sha256")" && artifact::verified "$tarball" "$sha256"; then
        output::info "reusing the library built from the same sources on an earlier build (build cache, sha256 $sha256 verified)"
    else
        rm -rf "$cache_root"/.stage-*
        log="$cache_root/build.log"
        : >"$log"
        output::info "build log: $log"
        toolchain::ensure "$cache_root" "$log"
        start=$SECONDS
        output::info "compiling liballocshim.so and the allocshim command (cargo build --release --locked)"
        stage="$(mktemp -d "$cache_root/.stage-XXXXXX")"
        output::run_logged "$log" "the build" "$buildpack/scripts/dist" --out "$stage" --target-dir "$cache_root/target" "${pins[@]}"
        output::info "compiled in $(output::elapsed "$start")"
        rm -rf "$built"
        mkdir -p "$(dirname "$built")"
        mv "$stage" "$built"
        sha256="$(cut -d' ' -f1 <"$built/$name.sha256")"
        output::info "built $name.tar.gz (sha256 $sha256)"
    fi
    # Only this build is kept; the toolchain, registry and target directory stay.
    find "$cache_root/built" -mindepth 1 -maxdepth 1 ! -path "$built" -exec rm -rf {} +
}
