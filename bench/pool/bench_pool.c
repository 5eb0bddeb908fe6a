/* bench_pool.c - the thread pool (issue 6) beside libuv and a plain mutex+condvar pool.
 *
 * Pools, each with as many workers as CPUs (weft: min_threads = CPUs; libuv: its global
 * pool, UV_THREADPOOL_SIZE set to the CPU count unless already set in the environment):
 *   weft_submit  weft_pool_submit(pool, fn, arg)
 *   weft_work    one weft_work object, weft_work_submit per item (fn/arg fixed)
 *   naive        a growable ring under one pthread mutex, a condvar for idle workers
 *                (signalled only when a worker sleeps), no allocation per item
 *   per_worker   one such ring, mutex and condvar per worker; items dealt round-robin;
 *                an idle worker tries to take one item from each other queue (trylock)
 *                before it sleeps
 *   libuv        uv_queue_work on a private loop run by the benchmark thread
 *
 * pool_items/<impl>: empty items, submitted in batches of 256 by the benchmark thread; it
 *   stays at most WINDOW items ahead of the finished ones (yielding, or running the libuv
 *   loop, while the window is full) and the run ends once every item has run, so the time
 *   is "submit N, wait for all". An item only bumps its worker's own counter (no shared
 *   cache line). ns_item: wall ns per item; cpu_ns_item: process CPU ns per item.
 * pool_latency/<impl>/gap_us:<g>: one item at a time: the benchmark thread reads the clock,
 *   submits, the item reads the clock when it starts; the benchmark thread waits for it
 *   (a ~2 us spin, then a futex sleep, so it does not hold a CPU the woken worker may
 *   need; libuv: uv_run), then sleeps g us before the next. gap 0: the
 *   pool is idle but just finished an item (a worker may still be spinning); gap 1000: the
 *   workers had 1 ms to fall asleep. start_p50_us, start_p99_us, start_max_us; same_cpu:
 *   the share of items that started on the CPU the submitter submitted from; cpu_us_item:
 *   process CPU us per sample, gap included (a worker spinning through the gap shows here).
 * pool_idle/<impl>: after one item, the process's CPU time over a 200 ms sleep of the
 *   benchmark thread (quick: 20 ms): cpu_us_idle.
 * pool_fj/<impl>/cutoff:<c>: recursive Fibonacci of FJ_N: a node at n >= cutoff runs
 *   fib(n-1) as a child (a new weft_work, submitted) and fib(n-2) itself, then waits for
 *   the child with weft_work_wait (which on a pool thread runs the child inline if no
 *   worker took it yet); below the cutoff it recurses sequentially. seq is the same
 *   recursion without a pool. ms_op: wall ms per fib (cpu_ms_op: process CPU); speedup:
 *   only on weft rows, seq time (same run order, measured just before) / this time is in
 *   the summary.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft/pool.h>
#ifdef WEFT_BENCH_HAVE_UV
#include <uv.h>
#endif

#include "bench_common.h"

#define WINDOW 4096u
#define ITEM_BATCH 256u
#define SLOTS 64

enum pkind { P_WEFT, P_WEFT_WORK, P_NAIVE, P_PWQ, P_UV, P_COUNT };
static const char *const pkind_names[P_COUNT] = {"weft_submit", "weft_work", "naive", "per_worker",
						 "libuv"};

static uint32_t ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

/* ---- per-worker item counters ------------------------------------------------------------ */

static struct {
	WEFT_CACHE_ALIGNED uint64_t n;
} slot_cnt[SLOTS];
static uint32_t slot_epoch, slot_next;
static __thread uint32_t my_epoch;
static __thread uint32_t my_slot;

