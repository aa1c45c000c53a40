/* Aligned allocation: posix_memalign and aligned_alloc with alignments from 16 bytes
 * to one page, small sizes, in a pool like mixed.c (one op = aligned alloc + free). */
#include "bench.h"

#define SLOTS 4096

int main(int argc, char **argv) {
    long ops = (long)(2e6 * scale(argc, argv));
    static void *slot[SLOTS];
    uint64_t s = 3;
    double t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        size_t k = next_rand(&s) % SLOTS;
        free(slot[k]);
        size_t align = (size_t)16 << (next_rand(&s) % 9); /* 16 .. 4096 */
        size_t size = align * (1 + next_rand(&s) % 4);
        void *p;
        if (i & 1) {
            p = aligned_alloc(align, size);
        } else if (posix_memalign(&p, align, size) != 0) {
            p = NULL;
        }
        if (!p || ((uintptr_t)p & (align - 1))) { fprintf(stderr, "bad aligned allocation\n"); return 1; }
        ((char *)p)[0] = 1;
        slot[k] = p;
    }
    double t1 = now_ns();
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    ops_done(ops);
    metric("ns_per_op", (t1 - t0) / (double)ops, "ns");
    return 0;
}
