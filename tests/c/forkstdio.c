/* fork() from several threads while other threads hold stdio locks and allocate:
 * modelled on what glibc's malloc/tst-malloc-fork-deadlock exercises.
 *   - forkers: fork; the child allocates, opens, writes and closes a FILE, exits;
 *   - readers: getline on their own FILE (its lock held while getline allocates);
 *   - a flusher: fflush(NULL) (the stdio list lock held while taking each FILE's lock);
 *   - an opener: fopen/fclose (allocation, then the list lock).
 * A fork that takes the allocator's locks before the stdio list lock deadlocks
 * against the flusher and a reader; the test's timeout turns that into a failure.
 * Usage: forkstdio [milliseconds] */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

enum { FORKERS = 4, READERS = 2 };
static volatile int stop;
static int forks[FORKERS];

static void *forker(void *arg) {
    int *count = arg;
    while (!stop) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child uses malloc and stdio: both must be usable after fork. */
            char *p = malloc(3000);
            FILE *f = fopen("/dev/null", "w");
            if (!p || !f) _exit(2);
            memset(p, 'x', 2999);
            p[2999] = 0;
            fputs(p, f);
            fclose(f);
            free(p);
            _exit(0);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %#x", status);
        ++*count;
    }
    return NULL;
}

/* Long lines, so that getline has to grow its buffer (realloc) under the FILE lock. */
static FILE *lines(void) {
    FILE *f = tmpfile();
    if (!f) return NULL;
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 100 + i * 97; j++) fputc('a' + j % 26, f);
        fputc('\n', f);
    }
    fflush(f);
    return f;
}

static void *reader(void *arg) {
    FILE *f = arg;
    while (!stop) {
        rewind(f);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            free(line); /* every line allocates afresh */
            line = NULL;
            cap = 0;
        }
        free(line);
    }
    return NULL;
}

static void *flusher(void *arg) {
    (void)arg;
    while (!stop) fflush(NULL);
    return NULL;
}

static void *opener(void *arg) {
    (void)arg;
    while (!stop) {
        FILE *f = fopen("/dev/null", "r");
        CHECK(f != NULL, "fopen /dev/null");
        if (f) fclose(f);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int ms = argc > 1 ? atoi(argv[1]) : 2000;
    pthread_t t[FORKERS + READERS + 2];
    FILE *in[READERS];
    int n = 0;
    for (int i = 0; i < READERS; i++) {
        in[i] = lines();
        CHECK(in[i] != NULL, "tmpfile");
        if (!in[i]) return 1;
        pthread_create(&t[n++], NULL, reader, in[i]);
    }
    pthread_create(&t[n++], NULL, flusher, NULL);
    pthread_create(&t[n++], NULL, opener, NULL);
    for (int i = 0; i < FORKERS; i++) pthread_create(&t[n++], NULL, forker, &forks[i]);
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    stop = 1;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    int total = 0;
    for (int i = 0; i < FORKERS; i++) total += forks[i];
    CHECK(total > 0, "no fork completed");
    printf("forkstdio done under %s: %d forks, %d failures\n", active_backend(), total, failures);
    return failures != 0;
}
