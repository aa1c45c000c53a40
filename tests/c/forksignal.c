/* fork() from a signal handler in a single-threaded process that is allocating:
 * modelled on what glibc's malloc/tst-mallocfork2 exercises. A separate sender
 * process (a thread would make this process multithreaded) keeps sending SIGUSR1;
 * the handler forks, the child _exits, the handler reaps it. The signal often lands
 * while malloc or free holds one of the allocator's locks: glibc's fork takes no
 * malloc lock in a single-threaded process (fork is async-signal-safe), and neither
 * may the allocator's fork handler, or the handler waits for itself forever.
 * Usage: forksignal [forks] */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static volatile sig_atomic_t forks, bad;
static int done[2]; /* the handler tells the sender each fork is over */

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    if (pid < 0) {
        bad++;
    } else {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad++;
        forks++;
    }
    char c = 0;
    if (write(done[1], &c, 1) != 1) bad++;
    errno = saved;
}

int main(int argc, char **argv) {
    int want = argc > 1 ? atoi(argv[1]) : 1000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");

    /* The sender starts with SIGUSR1 blocked here, so that the first signals hit the
     * allocation loop rather than the fork that creates the sender. */
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    CHECK(pipe(done) == 0, "pipe");
    pid_t parent = getpid();
    pid_t sender = fork();
    if (sender == 0) {
        /* One signal at a time, each after a pause of 0-255 us once the previous
         * fork is over, so that the signals land at varied points of the loop. */
        close(done[1]); /* so that read sees EOF once the parent is gone */
        unsigned r = 1;
        for (;;) {
            r = r * 1103515245u + 12345u;
            struct timespec gap = {0, (long)((r >> 16) % 256) * 1000};
            nanosleep(&gap, NULL);
            char c;
            if (kill(parent, SIGUSR1) != 0 || read(done[0], &c, 1) != 1) _exit(0);
        }
    }
    CHECK(sender > 0, "fork of the signal sender");
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* Allocate and free sizes from every size class range (small, large, huge),
     * keeping some blocks alive so that the allocator's slow paths, and their
     * locks, are taken often. */
    enum { SLOTS = 256 };
    void *live[SLOTS] = {0};
    unsigned long n = 0, seed = 1;
    time_t give_up = time(NULL) + 60;
    while (forks < want && time(NULL) < give_up) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        unsigned slot = (seed >> 33) % SLOTS;
        size_t size = (seed >> 45) % 4 == 0 ? (seed >> 20) % (1u << 20) : (seed >> 20) % 4096;
        free(live[slot]);
        live[slot] = malloc(size + 1);
        CHECK(live[slot] != NULL, "malloc(%zu)", size + 1);
        if (live[slot]) memset(live[slot], (int)n, 1);
        n++;
    }
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    for (int i = 0; i < SLOTS; i++) free(live[i]);
    CHECK(forks >= want, "only %d forks from the handler in 60 s", (int)forks);
    CHECK(bad == 0, "%d forks from the handler failed", (int)bad);
    printf("forksignal done under %s: %d forks from a signal handler, %lu allocations, %d failures\n",
           active_backend(), (int)forks, n, failures);
    return failures != 0;
}
