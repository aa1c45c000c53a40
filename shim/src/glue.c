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

/* ------------------------------------------------------------------------------------
 * fork() and the backends' atfork handlers (see docs/fork-and-errno.md).
 *
 * The library is linked with -Wl,--wrap=pthread_atfork (build.rs), so the backends'
 * own registrations (jemalloc's jemalloc_prefork/postfork_* in malloc_init_hard,
 * snmalloc's PreventFork handlers the first time it takes a lock) come here instead of
 * going straight to glibc. Nothing else reaches this: programs and other libraries
 * call glibc's pthread_atfork, and mimalloc registers none. A backend that is never
 * chosen never registers, so dormant backends still add no handlers.
 *
 * Each registration is passed on to glibc in the same place in glibc's list (so the
 * order of all handlers is unchanged), but through trampolines that change two things:
 *
 * 1. Single-threaded process: the backend's handlers are skipped. glibc's fork takes
 *    its own malloc locks only when there are other threads, because fork must be
 *    async-signal-safe: a handler may fork while the interrupted code is inside malloc
 *    holding a lock (glibc's tst-mallocfork2). jemalloc's prefork took its locks anyway
 *    and waited for itself forever; snmalloc's aborted ("Fork attempted while in
 *    PreventFork region"). With one thread there is nobody to wait for: no lock can be
 *    held by anyone but the forking thread itself, and the lists of threads jemalloc's
 *    child handler rebuilds already hold only this one. The child of a fork from a
 *    signal handler may then only call async-signal-safe functions, as under glibc.
 *    The decision is taken in prepare, from glibc's __libc_single_threaded
 *    (GLIBC_2.32; false from the first pthread_create on), and kept for the parent and
 *    child handlers of the same fork.
 *
 * 2. Multithreaded process: the stdio list lock is taken before the backend's locks.
 *    glibc's fork runs the prepare handlers first and only then takes _IO_list_lock, so
 *    a forking thread held jemalloc's locks while waiting for the stdio list lock, which
 *    fflush(NULL) held while waiting for a FILE lock, which getline held while
 *    allocating, waiting for jemalloc's locks: a cycle (glibc's tst-malloc-fork-deadlock,
 *    seen in gdb). glibc itself orders them list lock -> malloc locks, like fflush and
 *    getline do; taking the list lock here restores that order for the backend. The
 *    lock is recursive, so glibc's own _IO_list_lock in fork just nests. In the parent,
 *    glibc unlocks once before the parent handlers run and we unlock our level after
 *    the backend's; in the child, glibc has already reset the lock (as it does whenever
 *    it took it) and we reset it again rather than unlock, which is right whether or
 *    not glibc did.
 *
 * glibc (2.36) runs each prepare handler with its atfork lock released, so threads
 * forking at the same time can be in these trampolines together: they all write the
 * same decision (there are threads), and the stdio list lock taken here serialises
 * them from then on. A fork from a signal handler in a single-threaded process only
 * ever writes "skip" over "skip". */
#include <errno.h>
#include <stdarg.h>
#include <sys/prctl.h>
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41 /* <linux/prctl.h> before 5.17 */
#endif

extern char __libc_single_threaded; /* <sys/single_threaded.h>, glibc >= 2.32 */

extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);
extern int __real_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

struct fork_handlers {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
    int ran; /* prepare ran the backend's handler: do parent/child as well */
};

enum { FORK_SLOTS = 8 };
static struct fork_handlers fork_slots[FORK_SLOTS];
static unsigned fork_slots_used;

static void fork_prepare(struct fork_handlers *h) {
    int threads = !__libc_single_threaded;
    __atomic_store_n(&h->ran, threads, __ATOMIC_RELAXED);
    if (!threads) return;
    _IO_list_lock();
    if (h->prepare) h->prepare();
}

static void fork_parent(struct fork_handlers *h) {
    if (!__atomic_load_n(&h->ran, __ATOMIC_RELAXED)) return;
    if (h->parent) h->parent();
    _IO_list_unlock();
}

