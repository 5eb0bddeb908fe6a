/* bench_rwlock.c - reader/writer locks: read/write mixes and the writer-starvation test.
 *
 * rw<pct>/<lock>: every thread runs the same loop; each op is a read (shared lock, read
 * two words that writers keep equal, check them) with probability pct/100, otherwise a
 * write (exclusive lock, bump both words), then the same private work as the lock family.
 * Same early stop and fairness counters as bench_locks.c; a torn read fails the run.
 *
 * wstarve/<lock>: thread 0 is a writer, the others are readers that stream back to back
 * (each holds the lock for a short read of the data and re-acquires at once). The writer
 * pauses ~20 us between writes and times each exclusive acquisition; reported as
 * wr_p50_us, wr_p99_us, wr_max_us, with the readers' throughput as reads_per_s. Readers
 * stop streaming after a cap (capped=1) so a starved writer still finishes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/sync.h>
#if defined(WEFT_BENCH_HAVE_CK)
#include <ck_rwlock.h>
#endif

#include "bench_common.h"

BENCH_WEAK(weft_srw_init);
BENCH_WEAK(weft_srw_lock_shared);
BENCH_WEAK(weft_srw_unlock_shared);
BENCH_WEAK(weft_srw_lock_exclusive);
BENCH_WEAK(weft_srw_unlock_exclusive);

#define RW_STORAGE 256

typedef struct rw_ops {
	const char *name;
	bool (*available)(void);
	void (*init)(void *l);
	void (*destroy)(void *l);
	void (*rdlock)(void *l);
	void (*rdunlock)(void *l);
	void (*wrlock)(void *l);
	void (*wrunlock)(void *l);
} rw_ops;

#define WSTARVE_MAX_WRITES 1000

typedef struct rw_run {
	const rw_ops *ops;
	WEFT_CACHE_ALIGNED unsigned char lock[RW_STORAGE];
	WEFT_CACHE_ALIGNED volatile uint64_t a; /* writers keep a == b */
	volatile uint64_t b;
	WEFT_CACHE_ALIGNED int stop;
	int arrived; /* bench_start_line */
	bench_watchdog watchdog;
	WEFT_CACHE_ALIGNED uint64_t done[BENCH_MAX_THREADS];
	uint64_t torn[BENCH_MAX_THREADS];
	uint64_t reads[BENCH_MAX_THREADS];
	uint64_t lat_ns[WSTARVE_MAX_WRITES];
} rw_run;

static bool always(void) { return true; }

/* ---- implementations ----------------------------------------------------------------- */

static void prw_init(void *l) { pthread_rwlock_init(l, NULL); }
static void prw_pw_init(void *l)
{
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(l, &a);
	pthread_rwlockattr_destroy(&a);
}
static void prw_destroy(void *l) { pthread_rwlock_destroy(l); }
static void prw_rdlock(void *l) { pthread_rwlock_rdlock(l); }
static void prw_wrlock(void *l) { pthread_rwlock_wrlock(l); }
static void prw_unlock(void *l) { pthread_rwlock_unlock(l); }

#if defined(WEFT_BENCH_HAVE_CK)
static void ckrw_init(void *l) { ck_rwlock_init(l); }
static void ckrw_rdlock(void *l) { ck_rwlock_read_lock(l); }
static void ckrw_rdunlock(void *l) { ck_rwlock_read_unlock(l); }
static void ckrw_wrlock(void *l) { ck_rwlock_write_lock(l); }
static void ckrw_wrunlock(void *l) { ck_rwlock_write_unlock(l); }
#endif

static bool have_srw(void)
{
	return BENCH_HAVE(weft_srw_init) && BENCH_HAVE(weft_srw_lock_shared) &&
	       BENCH_HAVE(weft_srw_unlock_shared) && BENCH_HAVE(weft_srw_lock_exclusive) &&
	       BENCH_HAVE(weft_srw_unlock_exclusive);
}
static void wsrw_init(void *l) { weft_srw_init(l); }
static void wsrw_rdlock(void *l) { weft_srw_lock_shared(l); }
static void wsrw_rdunlock(void *l) { weft_srw_unlock_shared(l); }
static void wsrw_wrlock(void *l) { weft_srw_lock_exclusive(l); }
static void wsrw_wrunlock(void *l) { weft_srw_unlock_exclusive(l); }

static const rw_ops ops_pthread_rwlock = {"pthread_rwlock", always, prw_init, prw_destroy,
					  prw_rdlock, prw_unlock, prw_wrlock, prw_unlock};
static const rw_ops ops_pthread_rwlock_pw = {"pthread_rwlock_pw", always, prw_pw_init, prw_destroy,
					     prw_rdlock, prw_unlock, prw_wrlock, prw_unlock};
#if defined(WEFT_BENCH_HAVE_CK)
static const rw_ops ops_ck_rwlock = {"ck_rwlock", always, ckrw_init, NULL,
				     ckrw_rdlock, ckrw_rdunlock, ckrw_wrlock, ckrw_wrunlock};
#endif
static const rw_ops ops_weft_srw = {"weft_srw", have_srw, wsrw_init, NULL,
				    wsrw_rdlock, wsrw_rdunlock, wsrw_wrlock, wsrw_wrunlock};

