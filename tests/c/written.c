/* Which pages of the library's per-allocator data sections this process has written,
 * and whether they are writable now. Arguments: NAME:START:END, each a range of the
 * library given as offsets from its load address (hex). After one allocation (so that
 * a backend is chosen and started), prints "NAME written N of M PERMS" per range: from
 * /proc/self/pagemap, the pages this process wrote (its private copies: present, and
 * not pages of the file); from /proc/self/maps, the permissions of the mapping that
 * holds the range's first byte. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The permissions ("r--p", "rw-p", ...) of the mapping holding `addr`, or "none". */
static const char *perms(uintptr_t addr) {
    static char found[8];
    FILE *maps = fopen("/proc/self/maps", "r");
    unsigned long lo, hi;
    char p[8];
    strcpy(found, "none");
    while (maps && fscanf(maps, "%lx-%lx %7s%*[^\n]", &lo, &hi, p) == 3)
        if (lo <= addr && addr < hi) {
            strcpy(found, p);
            break;
        }
    if (maps) fclose(maps);
    return found;
}

int main(int argc, char **argv) {
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "allocshim_active");
    if (!sym || !dladdr(sym, &info)) {
        fprintf(stderr, "liballocshim.so is not loaded\n");
        return 2;
    }
    free(malloc(100));
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) {
        perror("/proc/self/pagemap");
        return 2;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), base = (uintptr_t)info.dli_fbase;
    for (int i = 1; i < argc; i++) {
        char name[64];
        unsigned long start, end;
        if (sscanf(argv[i], "%63[^:]:%lx:%lx", name, &start, &end) != 3) {
            fprintf(stderr, "bad range %s (accepted: NAME:START:END in hex)\n", argv[i]);
            return 2;
        }
        int written = 0, pages = 0;
        for (uintptr_t a = (base + start) & ~(page - 1); a < base + end; a += page, pages++) {
            uint64_t e;
            if (pread(fd, &e, sizeof e, (off_t)(a / page * sizeof e)) != sizeof e) {
                perror("pread /proc/self/pagemap");
                return 2;
            }
            /* bit 63: present; bit 61: a file page or shared anonymous one */
            if ((e >> 63 & 1) && !(e >> 61 & 1)) written++;
        }
        printf("%s written %d of %d %s\n", name, written, pages, perms(base + start));
    }
    return 0;
}
