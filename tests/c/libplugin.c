/* Loaded with dlopen: allocates in its constructor, frees in its destructor. */
#include <stdlib.h>
#include <string.h>

static char *kept;
char *plugin_block;

__attribute__((constructor)) static void load(void) {
    kept = malloc(4096);
    memset(kept, 3, 4096);
    plugin_block = strdup("from the plugin");
}

__attribute__((destructor)) static void unload(void) { free(kept); }
