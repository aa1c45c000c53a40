/* C gives every function one address: `&malloc` (and the other allocation entry
 * points) taken in this executable, in a library loaded with it at start-up and in a
 * plugin dlopen'ed later must all be equal, and equal to dlsym(RTLD_DEFAULT, name),
 * whichever backend serves (programs compare them: "is this the default free?", hook
 * tables, a plugin checking a pointer the executable stored). Then blocks move across
 * those pointers: allocated through one object's, freed through another's.
 * Usage: identity PLUGIN. Prints "NAME ADDRESS OBJECT" per function (OBJECT: the file
 * dladdr names for it) and "backend=..." and "failures=N"; exits 1 on a failure. Built lazy, -z now, -fno-plt and non-PIE by
 * tests/rebind.rs. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

#define N 7
static const char *names[N] = {"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"};

void identity_addresses(void *out[N]); /* libidentity, loaded at start-up */
void *identity_alloc(size_t n);

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: identity PLUGIN");
    if (argc != 2) return 2;
    /* Taken in this object, through volatile storage so the compiler cannot fold them. */
    void *volatile exe[N] = {(void *)malloc, (void *)free, (void *)calloc, (void *)realloc,
                             (void *)posix_memalign, (void *)aligned_alloc, (void *)malloc_usable_size};
    void *lib[N], *plugin[N];
    identity_addresses(lib);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen %s: %s", argv[1], dlerror());
    if (!h) return 1;
    void (*plugin_addresses)(void *[N]) = (void (*)(void *[N]))dlsym(h, "identity_addresses");
    CHECK(plugin_addresses != NULL, "the plugin's identity_addresses");
    if (!plugin_addresses) return 1;
    plugin_addresses(plugin);
    for (int k = 0; k < N; k++) {
        void *global = dlsym(RTLD_DEFAULT, names[k]);
        CHECK(global != NULL, "dlsym(RTLD_DEFAULT, %s)", names[k]);
        CHECK(exe[k] == global, "&%s in the executable %p, dlsym %p", names[k], exe[k], global);
        CHECK(lib[k] == global, "&%s in the start-up library %p, dlsym %p", names[k], lib[k], global);
        CHECK(plugin[k] == global, "&%s in the plugin %p, dlsym %p", names[k], plugin[k], global);
        Dl_info info;
        const char *object = dladdr(global, &info) && info.dli_fname ? info.dli_fname : "?";
        const char *slash = strrchr(object, '/');
        printf("%s %p %s\n", names[k], global, slash ? slash + 1 : object);
    }

    /* The pointers work, across objects: allocate with one object's, free with another's. */
    void *(*p_malloc)(size_t) = (void *(*)(size_t))plugin[0];
    void (*e_free)(void *) = (void (*)(void *))exe[1];
    void (*l_free)(void *) = (void (*)(void *))lib[1];
    void *(*l_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))lib[2];
    void *(*e_realloc)(void *, size_t) = (void *(*)(void *, size_t))exe[3];
    int (*p_posix_memalign)(void **, size_t, size_t) = (int (*)(void **, size_t, size_t))plugin[4];
    void *(*e_aligned_alloc)(size_t, size_t) = (void *(*)(size_t, size_t))exe[5];
    size_t (*l_usable)(void *) = (size_t(*)(void *))lib[6];
    for (int i = 0; i < 1000; i++) {
        char *a = p_malloc(40 + i);
        memset(a, 1, 40 + i);
        a = e_realloc(a, 4000 + i);
        CHECK(a && a[39] == 1 && l_usable(a) >= 4000u + i, "malloc/realloc across objects");
        l_free(a);
        int *z = l_calloc(100, sizeof(int));
        CHECK(z && z[99] == 0, "calloc");
        e_free(z);
        void *m = NULL;
        CHECK(p_posix_memalign(&m, 256, 100) == 0 && (uintptr_t)m % 256 == 0, "posix_memalign");
        e_free(m);
        void *q = e_aligned_alloc(4096, 4096);
        CHECK(q && (uintptr_t)q % 4096 == 0, "aligned_alloc");
        ((void (*)(void *))plugin[1])(q);
        e_free(identity_alloc(100)); /* the start-up library's own PLT calls */
    }
    printf("backend=%s\nfailures=%d\n", active_backend(), failures);
    return failures != 0;
}
