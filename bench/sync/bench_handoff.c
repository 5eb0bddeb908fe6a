/* bench_handoff.c - hand-offs between two threads: ping-pong round trips.
 *
 * pingpong/<impl>: the benchmark thread signals channel 0 and waits on channel 1; a helper
 * thread (started in setup, joined in teardown) waits on channel 0 and signals channel 1.
 * One iteration is one round trip. Besides the wall time per round trip (Time, rt_us) the
 * run reports cpu_us_rt, the CPU time of the whole process (both threads) per round trip,
 * from CLOCK_PROCESS_CPUTIME_ID, and cpu_per_wall (2.0 = both threads busy all the time):
 * spinning shows up there as a cost, not only as a speed.
 *
 * idle/<impl>: the same pair, but the benchmark thread sleeps 5 ms before each ping, so the
 * helper is an idle waiter; cpu_us_idle is the CPU burned per idle period (an idle waiter
 * that sleeps after a short bounded spin burns ~ the spin, one that spins burns 5000 us).
 *
 * pingpong_pinned/<impl>: the same with the benchmark thread pinned to CPU 0 and the
 * helper to CPU 1. Unpinned, the scheduler often wakes the partner on the waker's own CPU
 * (wake-affine), and then a spinning waiter only delays the thread it waits for; pinned
 * shows the cross-CPU hand-off itself. Both are reported, for every implementation alike.
 *
 * A channel is a binary mailbox: signal sets it (waking a sleeper), wait takes it. Every
 * implementation provides the same two operations.
 */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <weft/sync.h>
#if __has_include(<weft/waitable.h>)
#include <weft/waitable.h>
#define BENCH_HAVE_WAITABLE 1
#endif

#include "bench_common.h"

BENCH_WEAK(weft_cs_init);
BENCH_WEAK(weft_cs_destroy);
BENCH_WEAK(weft_cs_enter);
BENCH_WEAK(weft_cs_leave);
BENCH_WEAK(weft_cond_init);
BENCH_WEAK(weft_cond_sleep_cs);
BENCH_WEAK(weft_cond_wake);
#ifdef BENCH_HAVE_WAITABLE
BENCH_WEAK(weft_event_create);
BENCH_WEAK(weft_event_set);
BENCH_WEAK(weft_semaphore_create);
BENCH_WEAK(weft_semaphore_release);
BENCH_WEAK(weft_wait);
BENCH_WEAK(weft_handle_close);
#endif

#define CHAN_STORAGE 192

typedef struct chan_ops {
	const char *name;
	bool (*available)(void);
	void (*init)(void *c);
	void (*destroy)(void *c);
	void (*signal)(void *c);
	void (*wait)(void *c);
} chan_ops;

typedef struct pp_run {
	const chan_ops *ops;
	bool pinned; /* helper on CPU 1, benchmark thread on CPU 0 */
	WEFT_CACHE_ALIGNED unsigned char chan[2][CHAN_STORAGE];
	WEFT_CACHE_ALIGNED int stop;
	pthread_t helper;
} pp_run;

static bool always(void) { return true; }

/* ---- pthread_cond: a flag under a mutex, a condvar to sleep on ----------------------- */

typedef struct pcond_chan {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int full;
} pcond_chan;

static void pcond_init(void *c)
{
	pcond_chan *p = c;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->full = 0;
}
static void pcond_destroy(void *c)
{
	pcond_chan *p = c;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}
