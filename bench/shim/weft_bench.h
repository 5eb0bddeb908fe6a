/* weft_bench.h - write Google Benchmark benchmarks in C.
 *
 * A benchmark is a C function run by every benchmark thread at once:
 *
 *     static void bm_inc(weft_bench_state *st, void *ctx)
 *     {
 *             uint64_t n = 0;
 *             while (weft_bench_batch(st, 64))        // one C->C++ call per 64 iterations
 *                     for (int i = 0; i < 64; i++)
 *                             WEFT_BENCH_KEEP(++n);
 *             weft_bench_set_items(st, (int64_t)n);
 *     }
 *     ...
 *     static const int threads[] = {1, 2, 4};
 *     weft_bench_register("demo/inc", bm_inc, &(weft_bench_opts){
 *             .threads = threads, .n_threads = 3, .real_time = true});
 *
 * Registration happens from plain C functions listed in bench/bench_list.h and called by
 * bench/main.c before weft_bench_main() (no constructor attributes: a static link can drop
 * objects that nothing references). The state loop follows KeepRunningBatch: each call
 * that returns true accounts for n iterations, and the loop must run until it returns
 * false. Timing starts at the first call (all threads of the run leave a barrier
 * together) and stops when the last call returns false.
 *
 * Everything here is safe to call from any benchmark thread for its own state.
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A benchmark::State, seen from C. */
typedef struct weft_bench_state weft_bench_state;

typedef void (*weft_bench_fn)(weft_bench_state *st, void *ctx);

/* Per-run hooks: setup runs in thread 0 before any thread of the run enters the
 * benchmark function, teardown in thread 0 after every thread has left it. A run is one
 * call of the function by each of its threads (Google Benchmark makes several calls per
 * configuration while it looks for the iteration count, and one per repetition). */
typedef void (*weft_bench_hook)(weft_bench_state *st, void *ctx);

typedef struct weft_bench_opts {
	const int *threads;      /* thread counts, one configuration each; NULL: {1} */
	size_t n_threads;
	const int64_t *args;     /* n_args rows of `arity` values, one configuration each */
	size_t n_args;           /* rows; 0: no arguments */
	size_t arity;            /* values per row; 0 means 1 */
	const char *const *arg_names; /* arity names, or NULL */
	double min_time;         /* seconds; 0: the command-line default */
	double warmup_time;      /* seconds of untimed warm-up per configuration; 0: none */
	int64_t iterations;      /* fixed iteration count (per thread); 0: let the library pick */
	int repetitions;         /* 0: the command-line default */
	bool real_time;          /* pick iterations and report by wall-clock time */
	bool process_cpu_time;   /* CPU time of the whole process, not only benchmark threads */
	weft_bench_hook setup, teardown;
	void *ctx;               /* passed to fn, setup and teardown */
} weft_bench_opts;

/* Registers fn under name. opts may be NULL (one thread, defaults). name is copied. */
void weft_bench_register(const char *name, weft_bench_fn fn, const weft_bench_opts *opts);

/* Parses Google Benchmark's flags, runs the selected benchmarks, returns an exit code. */
int weft_bench_main(int argc, char **argv);

/* The state loop: true while iterations remain; accounts n iterations per call. */
bool weft_bench_batch(weft_bench_state *st, uint64_t n);

int weft_bench_threads(const weft_bench_state *st);      /* threads in this run */
int weft_bench_thread_index(const weft_bench_state *st); /* 0 .. threads-1 */
int64_t weft_bench_arg(const weft_bench_state *st, size_t i); /* argument i of the row */
int64_t weft_bench_max_iterations(const weft_bench_state *st); /* per thread, this run */

/* Items processed by this thread; summed over threads, reported as items_per_second. */
void weft_bench_set_items(weft_bench_state *st, int64_t n);

/* Custom counters. Values set by several threads are summed; a counter that only thread 0
 * sets reports thread 0's value. */
enum {
	WEFT_BENCH_PLAIN = 0,
	WEFT_BENCH_RATE = 1 << 0,         /* divided by the run's seconds */
	WEFT_BENCH_AVG_THREADS = 1 << 1,  /* divided by the thread count */
	WEFT_BENCH_AVG_ITERS = 1 << 2,    /* divided by the iterations */
	WEFT_BENCH_INVERT = 1 << 3,       /* 1 / value, after the above */
};
void weft_bench_counter(weft_bench_state *st, const char *name, double value, unsigned flags);

void weft_bench_label(weft_bench_state *st, const char *label);
void weft_bench_skip_with_error(weft_bench_state *st, const char *msg);

/* A barrier over the threads of the current run, outside the timed region when called
 * before the first weft_bench_batch or after the last. */
void weft_bench_sync(weft_bench_state *st);

/* Adds key=value to the run's context (console header and JSON "context"). */
void weft_bench_context(const char *key, const char *value);

/* Registers the native C++ reference loops used to measure this shim's overhead:
 * shim/native_range_for (for (auto _ : state) with the same one-value body) and
 * shim/native_batch/<n> (KeepRunningBatch(n) called from C++). */
void weft_bench_register_native_reference(void);

/* Keep x alive and in a register as far as the optimizer knows (benchmark::DoNotOptimize). */
#define WEFT_BENCH_KEEP(x) __asm__ __volatile__("" : : "r,m"(x) : "memory")
/* A compiler barrier: memory may have been read or written (benchmark::ClobberMemory). */
#define WEFT_BENCH_CLOBBER() __asm__ __volatile__("" : : : "memory")

#ifdef __cplusplus
}
#endif
#endif
