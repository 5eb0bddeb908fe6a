/* port.c - the completion port's queue and threads: the I/O completion queue, the
 * waiting threads (LIFO), the released and paused threads.
 *
 * The queue is a bounded lock-free ring (WEFT__RING_CAP slots, one sequence number per
 * slot, after Vyukov's MPMC queue) in front of a growable overflow queue under the port
 * lock (p->lock). Packets go to the ring while it has room and the overflow is empty;
 * else to the overflow, and every later post follows them there until it drains, so a
 * producer's packets stay in order. The released count lives in the high half of the
 * consumers' ring word (p->deq): a take checks the concurrency limit and claims its
 * slots in one CAS, so the limit stays exact without the lock.
 *
 * Fast paths, no lock: a post puts into the ring, then looks at p->wake (a waiter might
 * have to get it) and only then takes the lock; a released thread coming back into get
 * takes from the ring while the port is not over its limit. It stays released: it is
 * the newest thread in get, the one Windows would release, so the count does not move.
 * If the ring is empty it keeps looking for a moment (PORT_PRESPIN_NS) before it becomes
 * a waiter: a stream of packets is then taken straight from the ring, several per cache
 * line, instead of one lock round and one hand-off per packet. During that moment it
 * still counts as released (as if its get had started a moment later). While a waiter
 * exists it announces itself in p->wake, so posts leave packets to it rather than
 * futex-wake an older, sleeping waiter (the hot thread first, as LIFO wants); when it
 * stops looking it hands what is left to the waiters (prespin_leave).
 *
 * Slow paths, under the lock: a thread that finds nothing pushes a waiter record (on
 * its own stack) onto the LIFO stack, spins briefly, then sleeps on the record's word.
 * Whoever makes a packet takeable for a waiter (a post that saw p->wake, a completion, a
 * released thread coming back into get or pausing, a thread leaving the port) hands the
 * packets directly to the most recent waiter under the lock and counts that thread
 * released on its behalf (dispatch), then flips the waiter's word after unlocking. The
 * direct hand-off keeps LIFO exact among waiters and the count exact.
 *
 * No lost wake-up between the two: a post publishes its slot, then (an RMW on p->enq)
 * reads p->wake; a lock holder that adds a waiter or lowers released stores p->wake,
 * then (the same RMW) looks at the ring (settle). One of the two sees the other.
 * Close sets a bit in the producers' word (p->enq), so every post that returned 0
 * claimed its slot before the close; a get after close drains up to the last claim.
 *
 * Released/paused accounting follows the Windows kernel queue: a thread belongs to the
 * port it last called get on (per-thread state below). It is released from the time a
 * get returns (packet, timeout or APC) until it calls get again. When it blocks in any
 * weft primitive, the blocking hook moves it to paused (released - 1, maybe dispatching
 * a packet to a waiter); when it wakes it is released again even if that puts the port
 * over its limit: dispatch then simply gives nothing until the count drops, and a
 * released thread coming back into get then waits too.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apc.h"
#include "atomic.h"
#include "futex.h"
#include "port_impl.h"
#include "port_ring.h"

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
	int kick_fd; /* the solo thread: sleeps in the backend, woken by a write here; else -1 */
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
/* How long a released thread coming back into get keeps looking at the ring before it
 * becomes a waiter, and how many PAUSEs between two looks (a look that finds nothing
 * pulls the producer's cache line away; waiting lets a few packets gather per line). */
#ifndef PORT_PRESPIN_NS
#define PORT_PRESPIN_NS 4000u
#endif
#ifndef PORT_PRESPIN_PAUSES
#define PORT_PRESPIN_PAUSES 8u
#endif
#ifndef PORT_PRESPIN_LOOKS
#define PORT_PRESPIN_LOOKS 2u
#endif

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

/* Under the lock: takes up to max packets (ring first: it holds the older ones) for a
 * thread that is not counted released, counting it, if the limit allows. */
