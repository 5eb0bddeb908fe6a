/* bench_common.h - helpers shared by the C benchmark units (not part of the shim). */
#ifndef WEFT_BENCH_COMMON_H
#define WEFT_BENCH_COMMON_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "weft_bench.h"

/* Unit registration functions, from bench_list.h. */
#define WEFT_BENCH_UNIT(n) void n##_register(void);
#include "bench_list.h"
#undef WEFT_BENCH_UNIT

/* Primitives that may not be implemented yet are referenced weakly: the benchmark binary
 * links while sync/ grows, and a row appears as soon as its functions exist. */
#define BENCH_WEAK(fn) extern __typeof__(fn) fn __attribute__((weak))
#define BENCH_HAVE(fn) ((void (*)(void))(fn) != NULL)

/* --weft-quick: a few-second smoke run (CI); otherwise the full suite. */
extern bool bench_quick;
void bench_config(bool quick);

/* Thread counts for the mutual-exclusion family: {1,2,4,8}, quick {1,2}. */
extern const int *bench_lock_threads;
extern size_t bench_n_lock_threads;
/* Thread counts for the reader/writer mixes: {1,2,4}, quick {1,2}. */
extern const int *bench_rw_threads;
extern size_t bench_n_rw_threads;

/* Ops per weft_bench_batch call in the contention loops. */
#define BENCH_BATCH 32
/* Upper bound on benchmark threads. */
#define BENCH_MAX_THREADS 64

/* Options every contention benchmark shares: wall-clock time (the threads block), the
 * same warm-up for everyone. */
weft_bench_opts bench_contention_opts(void);

/* The private work between two operations: a couple of dependent multiply-adds. */
static inline uint64_t bench_private_work(uint64_t x)
{
	x = x * 6364136223846793005ull + 1442695040888963407ull;
	x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

static inline uint64_t bench_xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline uint64_t bench_now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sets the fairness counters from per-thread op counts (thread 0 only, after a sync):
 * fair_min_max = min/max ops per thread (1.0: perfectly fair), ops_min, ops_max. */
void bench_report_fairness(weft_bench_state *st, const uint64_t *per_thread, int n);

/* Sets ns_op (wall ns per operation, all threads together) from this thread's ops:
 * every thread calls it, the counter sums to the run's total. */
void bench_report_ops(weft_bench_state *st, uint64_t ops);

/* The "is this machine really parallel" check: the work two threads of a plain read loop
 * do, divided by what one does in the same time. Prints it and records it in the
 * context. Returns the ratio (about 2 on two idle cores, about 1 when they are not). */
double bench_parallel_check(double seconds);

/* The start line, called by every thread right after its first weft_bench_batch: returns
 * once all n threads of the run are past the library's start barrier and running. Without
 * it a thread that is slow to wake (a busy machine) can find the run already over, and a
 * short run measures one thread alone. Waiters yield, so it also works oversubscribed. */
void bench_start_line(int *arrived, int n);

/* A run's time cap: a thread that sleeps until `seconds` pass, then raises *flag (the
 * loops' early-stop flag), so a lock that collapses under oversubscription (ms per op)
 * still ends its run in bounded time; its ns_op stays right, over fewer ops. */
typedef struct bench_watchdog {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct timespec deadline;
	int *flag;
	bool done, fired;
} bench_watchdog;
void bench_watchdog_start(bench_watchdog *w, int *flag);
/* Stops the watchdog; true when it fired (the run was capped). */
bool bench_watchdog_stop(bench_watchdog *w);
/* The cap: 2 s, 0.3 s when quick. */
double bench_run_cap(void);

/* Raw futex, for the reference hand-offs. */
int bench_futex_wait(uint32_t *addr, uint32_t val);
int bench_futex_wake(uint32_t *addr, int n);

#endif