static void count_item(void *arg)
{
	(void)arg;
	uint32_t e = __atomic_load_n(&slot_epoch, __ATOMIC_ACQUIRE);
	if (__builtin_expect(my_epoch != e, 0)) {
		my_slot = __atomic_fetch_add(&slot_next, 1, __ATOMIC_RELAXED) % SLOTS;
		my_epoch = e;
	}
	uint64_t *c = &slot_cnt[my_slot].n;
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

static void counters_reset(void)
{
	for (int i = 0; i < SLOTS; i++)
		__atomic_store_n(&slot_cnt[i].n, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot_next, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&slot_epoch, 1, __ATOMIC_RELEASE);
}

static uint64_t counters_sum(void)
{
	uint32_t n = __atomic_load_n(&slot_next, __ATOMIC_RELAXED);
	uint64_t s = 0;
	for (uint32_t i = 0; i < n && i < SLOTS; i++)
		s += __atomic_load_n(&slot_cnt[i].n, __ATOMIC_ACQUIRE);
	return s;
}

/* ---- the naive pool ---------------------------------------------------------------------- */

typedef struct ntask {
	void (*fn)(void *);
	void *arg;
} ntask;

/* Appends t to a growable power-of-two ring (head, len, cap), doubling it when full; the
 * caller holds the ring's mutex. Shared by the naive and per-worker peer pools. */
static void ntask_push(ntask **ring, uint32_t *head, uint32_t *len, uint32_t *cap, ntask t)
{
	if (*len == *cap) {
		ntask *nr = malloc(sizeof *nr * *cap * 2);
		if (!nr)
			abort();
		for (uint32_t i = 0; i < *len; i++)
			nr[i] = (*ring)[(*head + i) & (*cap - 1)];
		free(*ring);
		*ring = nr;
		*head = 0;
		*cap *= 2;
	}
	(*ring)[(*head + *len) & (*cap - 1)] = t;
	(*len)++;
}

typedef struct naive_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ntask *ring;
	uint32_t head, len, cap, idle;
	bool stop;
	uint32_t n;
	pthread_t th[64];
} naive_pool;

static void *naive_worker(void *arg)
{
	naive_pool *np = arg;
	pthread_mutex_lock(&np->mu);
	for (;;) {
		while (np->len == 0 && !np->stop) {
			np->idle++;
			pthread_cond_wait(&np->cv, &np->mu);
			np->idle--;
		}
		if (np->len == 0)
			break;
		ntask t = np->ring[np->head];
		np->head = (np->head + 1) & (np->cap - 1);
		np->len--;
		pthread_mutex_unlock(&np->mu);
		t.fn(t.arg);
		pthread_mutex_lock(&np->mu);
	}
	pthread_mutex_unlock(&np->mu);
	return NULL;
}

static naive_pool *naive_create(uint32_t n)
{
	naive_pool *np = calloc(1, sizeof *np);
	if (!np)
		return NULL;
	pthread_mutex_init(&np->mu, NULL);
	pthread_cond_init(&np->cv, NULL);
	np->cap = 1024;
	np->ring = malloc(sizeof *np->ring * np->cap);
	np->n = n > 64 ? 64 : n;
	for (uint32_t i = 0; i < np->n; i++)
		pthread_create(&np->th[i], NULL, naive_worker, np);
	return np;
}

static void naive_submit(naive_pool *np, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&np->mu);
	ntask_push(&np->ring, &np->head, &np->len, &np->cap, (ntask){fn, arg});
	if (np->idle)
		pthread_cond_signal(&np->cv);
	pthread_mutex_unlock(&np->mu);
}

static void naive_destroy(naive_pool *np)
{
	pthread_mutex_lock(&np->mu);
	np->stop = true;
	pthread_cond_broadcast(&np->cv);
	pthread_mutex_unlock(&np->mu);
	for (uint32_t i = 0; i < np->n; i++)
		pthread_join(np->th[i], NULL);
	pthread_mutex_destroy(&np->mu);
	pthread_cond_destroy(&np->cv);
	free(np->ring);
	free(np);
}

/* ---- a pool with one queue per worker ----------------------------------------------------
 * Each worker owns a ring under its own mutex and a condvar; the submitter deals items
 * round-robin (one submitter: a plain counter) and signals a worker only when it sleeps.
 * A worker whose queue is empty first tries to take one item from each other queue
 * (trylock), then sleeps on its own. */