static uint32_t take_counted(weft_port *p, weft_completion *out, uint32_t max)
{
	uint32_t n = ring_take(p, out, max, p->concurrency, 1);
	if (n == 0) {
		if (p->qlen == 0 || released_get(p) >= p->concurrency)
			return 0;
		released_add(p, 1);
	}
	return n + q_take(p, out + n, max - n);
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

/* Under the lock: while a thread waits, a packet is queued and the concurrency allows,
 * give the most recent waiter a batch and count it released. Returns the waiters to
 * wake (chained through below) once the lock is dropped. */
static struct weft__waiter *dispatch(weft_port *p)
{
	struct weft__waiter *wake = NULL;
	while (p->waiters) {
		struct weft__waiter *w = p->waiters;
		/* like GetQueuedCompletionStatusEx: a batch */
		uint32_t n = take_counted(p, w->out, w->max);
		if (n == 0)
			break;
		w_unlink(p, w);
		w->n = n;
		w->below = wake;
		wake = w;
	}
	return wake;
}

/* p->wake: bit 0 (WAKE_WAITER, under the lock): a thread waits and released <
 * concurrency, so a packet put into the ring may have to go to that waiter; bits 1..
 * (WAKE_SPINNER each): released threads looking at the ring in prespin, which announce
 * themselves only while bit 0 is set. A post takes the lock only when wake is exactly
 * WAKE_WAITER: a thread still looking is newer than any waiter, and takes the packet
 * from the ring itself (no futex wake for an older, sleeping thread). */
#define WAKE_WAITER 1u
#define WAKE_SPINNER 2u

/* Under the lock: sets or clears bit 0 of p->wake (see settle for the ordering). */
static void hint_set(weft_port *p)
{
	bool want = p->waiters && released_get(p) < p->concurrency;
	/* relaxed: compared with the lock's view; the RMWs below keep the spinner bits. */
	bool have = weft__load_rlx(&p->wake) & WAKE_WAITER;
	if (want && !have)
		weft__for_acqrel(&p->wake, WAKE_WAITER);
	else if (!want && have)
		weft__fand_acqrel(&p->wake, ~WAKE_WAITER);
}

/* Under the lock, after a waiter was added or released dropped: dispatch, without
 * losing a packet a post just put into the ring. */
static struct weft__waiter *settle(weft_port *p)
{
	hint_set(p);
	/* acq_rel: our update of wake, then this RMW, then our look at the ring; a post
	 * publishes, does the same RMW on p->enq, then looks at wake (port_put). The RMWs
	 * on one word are totally ordered: the later one synchronizes with the earlier
	 * one, so either we see the packet or the post sees wake. (A seq_cst fence would
	 * say the same, but TSan does not model fences.) */
	weft__fadd_acqrel(&p->enq, 0);
	struct weft__waiter *wl = dispatch(p);
	hint_set(p);
	return wl;
}

/* Wakes a sleeping waiter: its futex word, or the solo thread's eventfd (it sleeps in
 * the backend, weft__port_io_solo_sleep); a stray write only costs it one more look. */
static void w_wake(uint32_t *word, int kick_fd)
{
	uint64_t one = 1;
	if (kick_fd < 0)
		weft__futex_wake(word, 1);
	else if (write(kick_fd, &one, sizeof one) < 0) {
		/* cannot overflow: the solo thread reads it down */
	}
}

/* Wakes waiters popped under the lock. Lifetime: a popped waiter stays on its thread's
 * stack until it sees its word change, so w->below and w->kick_fd are read first. The
 * futex_wake after the exchange may hit a frame that already returned (the waiter can
 * see the new word before the wake): a stray wake on a stack word is harmless, every
 * futex wait in weft re-checks its word and loops. */
static void wake_list(struct weft__waiter *w, uint32_t how)
{
	while (w) {
		struct weft__waiter *next = w->below;
		int kick = w->kick_fd; /* read first: w may be gone once its word flips */
		/* release: publishes w->out[..n]; pairs with the acquire loads in w_sleep. */
		if (weft__xchg_rel(&w->word, how) == W_SLEEPING)
			w_wake(&w->word, kick);
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
		/* the solo thread is the reaper: it sleeps in the backend, reaping */
		int r = w->kick_fd >= 0 ? weft__port_io_solo_sleep(p, &w->word, W_SLEEPING, dl)
					: weft__futex_wait(&w->word, W_SLEEPING, dl);
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
		released_add(p, UINT32_MAX);
	else if (t->state == T_PAUSED)
		p->paused--;
	struct weft__waiter *wl = settle(p);
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

void weft__port_leave_thread(void)
{
	tls_destructor(NULL);
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
	released_add(p, UINT32_MAX);
	p->paused++;
	struct weft__waiter *wl = settle(p);
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
	released_add(p, 1);
	hint_set(p);
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
	p->ring = aligned_alloc(WEFT_CACHE_LINE, sizeof *p->ring * WEFT__RING_CAP);
	if (!p->be || !p->ring || q_grow(p, 64) < 0) {
		free(p->ring);
		free(p);
		return NULL;
	}
	for (uint32_t i = 0; i < WEFT__RING_CAP; i++)
		p->ring[i].seq = i; /* before the port is shared */
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
	free(p->ring);
	free(p);
}

/* Queues k under the lock: into the ring if the overflow is empty and the ring has room
 * (ovf was stale), else into the overflow. */
static int put_locked(weft_port *p, const struct weft__pkt *k, bool completion)
{
	weft__plock(&p->lock);
	if (completion)
		weft__fadd_rlx(&p->reserved, UINT32_MAX); /* relaxed: see weft__port_reserve */
	else if (weft__load_rlx(&p->closed)) {
		weft__punlock(&p->lock);
		return -ESHUTDOWN;
	}
	if (p->qlen != 0 || ring_put(p, k) <= 0) {
		/* A completion's slot is reserved: qcap >= qlen + reserved before the
		 * decrement above. */
		int r = completion ? 0 : q_grow(p, p->qlen + weft__load_rlx(&p->reserved) + 1);
		if (r < 0) {
			weft__punlock(&p->lock);
			return r;
		}
		q_push(p, k);
	}
	struct weft__waiter *wl = dispatch(p);
	hint_set(p);
	weft__punlock(&p->lock);
	wake_list(wl, W_PACKET);
	return 0;
}

/* A post saw wake: hand what is queued to the waiters. */
static void kick(weft_port *p)
{
	weft__plock(&p->lock);
	struct weft__waiter *wl = dispatch(p);
	hint_set(p);
	weft__punlock(&p->lock);
	wake_list(wl, W_PACKET);
}

static inline int port_put(weft_port *p, const struct weft__pkt *k, bool completion)
{
	/* relaxed: a hint (see q_push); a producer sees its own overflow posts. */
	if (weft__load_rlx(&p->ovf) == 0) {
		int r = ring_put(p, k);
		if (r > 0) {
			if (completion)
				weft__fadd_rlx(&p->reserved, UINT32_MAX); /* see weft__port_reserve */
			/* acq_rel: publication, then this RMW, then the look at wake; pairs
			 * with the RMW in settle. */
			weft__fadd_acqrel(&p->enq, 0);
			if (weft__load_rlx(&p->wake) == WAKE_WAITER)
				kick(p);
			return 0;
		}
		if (r < 0 && !completion)
			return r;
	}
	return put_locked(p, k, completion);
}

int weft_port_post(weft_port *p, uint32_t bytes, uintptr_t key, weft_overlapped *ov)
{
	struct weft__pkt k = {bytes, key, ov};
	return port_put(p, &k, false);
}

/* The overflow keeps room for every operation in flight (qcap >= qlen + reserved under
 * the lock), so its completion never fails. A completion that goes to the ring instead
 * gives its reservation back without the lock: that only lowers what is needed. */
int weft__port_reserve(weft_port *p)
{
	weft__plock(&p->lock);
	int r = q_grow(p, p->qlen + weft__load_rlx(&p->reserved) + 1);
	if (r == 0)
		weft__fadd_rlx(&p->reserved, 1u); /* relaxed: a count, read under the lock */
	weft__punlock(&p->lock);
	return r;
}

void weft__port_complete(weft_port *p, struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	struct weft__pkt k = {ov->bytes, op->dev->key, ov};
	port_put(p, &k, true);
}

/* Under the lock, the port closed: drain what is left, then -ESHUTDOWN. Every post that
 * succeeded claimed its ring slot before the close (the closed bit in p->enq), so the
 * ring is drained up to the last claim; a claimed slot is published a few instructions
 * later (the poster needs no lock for that). */
static int get_closed(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count)
{
	/* relaxed: the close's fetch-or came before our lock (ordered by it), so this read
	 * sees the final position. */
	uint32_t end = (uint32_t)weft__load_rlx(&p->enq);
	uint32_t n;
	for (;;) {
		n = ring_take(p, out, max, UINT32_MAX, 0);
		if (n || (uint32_t)weft__load_rlx(&p->deq) == end)
			break;
		sched_yield();
	}
	n += q_take(p, out + n, max - n);
	*count = n;
	weft__punlock(&p->lock);
	tls_port.state = T_NONE;
	return n ? 0 : -ESHUTDOWN;
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
				w_wake(&w->word, w->kick_fd);
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

/* A thread leaving prespin that announced itself: a post may have skipped the lock
 * because of it; if a packet is still in the ring and a waiter may take it, hand it over.
 * acq_rel RMWs: the spinner bit goes, then the RMW on p->enq, then the look at the ring;
 * a post publishes, does the same RMW, then reads wake (as in settle). */
static void prespin_leave(weft_port *p)
{
	uint32_t w = weft__fadd_acqrel(&p->wake, (uint32_t)-WAKE_SPINNER);
	if (!(w & WAKE_WAITER))
		return;
	weft__fadd_acqrel(&p->enq, 0);
	uint64_t d = weft__load_rlx(&p->deq);
	/* relaxed: a look; dispatch re-reads under the lock with acquire. */
	if (weft__load_rlx(&p->ring[(uint32_t)d & RING_MASK].seq) == (uint32_t)d + 1u)
		kick(p);
}

/* A released thread back in get found the ring empty: it looks again for up to
 * PORT_PRESPIN_NS before it becomes a waiter. Returns the packets taken, or 0 (go wait:
 * time is up, the port is over its limit, packets sit in the overflow, or it closed). */
static uint32_t prespin(weft_port *p, weft_completion *out, uint32_t max)
{
	if (!weft__smp())
		return 0;
	/* relaxed: if bit 0 is set later, the waiter came later and is the newer one. */
	bool announced = weft__load_rlx(&p->wake) & WAKE_WAITER;
	if (announced)
		weft__fadd_acqrel(&p->wake, WAKE_SPINNER);
	uint64_t t0 = weft__now_ns();
	uint32_t n = 0;
	bool yielded = false;
	for (uint32_t i = 1;; i++) {
		/* no pause right after a yield: the poster may just have run on this CPU */
		for (uint32_t j = 0; !yielded && j < PORT_PRESPIN_PAUSES; j++)
			weft_cpu_relax();
		yielded = false;
		/* relaxed: a look; ring_take re-reads with the orderings it needs. */
		uint64_t d = weft__load_rlx(&p->deq);
		if (st_released(d) > p->concurrency)
			break;
		if (weft__load_rlx(&p->ring[(uint32_t)d & RING_MASK].seq) == (uint32_t)d + 1u) {
			n = ring_take(p, out, max, p->concurrency + 1u, 0);
			if (n)
				break;
		}
		/* relaxed: hints, re-checked under the lock by the slow path. */
		if (weft__load_rlx(&p->ovf) || weft__load_rlx(&p->closed))
			break;
		if ((i & (PORT_PRESPIN_LOOKS - 1)) == 0) {
			weft__port_io_poll(p);
			if (weft__now_ns() - t0 >= PORT_PRESPIN_NS)
				break;
			/* the thread that will post may need this CPU (see w_sleep) */
			sched_yield();
			yielded = true;
		}
	}
	if (announced)
		prespin_leave(p);
	return n;
}

/* The slow path of port_wait: under the lock, take or become a waiter. */
static int port_wait_slow(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count,
			  uint32_t timeout_ms, bool alertable)
{
	struct port_tls *t = &tls_port;
	struct timespec ts, *dl = NULL;
	bool dl_set = false;
	if (t->port != p)
		port_join_thread(p);
	for (;;) {
		struct weft__waiter w = {
		    .word = W_WAITING, .out = out, .max = max, .kick_fd = weft__port_io_solo_fd(p)};
		/* Armed before the port lock (the APC lock may call the blocking hook, which
		 * takes the port lock; it does nothing while the thread is inside get). */
		bool armed = alertable;
		bool apc_pending = armed && weft__apc_arm(w_alert, &w);
		weft__plock(&p->lock);
		if (t->state == T_RELEASED)
			released_add(p, UINT32_MAX);
		t->state = T_INSIDE;
		if (weft__load_rlx(&p->closed)) {
			if (armed)
				weft__apc_disarm();
			return get_closed(p, out, max, count);
		}
		uint32_t n = take_counted(p, out, max);
		if (n) {
			*count = n;
			struct weft__waiter *wl = settle(p);
			weft__punlock(&p->lock);
			wake_list(wl, W_PACKET);
			return w_return(t, armed, 0);
		}
		if (timeout_ms == 0 || apc_pending) {
			released_add(p, 1);
			hint_set(p);
			weft__punlock(&p->lock);
			return w_return(t, armed, apc_pending ? WEFT_WAIT_IO_COMPLETION : -ETIMEDOUT);
		}
		w_push(p, &w);
		struct weft__waiter *wl = settle(p); /* may give us packets at once */
		weft__punlock(&p->lock);
		wake_list(wl, W_PACKET);
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
				released_add(p, 1);
				hint_set(p);
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

/* The common wait behind get and get_many. Returns 0 (packets in out), -ETIMEDOUT,
 * -ESHUTDOWN, or (alertable) WEFT_WAIT_IO_COMPLETION after running the thread's APCs.
 * Packets win over APCs: an alertable get that can take a packet takes it. */
static inline int port_wait(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count,
			    uint32_t timeout_ms, bool alertable)
{
	struct port_tls *t = &tls_port;
	*count = 0;
	if (timeout_ms == 0 && weft__port_io_solo_fd(p) >= 0) {
		/* the solo thread is the reaper: a get that never waits reaps once first */
		uint32_t awake = 1;
		weft__port_io_solo_sleep(p, &awake, 0, NULL);
	}
	if (t->port == p && t->state == T_RELEASED) {
		/* Back into get while not over the limit: take from the ring and stay
		 * released (see the top of the file). */
		uint32_t n = ring_take(p, out, max, p->concurrency + 1u, 0);
		if (n == 0 && timeout_ms != 0)
			n = prespin(p, out, max);
		if (n) {
			*count = n;
			return 0;
		}
	}
	return port_wait_slow(p, out, max, count, timeout_ms, alertable);
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
	weft__store_rlx(&p->closed, 1u); /* relaxed: read under the lock, or as a hint */
	/* acq_rel (relaxed would do): a claim after this fails in ring_put's CAS. */
	weft__for_acqrel(&p->enq, ENQ_CLOSED);
	struct weft__waiter *wl = NULL;
	while (p->waiters) {
		struct weft__waiter *w = p->waiters;
		w_unlink(p, w);
		w->below = wl;
		wl = w;
	}
	hint_set(p);
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
