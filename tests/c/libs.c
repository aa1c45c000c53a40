/* Early allocation (libearly.so, a DT_NEEDED of this program) and dlopen/dlclose of a
 * library that allocates in its constructor. Usage: libs PATH-TO-libplugin.so */
#include <malloc.h>
#include <string.h>
#include "check.h"

extern void *early_blocks[5];

int main(int argc, char **argv) {
    CHECK(early_blocks[0] && ((unsigned char *)early_blocks[0])[99] == 7, "early malloc block intact");
    CHECK(early_blocks[4] && strcmp(early_blocks[4], "early") == 0, "early strdup");
    CHECK(early_blocks[3] && (unsigned long)early_blocks[3] % 64 == 0, "early posix_memalign");
    early_blocks[0] = realloc(early_blocks[0], 100000);
    CHECK(early_blocks[0] && ((unsigned char *)early_blocks[0])[99] == 7, "early block survives realloc");
    for (int i = 0; i < 5; i++) free(early_blocks[i]);

    for (int round = 0; round < 50; round++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        CHECK(h != NULL, "dlopen %s: %s", argv[1], dlerror());
        if (!h) break;
        char **block = dlsym(h, "plugin_block");
        CHECK(block && strcmp(*block, "from the plugin") == 0, "plugin block");
        free(*block);
        CHECK(dlclose(h) == 0, "dlclose");
    }
    printf("libs done under %s: %d failures\n", active_backend(), failures);
    return failures != 0;
}