typedef struct pwq_queue {
	WEFT_CACHE_ALIGNED pthread_mutex_t mu;
	pthread_cond_t cv;
	ntask *ring;
	uint32_t head, len, cap;
	bool sleeping, stop;
	pthread_t th;
} pwq_queue;

typedef struct pwq_pool {
	uint32_t n, next;
	pwq_queue *q;
} pwq_pool;

typedef struct pwq_arg {
	pwq_pool *pp;
	uint32_t i;
} pwq_arg;

static pwq_arg pwq_args[64];

static bool pwq_pop(pwq_queue *q, ntask *t)
{
	if (q->len == 0)
		return false;
	*t = q->ring[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	return true;
}

static void *pwq_worker(void *arg)
{
	pwq_arg *a = arg;
	pwq_pool *pp = a->pp;
	pwq_queue *me = &pp->q[a->i];
	for (;;) {
		ntask t;
		pthread_mutex_lock(&me->mu);
		bool got = pwq_pop(me, &t);
		bool stop = me->stop;
		pthread_mutex_unlock(&me->mu);
		if (got) {
			t.fn(t.arg);
			continue;
		}
		for (uint32_t k = 1; k < pp->n && !got; k++) {
			pwq_queue *o = &pp->q[(a->i + k) % pp->n];
			if (pthread_mutex_trylock(&o->mu) == 0) {
				got = pwq_pop(o, &t);
				pthread_mutex_unlock(&o->mu);
			}
		}
		if (got) {
			t.fn(t.arg);
			continue;
		}
		if (stop)
			break;
		pthread_mutex_lock(&me->mu);
		while (me->len == 0 && !me->stop) {
			me->sleeping = true;
			pthread_cond_wait(&me->cv, &me->mu);
			me->sleeping = false;
		}
		pthread_mutex_unlock(&me->mu);
	}
	return NULL;
}

static pwq_pool *pwq_create(uint32_t n)
{
	n = n > 64 ? 64 : n;
	pwq_pool *pp = calloc(1, sizeof *pp);
	if (!pp)
		return NULL;
	pp->q = aligned_alloc(64, sizeof(pwq_queue) * n);
	if (!pp->q) {
		free(pp);
		return NULL;
	}
	memset(pp->q, 0, sizeof(pwq_queue) * n);
	pp->n = n;
	for (uint32_t i = 0; i < n; i++) {
		pwq_queue *q = &pp->q[i];
		pthread_mutex_init(&q->mu, NULL);
		pthread_cond_init(&q->cv, NULL);
		q->cap = 1024;
		q->ring = malloc(sizeof *q->ring * q->cap);
		if (!q->ring)
			abort();
	}
	for (uint32_t i = 0; i < n; i++) {
		pwq_args[i] = (pwq_arg){pp, i};
		pthread_create(&pp->q[i].th, NULL, pwq_worker, &pwq_args[i]);
	}
	return pp;
}

static void pwq_submit(pwq_pool *pp, void (*fn)(void *), void *arg)
{
	pwq_queue *q = &pp->q[pp->next++ % pp->n];
	pthread_mutex_lock(&q->mu);
	ntask_push(&q->ring, &q->head, &q->len, &q->cap, (ntask){fn, arg});
	if (q->sleeping)
		pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static void pwq_destroy(pwq_pool *pp)
{
	for (uint32_t i = 0; i < pp->n; i++) {
		pthread_mutex_lock(&pp->q[i].mu);
		pp->q[i].stop = true;
		pthread_cond_signal(&pp->q[i].cv);
		pthread_mutex_unlock(&pp->q[i].mu);
	}
	for (uint32_t i = 0; i < pp->n; i++)
		pthread_join(pp->q[i].th, NULL);
	for (uint32_t i = 0; i < pp->n; i++) {
		pthread_mutex_destroy(&pp->q[i].mu);
		pthread_cond_destroy(&pp->q[i].cv);
		free(pp->q[i].ring);
	}
	free(pp->q);
	free(pp);
}

/* ---- one pool of any kind -------------------------------------------------------------- */

#ifdef WEFT_BENCH_HAVE_UV
typedef struct uvreq {
	uv_work_t req;
	void (*fn)(void *);
	void *arg;
} uvreq;

static void uv_work(uv_work_t *r)
{
	uvreq *u = (uvreq *)r;
	u->fn(u->arg);
}

/* Loop thread only: after_work returns the request to the free stack (completions come
 * back in any order, so requests are not reused by index). */
static uint64_t uv_after_count;
static uvreq **uv_free;
static uint32_t uv_nfree;

static void uv_after(uv_work_t *r, int status)
{
	(void)status;
	uv_after_count++;
	uv_free[uv_nfree++] = (uvreq *)r;
}
#endif

typedef struct apool {
	enum pkind kind;
	weft_pool *wp;
	weft_work *work;
	naive_pool *np;
	pwq_pool *pp;
#ifdef WEFT_BENCH_HAVE_UV
	uv_loop_t loop;
	uvreq *reqs;
#endif
	uint64_t submitted;
} apool;

/* fn/arg are fixed for the life of the pool for weft_work (the work object's). */
static int apool_init(apool *a, enum pkind k, void (*fn)(void *), void *arg)
{
	memset(a, 0, sizeof *a);
	a->kind = k;
	switch (k) {
	case P_WEFT:
	case P_WEFT_WORK: {
		weft_pool_config cfg = {.min_threads = ncpu(), .name = "bench-pool"};
		a->wp = weft_pool_create(&cfg);
		if (!a->wp)
			return -ENOMEM;
		if (k == P_WEFT_WORK) {
			a->work = weft_work_create(a->wp, fn, arg);
			if (!a->work)
				return -ENOMEM;
		}
		return 0;
	}
	case P_NAIVE:
		a->np = naive_create(ncpu());
		return a->np ? 0 : -ENOMEM;
	case P_PWQ:
		a->pp = pwq_create(ncpu());
		return a->pp ? 0 : -ENOMEM;
	case P_UV:
#ifdef WEFT_BENCH_HAVE_UV
		if (uv_loop_init(&a->loop) != 0)
			return -ENOMEM;
		a->reqs = calloc(2 * WINDOW, sizeof *a->reqs);
		uv_free = calloc(2 * WINDOW, sizeof *uv_free);
		uv_after_count = 0;
		uv_nfree = 0;
		if (!a->reqs || !uv_free)
			return -ENOMEM;
		for (uint32_t i = 0; i < 2 * WINDOW; i++)
			uv_free[uv_nfree++] = &a->reqs[i];
		return 0;
#else
		return -ENOSYS;
#endif
	default:
		return -EINVAL;
	}
}

static void apool_destroy(apool *a)
{
	switch (a->kind) {
	case P_WEFT:
	case P_WEFT_WORK:
		if (a->work) {
			weft_work_wait(a->work, false);
			weft_work_close(a->work);
		}
		if (a->wp)
			weft_pool_destroy(a->wp);
		break;
	case P_NAIVE:
		if (a->np)
			naive_destroy(a->np);
		break;
	case P_PWQ:
		if (a->pp)
			pwq_destroy(a->pp);
		break;
	case P_UV:
#ifdef WEFT_BENCH_HAVE_UV
		if (a->reqs) {
			uv_run(&a->loop, UV_RUN_DEFAULT);
			uv_loop_close(&a->loop);
		}
		free(a->reqs);
		free(uv_free);
		uv_free = NULL;
#endif
		break;
	default:
		break;
	}
}

static inline __attribute__((always_inline)) void apool_submit(apool *a, enum pkind k, void (*fn)(void *),
							      void *arg)
{
	switch (k) {
	case P_WEFT:
		if (weft_pool_submit(a->wp, fn, arg) != 0)
			abort();
		break;
	case P_WEFT_WORK:
		weft_work_submit(a->work);
		break;
	case P_NAIVE:
		naive_submit(a->np, fn, arg);
		break;
	case P_PWQ:
		pwq_submit(a->pp, fn, arg);
		break;
	case P_UV: {
#ifdef WEFT_BENCH_HAVE_UV
		while (uv_nfree == 0)
			uv_run(&a->loop, UV_RUN_ONCE);
		uvreq *u = uv_free[--uv_nfree];
		u->fn = fn;
		u->arg = arg;
		if (uv_queue_work(&a->loop, &u->req, uv_work, uv_after) != 0)
			abort();
#endif
		break;
	}
	default:
		abort();
	}
	a->submitted++;
}

/* Items that may still hold their slot (libuv: not yet through after_work). */
static uint64_t apool_outstanding(apool *a, enum pkind k)
{
#ifdef WEFT_BENCH_HAVE_UV
	if (k == P_UV)
		return a->submitted - uv_after_count;
#endif
	(void)k;
	return a->submitted - counters_sum();
}

static void apool_make_progress(apool *a, enum pkind k)
{
#ifdef WEFT_BENCH_HAVE_UV
	if (k == P_UV) {
		uv_run(&a->loop, UV_RUN_ONCE);
		return;
	}
#endif
	(void)a;
	(void)k;
	sched_yield();
}

/* ---- pool_items ------------------------------------------------------------------------ */

static void skip_run(weft_bench_state *st, const char *msg)
{
	weft_bench_skip_with_error(st, msg);
	while (weft_bench_batch(st, 1))
		;
}

static inline __attribute__((always_inline)) void items_body(weft_bench_state *st, enum pkind k)
{
	apool a;
	counters_reset();
	if (apool_init(&a, k, count_item, NULL) != 0) {
		apool_destroy(&a);
		skip_run(st, "pool set-up failed");
		return;
	}
	uint64_t w0 = 0, c0 = 0;
	bool first = true;
	while (weft_bench_batch(st, ITEM_BATCH)) {
		if (first) {
			w0 = bench_now_ns(CLOCK_MONOTONIC);
			c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
			first = false;
		}
		for (uint32_t i = 0; i < ITEM_BATCH; i++)
			apool_submit(&a, k, count_item, NULL);
		while (apool_outstanding(&a, k) > WINDOW)
			apool_make_progress(&a, k);
	}
	while (apool_outstanding(&a, k) > 0)
		apool_make_progress(&a, k);
	uint64_t w1 = bench_now_ns(CLOCK_MONOTONIC), c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t n = a.submitted, ran = counters_sum();
	apool_destroy(&a);
	if (ran != n) {
		weft_bench_skip_with_error(st, "an item did not run exactly once");
		return;
	}
	if (n) {
		weft_bench_counter(st, "ns_item", (double)(w1 - w0) / (double)n, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "cpu_ns_item", (double)(c1 - c0) / (double)n, WEFT_BENCH_PLAIN);
	}
	weft_bench_set_items(st, (int64_t)n);
}

/* ---- pool_latency ---------------------------------------------------------------------- */

/* done: 0 running, 1 finished; sleeping: the submitter announced a futex wait. */
typedef struct lat_slot {
	uint64_t t0, start;
	uint32_t done, sleeping;
	int cpu; /* where the item started */
} lat_slot;

static void lat_item(void *arg)
{
	lat_slot *l = arg;
	l->start = bench_now_ns(CLOCK_MONOTONIC);
	l->cpu = sched_getcpu();
	/* seq_cst store then load, against the waiter's store of sleeping then load of done */
	__atomic_store_n(&l->done, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&l->sleeping, __ATOMIC_SEQ_CST))
		bench_futex_wake(&l->done, 1);
}

/* The submitter waits for the item without holding its CPU: a woken worker may be
 * placed on this CPU, so a long spin here would delay the very start it measures. A
 * ~2 us spin, then a futex sleep. */
static void lat_wait(lat_slot *l)
{
	for (int i = 0; i < 100; i++) {
		if (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE))
			return;
		weft_cpu_relax();
	}
	__atomic_store_n(&l->sleeping, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&l->done, __ATOMIC_SEQ_CST))
		bench_futex_wait(&l->done, 0);
	__atomic_store_n(&l->sleeping, 0, __ATOMIC_RELAXED);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static inline __attribute__((always_inline)) void latency_body(weft_bench_state *st, enum pkind k)
{
	uint64_t gap_ns = (uint64_t)weft_bench_arg(st, 0) * 1000u;
	lat_slot *l = aligned_alloc(64, 64);
	apool a;
	if (!l || apool_init(&a, k, lat_item, l) != 0) {
		apool_destroy(&a);
		free(l);
		skip_run(st, "pool set-up failed");
		return;
	}
	int64_t cap = weft_bench_max_iterations(st);
	uint64_t *s = malloc(sizeof *s * (size_t)(cap > 0 ? cap : 1));
	size_t n = 0, same = 0;
	uint64_t c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (weft_bench_batch(st, 1)) {
		__atomic_store_n(&l->done, 0, __ATOMIC_RELAXED);
		int mycpu = sched_getcpu();
		l->t0 = bench_now_ns(CLOCK_MONOTONIC);
		apool_submit(&a, k, lat_item, l);
		if (k == P_UV) {
			while (!__atomic_load_n(&l->done, __ATOMIC_ACQUIRE))
				apool_make_progress(&a, k);
		} else {
			lat_wait(l);
		}
		if (s && (int64_t)n < cap) {
			s[n++] = l->start - l->t0;
			same += l->cpu == mycpu;
		}
		if (gap_ns) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)gap_ns};
			while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
				;
		}
	}
	uint64_t c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	apool_destroy(&a);
	free(l);
	if (!n) {
		free(s);
		return;
	}
	/* process CPU per sample, the gap included: what a spinning worker costs */
	weft_bench_counter(st, "cpu_us_item", (double)(c1 - c0) / 1e3 / (double)n, WEFT_BENCH_PLAIN);
	qsort(s, n, sizeof *s, cmp_u64);
	weft_bench_counter(st, "start_p50_us", (double)s[n / 2] / 1e3, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "start_p99_us", (double)s[(n * 99) / 100] / 1e3, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "start_max_us", (double)s[n - 1] / 1e3, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "samples", (double)n, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "same_cpu", (double)same / (double)n, WEFT_BENCH_PLAIN);
	free(s);
}

