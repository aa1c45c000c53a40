# shellcheck shell=bash
# Sourced by bin/compile and bin/build: output in Heroku's style. Steps start with
# "-----> ", details are indented, errors go to stderr behind " !     " and end the build.

output::step() { echo "-----> $*"; }
output::info() { echo "       $*"; }

output::error() {
    local line
    while IFS= read -r line; do echo " !     $line" >&2; done <<<"$*"
    exit 1
}

# Seconds since $1 (a value of $SECONDS) as "42s" or "3m07s".
output::elapsed() {
    local s=$((SECONDS - $1))
    if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# Runs "$@" (after LOG and WHAT) with its output appended to LOG: nothing is shown
# while it works; on failure WHAT failed, the log's last lines and its path are, and
# the build ends.
output::run_logged() {
    local log="$1" what="$2"
    shift 2
    "$@" >>"$log" 2>&1 || output::log_failure "$log" "$what"
}

# Ends the build after WHAT ($2) failed: the last lines of LOG ($1) and its path, and
# $3 if given (what was or was not left behind).
output::log_failure() {
    echo " !     $2 failed; its last lines:" >&2
    tail -n 30 "$1" | sed 's/^/ !       /' >&2
    output::error "the full log is $1${3:+; $3}"
}
