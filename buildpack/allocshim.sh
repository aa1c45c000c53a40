#!/usr/bin/env bash
# allocshim.sh BACKEND CMD [ARGS...]: runs CMD with liballocshim.so preloaded and
# BACKEND chosen, whatever the *_ENABLED config vars say (an explicit wrapper wins).
# LD_PRELOAD is prepended to, never overwritten; CMD replaces this shell (exec), so
# signals reach it. Installed next to the `allocshim` command, which does the work.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if (($# < 2)); then
    echo "usage: ${0##*/} BACKEND CMD [ARGS...]   (BACKEND: jemalloc, mimalloc, snmalloc or system)" >&2
    exit 2
fi
backend="$1"
shift
exec "$here/allocshim" run --backend "$backend" -- "$@"
