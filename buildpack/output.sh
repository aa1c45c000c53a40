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

# Runs "$@" with its output going to log file $1 (shift first): nothing is shown while
# it works; on failure its last lines and the log's path are, and the build ends.
output::run_logged() {
    local log="$1" what="$2"
    shift 2
    if ! "$@" >>"$log" 2>&1; then
        echo " !     $what failed; its last lines:" >&2
        tail -n 30 "$log" | sed 's/^/ !       /' >&2
        output::error "the full log is $log"
    fi
}
