/* glibc's documented malloc semantics, checked against whichever backend serves. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static void *volatile sink;  /* keeps the compiler from folding malloc/free pairs */

static void zero_sized(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) must give unique pointers: %p %p", a, b);
    free(a);
    free(b);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
}

static void free_keeps_errno(void) {
    for (size_t size = 16; size <= (64u << 20); size *= 4) {
        void *p = malloc(size);
        errno = 12345;
        free(p);
        CHECK(errno == 12345, "free(%zu bytes) changed errno to %d", size, errno);
    }
    errno = 777;
    free(NULL);
    CHECK(errno == 777, "free(NULL) changed errno");
}

static void realloc_rules(void) {
    char *p = realloc(NULL, 100);
    CHECK(p != NULL, "realloc(NULL, n) is malloc");
    for (int i = 0; i < 100; i++) p[i] = (char)i;
    p = realloc(p, 100000);
    CHECK(p != NULL, "grow");
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= p[i] == (char)i;
    CHECK(ok, "contents kept on grow");
    memset(p, 0x5a, 100000);
    p = realloc(p, 10);
    CHECK(p && p[0] == 0x5a && p[9] == 0x5a, "contents kept on shrink");
    errno = 0;
    void *q = realloc(p, 0);
    CHECK(q == NULL, "realloc(p, 0) frees and returns NULL (got %p)", q);
    void *r = realloc(NULL, 0);
    CHECK(r != NULL, "realloc(NULL, 0) is malloc(0)");
    free(r);
    char *s = malloc(64);
    errno = 0;
    CHECK(realloc(s, SIZE_MAX) == NULL && errno == ENOMEM, "realloc huge: NULL+ENOMEM, errno %d", errno);
    sink = s;
    free(sink); /* still valid after the failed realloc */
}

static void calloc_rules(void) {
    /* Dirty a lot of memory, free it, and ask calloc for the same sizes again. */
    for (int round = 0; round < 2; round++) {
        for (size_t size = 8; size <= (4u << 20); size *= 2) {
            unsigned char *p = round ? calloc(1, size) : malloc(size);
            CHECK(p != NULL, "alloc %zu", size);
            if (!p) continue;
            if (round == 0) {
                memset(p, 0xff, size);
            } else {
                size_t nonzero = 0;
                for (size_t i = 0; i < size; i++) nonzero += p[i] != 0;
                CHECK(nonzero == 0, "calloc(%zu) returned %zu non-zero bytes", size, nonzero);
            }
            free(p);
        }
    }
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    errno = 0;
    void *p = malloc(16);
    CHECK(reallocarray(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "reallocarray overflow");
    free(p);
}

static void huge(void) {
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        errno = 0;
        void *p = malloc(sizes[i]);
        CHECK(p == NULL && errno == ENOMEM, "malloc(%zu): %p errno %d", sizes[i], p, errno);
        errno = 0;
        p = memalign(64, sizes[i]);
        CHECK(p == NULL && errno == ENOMEM, "memalign(64, %zu): %p errno %d", sizes[i], p, errno);
        /* posix_memalign returns the error and, like glibc's, leaves it in errno too.
         * Called through a volatile pointer: GCC's builtin model assumes it leaves
         * errno alone and would fold the check away. */
        int (*volatile pm)(void **, size_t, size_t) = posix_memalign;
        errno = 0;
        int rc = pm(&p, 64, sizes[i]);
        CHECK(rc == ENOMEM && errno == ENOMEM, "posix_memalign(64, %zu): %d errno %d", sizes[i], rc, errno);
    }
    errno = 0;
    void *p = pvalloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX): %p errno %d", p, errno);
    errno = 0;
    p = valloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX): %p errno %d", p, errno);
}

