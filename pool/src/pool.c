/* pool.c - the thread pool: its queue, workers on the completion port, retirement,
 * create and destroy. The manager thread (timers, thread injection, starvation reports,
 * the stats scan) is pool_manager.c.
 *
 * The queue. Submits (items and object calls) go into a bounded lock-free ring (one CAS
 * on the tail per push, one CAS on the head per pop), not into the port: the port's lock
 * is shared with every get, so one packet per item made the port the pool's bottleneck.
 * As the Windows worker factory does, the pool wakes workers only as needed, through the
 * port: a submit looks at one word (idle: workers searching / parked) and posts a WAKE
 * packet only when nobody is searching and someone is parked, reserving the searching slot
 * for the worker the port releases (one wake in flight at a time). A searcher that finds
 * work gives up its slot and, if more work is queued and someone is parked, wakes the
 * next (a chain, as far as the work and the port's concurrency allow). Lost wake-ups are
 * excluded Dekker-style with sequentially consistent operations: a submitter CASes the
 * tail then loads idle; a worker going idle updates idle then loads the tail. A worker
 * drains the ring before it parks, so a worker running items stays a released thread of
 * the port (its concurrency and paused accounting hold), and I/O completions, timers and
 * waits keep flowing through the port. A full ring (or one closed by destroy) falls back
 * to one port packet per submit, as before.
 *
 * Idle workers: the first to go idle takes the searching slot and spins on the ring for a
 * window before it parks (never more than one spinner; it polls the port for I/O every
 * 64 us). The window adapts: after an idle gap of d <= spin_max_ns that ended with work,
 * it becomes 1.5 d, after a longer one back to the base (WEFT__TP_SPIN_BASE_NS). So a
 * pool fed every millisecond starts items without a futex wake-up, and an idle pool spins
 * at most spin_max_ns once, then sleeps (WEFT_POOL_SPIN_US sets spin_max, 0: base only).
 * When the searcher finds it was descheduled for 50 us between two looks (other threads
 * want the CPU, and a descheduled searcher holds up wake-ups), nobody spins for a second.
 *
 * Workers loop: ring, then weft_port_get. Counting who runs is the port's job (its
 * concurrency limit and its blocking hook); the pool adds threads when the port cannot
 * release one:
 *
 *  - A worker's own hook (chained in front of the port's, see chain_hook) marks it
 *    BLOCKED while it sleeps in a weft primitive inside a callback, counts it in
 *    p->blocked and kicks the manager.
 *  - The manager scans the workers: work queued, no idle worker and fewer than
 *    `concurrency` running (not blocked) means the port would release a thread if it had
 *    one, so it creates one (up to max_threads). At max_threads with nothing able to run
 *    it counts a starvation episode and, with WEFT_POOL_LOG set, logs one line.
 *  - A submit kicks the manager only when every worker is blocked (two plain loads on
 *    the hot path), the one case no kick from a hook covers.
 *  - While anything is blocked or queued the manager re-checks every 10 ms; an idle pool's
 *    manager sleeps without a deadline (or until the next timer).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "futex.h"
#include "pool_internal.h"

#define WEFT__TP_DEFAULT_IDLE_MS 10000u
#define WEFT__TP_SPIN_BASE_NS 20000ull
#define WEFT__TP_SPIN_MAX_NS 2000000ull
#define WEFT__TP_POLL_NS 64000ull
#define WEFT__TP_SPIN_PREEMPT_NS 50000ull
#define WEFT__TP_SPIN_OFF_NS (1000ull * 1000000ull)

/* Sequentially consistent operations for the wake protocol (the Dekker pairs in the
 * comment on top; ThreadSanitizer models these, not fences). */
#define sc_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define sc_fadd(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define sc_cas(p, e, d) __atomic_compare_exchange_n((p), (e), (d), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)

static __thread struct weft__tp_worker *tls_worker;

uint64_t weft__tp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct weft__tp_worker *weft__tp_self(void)
{
	return tls_worker;
}

bool weft_pool_is_worker(weft_pool **pool)
{
	struct weft__tp_worker *w = tls_worker;
	if (pool)
		*pool = w ? w->pool : NULL;
	return w != NULL;
}

