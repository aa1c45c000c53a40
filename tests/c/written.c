/* Which pages of the library's per-allocator data sections this process has written.
 * Arguments: NAME:START:END, each a range of the library given as offsets from its
 * load address (hex). After one allocation (so that a backend is chosen and started),
 * prints "NAME written N of M" per range, from /proc/self/pagemap: a page this process
 * wrote is its private copy (present, and not a page of the file). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
        printf("%s written %d of %d\n", name, written, pages);
    }
    return 0;
}
