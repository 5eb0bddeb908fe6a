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

void weft__spin_lock_slow(weft_spinlock *l)
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
