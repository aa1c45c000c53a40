/* Tiny harness for the C test programs: CHECK prints what failed and counts it. */
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <string.h>
#include <unistd.h>

static int failures __attribute__((unused));
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* The active backend's name through the library's query API, or "none" when the
 * library is not loaded. */
__attribute__((unused)) static const char *active_backend(void) {
    int (*active)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "allocshim_active");
    const char *(*name)(int) = (const char *(*)(int))dlsym(RTLD_DEFAULT, "allocshim_backend_name");
    if (!active || !name) return "none";
    return name(active());
}

/* Whether aligned_alloc with an alignment that is no power of two rounds it up, as
 * memalign does, instead of failing with EINVAL: glibc's own before 2.38, which
 * serves nothing preloaded and the library's `system` backend alike. */
__attribute__((unused)) static int aligned_alloc_rounds(void) {
    unsigned major = 0, minor = 0;
    if (sscanf(gnu_get_libc_version(), "%u.%u", &major, &minor) != 2) return 0;
    const char *backend = active_backend();
    int glibc = strcmp(backend, "none") == 0 || strcmp(backend, "system") == 0;
    return glibc && (major < 2 || (major == 2 && minor < 38));
}

/* This process's address-space size (VmSize), for tests that set RLIMIT_AS above it. */
__attribute__((unused)) static size_t vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    size_t pages = 0;
    if (f) {
        if (fscanf(f, "%zu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}