static void fork_child(struct fork_handlers *h) {
    if (!__atomic_load_n(&h->ran, __ATOMIC_RELAXED)) return;
    if (h->child) h->child();
    _IO_list_resetlock();
}

#define FORK_TRAMPOLINES(i)                                        \
    static void fork_prepare_##i(void) { fork_prepare(&fork_slots[i]); } \
    static void fork_parent_##i(void) { fork_parent(&fork_slots[i]); }   \
    static void fork_child_##i(void) { fork_child(&fork_slots[i]); }
FORK_TRAMPOLINES(0)
FORK_TRAMPOLINES(1)
FORK_TRAMPOLINES(2)
FORK_TRAMPOLINES(3)
FORK_TRAMPOLINES(4)
FORK_TRAMPOLINES(5)
FORK_TRAMPOLINES(6)
FORK_TRAMPOLINES(7)

static void (*const fork_trampolines[FORK_SLOTS][3])(void) = {
    {fork_prepare_0, fork_parent_0, fork_child_0}, {fork_prepare_1, fork_parent_1, fork_child_1},
    {fork_prepare_2, fork_parent_2, fork_child_2}, {fork_prepare_3, fork_parent_3, fork_child_3},
    {fork_prepare_4, fork_parent_4, fork_child_4}, {fork_prepare_5, fork_parent_5, fork_child_5},
    {fork_prepare_6, fork_parent_6, fork_child_6}, {fork_prepare_7, fork_parent_7, fork_child_7},
};

int __wrap_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
    unsigned i = __atomic_fetch_add(&fork_slots_used, 1, __ATOMIC_RELAXED);
    if (i >= FORK_SLOTS) /* cannot happen with today's backends; degrade to the plain order */
        return __real_pthread_atfork(prepare, parent, child);
    fork_slots[i].prepare = prepare;
    fork_slots[i].parent = parent;
    fork_slots[i].child = child;
    /* glibc's registration takes its atfork lock, and so does a fork (with threads)
     * while it reads the list: a fork that finds these trampolines sees the slot. */
    return __real_pthread_atfork(fork_trampolines[i][0], fork_trampolines[i][1], fork_trampolines[i][2]);
}

/* snmalloc names every mapping it reserves with prctl(PR_SET_VMA_ANON_NAME) (snmalloc-sys
 * defines SNMALLOC_PAGEID even as "false" and pal_linux.h only asks #ifdef), and so does
 * mimalloc (unix_mmap_prim). On kernels without CONFIG_ANON_VMA_NAME the call fails with
 * EINVAL, which leaked into the errno of a malloc that succeeded (tests/c/errno.c). Linked with -Wl,--wrap=prctl, the
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

/* The ends of the small executable segment that holds the code run at load and exit,
 * and of each allocator's code and read-only data (build.rs, layout.ld): a read-only
 * section after executable code makes the linker start a new segment, so the kernel's
 * fault-around at start-up cannot map code that the chosen backend never runs. */
__attribute__((used, section(".allocshim.fence"))) static const char allocshim_fence[1];
__attribute__((used, section(".allocshim.fence.mimalloc"))) static const char allocshim_fence_mimalloc[1];
__attribute__((used, section(".allocshim.fence.jemalloc"))) static const char allocshim_fence_jemalloc[1];
__attribute__((used, section(".allocshim.fence.snmalloc"))) static const char allocshim_fence_snmalloc[1];

/* How many relocations relink.rs withheld from ld.so (build.rs, item 6); relink.rs
 * writes the number into the linked file. A read-only input section: an output
 * section made of the linker script's QUAD alone was writable for GNU ld, which then
 * merged the whole library into one read-write-execute segment without RELRO. */
__attribute__((used, section(".allocshim.withheld"), aligned(8))) const unsigned long long allocshim_withheld = 0;
