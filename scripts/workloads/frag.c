/* Fragmentation: fill the heap with many small objects, free most of them at random
 * (a survivor pins each page), then allocate objects of other sizes. Peak RSS comes
 * from `compare`; the RSS left at the end shows how much of the freed memory the
 * allocator could reuse or return.
 *
 * Usage: frag [SCALE] [nothp]. Its time is mostly the kernel's page faults, and with
 * transparent huge pages (mimalloc asks for them) each one maps and zeroes 2 MiB, at a
 * cost that depends on the machine's memory more than on the allocator
 * (docs/benchmarks.md, "frag"); so it reports its minor page faults and how much of its
 * memory was in huge pages, and `nothp` turns them off for this process
 * (PR_SET_THP_DISABLE) to compare allocators without them. */
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "bench.h"

static long minor_faults(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* AnonHugePages of /proc/self/smaps_rollup, in KiB (0 where the kernel has none). */
static long huge_kib(void) {
    long kib = 0;
    char line[256];
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld", &kib) == 1) break;
    fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "nothp") == 0 && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
        perror("prctl(PR_SET_THP_DISABLE)");
        return 1;
    }
    long n = (long)(600000 * scale(argc, argv));
    void **obj = malloc((size_t)n * sizeof *obj);
    uint64_t s = 99;
    long faults = minor_faults();
    double t0 = now_ns();    for (long i = 0; i < n; i++) {
        size_t size = 16 + next_rand(&s) % 496;
        char *p = malloc(size);
        p[0] = p[size - 1] = 1;
        obj[i] = p;
    }
    for (long i = 0; i < n; i++)
        if (next_rand(&s) % 10 != 0) { free(obj[i]); obj[i] = NULL; }
    /* A second phase of larger objects, a quarter as many: can the freed small-object
     * memory serve them, or does the heap grow? */
    for (long i = 0; i < n; i += 4) {
        if (obj[i] != NULL) continue;
        size_t size = 600 + next_rand(&s) % 1400;
        char *p = malloc(size);
        p[0] = p[size - 1] = 2;
        obj[i] = p;
    }
    double t1 = now_ns();
    faults = minor_faults() - faults;
    double final = rss_kib();
    long huge = huge_kib();
    for (long i = 0; i < n; i++) free(obj[i]);
    free(obj);
    ops_done(n + n + n / 4);
    metric("ns_per_op", (t1 - t0) / (double)(n + n + n / 4), "ns");
    metric("final_rss", final / 1024.0, "MiB");
    metric("page_faults", (double)faults, "");
    metric("huge_pages", (double)huge / 1024.0, "MiB");
    return 0;
}
