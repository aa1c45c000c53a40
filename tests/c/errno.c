/* errno after every entry point of the malloc family, failing and succeeding, each
 * call made with errno preset to a sentinel. One line per call: what it returned and
 * what errno became. The test runs this with nothing preloaded (glibc's answers) and
 * under each backend, and requires identical output.
 * Usage: errno          successful calls, size checks, first calls in a new thread
 *                       and in a forked child
 *        errno oom      the same entry points failing for real: RLIMIT_AS leaves no
 *                       room, so the backend's own mmap fails (as in glibc's
 *                       tst-malloc-thread-fail) */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

#define SENTINEL 4242

/* Every call goes through a volatile pointer: GCC knows these functions as builtins
 * and its model of them (posix_memalign, for one, "leaves errno alone") would fold
 * away the very errno reads this program exists for. #call still prints the name. */
static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_calloc)(size_t, size_t) = calloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void *(*volatile f_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile f_memalign)(size_t, size_t) = memalign;
static void *(*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile f_valloc)(size_t) = valloc;
static void *(*volatile f_pvalloc)(size_t) = pvalloc;
static int (*volatile f_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void (*volatile f_free)(void *) = free;
#define malloc(n) f_malloc(n)
#define calloc(n, s) f_calloc(n, s)
#define realloc(p, s) f_realloc(p, s)
#define reallocarray(p, n, s) f_reallocarray(p, n, s)
#define memalign(a, s) f_memalign(a, s)
#define aligned_alloc(a, s) f_aligned_alloc(a, s)
#define valloc(s) f_valloc(s)
#define pvalloc(s) f_pvalloc(s)
#define posix_memalign(p, a, s) f_posix_memalign(p, a, s)
#define free(p) f_free(p)

static const char *errno_name(int e) {
    static char buf[32];
    switch (e) {
    case SENTINEL: return "unchanged";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    default: snprintf(buf, sizeof buf, "%d", e); return buf;
    }
}

static void report(const char *call, const void *p) {
    int e = errno;
    printf("%-44s -> %-8s errno %s\n", call, p ? "pointer" : "NULL", errno_name(e));
}

static void report_void(const char *call) {
    int e = errno;
    printf("%-44s -> %-8s errno %s\n", call, "(void)", errno_name(e));
}

static void report_rc(const char *call, int rc) {
    int e = errno;
    printf("%-44s -> %-8s errno %s\n", call, rc == 0 ? "0" : errno_name(rc), errno_name(e));
}

/* Each macro presets errno, makes the call, prints, and frees what was returned. */
#define PTR(call)                 \
    do {                          \
        errno = SENTINEL;         \
        void *p_ = (call);        \
        report(#call, p_);        \
        errno = SENTINEL;         \
        free(p_);                 \
        report_void("  free");   \
    } while (0)

#define RC(call, out)             \
    do {                          \
        void *out = NULL;         \
        errno = SENTINEL;         \
        int rc_ = (call);         \
        report_rc(#call, rc_);    \
        errno = SENTINEL;         \
        free(out);                \
        report_void("  free");   \
    } while (0)

static const size_t HUGE = SIZE_MAX, OVER = (size_t)PTRDIFF_MAX + 1, TIB = (size_t)1 << 40;

/* Failures the size alone decides (glibc checks before allocating). */
static void size_failures(void) {
    PTR(malloc(HUGE));
    PTR(malloc(OVER));
    PTR(malloc(HUGE - 4096));
    PTR(calloc(HUGE / 2, 3));
    PTR(calloc(1, HUGE));
    PTR(calloc(OVER, 1));
    PTR(realloc(NULL, HUGE));
    PTR(reallocarray(NULL, HUGE / 2, 3));
    PTR(memalign(64, HUGE));
    PTR(memalign(64, OVER));
    PTR(memalign(4096, HUGE - 4096));
    PTR(memalign(HUGE / 2 + 2, 16));
    PTR(memalign(3, HUGE));
    PTR(aligned_alloc(64, HUGE));
    PTR(aligned_alloc(4096, OVER));
    PTR(valloc(HUGE));
    PTR(valloc(OVER));
    PTR(pvalloc(HUGE));
    PTR(pvalloc(HUGE - 4095));
    PTR(pvalloc(OVER));
    RC(posix_memalign(&p, 0, 16), p);
    RC(posix_memalign(&p, 4, 16), p);
    RC(posix_memalign(&p, 24, 16), p);
    RC(posix_memalign(&p, 3, 16), p);
    RC(posix_memalign(&p, 24, HUGE), p);
    RC(posix_memalign(&p, 64, HUGE), p);
    RC(posix_memalign(&p, 128, OVER), p);
    RC(posix_memalign(&p, (size_t)1 << 63, 16), p);
    /* Failing realloc/reallocarray of a live block: NULL, the block stays valid. */
    char *q = malloc(64);
    errno = SENTINEL;
    report("realloc(q, HUGE)", realloc(q, HUGE));
    errno = SENTINEL;
    report("reallocarray(q, HUGE / 2, 3)", reallocarray(q, HUGE / 2, 3));
    errno = SENTINEL;
    report("reallocarray(q, 2, OVER)", reallocarray(q, 2, OVER));
    free(q);
}

/* Calls that succeed: errno must stay as the caller left it. */
static void successes(void) {
    PTR(malloc(0));
    PTR(malloc(24));
    PTR(malloc(5000));
    PTR(malloc(300000));
    PTR(malloc(64 << 20));
    PTR(malloc(1 << 30)); /* beyond a backend's first reservation: new mappings */
    PTR(malloc((size_t)3 << 30));
    PTR(calloc(0, 0));
    PTR(calloc(10, 10));
    PTR(calloc(1, 64 << 20));
    PTR(realloc(NULL, 100));
    PTR(reallocarray(NULL, 10, 10));
    PTR(memalign(64, 100));
    PTR(memalign(100, 100));
    PTR(memalign(4096, 1 << 20));
    PTR(memalign(1 << 21, 10));
    PTR(aligned_alloc(64, 128));
    PTR(aligned_alloc(4096, 4096));
    PTR(valloc(10));
    PTR(valloc(1 << 20));
    PTR(pvalloc(0));
    PTR(pvalloc(10000));
    RC(posix_memalign(&p, 8, 0), p);
    RC(posix_memalign(&p, 64, 100), p);
    RC(posix_memalign(&p, 4096, 1 << 20), p);
    RC(posix_memalign(&p, 1 << 21, 3 << 20), p);
    /* realloc through every size range and back, and to 0 (glibc frees). */
    size_t sizes[] = {10, 1000, 100000, 10 << 20, 200, 0};
    char *r = malloc(1);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char call[64];
        snprintf(call, sizeof call, "realloc(r, %zu)", sizes[i]);
        errno = SENTINEL;
        r = realloc(r, sizes[i]);
        report(call, r);
    }
    free(r);
    char *s = malloc(16);
    errno = SENTINEL;
    s = reallocarray(s, 1000, 10);
    report("reallocarray(s, 1000, 10)", s);
    errno = SENTINEL;
    report("  malloc_usable_size(s) > 0", (void *)(uintptr_t)(malloc_usable_size(s) > 0));
    free(s);
    errno = SENTINEL;
    free(NULL);
    report_void("free(NULL)");
    errno = SENTINEL;
    report("malloc_usable_size(NULL) == 0", (void *)(uintptr_t)(malloc_usable_size(NULL) == 0));
}

/* A new thread's and a forked child's first calls: per-thread set-up and fork
 * handlers must leave errno alone too. */
static void *in_thread(void *arg) {
    (void)arg;
    printf("-- first calls in a new thread\n");
    PTR(malloc(24));
    PTR(malloc(5 << 20));
    RC(posix_memalign(&p, 64, 100), p);
    return NULL;
}

static void new_thread_and_child(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, in_thread, NULL) == 0) pthread_join(t, NULL);
    printf("-- first calls in a forked child\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        PTR(malloc(100));
        PTR(malloc(5 << 20));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}


/* Real failures: 1 TiB is a plain size for every check, bigger than any reservation
 * a backend holds, and RLIMIT_AS leaves 64 MiB, so the backend's mmap fails. */
static void oom(void) {
    free(malloc(1)); /* the backend is up before the limit is set */
    struct rlimit lim = {vm_size() + (64u << 20), 0};
    lim.rlim_max = lim.rlim_cur;
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        perror("setrlimit");
        exit(1);
    }
    PTR(malloc(TIB));
    PTR(calloc(1, TIB));
    PTR(realloc(NULL, TIB));
    PTR(reallocarray(NULL, 1024, TIB / 1024));
    PTR(memalign(128, TIB));
    PTR(aligned_alloc(4096, TIB));
    PTR(valloc(TIB));
    PTR(pvalloc(TIB));
    RC(posix_memalign(&p, 128, TIB), p);
    RC(posix_memalign(&p, 1 << 21, TIB), p);
    char *q = malloc(64);
    errno = SENTINEL;
    report("realloc(q, TIB)", realloc(q, TIB));
    free(q);
    /* Small requests still succeed and leave errno alone. */
    PTR(malloc(100));
    RC(posix_memalign(&p, 128, 512), p);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "oom") == 0) {
        oom();
    } else {
        successes(); /* first: a backend's lazy start-up work shows in them */
        size_failures();
        new_thread_and_child();
    }
    fprintf(stderr, "errno done under %s\n", active_backend());
    return 0;
}
