# shellcheck shell=bash
# allocshim: sourced from .profile.d at dyno start (installed by bin/compile).
# Preloads liballocshim.so when the config vars ask for an allocator, by the library's
# own rules: one call of `allocshim preload --if-enabled` decides that and prints the
# new LD_PRELOAD (the library first, what was there kept after it, never twice), so
# sourcing this again changes nothing; X_ENABLED=false and a restart turn it off.
allocshim_home="${HOME:-/app}/vendor/allocshim"
case ":${PATH}:" in
    *":${allocshim_home}/bin:"*) ;;
    *) export PATH="${allocshim_home}/bin:${PATH}" ;;
esac
if [ -f "${allocshim_home}/lib/liballocshim.so" ] &&
    allocshim_preload="$("${allocshim_home}/bin/allocshim" preload --if-enabled --lib "${allocshim_home}/lib/liballocshim.so")"; then
    export LD_PRELOAD="${allocshim_preload}"
fi
unset allocshim_home allocshim_preload
