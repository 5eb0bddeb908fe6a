/* bench_locks.c - mutual exclusion under contention, weft beside its peers, plus the
 * seed's ranking rows (volatile read, volatile write, interlocked increment).
 *
 * One harness for everyone: a lock is an ops table (init, lock, unlock, destroy) and every
 * table runs the same loop, lock_loop(): take the lock, increment a shared counter that
 * lives on its own cache line, release, then a little private work. The table is a
 * compile-time constant at each call site, so the compiler turns its calls into direct
 * (and, for header-only locks, inlined) calls: no implementation pays an indirect call.
 *
 * Fairness: every thread runs until the first thread has done its share of iterations;
 * then the others stop at their next batch (BENCH_BATCH ops) and skip the rest of theirs
 * without touching the lock, so the timed window is (nearly) all contended. The ops
 * each thread completed in that common window give fair_min_max = min/max (1.0 is
 * perfectly fair) and the wall time over all ops gives ns_op (all threads together).
 * The shared counter is checked afterwards: a lock that loses an increment fails the run.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include <weft/interlocked.h>
#include <weft/sync.h>
#if __has_include(<weft/waitable.h>)
#include <weft/waitable.h>
#define BENCH_HAVE_WAITABLE 1
#endif
#if defined(WEFT_BENCH_HAVE_CK)
#include <ck_rwlock.h>
#include <ck_spinlock.h>
#endif

#include "bench_common.h"

BENCH_WEAK(weft_spin_init);
/* weft_spin_lock/unlock are static inline in <weft/sync.h>: always present. */
BENCH_WEAK(weft_ticket_init);
BENCH_WEAK(weft_ticket_lock);
BENCH_WEAK(weft_ticket_unlock);
BENCH_WEAK(weft_mcs_init);
BENCH_WEAK(weft_mcs_lock);
BENCH_WEAK(weft_mcs_unlock);
BENCH_WEAK(weft_cs_init);
BENCH_WEAK(weft_cs_destroy);
BENCH_WEAK(weft_cs_enter);
BENCH_WEAK(weft_cs_leave);
BENCH_WEAK(weft_srw_init);
BENCH_WEAK(weft_srw_lock_exclusive);
BENCH_WEAK(weft_srw_unlock_exclusive);
#ifdef BENCH_HAVE_WAITABLE
BENCH_WEAK(weft_mutex_create);
BENCH_WEAK(weft_mutex_release);
BENCH_WEAK(weft_wait);
BENCH_WEAK(weft_handle_close);
#endif

#define LOCK_STORAGE 256

typedef struct lock_ops {
	const char *name;
	bool (*available)(void);
	void (*init)(void *l);
	void (*destroy)(void *l);
	/* node: a per-thread, cache-line aligned LOCK_STORAGE-byte area (queue locks' node) */
	void (*lock)(void *l, void *node);
	void (*unlock)(void *l, void *node);
	/* Ranking rows have no lock: raw is the whole operation on the shared word. */
	void (*raw)(volatile int32_t *word);
	bool exact; /* the shared counter must equal the ops done */
} lock_ops;

typedef struct lock_run {
	const lock_ops *ops;
	WEFT_CACHE_ALIGNED unsigned char lock[LOCK_STORAGE];
	WEFT_CACHE_ALIGNED volatile int32_t counter; /* the data the lock protects */
	WEFT_CACHE_ALIGNED int stop;
	int arrived; /* bench_start_line */
	bench_watchdog watchdog;                 /* first thread done: others stop */
	WEFT_CACHE_ALIGNED uint64_t done[BENCH_MAX_THREADS];
} lock_run;

static bool always(void) { return true; }
static void nop_init(void *l) { (void)l; }

/* ---- the loop every implementation runs ---------------------------------------------- */

