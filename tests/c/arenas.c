/* How many malloc arenas glibc made for N threads that allocate at the same time:
 * the read-back of M_ARENA_MAX (glibc has no getter for it). Counts the <heap nr=..>
 * entries of malloc_info, which is glibc's own report. Prints arenas=N and, through
 * the query API, the backend. Usage: arenas [THREADS] */
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include "check.h"

static pthread_barrier_t all_started, all_counted;

static void *worker(void *arg) {
    (void)arg;
    /* Every thread allocates while all the others are alive, so glibc cannot hand a
     * finished thread's arena to the next one. */
    char *volatile p = malloc(1000); /* volatile: the pair must not be optimised away */
    p[0] = 1;
    pthread_barrier_wait(&all_started);
    pthread_barrier_wait(&all_counted);
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t t[64];
    if (n < 1 || n > 64) return 2;
    pthread_barrier_init(&all_started, NULL, n + 1);
    pthread_barrier_init(&all_counted, NULL, n + 1);
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, NULL);
    pthread_barrier_wait(&all_started);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    malloc_info(0, f);
    fclose(f);
    int arenas = 0;
    for (char *s = text; (s = strstr(s, "<heap nr=")); s++) arenas++;
    free(text);

    pthread_barrier_wait(&all_counted);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("backend=%s\narenas=%d\n", active_backend(), arenas);
    return 0;
}
