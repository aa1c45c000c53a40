/* Single thread, mixed small sizes: a pool of live objects where each step frees a
 * random one and allocates a new one of a random size (one op = malloc + free). */
#include "bench.h"

#define SLOTS 8192

int main(int argc, char **argv) {
    long ops = (long)(4e6 * scale(argc, argv));
    static void *slot[SLOTS];
    uint64_t s = 42;
    for (int i = 0; i < SLOTS; i++) slot[i] = malloc(mixed_size(&s));
    double t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        size_t k = next_rand(&s) % SLOTS;
        free(slot[k]);
        char *p = malloc(mixed_size(&s));
        p[0] = (char)i;
        slot[k] = p;
    }
    double t1 = now_ns();
    for (int i = 0; i < SLOTS; i++) { sink += (uintptr_t)slot[i]; free(slot[i]); }
    ops_done(ops);
    metric("ns_per_op", (t1 - t0) / (double)ops, "ns");
    return 0;
}
