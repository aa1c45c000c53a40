/* fork() from a multithreaded process while the other threads allocate, repeated:
 * the Puma/Unicorn/Resque pattern. Each child allocates from several threads of its
 * own and exits; a child that hangs is caught by the test's timeout.
 * Usage: forkmt [forks] */
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static volatile int stop;

static void *churn(void *arg) {
    (void)arg;
    unsigned n = 0;
    while (!stop) {
        void *p[32];
        for (int i = 0; i < 32; i++) p[i] = malloc(16 + (n++ % 3000) * 16);
        for (int i = 0; i < 32; i++) free(p[i]);
    }
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) free(malloc(i * 8 + 1));
    return NULL;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = malloc(1000);
            strcpy(p, "child");
            pthread_t c;
            pthread_create(&c, NULL, child_thread, NULL);
            pthread_join(c, NULL);
            free(p);
            _exit(0);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %d: status %#x", i, status);
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("forkmt done under %s: %d forks, %d failures\n", active_backend(), forks, failures);
    return failures != 0;
}