/* ---- pool_idle ------------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void idle_body(weft_bench_state *st, enum pkind k)
{
	lat_slot *l = aligned_alloc(64, 64);
	apool a;
	if (!l || apool_init(&a, k, lat_item, l) != 0) {
		apool_destroy(&a);
		free(l);
		skip_run(st, "pool set-up failed");
		return;
	}
	const uint64_t sleep_ns = bench_quick ? 20000000ull : 200000000ull;
	double cpu_us = 0;
	uint64_t n = 0;
	while (weft_bench_batch(st, 1)) {
		__atomic_store_n(&l->done, 0, __ATOMIC_RELAXED);
		apool_submit(&a, k, lat_item, l);
		if (k == P_UV) {
			while (!__atomic_load_n(&l->done, __ATOMIC_ACQUIRE))
				apool_make_progress(&a, k);
		} else {
			lat_wait(l);
		}
		uint64_t c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)sleep_ns};
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
			;
		cpu_us += (double)(bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e3;
		n++;
	}
	apool_destroy(&a);
	free(l);
	weft_bench_counter(st, "cpu_us_idle", n ? cpu_us / (double)n : 0, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "idle_ms", (double)sleep_ns / 1e6, WEFT_BENCH_PLAIN);
}

#define PKIND_BMS(K)                                                                            \
	static void bm_items_##K(weft_bench_state *st, void *ctx)                               \
	{                                                                                       \
		(void)ctx;                                                                      \
		items_body(st, K);                                                              \
	}                                                                                       \
	static void bm_latency_##K(weft_bench_state *st, void *ctx)                             \
	{                                                                                       \
		(void)ctx;                                                                      \
		latency_body(st, K);                                                            \
	}                                                                                       \
	static void bm_idle_##K(weft_bench_state *st, void *ctx)                                \
	{                                                                                       \
		(void)ctx;                                                                      \
		idle_body(st, K);                                                               \
	}
PKIND_BMS(P_WEFT)
PKIND_BMS(P_WEFT_WORK)
PKIND_BMS(P_NAIVE)
PKIND_BMS(P_PWQ)
PKIND_BMS(P_UV)
static const weft_bench_fn items_fn[P_COUNT] = {bm_items_P_WEFT, bm_items_P_WEFT_WORK,
						bm_items_P_NAIVE, bm_items_P_PWQ, bm_items_P_UV};
static const weft_bench_fn latency_fn[P_COUNT] = {bm_latency_P_WEFT, bm_latency_P_WEFT_WORK,
						  bm_latency_P_NAIVE, bm_latency_P_PWQ,
						  bm_latency_P_UV};
static const weft_bench_fn idle_fn[P_COUNT] = {bm_idle_P_WEFT, bm_idle_P_WEFT_WORK,
					       bm_idle_P_NAIVE, bm_idle_P_PWQ, bm_idle_P_UV};

/* ---- pool_fj --------------------------------------------------------------------------- */

