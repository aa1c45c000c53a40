/* Prints what the library's query API says, from inside a process that has it
 * preloaded: the reference that `allocshim info --json` must match. */
#include "check.h"

int main(void) {
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "allocshim_version");
    int (*count)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "allocshim_backend_count");
    const char *(*name)(int) = (const char *(*)(int))dlsym(RTLD_DEFAULT, "allocshim_backend_name");
    const char *(*bversion)(int) = (const char *(*)(int))dlsym(RTLD_DEFAULT, "allocshim_backend_version");
    const char *(*reason)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "allocshim_reason");
    if (!version || !count || !name || !bversion || !reason) {
        fprintf(stderr, "the query API is not there\n");
        return 1;
    }
    printf("version=%s\n", version());
    for (int i = 0; i < count(); i++) printf("backend=%s %s\n", name(i), bversion(i));
    printf("active=%s\n", active_backend());
    printf("reason=%s\n", reason());
    return 0;
}
