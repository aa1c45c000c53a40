/* The few pieces of liballocshim that have to be C.
 * Everything here is hidden; rustc's version script keeps it out of the dynamic
 * symbol table as well. */
#include <stddef.h>

/* jemalloc reads its compiled-in options from `je_malloc_conf` (here `_rjem_malloc_conf`),
 * which jemalloc.c only defines weakly. This strong, writable definition lets the shim
 * point it at a copy of plain MALLOC_CONF, and only in processes that chose jemalloc,
 * before jemalloc's first (lazy) initialisation. `_RJEM_MALLOC_CONF` is read after it
 * and so still wins, as in a standalone prefixed jemalloc. */
const char *_rjem_malloc_conf = NULL;

/* snmalloc registers its per-thread teardown through the C++ ABI's
 * __cxa_thread_atexit, normally provided by libstdc++. Forwarding it to glibc here
 * (exactly what libstdc++ does) keeps libstdc++ out of every process the shim is
 * preloaded into, and with it libstdc++'s own start-up mallocs. */
extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso);
int __cxa_thread_atexit(void (*dtor)(void *), void *obj, void *dso) {
    return __cxa_thread_atexit_impl(dtor, obj, dso);
}
