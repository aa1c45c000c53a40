#!/usr/bin/env bash
# CNB exec.d program of the allocshim layer: run by the launcher at container start,
# after the layer env is applied, with the process's runtime environment. When the
# config vars ask for an allocator (the library's rules), `allocshim preload
# --if-enabled` prints the new LD_PRELOAD (the library first, what was there kept
# after it, never twice); it is written to file descriptor 3 as the TOML the spec
# defines. Otherwise nothing is written.
set -euo pipefail
layer="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lib="$layer/lib/liballocshim.so"
[[ -f "$lib" ]] || exit 0
value="$("$layer/bin/allocshim" preload --if-enabled --lib "$lib")" || exit 0
value="${value//\\/\\\\}" # a TOML basic string: backslash and quote escaped
value="${value//\"/\\\"}"
printf 'LD_PRELOAD = "%s"\n' "$value" >&3
