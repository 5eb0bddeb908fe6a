/* gate.h - the admission gate in front of weft's FIFO locks (ticket, MCS).
 *
 * A FIFO lock collapses when it has more waiters than CPUs: the lock is handed to a
 * waiter that is not running, and every hand-off waits for a context switch. The gate
 * keeps the FIFO queue about as long as the number of CPUs: an arriving thread that finds
 * the queue that long parks at the gate before it joins the queue. Inside the queue the
 * lock stays strictly FIFO (so two threads on two CPUs alternate perfectly); the gate
 * admits one parked thread whenever a hand-off finds the queue empty, and one every
 * GATE_QUANTUM hand-offs regardless, so parked threads take turns in the long run while
 * the lock mostly circulates among threads that are on a CPU.
 *
 * Lifetime: unlock runs its gate bookkeeping after the hand-off, when the lock's memory
 * may already belong to a thread that took it, released it and freed it. So the words an
 * unlock touches after releasing - the gate's futex word and waiter count, and the ticket
 * lock's count of parked waiters - live in global buckets keyed by the lock's address,
 * never in the lock; after the release an unlock only reads and writes its bucket and
 * issues futex wakes (a wake on a freed address is harmless). Locks sharing a bucket only
 * cost each other spurious wakes and admissions. The quantum counter stays in the lock:
 * only the holder touches it, before releasing. */
#ifndef WEFT_GATE_H
#define WEFT_GATE_H

#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define GATE_QUANTUM 512u
#define GATE_BUCKETS 256

struct gate {
	uint32_t seq;     /* futex word, bumped per admission */
	uint32_t waiters; /* threads parked at the gate */
	uint32_t parked;  /* ticket lock: waiters parked on their position */
} WEFT_CACHE_ALIGNED;

extern WEFT_INTERNAL struct gate weft__gate_buckets[GATE_BUCKETS];

static inline struct gate *gate_bucket(const void *lock)
{
	return &weft__gate_buckets[weft__addr_bucket(lock, GATE_BUCKETS)];
}

/* The queue length (holder included) from which arrivals park at the gate. */
static inline uint32_t gate_limit(void)
{
	uint32_t n = weft_cpu_count();
	return n < 2 ? 1 : n;
}

/* Parks until admitted, unless full(lock) turns false after we announced ourselves.
 * Returns true if it slept (the caller then joins the queue without re-checking). */
static inline bool gate_wait(struct gate *g, bool (*full)(void *lock), void *lock)
{
	/* acquire: pairs with the release increment of seq in gate_admit(). */
	uint32_t s = weft__load_acq(&g->seq);
	/* seq_cst: the announcement is ordered before the re-check of the queue, pairing
	 * with the unlocker's seq_cst queue update before its waiters load. */
	__atomic_fetch_add(&g->waiters, 1, __ATOMIC_SEQ_CST);
	bool slept = false;
	if (full(lock)) {
		weft__block_begin();
		weft__futex_wait(&g->seq, s, NULL);
		weft__block_end();
		slept = true;
	}
	__atomic_fetch_sub(&g->waiters, 1, __ATOMIC_RELAXED);
	return slept;
}

/* Called by the holder at unlock while it still holds the lock: true once per quantum.
 * handoffs is a field of the lock, touched only by its holder. */
static inline bool gate_quantum_over(uint32_t *handoffs)
{
	if (++*handoffs < GATE_QUANTUM)
		return false;
	*handoffs = 0;
	return true;
}

/* Called at unlock after the hand-off was published (seq_cst): admits one parked thread
 * if the queue ran empty or the quantum is over. */
static inline void gate_after_handoff(struct gate *g, bool queue_empty, bool quantum_over)
{
	if (__builtin_expect(__atomic_load_n(&g->waiters, __ATOMIC_SEQ_CST) == 0, 1))
		return;
	if (!queue_empty && !quantum_over)
		return;
	/* release: pairs with the acquire load of seq in gate_wait(). */
	weft__fadd_rel(&g->seq, 1u);
	weft__futex_wake(&g->seq, 1);
}

#endif
