# shellcheck shell=bash
# Sourced by scripts/bench and scripts/dist: reading Cargo.lock and the workspace's
# Cargo.toml files without cargo or jq.

# The locked version of crate $1, from lock file $2 (default: the workspace's).
locked_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "${2:-Cargo.lock}"
}

# The workspace's member directories, from the root Cargo.toml's `members = [...]`.
workspace_members() {
    awk '/^members *= *\[/ { collecting = 1 } collecting { print } collecting && /\]/ { exit }' "${1:-Cargo.toml}" |
        grep -o '"[^"]*"' | tr -d '"'
}

# The version of the shim itself, from the workspace manifests under $1 (default: .).
shim_version() {
    local root="${1:-.}"
    awk '/^\[/ { section = $0 } section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.toml" |
        grep . ||
        awk '/^\[/ { section = $0 } section == "[package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$root/shim/Cargo.toml"
}
