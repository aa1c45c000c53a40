/* What jemalloc's heap profiler needs from outside libc, provided without making the
 * library need anything but libc.so.6 (tests/binary.rs). Everything here is hidden.
 *
 * The stack walker. jemalloc's configure picks libgcc's unwinder (its "libgcc"
 * backtrace method: _Unwind_Backtrace and _Unwind_GetIP, prof_sys.c). Linking them
 * would add NEEDED libgcc_s.so.1 to every process the library is preloaded into,
 * profiling or not. These definitions take jemalloc's references instead and forward
 * to libgcc_s.so.1, which profile.rs dlopens (allocshim_unwinder_load) only in a
 * process whose jemalloc samples, from the library's initialiser, never inside
 * malloc. Until then, or if it cannot be loaded, a sampled stack is empty. jemalloc
 * walks the stack with its re-entrancy guard raised (prof_backtrace), so a malloc the
 * unwinder makes is served, never sampled.
 *
 * log and exp. The sampler draws its intervals with log() and unbiases the dumped
 * figures with exp(): in glibc both live in libm.so.6. Precision barely matters for
 * either (a random interval; an estimate), but they are written to be accurate to a
 * few units in the last place for the finite positive arguments jemalloc passes. */
#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <unwind.h>

typedef _Unwind_Reason_Code (*backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*get_ip_fn)(struct _Unwind_Context *);

static backtrace_fn real_backtrace;
static get_ip_fn real_get_ip;

_Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn trace, void *arg) {
    backtrace_fn f = __atomic_load_n(&real_backtrace, __ATOMIC_ACQUIRE);
    return f ? f(trace, arg) : _URC_END_OF_STACK;
}

/* Only called back from inside a walk, which only starts once both are loaded. */
_Unwind_Ptr _Unwind_GetIP(struct _Unwind_Context *context) {
    return __atomic_load_n(&real_get_ip, __ATOMIC_RELAXED)(context);
}

static _Unwind_Reason_Code walk_nothing(struct _Unwind_Context *context, void *arg) {
    (void)context;
    (void)arg;
    return _URC_END_OF_STACK;
}

/* Loads the unwinder (once; later calls return at once). NULL on success, else why
 * not (dlerror's text, or our own). From the library's initialiser only. */
const char *allocshim_unwinder_load(void) {
    if (__atomic_load_n(&real_backtrace, __ATOMIC_ACQUIRE)) return NULL;
    void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return why ? why : "libgcc_s.so.1: cannot load";
    }
    get_ip_fn ip = (get_ip_fn)dlsym(h, "_Unwind_GetIP");
    backtrace_fn bt = (backtrace_fn)dlsym(h, "_Unwind_Backtrace");
    if (!ip || !bt) return "libgcc_s.so.1 has no _Unwind_Backtrace or _Unwind_GetIP";
    __atomic_store_n(&real_get_ip, ip, __ATOMIC_RELAXED);
    __atomic_store_n(&real_backtrace, bt, __ATOMIC_RELEASE);
    /* As jemalloc's prof_boot does with its unwinder: let it set up its state now,
     * outside malloc, rather than in the first sampled allocation. */
    bt(walk_nothing, NULL);
    return NULL;
}

/* x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1),
 * |s| < 0.172, so the odd series below is exact to double precision by s^23. */
double log(double x) {
    if (!(x > 0.0)) return x == 0.0 ? -HUGE_VAL : NAN;
    if (x == HUGE_VAL) return x;
    int e;
    double m = frexp(x, &e); /* [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 23; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + e * 0.69314718055994530942;
}

/* exp(x) = 2^k * exp(r), r = x - k ln 2 in [-ln2/2, ln2/2]; Taylor to r^20. */
double exp(double x) {
    if (x != x) return x;
    if (x > 709.78) return HUGE_VAL;
    if (x < -745.2) return 0.0;
    double kf = x / 0.69314718055994530942;
    int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
    double r = x - k * 0.69314718055994530942, term = 1.0, sum = 1.0;
    for (int n = 1; n <= 20; n++) {
        term *= r / n;
        sum += term;
    }
    return ldexp(sum, k);
}

#if defined(__aarch64__)
/* aarch64's long double is IEEE quad precision, done in software: the sampler's
 * `(long double)r * (1.0L / 2^53)` (prof.c) calls __floatunditf, __multf3 and
 * __trunctfdf2, which the link takes from Rust's compiler_builtins. Their unwind
 * tables name Rust's personality routine, which this no_std, panic=abort library does
 * not have, so ld.so refused to load it (undefined symbol rust_eh_personality). Nothing
 * ever unwinds through those helpers (they do not panic, and jemalloc's stack walks
 * run no personality routine), so this definition only satisfies the reference. */
void rust_eh_personality(void) {
    __builtin_trap();
}
#endif
