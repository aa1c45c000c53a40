/* Tiny harness for the C test programs: CHECK prints what failed and counts it. */
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
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
