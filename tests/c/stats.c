/* Holds 8 MiB at once, frees half of it, then prints the backend's own report
 * (malloc_stats) on stderr. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 64
#define BLOCK (128 << 10)

static void *blocks[BLOCKS];

int main(void) {
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        if (!blocks[i]) return 1;
        memset(blocks[i], 1, BLOCK);
    }
    for (int i = 0; i < BLOCKS; i += 2) free(blocks[i]);
    malloc_stats();
    return 0;
}