static inline __attribute__((always_inline)) void lock_loop(weft_bench_state *st,
							     const lock_ops *ops, lock_run *r)
{
	struct {
		WEFT_CACHE_ALIGNED unsigned char b[LOCK_STORAGE];
	} node;
	memset(&node, 0, sizeof node);
	const int me = weft_bench_thread_index(st);
	const uint64_t max_iters = (uint64_t)weft_bench_max_iterations(st);
	uint64_t x = (uint64_t)me + 1, mine = 0;
	bool stopped = false, started = false;
	while (weft_bench_batch(st, BENCH_BATCH)) {
		if (stopped)
			continue;
		if (!started) {
			bench_start_line(&r->arrived, weft_bench_threads(st));
			started = true;
		}
		for (int i = 0; i < BENCH_BATCH; i++) {
			if (ops->raw) {
				ops->raw(&r->counter);
			} else {
				ops->lock(r->lock, node.b);
				r->counter++;
				ops->unlock(r->lock, node.b);
			}
			x = bench_private_work(x);
			WEFT_BENCH_KEEP(x);
		}
		mine += BENCH_BATCH;
		/* The last batch of this thread: tell the others now, since the final
		 * weft_bench_batch call waits for every thread at the library's stop barrier.
		 * Relaxed: the flag is only a hint; the counts are read after a barrier. */
		if (mine >= max_iters)
			__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
			stopped = true;
	}
	r->done[me] = mine;
	bench_report_ops(st, mine);
	weft_bench_sync(st); /* every r->done[] is written (the barrier orders it) */
	if (me == 0) {
		const int n = weft_bench_threads(st);
		uint64_t total = 0;
		for (int i = 0; i < n; i++)
			total += r->done[i];
		bench_report_fairness(st, r->done, n);
		if (ops->exact && (uint64_t)(uint32_t)r->counter != (uint32_t)total)
			weft_bench_skip_with_error(st, "lost update: shared counter != ops");
	}
}

static void lock_setup(weft_bench_state *st, void *ctx)
{
	(void)st;
	lock_run *r = ctx;
	memset(r->lock, 0, sizeof r->lock);
	r->counter = 0;
	r->stop = 0;
	r->arrived = 0;
	r->ops->init(r->lock);
	bench_watchdog_start(&r->watchdog, &r->stop);
}

static void lock_teardown(weft_bench_state *st, void *ctx)
{
	lock_run *r = ctx;
	weft_bench_counter(st, "capped", bench_watchdog_stop(&r->watchdog) ? 1 : 0, WEFT_BENCH_PLAIN);
	if (r->ops->destroy)
		r->ops->destroy(r->lock);
}

/* ---- ranking rows -------------------------------------------------------------------- */

static void raw_volatile_read(volatile int32_t *w) { WEFT_BENCH_KEEP(*w); }
static void raw_volatile_write(volatile int32_t *w) { *w = 1; }
static void raw_interlocked(volatile int32_t *w) { weft_interlocked_increment(w); }

/* ---- glibc --------------------------------------------------------------------------- */

static void pmutex_init(void *l) { pthread_mutex_init(l, NULL); }
static void pmutex_adaptive_init(void *l)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(l, &a);
	pthread_mutexattr_destroy(&a);
}
static void pmutex_destroy(void *l) { pthread_mutex_destroy(l); }
static void pmutex_lock(void *l, void *n) { (void)n; pthread_mutex_lock(l); }
static void pmutex_unlock(void *l, void *n) { (void)n; pthread_mutex_unlock(l); }

static void pspin_init(void *l) { pthread_spin_init(l, PTHREAD_PROCESS_PRIVATE); }
static void pspin_destroy(void *l) { pthread_spin_destroy(l); }
static void pspin_lock(void *l, void *n) { (void)n; pthread_spin_lock(l); }
static void pspin_unlock(void *l, void *n) { (void)n; pthread_spin_unlock(l); }

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
static void prw_wrlock(void *l, void *n) { (void)n; pthread_rwlock_wrlock(l); }
static void prw_unlock(void *l, void *n) { (void)n; pthread_rwlock_unlock(l); }

static void sem_bin_init(void *l) { sem_init(l, 0, 1); }
static void sem_bin_destroy(void *l) { sem_destroy(l); }
static void sem_bin_lock(void *l, void *n)
{
	(void)n;
	while (sem_wait(l) != 0)
		;
}
static void sem_bin_unlock(void *l, void *n) { (void)n; sem_post(l); }

