/* Allocation failure under RLIMIT_AS: allocate until the limit is hit; every failure
 * must be NULL with ENOMEM, and the process must then go on and exit cleanly. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include "check.h"


int main(void) {
    free(malloc(1)); /* the backend is up before the limit is set */
    struct rlimit lim = {vm_size() + (256u << 20), RLIM_INFINITY};
    lim.rlim_max = lim.rlim_cur;
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit");
    void **blocks = calloc(100000, sizeof *blocks);
    size_t n = 0, sizes[] = {1 << 20, 64 << 10, 4 << 10};
    for (int s = 0; s < 3; s++) {
        for (;;) {
            errno = 0;
            void *p = malloc(sizes[s]);
            if (!p) {
                CHECK(errno == ENOMEM, "errno %d after failed malloc(%zu)", errno, sizes[s]);
                break;
            }
            memset(p, 1, 64);
            if (n < 100000) blocks[n++] = p;
            if (n >= 100000) break;
        }
    }
    CHECK(n > 0 && n < 100000, "the limit was reached (%zu blocks)", n);
    for (size_t i = 0; i < n; i++) free(blocks[i]);
    free(blocks);
    void *again = malloc(1000);
    CHECK(again != NULL, "malloc works again after freeing");
    free(again);
    printf("rlimit done under %s: %zu blocks before ENOMEM, %d failures\n", active_backend(), n, failures);
    return failures != 0;
}