static int fj_n(void)
{
	return bench_quick ? 24 : 32;
}

static __attribute__((noinline)) uint64_t fib_seq(int n)
{
	return n < 2 ? (uint64_t)n : fib_seq(n - 1) + fib_seq(n - 2);
}

typedef struct fj_node {
	int n, cutoff;
	weft_pool *pool;
	uint64_t res;
} fj_node;

static uint64_t fj_rec(weft_pool *pool, int n, int cutoff);

static void fj_fn(void *arg)
{
	fj_node *t = arg;
	t->res = fj_rec(t->pool, t->n, t->cutoff);
}

static uint64_t fj_rec(weft_pool *pool, int n, int cutoff)
{
	if (n < cutoff || n < 2)
		return fib_seq(n);
	fj_node child = {.n = n - 1, .cutoff = cutoff, .pool = pool};
	weft_work *w = weft_work_create(pool, fj_fn, &child);
	if (!w)
		abort();
	weft_work_submit(w);
	uint64_t b = fj_rec(pool, n - 2, cutoff);
	weft_work_wait(w, false);
	weft_work_close(w);
	return child.res + b;
}

static void bm_fj_seq(weft_bench_state *st, void *ctx)
{
	(void)ctx;
	uint64_t n = 0, r = 0, w0 = bench_now_ns(CLOCK_MONOTONIC), c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (weft_bench_batch(st, 1)) {
		r = fib_seq(fj_n());
		WEFT_BENCH_KEEP(r);
		n++;
	}
	uint64_t w1 = bench_now_ns(CLOCK_MONOTONIC), c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (n) {
		weft_bench_counter(st, "ms_op", (double)(w1 - w0) / (double)n / 1e6, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "cpu_ms_op", (double)(c1 - c0) / (double)n / 1e6, WEFT_BENCH_PLAIN);
	}
}