/* ---- concurrencykit ------------------------------------------------------------------ */
#if defined(WEFT_BENCH_HAVE_CK)
static void ckfas_init(void *l) { ck_spinlock_fas_init(l); }
static void ckfas_lock(void *l, void *n) { (void)n; ck_spinlock_fas_lock(l); }
static void ckfas_unlock(void *l, void *n) { (void)n; ck_spinlock_fas_unlock(l); }
static void ckticket_init(void *l) { ck_spinlock_ticket_init(l); }
static void ckticket_lock(void *l, void *n) { (void)n; ck_spinlock_ticket_lock(l); }
static void ckticket_unlock(void *l, void *n) { (void)n; ck_spinlock_ticket_unlock(l); }
static void ckmcs_init(void *l) { ck_spinlock_mcs_init(l); }
static void ckmcs_lock(void *l, void *n) { ck_spinlock_mcs_lock(l, n); }
static void ckmcs_unlock(void *l, void *n) { ck_spinlock_mcs_unlock(l, n); }
static void ckrw_init(void *l) { ck_rwlock_init(l); }
static void ckrw_lock(void *l, void *n) { (void)n; ck_rwlock_write_lock(l); }
static void ckrw_unlock(void *l, void *n) { (void)n; ck_rwlock_write_unlock(l); }
#endif

/* ---- weft ---------------------------------------------------------------------------- */

static bool have_spin(void)
{
	return BENCH_HAVE(weft_spin_init);
}
static void wspin_init(void *l) { weft_spin_init(l); }
static void wspin_lock(void *l, void *n) { (void)n; weft_spin_lock(l); }
static void wspin_unlock(void *l, void *n) { (void)n; weft_spin_unlock(l); }

static bool have_ticket(void)
{
	return BENCH_HAVE(weft_ticket_init) && BENCH_HAVE(weft_ticket_lock) &&
	       BENCH_HAVE(weft_ticket_unlock);
}
static void wticket_init(void *l) { weft_ticket_init(l); }
static void wticket_lock(void *l, void *n) { (void)n; weft_ticket_lock(l); }
static void wticket_unlock(void *l, void *n) { (void)n; weft_ticket_unlock(l); }

static bool have_mcs(void)
{
	return BENCH_HAVE(weft_mcs_init) && BENCH_HAVE(weft_mcs_lock) && BENCH_HAVE(weft_mcs_unlock);
}
static void wmcs_init(void *l) { weft_mcs_init(l); }
static void wmcs_lock(void *l, void *n) { weft_mcs_lock(l, n); }
static void wmcs_unlock(void *l, void *n) { weft_mcs_unlock(l, n); }

static bool have_cs(void)
{
	return BENCH_HAVE(weft_cs_init) && BENCH_HAVE(weft_cs_destroy) && BENCH_HAVE(weft_cs_enter) &&
	       BENCH_HAVE(weft_cs_leave);
}
static void wcs_init(void *l) { weft_cs_init(l, WEFT_CS_DEFAULT_SPIN); }
static void wcs_destroy(void *l) { weft_cs_destroy(l); }
static void wcs_lock(void *l, void *n) { (void)n; weft_cs_enter(l); }
static void wcs_unlock(void *l, void *n) { (void)n; weft_cs_leave(l); }

static bool have_srw(void)
{
	return BENCH_HAVE(weft_srw_init) && BENCH_HAVE(weft_srw_lock_exclusive) &&
	       BENCH_HAVE(weft_srw_unlock_exclusive);
}
static void wsrw_init(void *l) { weft_srw_init(l); }
static void wsrw_lock(void *l, void *n) { (void)n; weft_srw_lock_exclusive(l); }
static void wsrw_unlock(void *l, void *n) { (void)n; weft_srw_unlock_exclusive(l); }

#ifdef BENCH_HAVE_WAITABLE
/* The kernel-style mutex object: the lock storage holds its handle. */
static bool have_mutex_obj(void)
{
	return BENCH_HAVE(weft_mutex_create) && BENCH_HAVE(weft_mutex_release) &&
	       BENCH_HAVE(weft_wait) && BENCH_HAVE(weft_handle_close);
}
static void wmutex_init(void *l) { *(weft_handle **)l = weft_mutex_create(false); }
static void wmutex_destroy(void *l) { weft_handle_close(*(weft_handle **)l); }
static void wmutex_lock(void *l, void *n)
{
	(void)n;
	weft_wait(*(weft_handle **)l, WEFT_INFINITE);
}
static void wmutex_unlock(void *l, void *n)
{
	(void)n;
	weft_mutex_release(*(weft_handle **)l);
}
#endif

/* ---- the table ----------------------------------------------------------------------- */

#define RAW(id, fn) \
	static const lock_ops ops_##id = {.name = #id, .available = always, .init = nop_init, .raw = fn};
#define LOCK(id, avail, ini, des, lk, ulk)                                                 \
	static const lock_ops ops_##id = {.name = #id, .available = avail, .init = ini,    \
					  .destroy = des, .lock = lk, .unlock = ulk, .exact = true};

