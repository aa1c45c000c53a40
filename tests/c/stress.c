/* Threads that allocate, fill, hand blocks to each other and free what they were
 * handed (cross-thread frees), with content checks; then thread churn.
 * Usage: stress [threads] [rounds] [churn-threads] */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

#define SLOTS 4096
static void *volatile slots[SLOTS];
static int rounds = 20000;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned next(unsigned *s) { return *s = *s * 1103515245u + 12345u; }

/* Every block starts with its size and is filled with a byte derived from it. */
static void *make(size_t size) {
    unsigned char *p = malloc(size);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    memset(p + sizeof size, (int)(size & 0xff), size - sizeof size);
    return p;
}

static int intact(unsigned char *p) {
    size_t size;
    memcpy(&size, p, sizeof size);
    for (size_t i = sizeof size; i < size; i++)
        if (p[i] != (unsigned char)(size & 0xff)) return 0;
    return 1;
}

static void *worker(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < rounds; i++) {
        size_t size = sizeof(size_t) + next(&seed) % ((next(&seed) % 16 == 0) ? 65536 : 256);
        void *mine = make(size);
        unsigned slot = next(&seed) % SLOTS;
        void *theirs = __atomic_exchange_n(&slots[slot], mine, __ATOMIC_ACQ_REL);
        if (theirs) {
            if (!intact(theirs)) {
                pthread_mutex_lock(&fail_lock);
                CHECK(0, "block corrupted (slot %u)", slot);
                pthread_mutex_unlock(&fail_lock);
            }
            if (next(&seed) % 4 == 0) theirs = realloc(theirs, 2 * sizeof(size_t));
            free(theirs);
        }
    }
    return NULL;
}

static void *short_lived(void *arg) {
    void *p = malloc(64 + (uintptr_t)arg % 4000);
    memset(p, 1, 64);
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    rounds = argc > 2 ? atoi(argv[2]) : rounds;
    int churn = argc > 3 ? atoi(argv[3]) : 2000;
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i]) CHECK(intact(slots[i]), "block corrupted at the end");
        free(slots[i]);
    }
    for (int i = 0; i < churn; i++) {
        pthread_t s;
        CHECK(pthread_create(&s, NULL, short_lived, (void *)(uintptr_t)i) == 0, "pthread_create %d", i);
        pthread_join(s, NULL);
    }
    printf("stress done under %s: %d failures\n", active_backend(), failures);
    return failures != 0;
}
