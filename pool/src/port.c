/* port.c - the completion port's queue and threads: the I/O completion queue, the
 * waiting threads (LIFO), the released and paused threads.
 *
 * Everything here sits under one short port lock (p->lock). A thread that finds no
 * packet it may take pushes a waiter record (on its own stack) onto the LIFO stack and
 * spins briefly, then sleeps on the record's word. Whoever makes a packet takeable (a
 * post, a completion, a released thread coming back into get, a released thread pausing
 * in a weft primitive, a thread leaving the port) hands the head packet directly to the
 * most recent waiter under the lock and counts that thread released on its behalf
 * (dispatch), then flips the waiter's word after unlocking. The direct hand-off keeps
 * LIFO exact (no woken thread races a newcomer for the queue) and keeps the count exact
 * (a thread is counted from the moment it is given a packet).
 *
 * Released/paused accounting follows the Windows kernel queue: a thread belongs to the
 * port it last called get on (per-thread state below). It is released from the time a
 * get returns (packet, timeout or APC) until it calls get again. When it blocks in any
 * weft primitive, the blocking hook moves it to paused (released - 1, maybe dispatching
 * a packet to a waiter); when it wakes it is released again even if that puts the port
 * over its limit: dispatch then simply gives nothing until the count drops.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apc.h"
#include "atomic.h"
#include "futex.h"
#include "port_impl.h"

/* A waiter's word: W_WAITING (spinning), W_SLEEPING (on the futex), then one of the
 * final states set by whoever popped it off the stack under the port lock: W_PACKET (out
 * holds its n packets; it is counted released) or W_WOKEN (the port closed). W_ALERTED is
 * set (only over W_WAITING/W_SLEEPING, by CAS) when an APC is queued to an alertable
 * waiter that is still on the stack: it must unlink itself, unless a popper got there
 * first, whose final state then overwrites W_ALERTED. */
enum { W_WAITING = 0, W_SLEEPING = 1, W_PACKET = 2, W_WOKEN = 3, W_ALERTED = 4 };

struct weft__waiter {
	struct weft__waiter *below, *above; /* the LIFO stack, under the port lock */
	bool linked;			    /* on the stack (port lock) */
	uint32_t word;
	weft_completion *out; /* where the popper copies the packets: the waiter's array */
	uint32_t max, n;
};

/* Per-thread association with one port (a thread belongs to the port it last waited on,
 * as on Windows). Only the owning thread touches it. The association holds a reference
 * on the port, dropped when the thread moves to another port or exits. */
enum { T_NONE, T_INSIDE, T_RELEASED, T_PAUSED };
struct port_tls {
	weft_port *port;
	uint32_t state;
};
static __thread struct port_tls tls_port;
static pthread_key_t tls_key;
static pthread_once_t tls_key_once = PTHREAD_ONCE_INIT;

/* How long a waiter spins before it sleeps: a packet posted within that time is taken
 * without any system call on either side (a post/get round trip then costs ~0.2 us on
 * the 2-vCPU EPYC dev machine instead of ~45 us through futex wake-ups), and an idle
 * waiter burns at most this much CPU. Bounded by time, not rounds: PAUSE costs from
 * ~10 to ~140 cycles depending on the CPU. */
#define PORT_SPIN_NS 30000u

void weft__plock_slow(uint32_t *l)
{
	if (weft__smp()) {
		for (int i = 0; i < 200; i++) {
			uint32_t z = 0;
			/* acquire: as in weft__plock. */
			if (weft__load_rlx(l) == 0 && weft__cas_acq(l, &z, 1u))
				return;
			weft_cpu_relax();
		}
	}
	/* acquire: pairs with the release exchange in weft__punlock. */
	while (weft__xchg_acq(l, 2u) != 0)
		weft__futex_wait(l, 2u, NULL);
}

void weft__punlock_slow(uint32_t *l)
{
	weft__futex_wake(l, 1);
}

/* ---- the completion queue (port lock) ---- */