void weft__tp_kick(weft_pool *p)
{
	/* release: orders what the kicker changed before the manager's acquire of mgr_seq. */
	weft__fadd_rel(&p->mgr_seq, 1u);
	weft__futex_wake(&p->mgr_seq, 1);
}

int weft__tp_futex_wait(uint32_t *word, uint32_t val, const struct timespec *deadline)
{
	weft__block_begin();
	int r = weft__futex_wait(word, val, deadline);
	weft__block_end();
	return r;
}

/* ---------------------------------------------------------------------------------------
 * The ring and the wake protocol
 * ------------------------------------------------------------------------------------- */

/* 0, -EAGAIN (full) or -ESHUTDOWN (closed: destroy began). The tail CAS is sequentially
 * consistent: the store half of the submitter's Dekker pair (see ring_nonempty). */
static int ring_push(weft_pool *p, void (*fn)(void *), void *arg)
{
	uint64_t pos = weft__load_rlx(&p->rtail);
	struct weft__tp_cell *c;
	for (;;) {
		if (pos & WEFT__TP_RING_CLOSED)
			return -ESHUTDOWN;
		c = &p->cells[pos & (WEFT__TP_RING - 1)];
		/* acquire: the consumer of the previous lap read the cell before freeing it. */
		uint64_t seq = weft__load_acq(&c->seq);
		int64_t dif = (int64_t)(seq - pos);
		if (dif == 0) {
			if (sc_cas(&p->rtail, &pos, pos + 1))
				break;
		} else if (dif < 0) {
			return -EAGAIN;
		} else {
			pos = weft__load_rlx(&p->rtail);
		}
	}
	c->fn = fn;
	c->arg = arg;
	weft__store_rel(&c->seq, pos + 1); /* publishes fn, arg */
	return 0;
}

/* Takes one cell: true and fn/arg, or false when the head cell is not published yet. */
static bool ring_pop(weft_pool *p, void (**fn)(void *), void **arg)
{
	uint64_t pos = weft__load_rlx(&p->rhead);
	for (;;) {
		struct weft__tp_cell *c = &p->cells[pos & (WEFT__TP_RING - 1)];
		/* acquire: pairs with the release store in ring_push. */
		uint64_t seq = weft__load_acq(&c->seq);
		int64_t dif = (int64_t)(seq - (pos + 1));
		if (dif == 0) {
			if (weft__cas_acqrel(&p->rhead, &pos, pos + 1)) {
				*fn = c->fn;
				*arg = c->arg;
				/* release: our reads of the cell happen before its next producer. */
				weft__store_rel(&c->seq, pos + WEFT__TP_RING);
				return true;
			}
		} else if (dif < 0) {
			return false;
		} else {
			pos = weft__load_rlx(&p->rhead);
		}
	}
}

/* Something pushed and not yet taken (maybe not yet published). The load half of a
 * worker's Dekker pair: called after its sequentially consistent update of p->idle. */
static bool ring_nonempty(weft_pool *p)
{
	uint64_t t = sc_load(&p->rtail) & ~WEFT__TP_RING_CLOSED;
	return t != sc_load(&p->rhead);
}

/* Wakes one parked worker if nobody searches: reserves the searching slot for it and
 * posts a WAKE packet; the port releases a waiter as its concurrency allows. */
void weft__tp_try_wake(weft_pool *p)
{
	uint32_t v = sc_load(&p->idle);
	while ((v & 0xffffu) == 0 && (v >> 16) != 0) {
		if (sc_cas(&p->idle, &v, v + WEFT__TP_SEARCH)) {
			int r = weft_port_post(p->port, 0, WEFT__TP_KEY_WAKE, NULL);
			if (r < 0) /* closed port (a bug) or out of memory: give the slot back */
				sc_fadd(&p->idle, (uint32_t)-WEFT__TP_SEARCH);
			return;
		}
	}
}

/* After a push: wake a worker if none is searching. One load when workers are busy or
 * one searches. */
static inline void wake_after_push(weft_pool *p)
{
	uint32_t v = sc_load(&p->idle);
	if (__builtin_expect((v & 0xffffu) == 0 && (v >> 16) != 0, 0))
		weft__tp_try_wake(p);
}

