/* Allocation sites with known names, for the heap-profiling tests (tests/profile.rs).
 *
 * Usage: leak BASE_MIB LEAK_MIB [wait|fork]
 *   keep_base():   BASE_MIB MiB in 4 KiB blocks, kept to the end
 *   churn_there(): 64 MiB allocated and freed again (must not show as live)
 *   leak_here():   LEAK_MIB MiB in 4 KiB blocks, never freed
 * First prints `sigcgt=<hex>`: the signals this process catches (/proc/self/status).
 * wait: prints "base" after keep_base and waits for a line on stdin, then leaks,
 *       prints "leaked" and waits for the end of stdin.
 * fork: a child does keep_base and leak_here, prints "child=<pid>" and "leaked",
 *       and waits for the end of stdin; the parent waits for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BLOCK = 4096 };
static void *volatile sink;

__attribute__((noinline)) static void keep_base(long mib) {
    for (long i = 0; i < mib * 256; i++) {
        char *p = malloc(BLOCK);
        memset(p, 1, BLOCK);
        sink = p; /* kept: never freed */
    }
}

__attribute__((noinline)) static void churn_there(void) {
    for (long i = 0; i < 64 * 256; i++) {
        char *p = malloc(BLOCK);
        memset(p, 2, BLOCK);
        free(p);
    }
}

__attribute__((noinline)) void leak_here(long mib) {
    for (long i = 0; i < mib * 256; i++) {
        char *p = malloc(BLOCK);
        memset(p, 3, BLOCK);
        sink = p;
    }
}

static void sigcgt(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "SigCgt:", 7) == 0) printf("sigcgt=%s", line + 7 + strspn(line + 7, " \t"));
    if (f) fclose(f);
    fflush(stdout);
}

static void wait_line(void) {
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin)) return;
}

static void wait_end(void) {
    while (getchar() != EOF) {
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: leak BASE_MIB LEAK_MIB [wait|fork]\n");
        return 2;
    }
    long base = atol(argv[1]), leak = atol(argv[2]);
    const char *mode = argc > 3 ? argv[3] : "";
    sigcgt();
    if (strcmp(mode, "fork") == 0) {
        pid_t child = fork();
        if (child == 0) {
            keep_base(base);
            leak_here(leak);
            printf("child=%d\nleaked\n", (int)getpid());
            fflush(stdout);
            wait_end();
            return 0;
        }
        int status;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    keep_base(base);
    churn_there();
    if (strcmp(mode, "wait") == 0) {
        printf("base\n");
        fflush(stdout);
        wait_line();
    }
    leak_here(leak);
    if (strcmp(mode, "wait") == 0) {
        printf("leaked\n");
        fflush(stdout);
        wait_end();
    }
    return 0;
}
