/* Built twice by tests/rebind.rs: a library the identity program is linked with
 * (loaded at start-up) and a plugin it dlopens later. Hands out the allocation
 * functions' addresses as this object sees them, and allocates through its own PLT. */
#include <malloc.h>
#include <stdlib.h>

void identity_addresses(void *out[7]) {
    out[0] = (void *)malloc;
    out[1] = (void *)free;
    out[2] = (void *)calloc;
    out[3] = (void *)realloc;
    out[4] = (void *)posix_memalign;
    out[5] = (void *)aligned_alloc;
    out[6] = (void *)malloc_usable_size;
}

void *identity_alloc(size_t n) {
    void *p = malloc(n);
    return realloc(p, n * 2);
}
