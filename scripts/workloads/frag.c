/* Fragmentation: fill the heap with many small objects, free most of them at random
 * (a survivor pins each page), then allocate objects of other sizes. Peak RSS comes
 * from `compare`; the RSS left at the end shows how much of the freed memory the
 * allocator could reuse or return. */
#include "bench.h"

int main(int argc, char **argv) {
    long n = (long)(600000 * scale(argc, argv));
    void **obj = malloc((size_t)n * sizeof *obj);
    uint64_t s = 99;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
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
    double final = rss_kib();
    for (long i = 0; i < n; i++) free(obj[i]);
    free(obj);
    ops_done(n + n + n / 4);
    metric("ns_per_op", (t1 - t0) / (double)(n + n + n / 4), "ns");
    metric("final_rss", final / 1024.0, "MiB");
    return 0;
}
