/* mcs.c - MCS queue lock whose waiters park after a bounded spin.
 *
 * The lock is one word, the tail of a queue of caller-owned nodes (NULL: free). A node is
 * { next, state }: state 1 = waiting, 2 = waiting and parked on the futex at &state,
 * 0 = the lock was handed to this node. Each waiter spins only on its own node's line,
 * then parks; the releasing thread hands over by writing 0 into its successor's state
 * and wakes it only if it parked. FIFO, so fair; parking keeps an oversubscribed machine
 * from collapsing while queued waiters burn the holder's time slice. */
#include <sched.h>

#include "atomic.h"
#include "futex.h"
#include "gate.h"
#include "internal.h"

struct mcs_node {
	struct mcs_node *next;
	uint32_t state;
};
_Static_assert(sizeof(struct mcs_node) <= sizeof(weft_mcs_node), "mcs node fits");

#define SPIN_LIMIT 400 /* ~10 us of PAUSE; a futex wake-up costs 10-25 us */

/* The lock line: the tail, the gate quantum counter (gate.h), then the count of queued
 * waiters (not the holder), kept only on the contended path. */
struct mcs_lock {
	struct mcs_node *tail;
	uint32_t handoffs; /* gate quantum counter, touched by the holder only */
	uint32_t queued;
};
_Static_assert(sizeof(struct mcs_lock) <= sizeof(weft_mcslock), "mcs lock fits");

static inline struct mcs_lock *lock_of(weft_mcslock *m)
{
	return (struct mcs_lock *)(void *)m;
}

static inline struct mcs_node **tail(weft_mcslock *m)
{
	return &lock_of(m)->tail;
}

/* The queue (holder + queued waiters) is as long as the gate allows. */
static bool mcs_full(void *lock)
{
	struct mcs_lock *l = lock;
	/* seq_cst: see gate_wait(). */
	return __atomic_load_n(&l->tail, __ATOMIC_SEQ_CST) != NULL &&
	       __atomic_load_n(&l->queued, __ATOMIC_SEQ_CST) + 1 >= gate_limit();
}

void weft_mcs_init(weft_mcslock *m)
{
	*m = (weft_mcslock)WEFT_MCSLOCK_INIT;
}

static void mcs_wait(struct mcs_node *me)
{
	uint32_t spins = weft__smp() ? SPIN_LIMIT : 0;
	/* acquire: pairs with the release exchange of state in weft_mcs_unlock(). */
	while (spins-- > 0) {
		if (weft__load_acq(&me->state) == 0)
			return;
		weft_cpu_relax();
	}
	uint32_t s = 1;
	if (!weft__cas_acq(&me->state, &s, 2u)) {
		/* s == 0: handed over meanwhile. acquire (a failed CAS only reads relaxed):
		 * pairs with the release exchange of state in weft_mcs_unlock(). */
		(void)weft__load_acq(&me->state);
		return;
	}
	weft__block_begin();
	while (weft__load_acq(&me->state) != 0)
		weft__futex_wait(&me->state, 2u, NULL);
	weft__block_end();
}

void weft_mcs_lock(weft_mcslock *m, weft_mcs_node *node)
{
	struct mcs_node *me = (struct mcs_node *)node;
	struct mcs_lock *l = lock_of(m);
	/* relaxed: a hint to divert to the gate; the queue itself orders everything. */
	if (__builtin_expect(weft__load_rlx(&l->tail) != NULL, 0))
		while (mcs_full(l))
			if (gate_wait(gate_bucket(l), mcs_full, l))
				break; /* admitted: join even if the queue is long */
	me->next = NULL;
	weft__store_rlx(&me->state, 1u);
	/* acq_rel: release publishes our node's fields to the successor that reads it through
	 * the tail; acquire pairs with the predecessor's release of its node. */
	struct mcs_node *pred = weft__xchg_acqrel(tail(m), me);
	if (__builtin_expect(pred == NULL, 1))
		return;
	/* release: pairs with the acquire load of next in weft_mcs_unlock(). */
	__atomic_fetch_add(&l->queued, 1, __ATOMIC_SEQ_CST);
	weft__store_rel(&pred->next, me);
	mcs_wait(me);
}

bool weft_mcs_trylock(weft_mcslock *m, weft_mcs_node *node)
{
	struct mcs_node *me = (struct mcs_node *)node;
	struct mcs_node *expected = NULL;
	me->next = NULL;
	weft__store_rlx(&me->state, 1u);
	/* acq_rel: as in weft_mcs_lock(). */
	return weft__cas_acqrel(tail(m), &expected, me);
}

void weft_mcs_unlock(weft_mcslock *m, weft_mcs_node *node)
{
	struct mcs_node *me = (struct mcs_node *)node;
	/* acquire: pairs with the successor's release store of our next. */
	struct mcs_lock *l = lock_of(m);
	bool quantum = gate_quantum_over(&l->handoffs);
	struct gate *g = gate_bucket(l);
	struct mcs_node *succ = weft__load_acq(&me->next);
	if (succ == NULL) {
		struct mcs_node *expected = me;
		/* seq_cst (release at least): publishes the critical section to the next
		 * locker's exchange, and orders the empty queue before the gate's waiters load. */
		if (__atomic_compare_exchange_n(tail(m), &expected, NULL, false, __ATOMIC_SEQ_CST,
						__ATOMIC_RELAXED)) {
			gate_after_handoff(g, true, quantum); /* l may be freed: bucket only */
			return;
		}
		/* A successor swapped the tail but has not linked itself yet; it runs the two
		 * instructions between soon, unless preempted, so yield after a short spin. */
		uint32_t rounds = 0;
		while ((succ = weft__load_acq(&me->next)) == NULL) {
			if (++rounds > 64 || !weft__smp())
				sched_yield();
			else
				weft_cpu_relax();
		}
	}
	/* release: hands the critical section to succ; pairs with its acquire of state.
	 * Lifetime: once state is 0 the successor may return and its node die; a futex
	 * wake on a dead stack address can at most wake some other futex waiter spuriously,
	 * and every weft waiter re-checks its condition. */
	/* succ leaves the queue now, not when it wakes: a holder that re-locks at once must
	 * not find the queue "full" and park at the gate behind a waiter that is already
	 * the owner. Its increment happened before it linked itself, which we observed. */
	__atomic_fetch_sub(&l->queued, 1, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&succ->state, 0u, __ATOMIC_SEQ_CST) == 2)
		weft__futex_wake(&succ->state, 1);
	gate_after_handoff(g, false, quantum); /* l may be freed: bucket only */
}
