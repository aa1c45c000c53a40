/* Heap profiling's run time: the dump directory's probe, the signal handler, the dump
 * thread, the dumps. Driven by profile.rs, which reads the settings and talks to
 * jemalloc's options; see there for the design.
 *
 * Why C: these are the library's only calls into some twenty libc functions (pthread,
 * signals, files). Rust code calls through GOT slots that ld.so binds at load, in every
 * process, profiling or not: +17 k instructions at every start of /bin/true. Calls from
 * C go through the library's lazily bound PLT (build.rs: -z lazy) and cost nothing
 * until a profiling process makes them. Everything here is hidden. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* jemalloc (the prefixed build, linked into this library). */
extern int _rjem_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

enum { PREFIX_MAX = 600, GROWTH_MIN = 16 << 20 };

/* Written by allocshim_prof_prepare/_start before the thread exists; read-only after. */
static char prefix[PREFIX_MAX];
static unsigned every_s, growth_pct;
static int signal_no;
static atomic_ulong seq;
static atomic_uint wake, failures;

static const char *why_text(int e) {
    switch (e) {
    case EACCES:
    case EPERM: return "permission denied";
    case EROFS: return "read-only file system";
    case ENOENT: return "a parent does not exist";
    case ENOTDIR: return "a part of it is not a directory";
    case ENOSPC:
    case EDQUOT: return "no space left";
    case ENAMETOOLONG: return "name too long";
    case EMFILE:
    case ENFILE: return "too many open files";
    default: return "cannot create a file there";
    }
}

/* One "allocshim: ..." line on stderr from up to four pieces, errno kept. */
static void say(const char *a, const char *b, const char *c, const char *d) {
    int saved = errno;
    char line[PREFIX_MAX + 160];
    size_t n = 0;
    const char *parts[] = {"allocshim: ", a, b, c, d};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        if (!parts[i]) continue;
        size_t k = strnlen(parts[i], sizeof line - 1 - n); /* what does not fit is cut */
        memcpy(line + n, parts[i], k);
        n += k;
    }
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(2, line + off, n - off);
        if (w > 0) off += (size_t)w;
        else if (!(w < 0 && errno == EINTR)) break;
    }
    errno = saved;
}

/* Makes `dir` (and its parents; relative to the working directory), proves it
 * writable with a probe file, and sets the dumps' prefix DIR/PROGRAM. Returns NULL,
 * or why not. Copies the prefix, NUL-terminated, into `out` (for jemalloc's options).
 * From the selecting thread (possibly inside malloc): system calls only. */