/* ---------------------------------------------------------------------------------------
 * The blocking hook on workers.
 * ------------------------------------------------------------------------------------- */

static void tp_block_begin(void *ctx);
static void tp_block_end(void *ctx);
static const struct weft__block_hook tp_hook = {tp_block_begin, tp_block_end};

static void tp_block_begin(void *ctx)
{
	struct weft__tp_worker *w = ctx;
	if (w->inner.hook && !w->long_paused)
		w->inner.hook->begin(w->inner.ctx);
	if (w->block_depth++ == 0 && weft__load_rlx(&w->state) == WEFT__TP_BUSY) {
		weft_pool *p = w->pool;
		weft__store_rlx(&w->state, (uint32_t)WEFT__TP_BLOCKED);
		weft__fadd_acqrel(&p->blocked, 1u);
		/* The port just paused us (the inner hook): as it would hand a queued packet to
		 * a waiter, hand the ring to a parked worker. */
		if (ring_nonempty(p))
			weft__tp_try_wake(p);
		/* Rate limit: one kick until the manager has looked. A futex wake never blocks. */
		if (weft__xchg_acqrel(&p->mgr_kicked, 1u) == 0)
			weft__tp_kick(p);
	}
}

static void tp_block_end(void *ctx)
{
	struct weft__tp_worker *w = ctx;
	if (--w->block_depth == 0 && weft__load_rlx(&w->state) == WEFT__TP_BLOCKED) {
		weft__store_rlx(&w->state, (uint32_t)WEFT__TP_BUSY);
		weft__fsub_rel(&w->pool->blocked, 1u);
	}
	if (w->inner.hook && !w->long_paused)
		w->inner.hook->end(w->inner.ctx);
}

/* The port installs its own hook on the threads that call weft_port_get (or not, in
 * which case inner stays empty). Put ours in front of whatever is there after each get,
 * and forward every call to it, so the port keeps its accounting. */
static inline void chain_hook(struct weft__tp_worker *w)
{
	if (__builtin_expect(weft__tls_block.hook != &tp_hook, 0)) {
		w->inner = weft__tls_block;
		weft__block_set_hook(&tp_hook, w);
	}
}

/* ---------------------------------------------------------------------------------------
 * may run long
 * ------------------------------------------------------------------------------------- */


static uint32_t count_idle_locked(weft_pool *p)
{
	uint32_t idle = 0;
	for (struct weft__tp_worker *x = p->workers; x; x = x->next)
		idle += weft__load_rlx(&x->state) == WEFT__TP_IDLE;
	return idle;
}

void weft__tp_log_starvation(weft_pool *p, const char *why)
{
	if (getenv("WEFT_POOL_LOG"))
		fprintf(stderr, "weft: pool %s: starving (%s): work queued and nothing can run; threads %u, max_threads %u\n",
			p->name, why, weft__load_rlx(&p->threads), p->max_threads);
}

