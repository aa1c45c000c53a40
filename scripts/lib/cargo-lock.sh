# shellcheck shell=bash
# Sourced by scripts/bench and scripts/dist: reading Cargo.lock without cargo or jq.

# The locked version of crate $1, from lock file $2 (default: the workspace's).
locked_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "${2:-Cargo.lock}"
}