static void bm_fj_weft(weft_bench_state *st, void *ctx)
{
	(void)ctx;
	int cutoff = (int)weft_bench_arg(st, 0);
	weft_pool_config cfg = {.min_threads = ncpu(), .name = "bench-fj"};
	weft_pool *p = weft_pool_create(&cfg);
	if (!p) {
		skip_run(st, "pool set-up failed");
		return;
	}
	const uint64_t want = fib_seq(fj_n());
	uint64_t n = 0, bad = 0, w0 = 0, c0 = 0;
	bool first = true;
	while (weft_bench_batch(st, 1)) {
		if (first) {
			w0 = bench_now_ns(CLOCK_MONOTONIC);
			c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
			first = false;
		}
		fj_node root = {.n = fj_n(), .cutoff = cutoff, .pool = p};
		weft_work *w = weft_work_create(p, fj_fn, &root);
		if (!w)
			abort();
		weft_work_submit(w);
		weft_work_wait(w, false);
		weft_work_close(w);
		bad += root.res != want;
		n++;
	}
	uint64_t w1 = bench_now_ns(CLOCK_MONOTONIC), c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	weft_pool_stats ps;
	weft_pool_get_stats(p, &ps);
	weft_pool_destroy(p);
	if (bad) {
		weft_bench_skip_with_error(st, "wrong Fibonacci result");
		return;
	}
	if (n) {
		weft_bench_counter(st, "ms_op", (double)(w1 - w0) / (double)n / 1e6, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "cpu_ms_op", (double)(c1 - c0) / (double)n / 1e6, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "threads_end", (double)ps.threads, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "injected", (double)ps.injected, WEFT_BENCH_PLAIN);
	}
}

