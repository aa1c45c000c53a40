/* peak-rss PROGRAM [ARG...]: runs PROGRAM and prints its peak resident set in KiB,
 * exactly: what `/usr/bin/time -f %M` (ru_maxrss) cannot give. Since Linux 6.2 the
 * kernel folds each CPU's page count into the total only every 32 pages, which
 * ru_maxrss reads, and ru_maxrss also covers the forked child before its exec
 * (docs/benchmarks.md, "Start-up RSS").
 *
 * It is read while the program is stopped at its exit (ptrace's PTRACE_EVENT_EXIT,
 * before its memory is torn down): the larger of /proc/PID/smaps_rollup's Rss, which
 * the kernel counts page by page from the page tables on every kernel, and
 * /proc/PID/status's VmHWM, the peak it recorded, which Linux 6.18 sums over every
 * CPU's count (it equals that Rss for true, cat and sh, which unmap nothing they
 * touched). Only the exec'd program's memory is counted, and none of it is read. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The number after FIELD (e.g. "Rss:") in /proc/PID/FILE, in KiB; -1 if not there. */
static long proc_kib(pid_t pid, const char *file, const char *field) {
    char path[64], line[256];
    long kib = -1;
    size_t n = strlen(field);
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && sscanf(line + n, "%ld", &kib) == 1) break;
    fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: peak-rss PROGRAM [ARG...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("peak-rss: fork");
        return 2;
    }
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) {
            perror("peak-rss: ptrace(PTRACE_TRACEME)");
            _exit(127);
        }
        execvp(argv[1], argv + 1);
        fprintf(stderr, "peak-rss: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    int status;
    /* The first stop is the SIGTRAP of the successful exec. */
    if (waitpid(pid, &status, 0) < 0) {
        perror("peak-rss: waitpid");
        return 2;
    }
    if (!WIFSTOPPED(status)) {
        fprintf(stderr, "peak-rss: %s did not start\n", argv[1]);
        return 2;
    }
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL)) != 0 ||
        ptrace(PTRACE_CONT, pid, NULL, NULL) != 0) {
        perror("peak-rss: ptrace");
        kill(pid, SIGKILL);
        return 2;
    }
    long exact = -1;
    for (;;) {
        if (waitpid(pid, &status, 0) < 0) {
            perror("peak-rss: waitpid");
            return 2;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        int sig = WSTOPSIG(status);
        if (sig == SIGTRAP && (status >> 16) == PTRACE_EVENT_EXIT) {
            long rss = proc_kib(pid, "smaps_rollup", "Rss:"), hwm = proc_kib(pid, "status", "VmHWM:");
            exact = rss > hwm ? rss : hwm;
            sig = 0;
        } else if (sig == SIGTRAP) {
            sig = 0; /* a later exec's trap: not the program's signal */
        }
        if (ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig) != 0) {
            perror("peak-rss: ptrace(PTRACE_CONT)");
            return 2;
        }
    }
    if (exact < 0) {
        fprintf(stderr, "peak-rss: could not read the resident set of %s at its exit\n", argv[1]);
        return 2;
    }
    printf("%ld\n", exact);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