bool weft_callback_may_run_long(void)
{
	struct weft__tp_worker *w = tls_worker;
	if (!w)
		return false;
	uint32_t st = weft__load_rlx(&w->state);
	if (st == WEFT__TP_LONG)
		return true;
	if (st != WEFT__TP_BUSY)
		return false;
	weft_pool *p = w->pool;
	weft__store_rlx(&w->state, (uint32_t)WEFT__TP_LONG);
	weft__fadd_acqrel(&p->blocked, 1u);
	/* The port stops counting this thread, so it may release another one. */
	if (w->inner.hook) {
		w->inner.hook->begin(w->inner.ctx);
		w->long_paused = true;
	}
	bool ok = true;
	pthread_mutex_lock(&p->lock);
	if (count_idle_locked(p) == 0) {
		if (!weft__tp_spawn_locked(p)) {
			ok = false;
			weft__fadd_rlx(&p->starvations, 1u); /* relaxed: a statistic */
			weft__tp_log_starvation(p, "may-run-long");
		} else {
			weft__fadd_rlx(&p->injected, 1u);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

static void callback_done(struct weft__tp_worker *w)
{
	if (w->long_paused) {
		w->long_paused = false;
		w->inner.hook->end(w->inner.ctx);
	}
	if (weft__load_rlx(&w->state) == WEFT__TP_LONG)
		weft__fsub_rel(&w->pool->blocked, 1u);
}

/* ---------------------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------------------- */

void weft__tp_post_obj(weft_pool *p, struct weft__tp_obj *o)
{
	if (__builtin_expect(ring_push(p, NULL, o) == 0, 1)) {
		wake_after_push(p);
		return;
	}
	uint64_t old = weft__fadd_acqrel(&p->submitted, 4u);
	if (old & 2u)
		weft__die("thread pool %s: work submitted after weft_pool_destroy finished its callbacks", p->name);
	int r = weft_port_post(p->port, 0, WEFT__TP_KEY_OBJ, (weft_overlapped *)(void *)o);
	if (r < 0)
		weft__die("thread pool %s: weft_port_post failed (%d)", p->name, r);
}

/* Runs one packet. taken / completed count only the pool's own packets (those counted in
 * p->submitted), not I/O completions, so destroy's drain can compare them. */
static void dispatch(struct weft__tp_worker *w, uintptr_t key, weft_overlapped *ov, uint32_t bytes)
{
	weft__store_rlx(&w->state, (uint32_t)WEFT__TP_BUSY);
	if (key == WEFT__TP_KEY_ITEM) {
		/* relaxed: only the owner writes taken; readers sum it as a hint (manager). */
		weft__store_rlx(&w->taken, w->taken + 1);
		struct weft__tp_item *it = (struct weft__tp_item *)(void *)ov;
		void (*fn)(void *) = it->fn;
		void *arg = it->arg;
		weft__tp_item_free(it);
		fn(arg);
	} else if (key == WEFT__TP_KEY_OBJ) {
		weft__store_rlx(&w->taken, w->taken + 1);
		weft__tp_obj_packet((struct weft__tp_obj *)(void *)ov);
	} else {
		weft__tp_io_completion((weft_pool_io *)key, ov, bytes);
		callback_done(w);
		return;
	}
	callback_done(w);
	/* release: the callback's effects happen before destroy's acquire sum sees it. */
	weft__store_rel(&w->completed, w->completed + 1);
}

static bool try_retire(struct weft__tp_worker *w)
{
	weft_pool *p = w->pool;
	bool gone = false;
	pthread_mutex_lock(&p->lock);
	if (!(weft__load_acq(&p->submitted) & 1u) && p->threads > p->min_threads) {
		struct weft__tp_worker **pp = &p->workers;
		while (*pp != w)
			pp = &(*pp)->next;
		*pp = w->next;
		w->next = p->zombies;
		p->zombies = w;
		weft__store_rlx(&p->threads, p->threads - 1);
		p->retired_taken += w->taken;
		p->retired_completed += w->completed;
		weft__fadd_rlx(&p->retired, 1u);
		gone = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (gone)
		weft__tp_kick(p); /* the manager joins us */
	return gone;
}

/* Runs one ring task: fn(arg), or one call of the object arg (fn NULL). */
static void run_task(struct weft__tp_worker *w, void (*fn)(void *), void *arg)
{
	weft__store_rlx(&w->state, (uint32_t)WEFT__TP_BUSY);
	weft__store_rlx(&w->taken, w->taken + 1);
	if (fn)
		fn(arg);
	else
		weft__tp_obj_packet((struct weft__tp_obj *)arg);
	callback_done(w);
	/* release: the callback's effects happen before destroy's acquire sum sees it. */
	weft__store_rel(&w->completed, w->completed + 1);
}

/* The idle gap d (ns) that just ended with work sets the next spin window. */
static void adapt_spin(weft_pool *p, uint64_t now, uint64_t d)
{
	uint64_t win = WEFT__TP_SPIN_BASE_NS;
	/* relaxed: a hint */
	if (now < weft__load_rlx(&p->spin_off_until))
		win = 0;
	else if (d <= p->spin_max_ns) {
		win = d + d / 2;
		if (win < WEFT__TP_SPIN_BASE_NS)
			win = WEFT__TP_SPIN_BASE_NS;
		if (win > p->spin_max_ns)
			win = p->spin_max_ns;
	}
	/* relaxed: a hint; written only on change to keep the line quiet. */
	if (weft__load_rlx(&p->spin_ns) != win)
		weft__store_rlx(&p->spin_ns, win);
}

/* A searching worker found work: give up the slot and, if more is queued, wake the next
 * worker (its own Dekker pair: the slot update, then the look at the ring). */
static void search_end(weft_pool *p, bool *searching)
{
	if (!*searching)
		return;
	*searching = false;
	sc_fadd(&p->idle, (uint32_t)-WEFT__TP_SEARCH);
	if (ring_nonempty(p))
		weft__tp_try_wake(p);
}

/* Runs what the ring holds until it is empty. idle_since: when this worker went idle (0
 * while busy); the first task after an idle gap adapts the spin window. */
static void drain_ring(struct weft__tp_worker *w, bool *searching, uint64_t *idle_since)
{
	weft_pool *p = w->pool;
	void (*fn)(void *);
	void *arg;
	while (ring_pop(p, &fn, &arg)) {
		search_end(p, searching);
		if (*idle_since) {
			uint64_t now = weft__tp_now_ns();
			adapt_spin(p, now, now - *idle_since);
			*idle_since = 0;
		}
		run_task(w, fn, arg);
	}
}

/* A port packet other than WAKE/EXIT: runs it. */
static void take_packet(struct weft__tp_worker *w, bool *searching, uintptr_t key, weft_overlapped *ov,
			uint32_t bytes)
{
	search_end(w->pool, searching);
	chain_hook(w);
	dispatch(w, key, ov, bytes);
}

/* A searcher was descheduled while it spun: nobody spins for a while. Spinning then
 * takes the CPU from threads that want it, and a descheduled searcher still holds the
 * searching slot, so submitters wake nobody until it runs again. */
static void spin_off(weft_pool *p, uint64_t now)
{
	/* relaxed: hints */
	weft__store_rlx(&p->spin_off_until, now + WEFT__TP_SPIN_OFF_NS);
	weft__store_rlx(&p->spin_ns, 0ull);
}

/* The searcher's spin: until the window (from idle_since) ends, watches the ring; every
 * WEFT__TP_POLL_NS it polls the port (I/O completions, packets from a full ring, EXIT).
 * Returns 1 when the ring has work, 0 when the window ended, -1 on EXIT. */
static int spin_ring(struct weft__tp_worker *w, bool *searching, uint64_t idle_since)
{
	weft_pool *p = w->pool;
	uint64_t win = weft__load_rlx(&p->spin_ns);
	uint64_t end = idle_since + win, poll = 0, last = 0;
	if (!weft__smp() || win == 0)
		return 0;
	for (uint32_t i = 1;; i++) {
		struct weft__tp_cell *c = &p->cells[weft__load_rlx(&p->rhead) & (WEFT__TP_RING - 1)];
		if (weft__load_rlx(&c->seq) == weft__load_rlx(&p->rhead) + 1) {
			/* Work that came while we were descheduled waited for us: counts too. */
			if (last && weft__tp_now_ns() - last > WEFT__TP_SPIN_PREEMPT_NS)
				spin_off(p, weft__tp_now_ns());
			return 1;
		}
		weft_cpu_relax();
		if ((i & 63) == 0) {
			uint64_t now = weft__tp_now_ns();
			if (now >= end)
				return 0;
			/* Descheduled between two looks (a yield and 64 relaxes apart): other
			 * threads want this CPU, so spinning takes it from them; sleep instead. */
			if (last && now - last > WEFT__TP_SPIN_PREEMPT_NS) {
				spin_off(p, now);
				return 0;
			}
			if (now >= poll) {
				poll = now + WEFT__TP_POLL_NS;
				uint32_t bytes;
				uintptr_t key;
				weft_overlapped *ov;
				if (weft_port_get(p->port, &bytes, &key, &ov, 0) == 0) {
					if (key == WEFT__TP_KEY_EXIT)
						return -1;
					/* WAKE: we search already, so one slot is extra. */
					if (key == WEFT__TP_KEY_WAKE)
						sc_fadd(&p->idle, (uint32_t)-WEFT__TP_SEARCH);
					else
						take_packet(w, searching, key, ov, bytes);
					return 1;
				}
			}
			/* Whoever will submit may be waiting for this CPU (oversubscribed machine):
			 * let it run. With nothing else to run here the yield returns at once. */
			last = now;
			sched_yield();
		}
	}
}

static void *worker_main(void *v)
{
	struct weft__tp_worker *w = v;
	weft_pool *p = w->pool;
	char name[32];
	snprintf(name, sizeof name, "%s-%u", p->name, w->index);
	name[15] = 0;
	pthread_setname_np(pthread_self(), name);
	tls_worker = w;
	bool searching = false;
	uint64_t idle_since = 0;
	uint32_t bytes;
	uintptr_t key;
	weft_overlapped *ov;
	/* Join the port as a released thread (a get that does not wait), so the port counts
	 * this thread while it drains the ring, and take a packet if one waits. */
	int r = weft_port_get(p->port, &bytes, &key, &ov, 0);
	chain_hook(w);
	if (r == 0) {
		if (key == WEFT__TP_KEY_EXIT)
			goto out;
		if (key == WEFT__TP_KEY_WAKE)
			searching = true;
		else
			take_packet(w, &searching, key, ov, bytes);
	}
	for (;;) {
		drain_ring(w, &searching, &idle_since);
		weft__store_rlx(&w->state, (uint32_t)WEFT__TP_IDLE);
		if (!idle_since)
			idle_since = weft__tp_now_ns();
		/* Search: one worker at a time spins on the ring before parking. */
		if (!searching) {
			uint32_t iv = weft__load_rlx(&p->idle);
			searching = (iv & 0xffffu) == 0 && sc_cas(&p->idle, &iv, iv + WEFT__TP_SEARCH);
		}
		if (searching) {
			int sr = spin_ring(w, &searching, idle_since);
			if (sr < 0)
				break;
			if (sr > 0)
				continue;
		}
		/* Park: give up the slot and count ourselves parked in one update, then look at
		 * the ring once more (a submitter that saw us searching did not wake anyone). */
		sc_fadd(&p->idle, WEFT__TP_PARKED - (searching ? WEFT__TP_SEARCH : 0u));
		searching = false;
		if (ring_nonempty(p)) {
			sc_fadd(&p->idle, (uint32_t)-WEFT__TP_PARKED);
			sched_yield(); /* a producer between its CAS and its publish */
			continue;
		}
		/* relaxed: a stale view only picks the other timeout once. */
		uint32_t timeout = weft__load_rlx(&p->threads) > weft__load_rlx(&p->min_threads)
					   ? weft__load_rlx(&p->idle_timeout_ms)
					   : WEFT_INFINITE;
		r = weft_port_get(p->port, &bytes, &key, &ov, timeout);
		sc_fadd(&p->idle, (uint32_t)-WEFT__TP_PARKED);
		if (r == 0) {
			if (key == WEFT__TP_KEY_EXIT)
				break;
			if (key == WEFT__TP_KEY_WAKE)
				searching = true; /* the poster reserved the slot for us */
			else
				take_packet(w, &searching, key, ov, bytes);
		} else if (r == -ETIMEDOUT) {
			if (try_retire(w))
				break;
		} else {
			break;
		}
	}
out:
	weft__block_set_hook(w->inner.hook, w->inner.ctx);
	tls_worker = NULL;
	return NULL;
}

/* Creates one worker; pool lock held. false at max_threads, when final, or on failure. */
bool weft__tp_spawn_locked(weft_pool *p)
{
	if (p->threads >= p->max_threads || (weft__load_acq(&p->submitted) & 2u))
		return false;
	struct weft__tp_worker *w = calloc(1, sizeof *w);
	if (!w)
		return false;
	w->pool = p;
	w->index = p->next_index++;
	w->state = WEFT__TP_BUSY; /* not idle until it reaches the port */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	int r = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		free(w);
		return false;
	}
	w->next = p->workers;
	p->workers = w;
	weft__store_rlx(&p->threads, p->threads + 1);
	return true;
}

/* ---------------------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------------------- */

weft_pool *weft_pool_create(const weft_pool_config *cfg)
{
	weft_pool_config c = {0, 0, 0, NULL};
	if (cfg)
		c = *cfg;
	if (c.concurrency == 0)
		c.concurrency = weft_cpu_count();
	if (c.min_threads == 0)
		c.min_threads = 1;
	if (c.max_threads == 0)
		c.max_threads = c.concurrency * 4 > 64 ? c.concurrency * 4 : 64;
	if (c.max_threads < c.min_threads)
		c.max_threads = c.min_threads;
	weft_pool *p;
	if (posix_memalign((void **)&p, WEFT_CACHE_LINE, sizeof *p) != 0)
		return NULL;
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%.10s", c.name ? c.name : "weft-pool");
	p->concurrency = c.concurrency;
	p->min_threads = c.min_threads;
	p->max_threads = c.max_threads;
	p->idle_timeout_ms = WEFT__TP_DEFAULT_IDLE_MS;
	p->spin_max_ns = WEFT__TP_SPIN_MAX_NS;
	const char *sp = getenv("WEFT_POOL_SPIN_US");
	if (sp && *sp)
		p->spin_max_ns = strtoull(sp, NULL, 10) * 1000ull;
	p->spin_ns = WEFT__TP_SPIN_BASE_NS;
	p->cells = malloc(sizeof *p->cells * WEFT__TP_RING);
	if (!p->cells) {
		free(p);
		return NULL;
	}
	for (uint32_t i = 0; i < WEFT__TP_RING; i++)
		p->cells[i].seq = i;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->timer_lock, NULL);
	pthread_mutex_init(&p->group_lock, NULL);
	pthread_mutex_init(&p->wait_lock, NULL);
	p->port = weft_port_create(c.concurrency);
	if (!p->port)
		goto fail;
	if (pthread_create(&p->mgr, NULL, weft__tp_manager_main, p) != 0)
		goto fail_port;
	pthread_mutex_lock(&p->lock);
	bool ok = true;
	while (ok && p->threads < p->min_threads)
		ok = weft__tp_spawn_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (!ok) {
		weft_pool_destroy(p);
		return NULL;
	}
	return p;
fail_port:
	weft_port_close(p->port);
fail:
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->timer_lock);
	pthread_mutex_destroy(&p->group_lock);
	pthread_mutex_destroy(&p->wait_lock);
	free(p->cells);
	free(p);
	return NULL;
}

int weft_pool_submit(weft_pool *p, void (*fn)(void *arg), void *arg)
{
	if (!p || !fn)
		return -EINVAL;
	int r = ring_push(p, fn, arg);
	if (__builtin_expect(r == 0, 1)) {
		wake_after_push(p);
		goto kicks;
	}
	if (r == -ESHUTDOWN)
		return r;
	/* The ring is full: one port packet, as for every item before the ring. acq_rel: the
	 * flags read here order against destroy's fetch-or; the count makes destroy wait for
	 * this packet. */
	uint64_t old = weft__fadd_acqrel(&p->submitted, 4u);
	if (__builtin_expect(old & 3u, 0)) {
		weft__fsub_rel(&p->submitted, 4u);
		return -ESHUTDOWN;
	}
	struct weft__tp_item *it = weft__tp_item_alloc();
	if (!it) {
		weft__fsub_rel(&p->submitted, 4u);
		return -ENOMEM;
	}
	it->fn = fn;
	it->arg = arg;
	r = weft_port_post(p->port, 0, WEFT__TP_KEY_ITEM, (weft_overlapped *)(void *)it);
	if (__builtin_expect(r < 0, 0)) {
		weft__tp_item_free(it);
		weft__fsub_rel(&p->submitted, 4u);
		return r;
	}
kicks:;
	/* Every worker blocked: no hook kick will come, so kick the manager here. The
	 * manager asleep (idle pool): wake it, so it watches the pool while it is busy.
	 * relaxed: heuristics; the manager's periodic look covers a stale view. */
	uint32_t b = weft__load_rlx(&p->blocked);
	if (__builtin_expect(b != 0, 0) && b >= weft__load_rlx(&p->threads) &&
	    weft__xchg_acqrel(&p->mgr_kicked, 1u) == 0)
		weft__tp_kick(p);
	if (__builtin_expect(weft__load_rlx(&p->mgr_asleep) != 0, 0) && weft__xchg_acqrel(&p->mgr_asleep, 0u))
		weft__tp_kick(p);
	return 0;
}

static uint64_t completed_sum(weft_pool *p)
{
	struct weft__tp_scan s;
	pthread_mutex_lock(&p->lock);
	weft__tp_scan_locked(p, &s);
	pthread_mutex_unlock(&p->lock);
	return s.completed;
}

void weft_pool_destroy(weft_pool *p)
{
	if (!p)
		return;
	if (tls_worker && tls_worker->pool == p)
		weft__die("weft_pool_destroy called from a thread of pool %s (it would wait for itself)", p->name);
	weft__for_acqrel(&p->submitted, 1u);
	/* Close the ring: from now on every push fails, weft_pool_submit returns -ESHUTDOWN
	 * and object calls go the port way (counted in submitted), so rtail is final. */
	weft__for_acqrel(&p->rtail, WEFT__TP_RING_CLOSED);
	weft__tp_kick(p); /* the manager stops firing timers and says so in timers_off */
	weft__tp_waits_stop(p); /* no wait object fires after this */
	/* Drain: every counted packet (submitted >> 2) must be completed; callbacks may still
	 * submit work objects meanwhile, which count. Then set bit1 in one CAS from the exact
	 * drained value, so a late submit either counted before (and we loop) or sees bit1. */
	for (;;) {
		uint64_t s = weft__load_acq(&p->submitted);
		uint64_t ring = weft__load_acq(&p->rtail) & ~WEFT__TP_RING_CLOSED;
		if (weft__load_acq(&p->timers_off) && completed_sum(p) == ring + (s >> 2) &&
		    weft__cas_acqrel(&p->submitted, &s, s | 2u))
			break;
		struct timespec d = {0, 500000};
		nanosleep(&d, NULL);
	}
	pthread_mutex_lock(&p->lock);
	for (struct weft__tp_worker *x = p->workers; x; x = x->next)
		weft_port_post(p->port, 0, WEFT__TP_KEY_EXIT, NULL);
	struct weft__tp_worker *ws = p->workers;
	p->workers = NULL;
	pthread_mutex_unlock(&p->lock);
	while (ws) {
		struct weft__tp_worker *n = ws->next;
		pthread_join(ws->thread, NULL);
		free(ws);
		ws = n;
	}
	weft__store_rel(&p->mgr_stop, 1u);
	weft__tp_kick(p);
	pthread_join(p->mgr, NULL);
	for (struct weft__tp_worker *z = p->zombies, *n; z; z = n) {
		n = z->next;
		pthread_join(z->thread, NULL);
		free(z);
	}
	weft_port_close(p->port);
	weft__tp_timers_fini(p);
	free(p->cells);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->timer_lock);
	pthread_mutex_destroy(&p->group_lock);
	pthread_mutex_destroy(&p->wait_lock);
	free(p);
}

int weft_pool_set_min_threads(weft_pool *p, uint32_t n)
{
	if (!p || n == 0)
		return -EINVAL;
	int r = 0;
	pthread_mutex_lock(&p->lock);
	weft__store_rlx(&p->min_threads, n);
	if (p->max_threads < n)
		p->max_threads = n;
	while (p->threads < n)
		if (!weft__tp_spawn_locked(p)) {
			r = -ENOMEM;
			break;
		}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void weft_pool_set_max_threads(weft_pool *p, uint32_t n)
{
	if (!p || n == 0)
		return;
	pthread_mutex_lock(&p->lock);
	p->max_threads = n;
	if (p->min_threads > n)
		weft__store_rlx(&p->min_threads, n);
	pthread_mutex_unlock(&p->lock);
	weft__tp_kick(p);
}

void weft_pool_set_idle_timeout(weft_pool *p, uint32_t ms)
{
	if (p)
		weft__store_rlx(&p->idle_timeout_ms, ms);
}