static int q_grow(weft_port *p, uint32_t need)
{
	if (need <= p->qcap)
		return 0;
	uint32_t cap = p->qcap ? p->qcap : 64;
	while (cap < need)
		cap *= 2;
	struct weft__pkt *nq = malloc(sizeof *nq * cap);
	if (!nq)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->qlen; i++)
		nq[i] = p->q[(p->qhead + i) & (p->qcap - 1)];
	free(p->q);
	p->q = nq;
	p->qcap = cap;
	p->qhead = 0;
	return 0;
}

static void q_push(weft_port *p, const struct weft__pkt *k)
{
	p->q[(p->qhead + p->qlen) & (p->qcap - 1)] = *k;
	p->qlen++;
}

static void q_pop(weft_port *p, struct weft__pkt *k)
{
	*k = p->q[p->qhead];
	p->qhead = (p->qhead + 1) & (p->qcap - 1);
	p->qlen--;
}

static uint32_t q_take(weft_port *p, weft_completion *out, uint32_t max)
{
	uint32_t n = 0;
	for (; n < max && p->qlen; n++) {
		struct weft__pkt k;
		q_pop(p, &k);
		out[n] = (weft_completion){k.bytes, k.key, k.ov};
	}
	return n;
}

/* ---- waiters ---- */

static void w_push(weft_port *p, struct weft__waiter *w)
{
	w->below = p->waiters;
	w->above = NULL;
	if (p->waiters)
		p->waiters->above = w;
	p->waiters = w;
	w->linked = true;
	p->nwaiters++;
}

static void w_unlink(weft_port *p, struct weft__waiter *w)
{
	if (w->above)
		w->above->below = w->below;
	else
		p->waiters = w->below;
	if (w->below)
		w->below->above = w->above;
	w->linked = false;
	p->nwaiters--;
}

/* Under the lock: while a packet is queued, a thread waits and the concurrency allows,
 * give the head packet to the most recent waiter and count it released. Returns the
 * waiters to wake (chained through below) once the lock is dropped. */
static struct weft__waiter *dispatch(weft_port *p)
{
	struct weft__waiter *wake = NULL;
	while (p->qlen && p->waiters && p->released < p->concurrency) {
		struct weft__waiter *w = p->waiters;
		w_unlink(p, w);
		w->n = q_take(p, w->out, w->max); /* like GetQueuedCompletionStatusEx: a batch */
		p->released++;
		w->below = wake;
		wake = w;
	}
	return wake;
}

/* Wakes waiters popped under the lock. Lifetime: a popped waiter stays on its thread's
 * stack until it sees its word change, so w->below is read first. The futex_wake after
 * the exchange may hit a frame that already returned (the waiter can see the new word
 * before the wake): a stray wake on a stack word is harmless, every futex wait in weft
 * re-checks its word and loops. */
static void wake_list(struct weft__waiter *w, uint32_t how)
{
	while (w) {
		struct weft__waiter *next = w->below;
		/* release: publishes w->out[..n]; pairs with the acquire loads in w_sleep. */
		if (weft__xchg_rel(&w->word, how) == W_SLEEPING)
			weft__futex_wake(&w->word, 1);
		w = next;
	}
}

/* Spins, then sleeps until the word leaves W_WAITING/W_SLEEPING or the deadline. */
static int w_sleep(weft_port *p, struct weft__waiter *w, const struct timespec *dl)
{
	if (weft__smp()) {
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (uint32_t i = 1;; i++) {
			/* acquire: pairs with the release exchange in wake_list. */
			if (weft__load_acq(&w->word) >= W_PACKET)
				return 0;
			weft_cpu_relax();
			if ((i & 15) == 0)
				weft__port_io_poll(p);
			if ((i & 63) == 0) {
				clock_gettime(CLOCK_MONOTONIC, &t);
				if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) >=
				    PORT_SPIN_NS)
					break;
				/* The thread that will post may be waiting for this very CPU (an
				 * oversubscribed machine, or the scheduler put both threads on one
				 * CPU): let it run rather than burn the slice. With nothing else to
				 * run here, the yield returns at once. */
				sched_yield();
			}
		}
	}
	uint32_t s = W_WAITING;
	if (!weft__cas_acq(&w->word, &s, W_SLEEPING))
		return 0;
	for (;;) {
		int r = weft__futex_wait(&w->word, W_SLEEPING, dl);
		if (weft__load_acq(&w->word) >= W_PACKET)
			return 0;
		if (r == -ETIMEDOUT)
			return -ETIMEDOUT;
	}
}