static void pcond_signal(void *c)
{
	pcond_chan *p = c;
	pthread_mutex_lock(&p->mu);
	p->full = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
static void pcond_wait(void *c)
{
	pcond_chan *p = c;
	pthread_mutex_lock(&p->mu);
	while (!p->full)
		pthread_cond_wait(&p->cv, &p->mu);
	p->full = 0;
	pthread_mutex_unlock(&p->mu);
}

/* ---- weft_cond: the same shape over weft_cs ------------------------------------------ */

typedef struct wcond_chan {
	weft_cs cs;
	weft_cond cv;
	int full;
} wcond_chan;

static bool have_wcond(void)
{
	return BENCH_HAVE(weft_cs_init) && BENCH_HAVE(weft_cs_destroy) && BENCH_HAVE(weft_cs_enter) &&
	       BENCH_HAVE(weft_cs_leave) && BENCH_HAVE(weft_cond_init) &&
	       BENCH_HAVE(weft_cond_sleep_cs) && BENCH_HAVE(weft_cond_wake);
}
static void wcond_init(void *c)
{
	wcond_chan *p = c;
	weft_cs_init(&p->cs, WEFT_CS_DEFAULT_SPIN);
	weft_cond_init(&p->cv);
	p->full = 0;
}
static void wcond_destroy(void *c) { weft_cs_destroy(&((wcond_chan *)c)->cs); }
static void wcond_signal(void *c)
{
	wcond_chan *p = c;
	weft_cs_enter(&p->cs);
	p->full = 1;
	weft_cond_wake(&p->cv);
	weft_cs_leave(&p->cs);
}
static void wcond_wait(void *c)
{
	wcond_chan *p = c;
	weft_cs_enter(&p->cs);
	while (!p->full)
		weft_cond_sleep_cs(&p->cv, &p->cs, WEFT_INFINITE);
	p->full = 0;
	weft_cs_leave(&p->cs);
}

/* ---- sem_t --------------------------------------------------------------------------- */

static void psem_init(void *c) { sem_init(c, 0, 0); }
static void psem_destroy(void *c) { sem_destroy(c); }
static void psem_signal(void *c) { sem_post(c); }
static void psem_wait(void *c)
{
	while (sem_wait(c) != 0)
		;
}

/* ---- raw futex: the reference ------------------------------------------------------- */

/* plain: 0 empty, 1 full; signal always wakes, wait sleeps at once. */
static void fx_init(void *c) { *(uint32_t *)c = 0; }
static void fx_signal(void *c)
{
	/* release: publishes the sender's writes; pairs with the acquire exchange in wait */
	__atomic_store_n((uint32_t *)c, 1, __ATOMIC_RELEASE);
	bench_futex_wake(c, 1);
}
static void fx_wait(void *c)
{
	while (__atomic_exchange_n((uint32_t *)c, 0, __ATOMIC_ACQUIRE) == 0)
		bench_futex_wait(c, 0);
}

/* spin-then-sleep: 0 empty, 1 full, 2 empty with a sleeper; the waiter polls for a
 * bounded number of pauses before it announces itself and sleeps, and signal only makes
 * the system call when a sleeper announced itself. */
#define FX_SPIN 1000
static void fxs_signal(void *c)
{
	/* release: pairs with the acquire exchange in fxs_wait */
	if (__atomic_exchange_n((uint32_t *)c, 1, __ATOMIC_RELEASE) == 2)
		bench_futex_wake(c, 1);
}
static void fxs_wait(void *c)
{
	uint32_t *w = c;
	for (int i = 0; i < FX_SPIN; i++) {
		if (__atomic_load_n(w, __ATOMIC_RELAXED) == 1 &&
		    __atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE) == 1)
			return;
		weft_cpu_relax();
	}
	for (;;) {
		uint32_t v = 0;
		/* announce the sleeper: 0 -> 2; a 1 here means the signal already came */
		if (__atomic_compare_exchange_n(w, &v, 2, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE) ||
		    v == 2)
			bench_futex_wait(w, 2);
		else if (__atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE) == 1)
			return;
		if (__atomic_load_n(w, __ATOMIC_RELAXED) == 1 &&
		    __atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE) == 1)
			return;
	}
}

/* ---- weft waitables: auto-reset events, semaphores ---------------------------------- */
#ifdef BENCH_HAVE_WAITABLE
static bool have_wevent(void)
{
	return BENCH_HAVE(weft_event_create) && BENCH_HAVE(weft_event_set) && BENCH_HAVE(weft_wait) &&
	       BENCH_HAVE(weft_handle_close);
}
static void wevent_init(void *c) { *(weft_handle **)c = weft_event_create(false, false); }
static void wh_destroy(void *c) { weft_handle_close(*(weft_handle **)c); }
static void wevent_signal(void *c) { weft_event_set(*(weft_handle **)c); }
static void wh_wait(void *c) { weft_wait(*(weft_handle **)c, WEFT_INFINITE); }

static bool have_wsema(void)
{
	return BENCH_HAVE(weft_semaphore_create) && BENCH_HAVE(weft_semaphore_release) &&
	       BENCH_HAVE(weft_wait) && BENCH_HAVE(weft_handle_close);
}
static void wsema_init(void *c) { *(weft_handle **)c = weft_semaphore_create(0, 1 << 30); }
static void wsema_signal(void *c) { weft_semaphore_release(*(weft_handle **)c, 1, NULL); }
#endif

static const chan_ops chans[] = {
	{"pthread_cond", always, pcond_init, pcond_destroy, pcond_signal, pcond_wait},
	{"sem_t", always, psem_init, psem_destroy, psem_signal, psem_wait},
	{"futex", always, fx_init, NULL, fx_signal, fx_wait},
	{"futex_spin", always, fx_init, NULL, fxs_signal, fxs_wait},
	{"weft_cond", have_wcond, wcond_init, wcond_destroy, wcond_signal, wcond_wait},
#ifdef BENCH_HAVE_WAITABLE
	{"weft_event", have_wevent, wevent_init, wh_destroy, wevent_signal, wh_wait},
	{"weft_semaphore", have_wsema, wsema_init, wh_destroy, wsema_signal, wh_wait},
#endif
};
enum { NCHANS = sizeof chans / sizeof chans[0] };

_Static_assert(sizeof(pcond_chan) <= CHAN_STORAGE, "channel storage");
_Static_assert(sizeof(wcond_chan) <= CHAN_STORAGE, "channel storage");
_Static_assert(sizeof(sem_t) <= CHAN_STORAGE, "channel storage");

