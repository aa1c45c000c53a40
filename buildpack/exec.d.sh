#!/usr/bin/env bash
# CNB exec.d program of the allocshim layer: run by the launcher at container start,
# after the layer env is applied, with the process's runtime environment. When the
# config vars ask for an allocator (the library's rules: `allocshim enabled`), it
# writes LD_PRELOAD, the library prepended with ':' to what is already preloaded, to
# file descriptor 3 as the TOML the spec defines. Otherwise it writes nothing.
set -euo pipefail
layer="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lib="$layer/lib/liballocshim.so"
[[ -f "$lib" ]] || exit 0
"$layer/bin/allocshim" enabled --quiet || exit 0
case " ${LD_PRELOAD:-} " in
    *"$lib"*) exit 0 ;;
esac
value="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
value="${value//\\/\\\\}" # a TOML basic string: backslash and quote escaped
value="${value//\"/\\\"}"
printf 'LD_PRELOAD = "%s"\n' "$value" >&3
