/* Where this program's calls of the entry points (malloc, free, calloc, realloc,
 * posix_memalign, aligned_alloc, malloc_usable_size) go: reads its own GOT (the
 * JUMP_SLOT / GLOB_DAT slots ld.so filled for those symbols) before making any of those
 * calls itself, and names what each slot points to:
 *   ours        the library's exported function (dlsym(RTLD_DEFAULT, name))
 *   libc        glibc's own definition of that name
 *   direct:X+O  another function, at offset O of object X (tests/rebind.rs names it
 *               from X's symbol table)
 *   lazy        still the program's own PLT stub (never resolved, never rebound)
 * Then it allocates through every slot, dlopens PLUGIN (argv[1]) and reports the
 * plugin's slots too: a library loaded after start-up is not rebound, its calls reach
 * the exported functions. Output lines: "slot NAME KIND WHERE" and "plugin NAME WHERE".
 * Built three ways by tests/rebind.rs: lazy PIE (cc's default here), -Wl,-z,now, and
 * -fno-plt (calls through GLOB_DAT slots, as Rust binaries make them). */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <link.h>
#include <malloc.h>
#include <string.h>
#include "check.h"

#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

#define NAMES 7
static const char *names[NAMES] = {"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"};
#define MAX_SLOTS 32

struct slot {
    int name; /* index into names */
    int jump; /* JUMP_SLOT (else GLOB_DAT) */
    uintptr_t value;
};

struct scan {
    const char *want; /* object name suffix; "" = the main program */
    struct slot slots[MAX_SLOTS];
    int n;
    uintptr_t lo, hi; /* the object's executable segments */
};

static uintptr_t dyn_ptr(uintptr_t base, uintptr_t v) { return v < base ? v + base : v; }

static void scan_relocs(struct scan *s, uintptr_t base, const ElfW(Rela) *r, size_t n, const ElfW(Sym) *symtab,
                        const char *strtab) {
    for (size_t i = 0; i < n && s->n < MAX_SLOTS; i++) {
        unsigned type = ELF64_R_TYPE(r[i].r_info);
        if (type != R_JUMP_SLOT && type != R_GLOB_DAT) continue;
        const char *name = strtab + symtab[ELF64_R_SYM(r[i].r_info)].st_name;
        for (int k = 0; k < NAMES; k++) {
            if (strcmp(name, names[k]) == 0) {
                struct slot *sl = &s->slots[s->n++];
                sl->name = k;
                sl->jump = type == R_JUMP_SLOT;
                sl->value = *(volatile uintptr_t *)(base + r[i].r_offset);
            }
        }
    }
}

static int each(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct scan *s = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    size_t len = strlen(name), want = strlen(s->want);
    if (want == 0 ? len != 0 : (len < want || strcmp(name + len - want, s->want) != 0)) return 0;
    uintptr_t base = info->dlpi_addr;
    const ElfW(Dyn) *dyn = NULL;
    s->lo = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dyn = (const void *)(base + ph->p_vaddr);
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            if (base + ph->p_vaddr < s->lo) s->lo = base + ph->p_vaddr;
            if (base + ph->p_vaddr + ph->p_memsz > s->hi) s->hi = base + ph->p_vaddr + ph->p_memsz;
        }
    }
    if (!dyn) return 1;
    uintptr_t jmprel = 0, pltrelsz = 0, rela = 0, relasz = 0, symtab = 0, strtab = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_JMPREL: jmprel = dyn_ptr(base, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
        case DT_RELA: rela = dyn_ptr(base, dyn->d_un.d_ptr); break;
        case DT_RELASZ: relasz = dyn->d_un.d_val; break;
        case DT_SYMTAB: symtab = dyn_ptr(base, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = dyn_ptr(base, dyn->d_un.d_ptr); break;
        }
    }
    if (jmprel) scan_relocs(s, base, (const void *)jmprel, pltrelsz / sizeof(ElfW(Rela)), (const void *)symtab, (const char *)strtab);
    if (rela) scan_relocs(s, base, (const void *)rela, relasz / sizeof(ElfW(Rela)), (const void *)symtab, (const char *)strtab);
    return 1;
}

