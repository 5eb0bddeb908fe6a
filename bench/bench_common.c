/* bench_common.c - configuration, counters and the machine parallelism check. */
#include "bench_common.h"

#include <weft/interlocked.h>

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

bool bench_quick;

static const int lock_threads_full[] = {1, 2, 4, 8};
static const int rw_threads_full[] = {1, 2, 4};
static const int threads_quick[] = {1, 2};

const int *bench_lock_threads = lock_threads_full;
size_t bench_n_lock_threads = 4;
const int *bench_rw_threads = rw_threads_full;
size_t bench_n_rw_threads = 3;

void bench_config(bool quick)
{
	bench_quick = quick;
	if (quick) {
		bench_lock_threads = bench_rw_threads = threads_quick;
		bench_n_lock_threads = bench_n_rw_threads = 2;
	}
}

weft_bench_opts bench_contention_opts(void)
{
	return (weft_bench_opts){
		.threads = bench_lock_threads,
		.n_threads = bench_n_lock_threads,
		.real_time = true,
		.warmup_time = bench_quick ? 0.0 : 0.05,
	};
}

void bench_report_fairness(weft_bench_state *st, const uint64_t *per_thread, int n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < n; i++) {
		lo = per_thread[i] < lo ? per_thread[i] : lo;
		hi = per_thread[i] > hi ? per_thread[i] : hi;
	}
	weft_bench_counter(st, "fair_min_max", hi ? (double)lo / (double)hi : 0.0, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "ops_min", (double)lo, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "ops_max", (double)hi, WEFT_BENCH_PLAIN);
}

void bench_report_ops(weft_bench_state *st, uint64_t ops)
{
	/* rate then invert: seconds / (ops * 1e-9) = wall nanoseconds per op. */
	weft_bench_counter(st, "ns_op", (double)ops * 1e-9, WEFT_BENCH_RATE | WEFT_BENCH_INVERT);
	weft_bench_set_items(st, (int64_t)ops);
}

/* ---- parallelism check --------------------------------------------------------------- */

#define PAR_WORDS 512 /* 4 KiB: stays in L1, so the loop measures the cores, not memory */
static uint64_t par_data[PAR_WORDS];

struct par_thread {
	pthread_t tid;
	uint64_t deadline_ns;
	uint64_t loops;
	int *go;
};

static void *par_read_loop(void *arg)
{
	struct par_thread *t = arg;
	while (!__atomic_load_n(t->go, __ATOMIC_ACQUIRE)) /* pairs with the release in run */
		;
	uint64_t loops = 0, sum = 0;
	while (bench_now_ns(CLOCK_MONOTONIC) < t->deadline_ns) {
		for (int i = 0; i < PAR_WORDS; i++)
			sum += ((volatile uint64_t *)par_data)[i];
		loops++;
	}
	WEFT_BENCH_KEEP(sum);
	t->loops = loops;
	return NULL;
}

static uint64_t par_run(int nthreads, double seconds)
{
	struct par_thread t[2];
	int go = 0;
	uint64_t deadline = bench_now_ns(CLOCK_MONOTONIC) + 20000000ull +
			    (uint64_t)(seconds * 1e9);
	for (int i = 0; i < nthreads; i++) {
		t[i] = (struct par_thread){.deadline_ns = deadline, .go = &go};
		pthread_create(&t[i].tid, NULL, par_read_loop, &t[i]);
	}
	struct timespec settle = {0, 20000000}; /* let both threads reach the start line */
	nanosleep(&settle, NULL);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	uint64_t total = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i].tid, NULL);
		total += t[i].loops;
	}
	return total;
}

double bench_parallel_check(double seconds)
{
	uint64_t one = par_run(1, seconds);
	uint64_t two = par_run(2, seconds);
	double ratio = one ? (double)two / (double)one : 0.0;
	double load[3] = {0, 0, 0};
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = 0;
		fclose(f);
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	const char *verdict = ratio >= 1.7 ? "OK: contended figures can be trusted"
			      : "FLAGGED: the two threads did not really run in parallel; "
				"treat contended (>=2 thread) figures as unreliable";
	printf("weft-bench: parallelism check: 2 threads of a read loop did %.2fx the work of 1 "
	       "(%ld online CPUs, loadavg %.2f %.2f %.2f) - %s\n",
	       ratio, cpus, load[0], load[1], load[2], verdict);
	fflush(stdout);
	char buf[64];
	snprintf(buf, sizeof buf, "%.3f", ratio);
	weft_bench_context("parallel_ratio", buf);
	snprintf(buf, sizeof buf, "%.2f %.2f %.2f", load[0], load[1], load[2]);
	weft_bench_context("loadavg_at_start", buf);
	weft_bench_context("mode", bench_quick ? "quick" : "full");
	return ratio;
}

/* ---- start line ---------------------------------------------------------------------- */

void bench_start_line(int *arrived, int n)
{
	/* acq_rel/acquire: orders nothing the loops rely on; the count itself is the point */
	__atomic_add_fetch(arrived, 1, __ATOMIC_ACQ_REL);
	for (unsigned spins = 0; __atomic_load_n(arrived, __ATOMIC_ACQUIRE) < n; spins++) {
		if (spins < 64)
			weft_cpu_relax();
		else
			sched_yield();
	}
}

/* ---- run cap ------------------------------------------------------------------------- */

double bench_run_cap(void)
{
	return bench_quick ? 0.3 : 2.0;
}

static void *watchdog_main(void *arg)
{
	bench_watchdog *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &w->deadline) != 0 && !w->done) {
			/* relaxed: the loops only poll the flag as a hint; counts are read after
			 * the run's barrier */
			__atomic_store_n(w->flag, 1, __ATOMIC_RELAXED);
			w->fired = true;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void bench_watchdog_start(bench_watchdog *w, int *flag)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w->mu, NULL);
	uint64_t t = bench_now_ns(CLOCK_MONOTONIC) + (uint64_t)(bench_run_cap() * 1e9);
	w->deadline.tv_sec = (time_t)(t / 1000000000ull);
	w->deadline.tv_nsec = (long)(t % 1000000000ull);
	w->flag = flag;
	w->done = w->fired = false;
	pthread_create(&w->thread, NULL, watchdog_main, w);
}

bool bench_watchdog_stop(bench_watchdog *w)
{
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	return w->fired;
}

/* ---- raw futex ----------------------------------------------------------------------- */

int bench_futex_wait(uint32_t *addr, uint32_t val)
{
	return (int)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

int bench_futex_wake(uint32_t *addr, int n)
{
	return (int)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
