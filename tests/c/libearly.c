/* A library whose constructor allocates, possibly before liballocshim's own
 * constructor has run, and hands the blocks to the program to free later. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void *early_blocks[5];

__attribute__((constructor)) static void early(void) {
    free(NULL);
    early_blocks[0] = malloc(100);
    early_blocks[1] = calloc(10, 10);
    early_blocks[2] = realloc(NULL, 0);
    if (posix_memalign(&early_blocks[3], 64, 100) != 0) early_blocks[3] = NULL;
    early_blocks[4] = strdup("early");
    memset(early_blocks[0], 7, malloc_usable_size(early_blocks[0]));
}