/* ---- the pair ------------------------------------------------------------------------ */

static void *pong(void *arg)
{
	pp_run *r = arg;
	for (;;) {
		r->ops->wait(r->chan[0]);
		/* acquire: pairs with the release store in pp_teardown; the wait above already
		 * ordered it, this keeps the read itself atomic */
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			return NULL;
		r->ops->signal(r->chan[1]);
	}
}

static void pp_setup(weft_bench_state *st, void *ctx)
{
	(void)st;
	pp_run *r = ctx;
	memset(r->chan, 0, sizeof r->chan);
	r->stop = 0;
	r->ops->init(r->chan[0]);
	r->ops->init(r->chan[1]);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (r->pinned) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(1, &one);
		pthread_attr_setaffinity_np(&attr, sizeof one, &one);
	}
	pthread_create(&r->helper, &attr, pong, r);
	pthread_attr_destroy(&attr);
}

static void pp_teardown(weft_bench_state *st, void *ctx)
{
	(void)st;
	pp_run *r = ctx;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	r->ops->signal(r->chan[0]);
	pthread_join(r->helper, NULL);
	if (r->ops->destroy) {
		r->ops->destroy(r->chan[0]);
		r->ops->destroy(r->chan[1]);
	}
}

static void bm_pingpong(weft_bench_state *st, void *ctx)
{
	pp_run *r = ctx;
	cpu_set_t saved, zero;
	bool pinned = r->pinned && pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
	if (pinned) {
		CPU_ZERO(&zero);
		CPU_SET(0, &zero);
		pthread_setaffinity_np(pthread_self(), sizeof zero, &zero);
	}
	uint64_t trips = 0;
	uint64_t cpu0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t wall0 = bench_now_ns(CLOCK_MONOTONIC);
	while (weft_bench_batch(st, 1)) {
		r->ops->signal(r->chan[0]);
		r->ops->wait(r->chan[1]);
		trips++;
	}
	double cpu = (double)(bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
	double wall = (double)(bench_now_ns(CLOCK_MONOTONIC) - wall0);
	weft_bench_counter(st, "rt_us", wall / 1e3 / (double)(trips ? trips : 1), WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "cpu_us_rt", cpu / 1e3 / (double)(trips ? trips : 1), WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "cpu_per_wall", wall > 0 ? cpu / wall : 0, WEFT_BENCH_PLAIN);
	weft_bench_set_items(st, (int64_t)trips);
	if (pinned) /* the library runs the next benchmark on this thread: give its CPUs back */
		pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
}

static void bm_idle(weft_bench_state *st, void *ctx)
{
	pp_run *r = ctx;
	const struct timespec idle = {0, 5000000};
	uint64_t periods = 0;
	uint64_t cpu0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (weft_bench_batch(st, 1)) {
		nanosleep(&idle, NULL);
		r->ops->signal(r->chan[0]);
		r->ops->wait(r->chan[1]);
		periods++;
	}
	double cpu = (double)(bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
	weft_bench_counter(st, "cpu_us_idle", cpu / 1e3 / (double)(periods ? periods : 1),
			   WEFT_BENCH_PLAIN);
}

void bench_handoff_register(void)
{
	static pp_run pp_runs[NCHANS], idle_runs[NCHANS], pinned_runs[NCHANS];
	const bool two_cpus = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	for (size_t i = 0; i < NCHANS; i++) {
		if (!chans[i].available()) {
			printf("weft-bench: pingpong/%s not built yet, rows skipped\n", chans[i].name);
			continue;
		}
		char name[96];
		pp_runs[i].ops = idle_runs[i].ops = &chans[i];
		snprintf(name, sizeof name, "pingpong/%s", chans[i].name);
		weft_bench_register(name, bm_pingpong, &(weft_bench_opts){
			.real_time = true, .process_cpu_time = true,
			.warmup_time = bench_quick ? 0.0 : 0.05,
			.setup = pp_setup, .teardown = pp_teardown, .ctx = &pp_runs[i]});
		if (two_cpus) {
			pinned_runs[i].ops = &chans[i];
			pinned_runs[i].pinned = true;
			snprintf(name, sizeof name, "pingpong_pinned/%s", chans[i].name);
			weft_bench_register(name, bm_pingpong, &(weft_bench_opts){
				.real_time = true, .process_cpu_time = true,
				.warmup_time = bench_quick ? 0.0 : 0.05,
				.setup = pp_setup, .teardown = pp_teardown, .ctx = &pinned_runs[i]});
		}
		snprintf(name, sizeof name, "idle/%s", chans[i].name);
		weft_bench_register(name, bm_idle, &(weft_bench_opts){
			.iterations = bench_quick ? 4 : 20, .real_time = true, .process_cpu_time = true,
			.setup = pp_setup, .teardown = pp_teardown, .ctx = &idle_runs[i]});
	}
}
