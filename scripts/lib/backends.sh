# shellcheck shell=bash
# Sourced by scripts/dist and the buildpack: the one reader of vendor/backends.txt, the
# allocator versions liballocshim.so can carry (first row of a backend = its default).
# Row format: backend version crate crate-version shim-feature

backends_txt="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/vendor/backends.txt"

# The rows, comments and blank lines left out.
backends_rows() {
    awk '$1 !~ /^#/ && NF == 5' "$backends_txt"
}

# The backends, in file order: mimalloc jemalloc snmalloc.
backends_names() {
    backends_rows | awk '!seen[$1]++ { print $1 }'
}

# The versions of backend $1, default first, comma-separated for messages: "2.3.2, 3.3.2".
backends_versions() {
    backends_rows | awk -v b="$1" '$1 == b { printf "%s%s", sep, $2; sep = ", " } END { print "" }'
}

# The default version of backend $1.
backends_default() {
    backends_rows | awk -v b="$1" '$1 == b { print $2; exit }'
}

# "crate crate-version shim-feature" of backend $1 at version $2; fails if there is no such row.
backends_row() {
    backends_rows | awk -v b="$1" -v v="$2" '$1 == b && $2 == v { print $3, $4, $5; found = 1; exit } END { exit !found }'
}
