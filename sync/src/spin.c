/* spin.c - test-and-test-and-set spinlock with bounded exponential backoff.
 *
 * State: _private[0] is 0 (free) or 1 (held); the rest of the line is padding so the lock
 * never shares a cache line with anything. Waiters spin on a plain load (the line stays
 * shared in their caches, no write traffic) and only try the exchange when they see 0.
 * After SPIN_ROUNDS backoff rounds a waiter yields its time slice, so with more runnable
 * threads than CPUs the holder gets to run; with one CPU online it yields at once. */
#include <sched.h>

#include "atomic.h"
#include "internal.h"

#define SPIN_ROUNDS 16

static inline uint32_t *word(weft_spinlock *l)
{
	return &l->_private[0];
}

void weft_spin_init(weft_spinlock *l)
{
	*l = (weft_spinlock)WEFT_SPINLOCK_INIT;
}

bool weft_spin_trylock(weft_spinlock *l)
{
	/* acquire: pairs with the release store in weft_spin_unlock(). */
	return weft__load_rlx(word(l)) == 0 && weft__xchg_acq(word(l), 1u) == 0;
}

static void spin_lock_slow(weft_spinlock *l)
{
	bool smp = weft__smp();
	uint32_t backoff = 1, rounds = 0;
	for (;;) {
		/* relaxed: only a hint; the exchange below is the acquire. */
		while (weft__load_rlx(word(l)) != 0) {
			if (!smp || ++rounds > SPIN_ROUNDS) {
				sched_yield();
				backoff = 1;
			} else {
				weft__backoff(&backoff);
			}
		}
		if (weft__xchg_acq(word(l), 1u) == 0)
			return;
	}
}

void weft_spin_lock(weft_spinlock *l)
{
	if (__builtin_expect(weft__xchg_acq(word(l), 1u) == 0, 1))
		return;
	spin_lock_slow(l);
}

void weft_spin_unlock(weft_spinlock *l)
{
	WEFT_ASSERT(weft__load_rlx(word(l)) == 1);
	/* release: publishes the critical section to the next acquirer's exchange. */
	weft__store_rel(word(l), 0u);
}
