/* The low-memory preset's trimming helper under glibc, seen from a program:
 *
 *  helper_at_start=N   threads named allocshim-trim before the program starts a thread
 *  helper_after=N      ... after its first pthread_create
 *  child_at_fork=N     ... in a forked child, before the child starts a thread
 *  child_after=N       ... once the child has started one
 *  rss_before, rss_after (KiB): a worker thread fills its arena with 160 MiB of 4 KiB
 *    blocks, keeps every 32nd (so no free range reaches the top of the heap, which
 *    glibc would trim itself) and frees the rest; RSS right after, and WAIT_MS later.
 *
 * Usage: trim [WAIT_MS]   (default 2500) */
#include <dirent.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

#define BLOCKS (160 * 256)

static int helpers(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], name[32] = "";
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f) && strncmp(name, "allocshim-trim", 14) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) return -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void *nothing(void *arg) { return arg; }

static void *fragment(void *arg) {
    static char *block[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        block[i] = malloc(4000);
        memset(block[i], 1, 4000);
    }
    for (int i = 0; i < BLOCKS; i++)
        if (i % 32) free(block[i]);
    return arg;
}

static void start_one(void *(*fn)(void *)) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
}

int main(int argc, char **argv) {
    printf("helper_at_start=%d\n", helpers());
    start_one(nothing);
    pause_ms(100);
    printf("helper_after=%d\n", helpers());
    fflush(stdout);

    int pipefd[2];
    CHECK(pipe(pipefd) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        char line[64];
        int at_fork = helpers();
        start_one(nothing);
        pause_ms(100);
        int n = snprintf(line, sizeof line, "child_at_fork=%d\nchild_after=%d\n", at_fork, helpers());
        CHECK(write(pipefd[1], line, n) == n, "write");
        _exit(0);
    }
    close(pipefd[1]);
    char buf[128] = "";
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    int status;
    waitpid(pid, &status, 0);
    printf("%s", n > 0 ? buf : "child_at_fork=-1\nchild_after=-1\n");

    start_one(fragment);
    printf("rss_before=%ld\n", rss_kib());
    pause_ms(argc > 1 ? atol(argv[1]) : 2500);
    printf("rss_after=%ld\n", rss_kib());
    printf("backend=%s\n", active_backend());
    return status == 0 && failures == 0 ? 0 : 1;
}