static void alignment(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *out = (void *)0x1234;
    CHECK(posix_memalign(&out, 24, 10) == EINVAL && out == (void *)0x1234, "posix_memalign(24) EINVAL, out untouched");
    CHECK(posix_memalign(&out, 4, 10) == EINVAL && out == (void *)0x1234, "posix_memalign(4) EINVAL");
    CHECK(posix_memalign(&out, 0, 10) == EINVAL && out == (void *)0x1234, "posix_memalign(0) EINVAL");
    if (aligned_alloc_rounds()) { /* glibc before 2.38, also under `system`: memalign */
        void *r = aligned_alloc(24, 48);
        CHECK(r && (uintptr_t)r % 32 == 0, "aligned_alloc(24) rounded up to 32 as glibc's memalign: %p", r);
        free(r);
    } else {
        errno = 0;
        CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL, "aligned_alloc(24) EINVAL, errno %d", errno);
        errno = 0;
        CHECK(aligned_alloc(0, 48) == NULL && errno == EINVAL, "aligned_alloc(0) EINVAL");
    }
    /* memalign rounds a non-power-of-two alignment up, like glibc. */
    size_t odd[] = {3, 24, 48, 100, 1000, 5000};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        size_t want = 1;
        while (want < odd[i]) want <<= 1;
        void *p = memalign(odd[i], 100);
        CHECK(p && (uintptr_t)p % want == 0, "memalign(%zu) aligned to %zu: %p", odd[i], want, p);
        free(p);
    }
    for (size_t align = 1; align <= (2u << 20); align <<= 1) {
        size_t sizes[] = {0, 1, align / 2 + 1, align, 3 * align + 1, 512};
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
            size_t size = sizes[j];
            void *a = aligned_alloc(align, size);
            void *m = memalign(align, size);
            void *pm = NULL;
            int rc = align >= sizeof(void *) ? posix_memalign(&pm, align, size) : 0;
            CHECK(a && (uintptr_t)a % align == 0, "aligned_alloc(%zu, %zu) = %p", align, size, a);
            CHECK(m && (uintptr_t)m % align == 0, "memalign(%zu, %zu) = %p", align, size, m);
            if (align >= sizeof(void *))
                CHECK(rc == 0 && pm && (uintptr_t)pm % align == 0, "posix_memalign(%zu, %zu) = %d %p", align, size, rc, pm);
            if (a && size) {
                CHECK(malloc_usable_size(a) >= size, "usable %zu < %zu", malloc_usable_size(a), size);
                memset(a, 1, malloc_usable_size(a));
            }
            free(a);
            free(m);
            free(pm);
        }
    }
    void *v = valloc(10);
    CHECK(v && (uintptr_t)v % page == 0, "valloc page-aligned");
    free(v);
    void *pv = pvalloc(1);
    CHECK(pv && (uintptr_t)pv % page == 0 && malloc_usable_size(pv) >= (size_t)page, "pvalloc rounds to a page");
    if (pv) memset(pv, 2, page);
    free(pv);
    pv = pvalloc(0);
    CHECK(pv && (uintptr_t)pv % page == 0, "pvalloc(0) gives a page");
    free(pv);
    /* aligned_alloc(256, 512): Debian's mimalloc 2.0.9 got this one wrong. */
    for (int i = 0; i < 1000; i++) {
        void *p = aligned_alloc(256, 512);
        CHECK((uintptr_t)p % 256 == 0, "aligned_alloc(256, 512) = %p", p);
        sink = p;
        free(p);
    }
}

static void usable_size(void) {
    for (size_t size = 1; size < 200000; size = size * 3 / 2 + 1) {
        unsigned char *p = malloc(size);
        size_t u = malloc_usable_size(p);
        CHECK(p && u >= size, "malloc_usable_size(%zu bytes) = %zu", size, u);
        if (p) memset(p, 0xab, u);  /* the whole usable size is writable */
        free(p);
    }
}

static void misc(void) {
    /* cfree is a compat-only symbol in glibc, so programs reach it dynamically. */
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    void *p = malloc(100);
    if (cfree_fn) cfree_fn(p); else free(p);
    int trimmed = malloc_trim(0);
    CHECK(trimmed == 0 || trimmed == 1, "malloc_trim returns 0 or 1: %d", trimmed);
    char *s = strdup("hello");  /* glibc-internal allocation freed by us */
    CHECK(s && strcmp(s, "hello") == 0, "strdup");
    free(s);
}

int main(void) {
    zero_sized();
    free_keeps_errno();
    realloc_rules();
    calloc_rules();
    huge();
    alignment();
    usable_size();
    misc();
    printf("api checks done under %s: %d failures\n", active_backend(), failures);
    return failures != 0;
}
