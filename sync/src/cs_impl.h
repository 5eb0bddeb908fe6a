/* cs_impl.h - the layout of weft_cs, shared by cs.c and cond.c. */
#ifndef WEFT_CS_IMPL_H
#define WEFT_CS_IMPL_H

#include "internal.h"

/* locked: 0 free, 1 held (the futex word sleepers wait on).
 * owner: tid of the holder, 0 when free; written only by the holder, read by any thread
 * to test "do I own it" - a thread never reads its own tid there unless it owns the
 * section, so relaxed accesses suffice.
 * recursion, requeued: touched only by the holder. requeued counts threads a
 * condition variable's wake_all moved onto the rq futex word; each leave wakes one.
 * The count of threads asleep (or about to sleep) on locked is not here but in a global
 * bucket keyed by the section's address (cs.c): leave reads it after releasing the
 * section, when the section's memory may already belong to a thread that entered, left
 * and freed it.
 * Stats are relaxed counters bumped on the slow path only. */
struct cs_impl {
	uint32_t locked;
	uint32_t owner;
	uint64_t spin;
	uint32_t recursion;
	uint32_t rq;
	const char *name;
	uint64_t contentions, sleeps, spins_won;
	uint32_t reserved;
	uint32_t requeued;
};
_Static_assert(sizeof(struct cs_impl) == sizeof(weft_cs), "cs layout");

static inline struct cs_impl *cs_of(weft_cs *cs)
{
	return (struct cs_impl *)(void *)cs;
}

/* Takes the section for a thread that just slept on a condition variable. */
WEFT_INTERNAL void weft__cs_enter_after_wait(weft_cs *cs);

#endif
