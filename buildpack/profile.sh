# allocshim: sourced from .profile.d at dyno start (installed by bin/compile).
# Preloads liballocshim.so when the config vars ask for an allocator, by the library's
# own rules (`allocshim enabled` runs them): ALLOCSHIM_BACKEND, MIMALLOC_ENABLED,
# JEMALLOC_ENABLED, SNMALLOC_ENABLED, or ALLOCSHIM_PRESET alone (it tunes glibc too;
# the library reads it at run time like every other variable). Prepends to LD_PRELOAD with ':' and never twice,
# so sourcing this again changes nothing; X_ENABLED=false and a restart turn it off.
allocshim_home="${HOME:-/app}/vendor/allocshim"
case ":${PATH}:" in
    *":${allocshim_home}/bin:"*) ;;
    *) export PATH="${allocshim_home}/bin:${PATH}" ;;
esac
if [ -f "${allocshim_home}/lib/liballocshim.so" ] && "${allocshim_home}/bin/allocshim" enabled --quiet; then
    case " ${LD_PRELOAD:-} " in
        *"${allocshim_home}/lib/liballocshim.so"*) ;;
        *) export LD_PRELOAD="${allocshim_home}/lib/liballocshim.so${LD_PRELOAD:+:${LD_PRELOAD}}" ;;
    esac
fi
unset allocshim_home