RAW(volatile_read, raw_volatile_read)
RAW(volatile_write, raw_volatile_write)
static const lock_ops ops_interlocked_inc = {.name = "interlocked_inc", .available = always,
					     .init = nop_init, .raw = raw_interlocked, .exact = true};
LOCK(pthread_mutex, always, pmutex_init, pmutex_destroy, pmutex_lock, pmutex_unlock)
LOCK(pthread_mutex_adaptive, always, pmutex_adaptive_init, pmutex_destroy, pmutex_lock, pmutex_unlock)
LOCK(pthread_spin, always, pspin_init, pspin_destroy, pspin_lock, pspin_unlock)
LOCK(pthread_rwlock_wr, always, prw_init, prw_destroy, prw_wrlock, prw_unlock)
LOCK(pthread_rwlock_pw_wr, always, prw_pw_init, prw_destroy, prw_wrlock, prw_unlock)
LOCK(sem_binary, always, sem_bin_init, sem_bin_destroy, sem_bin_lock, sem_bin_unlock)
#if defined(WEFT_BENCH_HAVE_CK)
LOCK(ck_spinlock_fas, always, ckfas_init, NULL, ckfas_lock, ckfas_unlock)
LOCK(ck_spinlock_ticket, always, ckticket_init, NULL, ckticket_lock, ckticket_unlock)
LOCK(ck_spinlock_mcs, always, ckmcs_init, NULL, ckmcs_lock, ckmcs_unlock)
LOCK(ck_rwlock_wr, always, ckrw_init, NULL, ckrw_lock, ckrw_unlock)
#endif
LOCK(weft_spin, have_spin, wspin_init, NULL, wspin_lock, wspin_unlock)
LOCK(weft_ticket, have_ticket, wticket_init, NULL, wticket_lock, wticket_unlock)
LOCK(weft_mcs, have_mcs, wmcs_init, NULL, wmcs_lock, wmcs_unlock)
LOCK(weft_cs, have_cs, wcs_init, wcs_destroy, wcs_lock, wcs_unlock)
LOCK(weft_srw_excl, have_srw, wsrw_init, NULL, wsrw_lock, wsrw_unlock)
#ifdef BENCH_HAVE_WAITABLE
LOCK(weft_mutex_obj, have_mutex_obj, wmutex_init, wmutex_destroy, wmutex_lock, wmutex_unlock)
#endif

/* One benchmark function per table, so each call site sees a constant table. */
#define ROW(id)                                                                           \
	static void bm_##id(weft_bench_state *st, void *ctx) { lock_loop(st, &ops_##id, ctx); }
#define ROWS(X)                                                                               \
	X(volatile_read) X(volatile_write) X(interlocked_inc) X(pthread_mutex)               \
	X(pthread_mutex_adaptive) X(pthread_spin) X(pthread_rwlock_wr) X(pthread_rwlock_pw_wr) \
	X(sem_binary) CK_ROWS(X) X(weft_spin) X(weft_ticket) X(weft_mcs) X(weft_cs)          \
	X(weft_srw_excl) WAITABLE_ROWS(X)
#if defined(WEFT_BENCH_HAVE_CK)
#define CK_ROWS(X) X(ck_spinlock_fas) X(ck_spinlock_ticket) X(ck_spinlock_mcs) X(ck_rwlock_wr)
#else
#define CK_ROWS(X)
#endif
#ifdef BENCH_HAVE_WAITABLE
#define WAITABLE_ROWS(X) X(weft_mutex_obj)
#else
#define WAITABLE_ROWS(X)
#endif

ROWS(ROW)

void bench_locks_register(void)
{
	static const struct {
		const lock_ops *ops;
		weft_bench_fn fn;
	} rows[] = {
#define ENTRY(id) {&ops_##id, bm_##id},
		ROWS(ENTRY)
#undef ENTRY
	};
	static lock_run runs[sizeof rows / sizeof rows[0]];
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (!rows[i].ops->available()) {
			printf("weft-bench: lock/%s not built yet, row skipped\n", rows[i].ops->name);
			continue;
		}
		char name[96];
		snprintf(name, sizeof name, "lock/%s", rows[i].ops->name);
		runs[i].ops = rows[i].ops;
		weft_bench_opts o = bench_contention_opts();
		o.setup = lock_setup;
		o.teardown = lock_teardown;
		o.ctx = &runs[i];
		weft_bench_register(name, rows[i].fn, &o);
	}
}
