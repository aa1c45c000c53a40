/* Linked with -static: ld.so never runs for it, so LD_PRELOAD cannot reach it. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    free(malloc(16));
    puts("static program ran");
    return 0;
}
