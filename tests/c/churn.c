/* A small allocation-heavy program: a ring of live blocks of mixed small sizes,
 * replaced one at a time, with the contents checked. Usage: churn [operations] */
#include <stdint.h>
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 2000000;
    enum { LIVE = 4096 };
    static unsigned char *ring[LIVE];
    static size_t size[LIVE];
    uint32_t x = 12345;
    for (long i = 0; i < ops; i++) {
        x = x * 1664525u + 1013904223u;
        unsigned slot = x % LIVE;
        if (ring[slot]) {
            CHECK(ring[slot][0] == (unsigned char)size[slot] && ring[slot][size[slot] - 1] == (unsigned char)slot,
                  "block contents");
            free(ring[slot]);
        }
        size[slot] = 8 + (x >> 20) % 1024;
        ring[slot] = malloc(size[slot]);
        ring[slot][0] = (unsigned char)size[slot];
        ring[slot][size[slot] - 1] = (unsigned char)slot;
    }
    for (int i = 0; i < LIVE; i++) free(ring[i]);
    printf("churn: %ld operations, %d failures\n", ops, failures);
    /* Read back by `allocshim compare` (its metric lines). */
    printf("allocshim-metric operations %ld ops\n", ops);
    return failures != 0;
}
