# shellcheck shell=bash
# Sourced by scripts/bench and scripts/dist: reading Cargo.lock without cargo or jq.

# The locked version of crate $1, from lock file $2 (default: the workspace's).
locked_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "${2:-Cargo.lock}"
}

# The workspace's member directories, from the root Cargo.toml's `members = [...]`.
workspace_members() {
    awk '/^members *= *\[/ { collecting = 1 } collecting { print } collecting && /\]/ { exit }' "${1:-Cargo.toml}" |
        grep -o '"[^"]*"' | tr -d '"'
}
