/* Shared by the benchmark workloads: a clock, a cheap deterministic RNG, and the
 * `allocshim-metric` lines that `allocshim compare` reads from stdout. Each workload
 * times only its own loop, so process start-up (measured separately by the /bin/true
 * workload) does not dilute the per-operation figure. */
#ifndef ALLOCSHIM_BENCH_H
#define ALLOCSHIM_BENCH_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* xorshift64*: the same sequence on every run and under every allocator. */
static inline uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Mostly small sizes, like interpreter objects, with a tail up to 4 KiB. */
static inline size_t mixed_size(uint64_t *s) {
    uint64_t r = next_rand(s);
    switch (r & 15) {
    case 0: return 512 + (r >> 8) % 3584;
    case 1: case 2: return 128 + (r >> 8) % 384;
    default: return 8 + (r >> 8) % 120;
    }
}

/* The scale factor: argv[1] multiplies the default amount of work (1.0). */
static inline double scale(int argc, char **argv) {
    double f = argc > 1 ? atof(argv[1]) : 1.0;
    return f > 0 ? f : 1.0;
}

static inline void metric(const char *name, double value, const char *unit) {
    printf("allocshim-metric %s %.4f %s\n", name, value, unit);
}

/* How many operations the run made, for `scripts/bench --instructions`, which divides
 * the instructions two run lengths differ by by the operations they differ by.
 * `allocshim compare` reads only `allocshim-metric` lines and ignores this one. */
static inline void ops_done(long n) {
    printf("allocshim-ops %ld\n", n);
}

/* Resident set size now, in KiB, from /proc/self/statm. */
static inline double rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * 4096.0 / 1024.0;
}

/* Keeps the compiler from proving the allocations unused. */
static volatile uintptr_t sink;
#endif