static const char *where(const struct scan *s, const struct slot *sl, char *buf, size_t cap) {
    if (sl->value == (uintptr_t)dlsym(RTLD_DEFAULT, names[sl->name])) return "ours";
    if (sl->value >= s->lo && sl->value < s->hi) return "lazy";
    /* A handle's lookup starts at that object: glibc's own definition. */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc && sl->value == (uintptr_t)dlsym(libc, names[sl->name])) return "libc";
    Dl_info info;
    if (!dladdr((void *)sl->value, &info) || !info.dli_fname) return "unknown";
    const char *base = strrchr(info.dli_fname, '/');
    snprintf(buf, cap, "direct:%s+0x%lx", base ? base + 1 : info.dli_fname,
             (unsigned long)(sl->value - (uintptr_t)info.dli_fbase));
    return buf;
}

int main(int argc, char **argv) {
    /* Read the slots first: nothing below this line has called malloc & co. yet (the
     * scan itself does not allocate). */
    static struct scan self = {.want = ""};
    dl_iterate_phdr(each, &self);

    /* Allocate through every slot, so none is optimised away and all work. */
    void *volatile p = malloc(100);
    CHECK(p != NULL, "malloc");
    p = realloc(p, 5000);
    CHECK(p != NULL, "realloc");
    int *z = calloc(10, sizeof(int));
    CHECK(z && z[9] == 0, "calloc");
    free(z);
    errno = 0;
    CHECK(realloc(p, 0) == NULL && errno == 0, "realloc(p, 0) frees, returns NULL, keeps errno");
    errno = 0;
    CHECK(calloc((size_t)-1 / 2, 3) == NULL && errno == ENOMEM, "calloc overflow: ENOMEM, errno %d", errno);
    errno = 0;
    CHECK(calloc(1, (size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM, "calloc above PTRDIFF_MAX: ENOMEM, errno %d", errno);
    free(NULL);
    void *a = NULL;
    CHECK(posix_memalign(&a, 64, 0) == 0 && a && (uintptr_t)a % 64 == 0, "posix_memalign(64, 0) = %p", a);
    free(a);
    /* (errno after posix_memalign: tests/c/errno.c, where GCC cannot assume it unchanged) */
    CHECK(posix_memalign(&a, 64, SIZE_MAX / 2) == ENOMEM, "posix_memalign too large: ENOMEM");
    void *b = aligned_alloc(4096, 0);
    CHECK(b && (uintptr_t)b % 4096 == 0, "aligned_alloc(4096, 0) = %p", b);
    free(b);
    if (!aligned_alloc_rounds()) {
        errno = 0;
        CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL, "aligned_alloc(24): EINVAL, errno %d", errno);
    }
    char *c = malloc(100);
    CHECK(c && malloc_usable_size(c) >= 100, "malloc_usable_size(malloc(100)) = %zu", malloc_usable_size(c));
    free(c);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");

    char buf[256];
    for (int i = 0; i < self.n; i++)
        printf("slot %s %s %s\n", names[self.slots[i].name], self.slots[i].jump ? "JUMP_SLOT" : "GLOB_DAT",
               where(&self, &self.slots[i], buf, sizeof buf));

    if (argc > 1) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        CHECK(h != NULL, "dlopen %s: %s", argv[1], dlerror());
        if (h) {
            char **block = dlsym(h, "plugin_block");
            CHECK(block && strcmp(*block, "from the plugin") == 0, "plugin block");
            const char *slash = strrchr(argv[1], '/');
            static struct scan plugin;
            plugin.want = slash ? slash : argv[1];
            dl_iterate_phdr(each, &plugin);
            for (int i = 0; i < plugin.n; i++)
                printf("plugin %s %s\n", names[plugin.slots[i].name], where(&plugin, &plugin.slots[i], buf, sizeof buf));
            free(*block);
            CHECK(dlclose(h) == 0, "dlclose");
        }
    }
    printf("backend=%s\nfailures=%d\n", active_backend(), failures);
    return failures != 0;
}
