/* Two threads: a producer allocates, a consumer frees what it receives through a
 * single-producer single-consumer ring, so every free is a cross-thread free (the
 * case where allocators differ most: remote free lists, message queues, locks). */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

#define RING 4096

static void *ring[RING];
static _Atomic long head, tail; /* head: next to write; tail: next to read */
static long ops;

static void *consume(void *arg) {
    (void)arg;
    for (long i = 0; i < ops; i++) {
        while (atomic_load_explicit(&head, memory_order_acquire) == i) { }
        void *p = ring[i % RING];
        atomic_store_explicit(&tail, i + 1, memory_order_release);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    ops = (long)(1e6 * scale(argc, argv));
    uint64_t s = 7;
    pthread_t t;
    double t0 = now_ns();
    if (pthread_create(&t, NULL, consume, NULL) != 0) { perror("pthread_create"); return 1; }
    for (long i = 0; i < ops; i++) {
        char *p = malloc(mixed_size(&s));
        p[0] = (char)i;
        while (i - atomic_load_explicit(&tail, memory_order_acquire) >= RING) { }
        ring[i % RING] = p;
        atomic_store_explicit(&head, i + 1, memory_order_release);
    }
    pthread_join(t, NULL);
    double t1 = now_ns();
    ops_done(ops);
    metric("ns_per_op", (t1 - t0) / (double)ops, "ns");
    return 0;
}