/* ---- thread association and the blocking hook ---- */

static void port_leave_thread(void)
{
	struct port_tls *t = &tls_port;
	weft_port *p = t->port;
	if (!p)
		return;
	weft__plock(&p->lock);
	if (t->state == T_RELEASED)
		p->released--;
	else if (t->state == T_PAUSED)
		p->paused--;
	struct weft__waiter *wl = dispatch(p);
	weft__punlock(&p->lock);
	wake_list(wl, W_PACKET);
	t->port = NULL;
	t->state = T_NONE;
	weft__port_unref(p);
}

static void tls_destructor(void *v)
{
	(void)v;
	port_leave_thread();
	weft__block_set_hook(NULL, NULL);
}

static void tls_key_make(void)
{
	pthread_key_create(&tls_key, tls_destructor);
}

/* Begin: a released thread is about to sleep in a weft primitive: it pauses and its
 * slot may go to a waiter. End: it runs again, counted even if over the limit. */
static void hook_begin(void *ctx)
{
	(void)ctx;
	struct port_tls *t = &tls_port;
	if (t->state != T_RELEASED)
		return;
	weft_port *p = t->port;
	weft__plock(&p->lock);
	p->released--;
	p->paused++;
	struct weft__waiter *wl = dispatch(p);
	weft__punlock(&p->lock);
	wake_list(wl, W_PACKET);
	t->state = T_PAUSED;
}

static void hook_end(void *ctx)
{
	(void)ctx;
	struct port_tls *t = &tls_port;
	if (t->state != T_PAUSED)
		return;
	weft_port *p = t->port;
	weft__plock(&p->lock);
	p->paused--;
	p->released++;
	weft__punlock(&p->lock);
	t->state = T_RELEASED;
}

static const struct weft__block_hook port_hook = {hook_begin, hook_end};

static void port_join_thread(weft_port *p)
{
	struct port_tls *t = &tls_port;
	port_leave_thread();
	pthread_once(&tls_key_once, tls_key_make);
	pthread_setspecific(tls_key, t);
	weft__fadd_rlx(&p->refs, 1u); /* relaxed: the caller already holds a reference */
	t->port = p;
	t->state = T_NONE;
	weft__block_set_hook(&port_hook, NULL);
}

/* ---- create, post, get, close ---- */

static const struct weft__backend_ops *pick_backend(void);

