/* realloc growth: many buffers grown step by step (by about an eighth each time, as
 * string builders and vectors do) from 16 bytes to 256 KiB, interleaved so no buffer
 * stays at the top of the heap, then freed. One op = one realloc. */
#include <string.h>

#include "bench.h"

#define BUFFERS 64
#define LIMIT (256 * 1024)

int main(int argc, char **argv) {
    int rounds = (int)(12 * scale(argc, argv));
    long ops = 0;
    double t0 = now_ns();
    for (int r = 0; r < rounds; r++) {
        char *buf[BUFFERS];
        size_t size[BUFFERS];
        for (int i = 0; i < BUFFERS; i++) { buf[i] = NULL; size[i] = 16 + (size_t)i; }
        for (int grown = 1; grown;) {
            grown = 0;
            for (int i = 0; i < BUFFERS; i++) {
                if (size[i] >= LIMIT) continue;
                size_t next = size[i] + size[i] / 8 + 8;
                char *p = realloc(buf[i], next);
                if (!p) { perror("realloc"); return 1; }
                p[next - 1] = (char)i; /* touch the new end, as a writer would */
                buf[i] = p;
                size[i] = next;
                ops++;
                grown = 1;
            }
        }
        for (int i = 0; i < BUFFERS; i++) { sink += (uintptr_t)buf[i]; free(buf[i]); }
    }
    double t1 = now_ns();
    ops_done(ops);
    metric("ns_per_op", (t1 - t0) / (double)ops, "ns");
    return 0;
}
