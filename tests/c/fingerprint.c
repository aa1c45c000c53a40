/* Evidence of which allocator actually serves this process, independent of what the
 * environment asked for:
 *   malloc_object - the object that defines `malloc` for the process (the global
 *                   lookup: dlsym(RTLD_DEFAULT)). Not `&malloc`: once a backend is
 *                   chosen the library rebinds this program's malloc slots straight
 *                   to the backend's function (shim/src/rebind.rs, tests/rebind.rs);
 *   usable        - malloc_usable_size of 1, 40, 100 and 2100000 bytes: each allocator
 *                   rounds to its own size classes (glibc: +8 bytes in 16-byte steps;
 *                   jemalloc and mimalloc: 8-byte smallest class, then pages for
 *                   jemalloc's large sizes and 1/8 power-of-two steps for mimalloc's;
 *                   snmalloc: 16 bytes smallest, powers of two when large). The large
 *                   size tells jemalloc from mimalloc with 4 KiB and with 64 KiB jemalloc
 *                   pages (the aarch64 build, docs/aarch64.md);
 *   brk_heap      - whether a small block lies in the brk heap (between the end of the
 *                   program's data and the current break), where only glibc puts small
 *                   blocks. Read from the break itself, not from the [heap] label of
 *                   /proc/self/maps, which qemu-user does not show;
 *   usage_grew    - whether the library's report of the backend's own statistics moves
 *                   when 64 MiB are allocated. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static int in_brk_heap(void *p) {
    extern char end; /* the linker's end of the program's data: the heap starts above */
    return (char *)p >= &end && (char *)p < (char *)sbrk(0);
}

int main(void) {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    const char *object = dladdr(m, &info) && info.dli_fname ? info.dli_fname : "?";
    const char *slash = strrchr(object, '/');
    printf("malloc_object=%s\n", slash ? slash + 1 : object);

    void *a = malloc(1), *b = malloc(40), *c = malloc(100), *d = malloc(2100000);
    printf("usable=%zu,%zu,%zu,%zu\n", malloc_usable_size(a), malloc_usable_size(b), malloc_usable_size(c),
           malloc_usable_size(d));
    printf("brk_heap=%d\n", in_brk_heap(c));

    void (*usage)(size_t *, size_t *) = (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "allocshim_usage");
    if (usage) {
        size_t before = 0, after = 0, r0 = 0, r1 = 0;
        usage(&before, &r0);
        size_t n = 64;
        char *blocks[64];
        for (size_t i = 0; i < n; i++) {
            blocks[i] = malloc(1 << 20);
            memset(blocks[i], 1, 1 << 20);
        }
        usage(&after, &r1);
        int known = after != SIZE_MAX || r1 != SIZE_MAX;
        int grew = (after != SIZE_MAX && after >= before + (60u << 20)) || (r1 != SIZE_MAX && r1 >= r0 + (60u << 20));
        if (known) printf("usage_grew=%d\n", grew);
        else printf("usage_grew=n/a\n");
        for (size_t i = 0; i < n; i++) free(blocks[i]);
    }
    printf("active=%s\n", active_backend());
    const char *(*reason)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "allocshim_reason");
    printf("reason=%s\n", reason ? reason() : "none");
    free(a);
    free(b);
    free(c);
    free(d);
    return 0;
}
