/* Pointers the active backend did not allocate: blocks from glibc's own heap
 * (__libc_malloc, as RTLD_DEEPBIND libraries and some tracers obtain) handed to the
 * shim's free/realloc/malloc_usable_size. Usage: foreign free|all */
#include <malloc.h>
#include <string.h>
#include "check.h"

extern void *__libc_malloc(size_t);

int main(int argc, char **argv) {
    int all = argc > 1 && strcmp(argv[1], "all") == 0;
    for (int i = 0; i < 1000; i++) {
        char *p = __libc_malloc(100 + i);
        memset(p, 'g', 100);
        if (all) {
            CHECK(malloc_usable_size(p) >= (size_t)(100 + i), "usable size of a glibc block");
            p = realloc(p, 5000);
            CHECK(p && p[99] == 'g', "realloc of a glibc block keeps its contents");
        }
        free(p);
    }
    printf("foreign done under %s: %d failures\n", active_backend(), failures);
    return failures != 0;
}