const char *allocshim_prof_prepare(const char *dir, size_t dir_len, char *out, size_t out_cap) {
    size_t n = 0;
    if (dir_len == 0 || dir[0] != '/') {
        if (!getcwd(prefix, PREFIX_MAX / 2)) return "it is relative and the working directory is unknown (or too long)";
        n = strlen(prefix);
        prefix[n++] = '/';
    }
    while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--;
    if (n + dir_len + 1 >= PREFIX_MAX - 100 || memchr(dir, 0, dir_len)) return "path too long";
    memcpy(prefix + n, dir, dir_len);
    n += dir_len;
    for (size_t end = 1; end <= n; end++) { /* mkdir -p: EEXIST is fine, the probe decides */
        if (end < n && prefix[end] != '/') continue;
        char saved = prefix[end];
        prefix[end] = 0;
        mkdir(prefix, 0777);
        prefix[end] = saved;
    }
    char probe[PREFIX_MAX + 48];
    snprintf(probe, sizeof probe, "%.*s/.allocshim-probe-%d", (int)n, prefix, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return why_text(errno);
    close(fd);
    unlink(probe);
    prefix[n++] = '/';
    /* The program's name: the file the kernel executed (AT_EXECFN), without its
     * directory, as `ls /proc/PID/exe` would name it. */
    const char *prog = (const char *)getauxval(AT_EXECFN);
    if (prog && strrchr(prog, '/')) prog = strrchr(prog, '/') + 1;
    for (size_t i = 0; prog && prog[i] && i < 64; i++) {
        char c = prog[i]; /* the name goes into jemalloc's comma-separated options */
        prefix[n++] = (c == ',' || c == '/' || c == ' ' || c == '\t' || c == '\n') ? '_' : c;
    }
    prefix[n] = 0;
    if (n + 1 > out_cap) return "path too long";
    memcpy(out, prefix, n + 1);
    return NULL;
}

static uint64_t allocated(void) {
    uint64_t epoch = 1;
    size_t len = sizeof epoch, v = 0, vlen = sizeof v;
    _rjem_mallctl("epoch", &epoch, &len, &epoch, len);
    return _rjem_mallctl("stats.allocated", &v, &vlen, NULL, 0) == 0 ? v : 0;
}

/* PREFIX.PID.SEQ.WHY.heap, through a .tmp name. */
static void dump(const char *why) {
    char name[PREFIX_MAX + 64], tmp[PREFIX_MAX + 68];
    snprintf(name, sizeof name, "%s.%d.%lu.%s.heap", prefix, (int)getpid(), atomic_fetch_add(&seq, 1), why);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    const char *p = tmp;
    int rc = _rjem_mallctl("prof.dump", NULL, NULL, (void *)&p, sizeof p);
    int e = errno;
    if (rc == 0 && rename(tmp, name) == 0) {
        say("heap profile ", name, strcmp(why, "exit") == 0 ? " (exit)" : why[0] == 'g' ? " (growth)" : why[0] == 'e' ? " (every)" : " (signal)", NULL);
        return;
    }
    if (rc == 0) e = errno;
    unlink(tmp);
    if (atomic_fetch_add(&failures, 1) < 3) say("heap profile ", name, " not written: ", why_text(e));
}

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    atomic_store(&wake, 1);
    syscall(SYS_futex, &wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

static time_t now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void *thread_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "allocshim-prof");
    if (signal_no) {
        sigset_t ours;
        sigemptyset(&ours);
        sigaddset(&ours, signal_no);
        pthread_sigmask(SIG_UNBLOCK, &ours, NULL);
    }
    uint64_t mark = allocated();
    time_t next = now() + every_s;
    for (;;) {
        struct timespec second = {1, 0};
        /* Returns at once if the word is not 0 any more (a signal came meanwhile). */
        syscall(SYS_futex, &wake, FUTEX_WAIT_PRIVATE, 0, &second, NULL, 0);
        if (atomic_exchange(&wake, 0)) dump("signal");
        if (every_s && now() >= next) {
            dump("every");
            next = now() + every_s;
        }
        if (growth_pct) {
            uint64_t a = allocated(), step = mark / 100 * growth_pct;
            if (step < GROWTH_MIN) step = GROWTH_MIN;
            if (a >= mark + step) {
                dump("growth");
                mark = a;
            }
        }
    }
    return NULL;
}

/* The thread takes no signal but ours: a program that waits for its signals in one
 * thread (sigwait) must not find them delivered to this one. */
static void start_thread(void) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_t t;
    if (pthread_create(&t, &attr, thread_main, NULL) != 0)
        say("heap profiling: cannot start its thread; dumps only at exit", NULL, NULL, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void in_child(void) {
    atomic_store(&seq, 0);
    atomic_store(&wake, 0);
    atomic_store(&failures, 0);
    start_thread();
}

/* The real-time signal numbered as `kind` says (0: SIGRTMIN + n, 1: SIGRTMAX - n,
 * 2: n itself), or 0 if that is not a real-time signal here. */
int allocshim_prof_signal(int kind, int n) {
    int s = kind == 0 ? SIGRTMIN + n : kind == 1 ? SIGRTMAX - n : n;
    return s >= SIGRTMIN && s <= SIGRTMAX ? s : 0;
}

/* From the library's initialiser, profiling on: the handler for `signal` (0: none)
 * if nobody handles it yet, the fork hook and the thread. Returns the signal
 * installed, 0 for none, -1 if it was taken (the caller warns). */
int allocshim_prof_start(int signal, unsigned every, unsigned growth) {
    every_s = every;
    growth_pct = growth;
    int installed = 0;
    if (signal) {
        struct sigaction old;
        if (sigaction(signal, NULL, &old) == 0) {
            if (old.sa_handler != SIG_DFL) {
                installed = -1;
            } else {
                struct sigaction act;
                memset(&act, 0, sizeof act);
                act.sa_handler = on_signal;
                act.sa_flags = SA_RESTART;
                sigemptyset(&act.sa_mask);
                if (sigaction(signal, &act, NULL) == 0) installed = signal;
            }
        }
    }
    signal_no = installed > 0 ? installed : 0;
    pthread_atfork(NULL, NULL, in_child);
    start_thread();
    return installed;
}

/* At exit: the last dump if the heap holds at least `min` bytes; else 0 and the
 * bytes held in *held (for the verbose line). */
int allocshim_prof_exit(uint64_t min, uint64_t *held) {
    uint64_t a = allocated();
    *held = a;
    if (a < min) return 0;
    dump("exit");
    return 1;
}