weft_port *weft_port_create(uint32_t concurrency)
{
	weft_port *p = aligned_alloc(WEFT_CACHE_LINE,
				     (sizeof *p + WEFT_CACHE_LINE - 1) & ~(size_t)(WEFT_CACHE_LINE - 1));
	if (!p)
		return NULL;
	memset(p, 0, sizeof *p);
	p->concurrency = concurrency ? concurrency : weft_cpu_count();
	p->refs = 1;
	p->be = pick_backend();
	if (!p->be || q_grow(p, 64) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

const char *weft_port_backend(const weft_port *p)
{
	return p->be->name;
}

void weft__port_unref(weft_port *p)
{
	/* acq_rel: the last dropper sees every other holder's writes before freeing. */
	if (weft__fsub_acqrel(&p->refs, 1u) != 1)
		return;
	weft__port_io_free(p);
	free(p->q);
	free(p);
}

/* Queues k and hands packets to waiters; the caller holds the lock and drops it. */
static int post_locked(weft_port *p, const struct weft__pkt *k)
{
	int r = q_grow(p, p->qlen + p->reserved + 1);
	if (r < 0) {
		weft__punlock(&p->lock);
		return r;
	}
	q_push(p, k);
	struct weft__waiter *wl = dispatch(p);
	weft__punlock(&p->lock);
	wake_list(wl, W_PACKET);
	return 0;
}

int weft_port_post(weft_port *p, uint32_t bytes, uintptr_t key, weft_overlapped *ov)
{
	struct weft__pkt k = {bytes, key, ov};
	weft__plock(&p->lock);
	if (p->closed) {
		weft__punlock(&p->lock);
		return -ESHUTDOWN;
	}
	return post_locked(p, &k);
}

int weft__port_reserve(weft_port *p)
{
	weft__plock(&p->lock);
	int r = q_grow(p, p->qlen + p->reserved + 1);
	if (r == 0)
		p->reserved++;
	weft__punlock(&p->lock);
	return r;
}

void weft__port_complete(weft_port *p, struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	struct weft__pkt k = {ov->bytes, op->dev->key, ov};
	weft__plock(&p->lock);
	/* Cannot fail: weft__port_reserve made room for every operation in flight. */
	p->reserved--;
	post_locked(p, &k);
}

/* Under the lock, the port closed: drain what is left, then -ESHUTDOWN. */
static int get_closed(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count)
{
	*count = q_take(p, out, max);
	weft__punlock(&p->lock);
	tls_port.state = T_NONE;
	return *count ? 0 : -ESHUTDOWN;
}

/* Waits for the final state of a waiter popped by another thread, which flips the word
 * right after dropping the lock (a few instructions away, unless it is preempted). */
static uint32_t w_settle(struct weft__waiter *w)
{
	for (uint32_t i = 0;; i++) {
		/* acquire: pairs with the release exchange in wake_list. */
		uint32_t v = weft__load_acq(&w->word);
		if (v == W_PACKET || v == W_WOKEN)
			return v;
		if (i < 100)
			weft_cpu_relax();
		else
			sched_yield();
	}
}

/* The APC wake for an alertable waiter, called by the queuer under the thread's APC lock
 * (so the waiter, which disarms under that lock, is still alive). */
static void w_alert(void *ctx)
{
	struct weft__waiter *w = ctx;
	uint32_t s = weft__load_rlx(&w->word);
	while (s <= W_SLEEPING) {
		/* relaxed: the APC queue itself is published by the APC lock. */
		if (weft__cas_rlx(&w->word, &s, (uint32_t)W_ALERTED)) {
			if (s == W_SLEEPING)
				weft__futex_wake(&w->word, 1);
			return;
		}
	}
}

/* Leaves with the thread released, as every get that does not fail on a closed port. */
static int w_return(struct port_tls *t, bool armed, int r)
{
	if (armed)
		weft__apc_disarm();
	t->state = T_RELEASED;
	if (r == WEFT_WAIT_IO_COMPLETION)
		weft__apc_run();
	return r;
}

/* The common wait behind get and get_many. Returns 0 (packets in out), -ETIMEDOUT,
 * -ESHUTDOWN, or (alertable) WEFT_WAIT_IO_COMPLETION after running the thread's APCs.
 * Packets win over APCs: an alertable get that can take a packet takes it. */
static int port_wait(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count, uint32_t timeout_ms,
		     bool alertable)
{
	struct port_tls *t = &tls_port;
	struct timespec ts, *dl = NULL;
	bool dl_set = false;
	if (t->port != p)
		port_join_thread(p);
	*count = 0;
	for (;;) {
		struct weft__waiter w = {.word = W_WAITING, .out = out, .max = max};
		/* Armed before the port lock (the APC lock may call the blocking hook, which
		 * takes the port lock; it does nothing while the thread is inside get). */
		bool armed = alertable;
		bool apc_pending = armed && weft__apc_arm(w_alert, &w);
		weft__plock(&p->lock);
		if (t->state == T_RELEASED)
			p->released--;
		t->state = T_INSIDE;
		if (p->closed) {
			if (armed)
				weft__apc_disarm();
			return get_closed(p, out, max, count);
		}
		if (p->qlen && p->released < p->concurrency) {
			*count = q_take(p, out, max);
			p->released++;
			struct weft__waiter *wl = dispatch(p);
			weft__punlock(&p->lock);
			wake_list(wl, W_PACKET);
			return w_return(t, armed, 0);
		}
		if (timeout_ms == 0 || apc_pending) {
			p->released++;
			weft__punlock(&p->lock);
			return w_return(t, armed, apc_pending ? WEFT_WAIT_IO_COMPLETION : -ETIMEDOUT);
		}
		w_push(p, &w);
		weft__punlock(&p->lock);
		if (!dl_set) {
			dl = weft__deadline(&ts, timeout_ms);
			dl_set = true;
		}
		int r = w_sleep(p, &w, dl);
		/* acquire: pairs with the release exchange in wake_list (or the APC lock). */
		uint32_t v = weft__load_acq(&w.word);
		if (r == -ETIMEDOUT || v == W_ALERTED) {
			weft__plock(&p->lock);
			if (w.linked) {
				w_unlink(p, &w);
				p->released++;
				weft__punlock(&p->lock);
				return w_return(t, armed,
						v == W_ALERTED ? WEFT_WAIT_IO_COMPLETION : -ETIMEDOUT);
			}
			weft__punlock(&p->lock);
			v = w_settle(&w);
		}
		if (v == W_PACKET) {
			*count = w.n;
			return w_return(t, armed, 0);
		}
		/* W_WOKEN: the port closed; loop to drain it. */
		if (armed)
			weft__apc_disarm();
	}
}

int weft_port_get(weft_port *p, uint32_t *bytes, uintptr_t *key, weft_overlapped **ov, uint32_t timeout_ms)
{
	weft_completion c;
	uint32_t n;
	int r = port_wait(p, &c, 1, &n, timeout_ms, false);
	if (r == 0) {
		if (bytes)
			*bytes = c.bytes;
		if (key)
			*key = c.key;
		if (ov)
			*ov = c.ov;
	}
	return r;
}

int weft_port_get_many(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count, uint32_t timeout_ms,
		       bool alertable)
{
	if (!out || !count || max == 0)
		return -EINVAL;
	return port_wait(p, out, max, count, timeout_ms, alertable);
}

uint32_t weft__port_waiters(weft_port *p)
{
	weft__plock(&p->lock);
	uint32_t n = p->nwaiters;
	weft__punlock(&p->lock);
	return n;
}

void weft_port_close(weft_port *p)
{
	weft__port_io_close(p);
	weft__plock(&p->lock);
	p->closed = 1;
	struct weft__waiter *wl = NULL;
	while (p->waiters) {
		struct weft__waiter *w = p->waiters;
		w_unlink(p, w);
		w->below = wl;
		wl = w;
	}
	weft__punlock(&p->lock);
	wake_list(wl, W_WOKEN);
	weft__port_unref(p);
}

/* ---- backend choice ---- */

#ifdef WEFT_HAVE_URING
#define URING_OPS (&weft__backend_uring)
#else
#define URING_OPS ((const struct weft__backend_ops *)NULL)
#endif

/* True when be can be set up here (io_uring: not disabled by sysctl or seccomp). */
static bool probe(const struct weft__backend_ops *be)
{
	void *s;
	if (!be || be->init(NULL, &s) < 0)
		return false;
	be->fini(s);
	return true;
}

static const struct weft__backend_ops *by_name(const char *name)
{
	if (strcmp(name, "uring") == 0)
		return probe(URING_OPS) ? URING_OPS : NULL;
	if (strcmp(name, "epoll") == 0)
		return probe(&weft__backend_epoll) ? &weft__backend_epoll : NULL;
	return NULL;
}

bool weft_port_backend_available(const char *name)
{
	return name && by_name(name) != NULL;
}

static const struct weft__backend_ops *pick_backend(void)
{
	/* relaxed: every thread computes the same choice; a race only probes twice. */
	static const struct weft__backend_ops *cached;
	const struct weft__backend_ops *be = weft__load_rlx(&cached);
	if (be)
		return be;
	const char *env = getenv("WEFT_BACKEND");
	if (env && *env)
		be = by_name(env);
	else
		be = by_name("uring") ? URING_OPS : &weft__backend_epoll;
	if (be)
		weft__store_rlx(&cached, be);
	return be;
}
