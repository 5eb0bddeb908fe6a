/* ticket.c - fair FIFO ticket lock whose waiters park instead of collapsing.
 *
 * State (one cache line): w[0] = next ticket to hand out, w[1] = ticket now served,
 * w[2] = number of parked waiters. A thread takes ticket t = next++ and owns the lock
 * when serving == t. Only the thread whose turn is next (t - serving == 1) spins on the
 * line; everyone further back parks at once, and even the next in line parks after a
 * bounded spin. A parked waiter sleeps on the serving word with futex bitset
 * 1 << (t % 32), so unlock wakes exactly the owner of the new serving value (and any
 * thread 32 positions later, which re-checks and sleeps again): no thundering herd, and
 * the holder is never stuck behind a spinning waiter that took its CPU. */
#include <sched.h>

#include "atomic.h"
#include "futex.h"
#include "gate.h"
#include "internal.h"

#define NEXT 0
#define SERVING 1
#define HANDOFFS 2 /* gate quantum counter, touched by the holder only */
#define SPIN_LIMIT 400 /* ~10 us of PAUSE; a futex wake-up costs 10-25 us */

struct gate weft__gate_buckets[GATE_BUCKETS];

/* The queue (holder + ticket holders) is as long as the gate allows. */
static bool ticket_full(void *lock)
{
	weft_ticketlock *t = lock;
	/* seq_cst: see gate_wait(). */
	uint32_t n = __atomic_load_n(&t->_private[NEXT], __ATOMIC_SEQ_CST);
	uint32_t s = __atomic_load_n(&t->_private[SERVING], __ATOMIC_SEQ_CST);
	return n - s >= gate_limit();
}

void weft_ticket_init(weft_ticketlock *t)
{
	*t = (weft_ticketlock)WEFT_TICKETLOCK_INIT;
}

static void ticket_wait(weft_ticketlock *t, uint32_t me)
{
	uint32_t *serving = &t->_private[SERVING];
	uint32_t spins = weft__smp() ? SPIN_LIMIT : 0;
	uint32_t bit = 1u << (me % 32);
	for (;;) {
		/* acquire: pairs with the release increment of serving in unlock. */
		uint32_t s = weft__load_acq(serving);
		if (s == me)
			return;
		if (me - s == 1 && spins > 0) {
			spins--;
			weft_cpu_relax();
			continue;
		}
		/* Announce before re-checking serving inside futex_wait, so the unlocker that
		 * moves serving after this increment sees parked != 0 and wakes us (seq_cst
		 * read-modify-write here and in unlock order the two). */
		__atomic_fetch_add(&gate_bucket(t)->parked, 1, __ATOMIC_SEQ_CST);
		weft__block_begin();
		weft__futex_wait_bits(serving, s, NULL, bit);
		weft__block_end();
		weft__fsub_rel(&gate_bucket(t)->parked, 1u);
	}
}

static void ticket_lock_slow(weft_ticketlock *t)
{
	while (ticket_full(t))
		if (gate_wait(gate_bucket(t), ticket_full, t))
			break; /* admitted: join the queue even if it is long */
	uint32_t me = weft__fadd_acq(&t->_private[NEXT], 1u);
	if (weft__load_acq(&t->_private[SERVING]) != me)
		ticket_wait(t, me);
}

void weft_ticket_lock(weft_ticketlock *t)
{
	/* relaxed: only a hint to divert to the gate; the queue itself orders everything. */
	if (__builtin_expect(weft__load_rlx(&t->_private[NEXT]) - weft__load_rlx(&t->_private[SERVING]) >=
				     gate_limit(),
			     0)) {
		ticket_lock_slow(t);
		return;
	}
	uint32_t me = weft__fadd_acq(&t->_private[NEXT], 1u);
	/* acquire: pairs with the release increment of serving in unlock. */
	if (__builtin_expect(weft__load_acq(&t->_private[SERVING]) == me, 1))
		return;
	ticket_wait(t, me);
}

bool weft_ticket_trylock(weft_ticketlock *t)
{
	uint32_t s = weft__load_acq(&t->_private[SERVING]);
	uint32_t n = s;
	/* acquire on success: the lock was free (next == serving) and is now ours. */
	return weft__cas_acq(&t->_private[NEXT], &n, s + 1);
}

void weft_ticket_unlock(weft_ticketlock *t)
{
	bool quantum = gate_quantum_over(&t->_private[HANDOFFS]);
	/* relaxed snapshot, taken while we hold the lock: "nobody else queued". An arrival
	 * after it only makes the gate admit one thread early (the gate's cap is soft). */
	bool alone = weft__load_rlx(&t->_private[NEXT]) == weft__load_rlx(&t->_private[SERVING]) + 1;
	struct gate *g = gate_bucket(t);
	/* seq_cst: releases the critical section and is ordered before the parked read,
	 * pairing with the seq_cst increment of parked in ticket_wait(). From here on t may
	 * be freed: only the bucket and a futex wake on t's address (see gate.h). */
	uint32_t s = __atomic_add_fetch(&t->_private[SERVING], 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&g->parked, __ATOMIC_SEQ_CST) != 0)
		weft__futex_wake_bits(&t->_private[SERVING], INT_MAX, 1u << (s % 32));
	gate_after_handoff(g, alone, quantum);
}