/* ---- registration ------------------------------------------------------------------------ */

void bench_pool_register(void)
{
#ifdef WEFT_BENCH_HAVE_UV
	char nb[16];
	snprintf(nb, sizeof nb, "%u", ncpu());
	setenv("UV_THREADPOOL_SIZE", nb, 0); /* read by libuv when its pool starts */
	weft_bench_context("uv_threadpool_size", getenv("UV_THREADPOOL_SIZE"));
#endif
	char name[96];
	for (int k = 0; k < P_COUNT; k++) {
#ifndef WEFT_BENCH_HAVE_UV
		if (k == P_UV)
			continue;
#endif
		snprintf(name, sizeof name, "pool_items/%s", pkind_names[k]);
		weft_bench_register(name, items_fn[k], &(weft_bench_opts){
			.real_time = true, .warmup_time = bench_quick ? 0.0 : 0.05});
	}
	static const int64_t gaps[] = {0, 1000};
	static const char *const gap_name[] = {"gap_us"};
	for (int k = 0; k < P_COUNT; k++) {
#ifndef WEFT_BENCH_HAVE_UV
		if (k == P_UV)
			continue;
#endif
		snprintf(name, sizeof name, "pool_latency/%s", pkind_names[k]);
		/* fixed sample counts: 2000 at gap 0 and 500 at 1 ms (quick: 200 and 30) are
		 * registered as two names so each gets its own iteration count */
		weft_bench_register(name, latency_fn[k], &(weft_bench_opts){
			.args = &gaps[0], .n_args = 1, .arity = 1, .arg_names = gap_name,
			.iterations = bench_quick ? 200 : 2000, .real_time = true});
		weft_bench_register(name, latency_fn[k], &(weft_bench_opts){
			.args = &gaps[1], .n_args = 1, .arity = 1, .arg_names = gap_name,
			.iterations = bench_quick ? 30 : 500, .real_time = true});
	}
	for (int k = 0; k < P_COUNT; k++) {
#ifndef WEFT_BENCH_HAVE_UV
		if (k == P_UV)
			continue;
#endif
		snprintf(name, sizeof name, "pool_idle/%s", pkind_names[k]);
		weft_bench_register(name, idle_fn[k], &(weft_bench_opts){
			.iterations = bench_quick ? 1 : 3, .real_time = true});
	}
	weft_bench_register("pool_fj/seq", bm_fj_seq, &(weft_bench_opts){.real_time = true});
	static const int64_t cutoffs[] = {20, 12};
	static const char *const cut_name[] = {"cutoff"};
	weft_bench_register("pool_fj/weft_work", bm_fj_weft, &(weft_bench_opts){
		.args = cutoffs, .n_args = 2, .arity = 1, .arg_names = cut_name, .real_time = true});
}
