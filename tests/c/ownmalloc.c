/* A program that brings its own malloc and free (forwarding to glibc's, counting the
 * calls), as some programs do: the library must pass everything through to glibc and
 * its rebinding must leave the program's own functions in place, for the program and
 * for libc's internal calls (strdup here). calloc and realloc are not defined here, so
 * they still reach the library's exports (or, rebound, glibc's own): blocks from them
 * are freed with this free, so both sides must be glibc's heap. */
#define _GNU_SOURCE
#include <string.h>
#include "check.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static volatile long mallocs, frees;

void *malloc(size_t n) {
    mallocs++;
    return __libc_malloc(n);
}

void free(void *p) {
    frees++;
    __libc_free(p);
}

int main(void) {
    long before = mallocs;
    char *s = strdup("libc calls malloc");
    CHECK(s && mallocs > before, "libc's strdup did not reach this program's malloc");
    free(s);
    for (int i = 0; i < 1000; i++) {
        char *p = calloc(1, 100 + i);
        CHECK(p && p[99] == 0, "calloc");
        p = realloc(p, 5000 + i);
        CHECK(p != NULL, "realloc");
        free(p);
    }
    void *m = malloc(64);
    CHECK(m != NULL, "malloc");
    free(m);
    CHECK(frees >= 1002, "this program's free was not called (%ld)", frees);
    printf("backend=%s\nfailures=%d\n", active_backend(), failures);
    return failures != 0;
}
