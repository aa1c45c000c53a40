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

#include <errno.h>
#include <stdarg.h>
#include <sys/prctl.h>
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41 /* <linux/prctl.h> before 5.17 */
#endif

/* snmalloc names every mapping it reserves with prctl(PR_SET_VMA_ANON_NAME): snmalloc-sys
 * defines SNMALLOC_PAGEID even as "false" and pal_linux.h only asks #ifdef. On kernels
 * without CONFIG_ANON_VMA_NAME the call fails with EINVAL, which leaked into the errno
 * of a malloc that succeeded (tests/c/errno.c). Linked with -Wl,--wrap=prctl, the
 * library's own prctl calls come here: the name is still set where the kernel can, and
 * a failure to set it leaves errno as it was. Other options pass through unchanged
 * (glibc's prctl reads the same four variadic arguments). */
extern int __real_prctl(int option, ...);

int __wrap_prctl(int option, ...) {
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    int saved = errno;
    int rc = __real_prctl(option, a2, a3, a4, a5);
    if (rc != 0 && option == PR_SET_VMA) errno = saved;
    return rc;
}
