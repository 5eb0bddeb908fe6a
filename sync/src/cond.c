/* cond.c - condition variable on a futex sequence word.
 *
 * _private[0]: low 32 bits seq (bumped by every wake), high 32 bits sleepers (threads
 * between reading seq and leaving the wait). _private[1]: the critical section all
 * sleepers used (NULL: none yet; MIXED once sleepers used different locks or an SRW
 * lock), which lets wake_all requeue sleepers onto that section's futex.
 *
 * A sleeper reads seq while it still holds the lock, so a wake issued after it released
 * the lock changes seq and its futex wait returns at once (no lost wake-up). Before
 * sleeping it spins briefly on seq: a waker that comes within the spin costs neither side
 * a system call. wake bumps seq and wakes one futex sleeper only if someone sleeps. */
#include <sched.h>

#include "atomic.h"
#include "cs_impl.h"
#include "futex.h"

#define MIXED ((uintptr_t)1)
/* ~6 us of PAUSE on the EPYC dev machine (25 ns each): a partner running on another CPU
 * answers well within it; a wake-up through the futex costs 10-25 us, so spinning longer
 * only burns CPU. */
#define SPIN 256

struct cond_impl {
	uint32_t seq;
	uint32_t sleepers;
	uintptr_t lock;
};
_Static_assert(sizeof(struct cond_impl) == sizeof(weft_cond), "cond layout");

static inline struct cond_impl *cond_of(weft_cond *c)
{
	return (struct cond_impl *)(void *)c;
}

void weft_cond_init(weft_cond *c)
{
	*c = (weft_cond)WEFT_COND_INIT;
}

/* Spins, then sleeps, until seq moves from s or the deadline passes. Returns false on
 * timeout. slept tells whether the futex was used (the thread may then have been
 * requeued onto a critical section's futex). */
static bool cond_wait_seq(struct cond_impl *c, uint32_t s, const struct timespec *deadline, bool *slept)
{
	*slept = false;
	for (uint32_t i = weft__smp() ? SPIN : 0; i > 0; i--) {
		/* acquire: pairs with the seq_cst increment in wake; the lock reacquired after
		 * this provides the data ordering anyway. */
		if (weft__load_acq(&c->seq) != s)
			return true;
		weft_cpu_relax();
	}
	/* The partner may be runnable on this very CPU (oversubscribed, or placed here by the
	 * scheduler): give it the CPU once before paying for a futex sleep and wake-up. */
	if (weft__smp()) {
		sched_yield();
		if (weft__load_acq(&c->seq) != s)
			return true;
	}
	*slept = true;
	weft__block_begin();
	int r = 0;
	while (weft__load_acq(&c->seq) == s) {
		r = weft__futex_wait(&c->seq, s, deadline);
		if (r == -ETIMEDOUT)
			break;
	}
	weft__block_end();
	return !(r == -ETIMEDOUT && weft__load_acq(&c->seq) == s);
}

static void note_lock(struct cond_impl *c, uintptr_t lock)
{
	/* relaxed: only a hint for wake_all; a wrong guess costs a fallback to wake-all. */
	uintptr_t cur = weft__load_rlx(&c->lock);
	if (cur == lock || cur == MIXED)
		return;
	if (cur == 0 && weft__cas_rlx(&c->lock, &cur, lock))
		return;
	weft__store_rlx(&c->lock, MIXED);
}

bool weft_cond_sleep_cs(weft_cond *c, weft_cs *cs, uint32_t timeout_ms)
{
	struct cond_impl *ci = cond_of(c);
	struct cs_impl *k = cs_of(cs);
	struct timespec ts, *deadline = weft__deadline(&ts, timeout_ms);
	if (k->recursion != 1 || weft__load_rlx(&k->owner) != weft__tid())
		weft__die("weft_cond_sleep_cs(%p): critical section %p \"%s\" must be held exactly once",
			  (void *)c, (void *)cs, k->name ? k->name : "");
	note_lock(ci, (uintptr_t)cs);
	uint32_t s = weft__load_acq(&ci->seq);
	/* seq_cst: ordered with the waker's seq increment and sleepers load. */
	__atomic_fetch_add(&ci->sleepers, 1, __ATOMIC_SEQ_CST);
	weft_cs_leave(cs);
	bool slept, woke = cond_wait_seq(ci, s, deadline, &slept);
	__atomic_fetch_sub(&ci->sleepers, 1, __ATOMIC_SEQ_CST);
	if (slept)
		weft__cs_enter_after_wait(cs);
	else
		weft_cs_enter(cs);
	return woke;
}

bool weft_cond_sleep_srw(weft_cond *c, weft_srw *s, uint32_t timeout_ms, bool shared)
{
	struct cond_impl *ci = cond_of(c);
	struct timespec ts, *deadline = weft__deadline(&ts, timeout_ms);
	note_lock(ci, MIXED);
	uint32_t seq = weft__load_acq(&ci->seq);
	__atomic_fetch_add(&ci->sleepers, 1, __ATOMIC_SEQ_CST);
	if (shared)
		weft_srw_unlock_shared(s);
	else
		weft_srw_unlock_exclusive(s);
	bool slept, woke = cond_wait_seq(ci, seq, deadline, &slept);
	__atomic_fetch_sub(&ci->sleepers, 1, __ATOMIC_SEQ_CST);
	if (shared)
		weft_srw_lock_shared(s);
	else
		weft_srw_lock_exclusive(s);
	return woke;
}

void weft_cond_wake(weft_cond *c)
{
	struct cond_impl *ci = cond_of(c);
	/* seq_cst: the increment is ordered before the sleepers load, pairing with the
	 * sleeper's increment of sleepers after it read seq. */
	__atomic_fetch_add(&ci->seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&ci->sleepers, __ATOMIC_SEQ_CST) != 0)
		weft__futex_wake(&ci->seq, 1);
}

void weft_cond_wake_all(weft_cond *c)
{
	struct cond_impl *ci = cond_of(c);
	uint32_t s = __atomic_add_fetch(&ci->seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&ci->sleepers, __ATOMIC_SEQ_CST) == 0)
		return;
	uintptr_t lock = weft__load_rlx(&ci->lock);
	if (lock != 0 && lock != MIXED && weft_cs_is_owned((weft_cs *)lock)) {
		/* We hold the section, so wake one sleeper and move the rest onto the section's
		 * rq futex word: each leave of the section then wakes one of them (the count is
		 * guarded by the section we hold), instead of all of them waking at once to
		 * fight for it. A requeued thread that leaves early (timeout) only makes one
		 * later wake find nobody. */
		struct cs_impl *k = cs_of((weft_cs *)lock);
		int r = weft__futex_cmp_requeue(&ci->seq, s, 1, INT_MAX, &k->rq);
		if (r >= 0) {
			if (r > 1)
				k->requeued += (uint32_t)r - 1;
			return;
		}
	}
	weft__futex_wake(&ci->seq, INT_MAX);
}