/* ---- read/write mix ------------------------------------------------------------------ */

static inline __attribute__((always_inline)) void rw_mix_loop(weft_bench_state *st,
							       const rw_ops *ops, rw_run *r)
{
	const int me = weft_bench_thread_index(st);
	const uint64_t max_iters = (uint64_t)weft_bench_max_iterations(st);
	/* a read with probability pct/100: compare a 10-bit draw against pct% of 1024 */
	const uint64_t read_below = (uint64_t)weft_bench_arg(st, 0) * 1024 / 100;
	uint64_t x = (uint64_t)me + 1, rng = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
	uint64_t mine = 0, torn = 0;
	bool stopped = false, started = false;
	while (weft_bench_batch(st, BENCH_BATCH)) {
		if (stopped)
			continue;
		if (!started) {
			bench_start_line(&r->arrived, weft_bench_threads(st));
			started = true;
		}
		for (int i = 0; i < BENCH_BATCH; i++) {
			if ((bench_xorshift(&rng) & 1023) < read_below) {
				ops->rdlock(r->lock);
				torn += r->a != r->b;
				ops->rdunlock(r->lock);
			} else {
				ops->wrlock(r->lock);
				r->a = r->a + 1;
				r->b = r->b + 1;
				ops->wrunlock(r->lock);
			}
			x = bench_private_work(x);
			WEFT_BENCH_KEEP(x);
		}
		mine += BENCH_BATCH;
		/* see lock_loop(): the last batch raises the (relaxed, hint-only) flag */
		if (mine >= max_iters)
			__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
			stopped = true;
	}
	r->done[me] = mine;
	r->torn[me] = torn;
	bench_report_ops(st, mine);
	weft_bench_sync(st);
	if (me == 0) {
		const int n = weft_bench_threads(st);
		uint64_t bad = 0;
		for (int i = 0; i < n; i++)
			bad += r->torn[i];
		bench_report_fairness(st, r->done, n);
		if (bad)
			weft_bench_skip_with_error(st, "torn read: a reader saw a writer's half-update");
	}
}

/* ---- writer starvation ------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static inline __attribute__((always_inline)) void wstarve_loop(weft_bench_state *st,
								const rw_ops *ops, rw_run *r)
{
	const int me = weft_bench_thread_index(st);
	const uint64_t cap_ns = bench_quick ? 500000000ull : 3000000000ull;
	if (me == 0) {
		const struct timespec gap = {0, 20000};
		const uint64_t max_writes = (uint64_t)weft_bench_max_iterations(st);
		uint64_t writes = 0, t_start = 0, t_stop = 0;
		while (weft_bench_batch(st, 1)) {
			if (!t_start)
				t_start = bench_now_ns(CLOCK_MONOTONIC);
			nanosleep(&gap, NULL);
			uint64_t t0 = bench_now_ns(CLOCK_MONOTONIC);
			ops->wrlock(r->lock);
			uint64_t t1 = bench_now_ns(CLOCK_MONOTONIC);
			r->a = r->a + 1;
			r->b = r->b + 1;
			ops->wrunlock(r->lock);
			if (writes < WSTARVE_MAX_WRITES)
				r->lat_ns[writes] = t1 - t0;
			/* After the last write let the readers stop now: the final batch call
			 * waits for every thread at the library's stop barrier. Release: pairs
			 * with the readers' acquire loads. */
			if (++writes >= max_writes) {
				__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
				if (!t_stop)
					t_stop = bench_now_ns(CLOCK_MONOTONIC);
			}
		}
		uint64_t elapsed = t_stop - t_start;
		weft_bench_sync(st);
		const int n = weft_bench_threads(st);
		uint64_t reads = 0;
		bool capped = false;
		for (int i = 1; i < n; i++) {
			reads += r->reads[i];
			capped |= r->done[i] != 0;
		}
		size_t k = writes < WSTARVE_MAX_WRITES ? (size_t)writes : WSTARVE_MAX_WRITES;
		qsort(r->lat_ns, k, sizeof r->lat_ns[0], cmp_u64);
		weft_bench_counter(st, "wr_p50_us", k ? r->lat_ns[k / 2] / 1e3 : 0, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "wr_p99_us", k ? r->lat_ns[(k * 99) / 100] / 1e3 : 0,
				   WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "wr_max_us", k ? r->lat_ns[k - 1] / 1e3 : 0, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "reads_per_s", elapsed ? reads * 1e9 / (double)elapsed : 0,
				   WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "capped", capped ? 1 : 0, WEFT_BENCH_PLAIN);
		uint64_t torn = 0;
		for (int i = 1; i < n; i++)
			torn += r->torn[i];
		if (torn)
			weft_bench_skip_with_error(st, "torn read: a reader saw a writer's half-update");
		return;
	}
	/* A reader: pass the start barrier, stream until the writer is done (or the cap),
	 * then drain the iterations the library still expects. */
	uint64_t reads = 0, torn = 0, x = (uint64_t)me;
	bool capped = false;
	if (weft_bench_batch(st, 1)) {
		const uint64_t t_end = bench_now_ns(CLOCK_MONOTONIC) + cap_ns;
		while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
			for (int i = 0; i < 64; i++) {
				ops->rdlock(r->lock);
				torn += r->a != r->b;
				for (int j = 0; j < 8; j++) /* a short read-side section */
					x = bench_private_work(x);
				ops->rdunlock(r->lock);
			}
			WEFT_BENCH_KEEP(x);
			reads += 64;
			if (bench_now_ns(CLOCK_MONOTONIC) > t_end) {
				capped = true;
				break;
			}
		}
		while (weft_bench_batch(st, 1))
			;
	}
	r->reads[me] = reads;
	r->torn[me] = torn;
	r->done[me] = capped;
	weft_bench_sync(st);
}

static void rw_setup(weft_bench_state *st, void *ctx)
{
	(void)st;
	rw_run *r = ctx;
	memset(r->lock, 0, sizeof r->lock);
	r->a = r->b = 0;
	r->stop = 0;
	r->arrived = 0;
	memset(r->done, 0, sizeof r->done);
	memset(r->reads, 0, sizeof r->reads);
	memset(r->torn, 0, sizeof r->torn);
	r->ops->init(r->lock);
}

static void rw_teardown(weft_bench_state *st, void *ctx)
{
	(void)st;
	rw_run *r = ctx;
	if (r->ops->destroy)
		r->ops->destroy(r->lock);
}

/* The mixes run under the time cap; the writer-starvation test has its own. */
static void rw_mix_setup(weft_bench_state *st, void *ctx)
{
	rw_run *r = ctx;
	rw_setup(st, ctx);
	bench_watchdog_start(&r->watchdog, &r->stop);
}

static void rw_mix_teardown(weft_bench_state *st, void *ctx)
{
	rw_run *r = ctx;
	weft_bench_counter(st, "capped", bench_watchdog_stop(&r->watchdog) ? 1 : 0, WEFT_BENCH_PLAIN);
	rw_teardown(st, ctx);
}

#define RW_ROW(id)                                                                          \
	static void bm_mix_##id(weft_bench_state *st, void *ctx) { rw_mix_loop(st, &ops_##id, ctx); } \
	static void bm_ws_##id(weft_bench_state *st, void *ctx) { wstarve_loop(st, &ops_##id, ctx); }
#if defined(WEFT_BENCH_HAVE_CK)
#define CK_RW_ROWS(X) X(ck_rwlock)
#else
#define CK_RW_ROWS(X)
#endif
#define RW_ROWS(X) X(pthread_rwlock) X(pthread_rwlock_pw) CK_RW_ROWS(X) X(weft_srw)

RW_ROWS(RW_ROW)

void bench_rwlock_register(void)
{
	static const struct {
		const rw_ops *ops;
		weft_bench_fn mix, ws;
	} rows[] = {
#define ENTRY(id) {&ops_##id, bm_mix_##id, bm_ws_##id},
		RW_ROWS(ENTRY)
#undef ENTRY
	};
	enum { NROWS = sizeof rows / sizeof rows[0] };
	static const int64_t pcts_full[] = {90, 99, 100};
	static const int64_t pcts_quick[] = {90};
	static const char *const pct_name[] = {"read_pct"};
	static rw_run mix_runs[NROWS][3], ws_runs[NROWS];
	const size_t npct = bench_quick ? 1 : 3;
	/* a writer under 4 streaming readers (2 when quick) */
	static const int ws_threads_full[] = {5}, ws_threads_quick[] = {3};

	for (size_t p = 0; p < npct; p++) {
		for (size_t i = 0; i < NROWS; i++) {
			if (!rows[i].ops->available())
				continue;
			const int64_t *pct = &(bench_quick ? pcts_quick : pcts_full)[p];
			char name[96];
			snprintf(name, sizeof name, "rw%d/%s", (int)*pct, rows[i].ops->name);
			mix_runs[i][p].ops = rows[i].ops;
			weft_bench_opts o = bench_contention_opts();
			o.threads = bench_rw_threads;
			o.n_threads = bench_n_rw_threads;
			o.args = pct;
			o.n_args = 1;
			o.arg_names = pct_name;
			o.setup = rw_mix_setup;
			o.teardown = rw_mix_teardown;
			o.ctx = &mix_runs[i][p];
			weft_bench_register(name, rows[i].mix, &o);
		}
	}
	for (size_t i = 0; i < NROWS; i++) {
		if (!rows[i].ops->available()) {
			printf("weft-bench: rw/%s not built yet, rows skipped\n", rows[i].ops->name);
			continue;
		}
		char name[96];
		snprintf(name, sizeof name, "wstarve/%s", rows[i].ops->name);
		ws_runs[i].ops = rows[i].ops;
		weft_bench_opts o = {
			.threads = bench_quick ? ws_threads_quick : ws_threads_full,
			.n_threads = 1,
			.iterations = bench_quick ? 20 : 200,
			.real_time = true,
			.setup = rw_setup,
			.teardown = rw_teardown,
			.ctx = &ws_runs[i],
		};
		weft_bench_register(name, rows[i].ws, &o);
	}
}
