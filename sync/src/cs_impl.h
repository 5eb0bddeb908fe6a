/* cs_impl.h - the layout of weft_cs, shared by cs.c and cond.c. */
#ifndef WEFT_CS_IMPL_H
#define WEFT_CS_IMPL_H

#include "internal.h"

/* state: 0 free, 1 held, 2 held and someone may sleep on the futex at &state (the
 * unlocker must wake one). owner: tid of the holder, 0 when free; written only by the
 * holder, read by any thread to test "do I own it" - a thread can never read its own tid
 * there unless it owns the section, so relaxed accesses suffice. recursion: how many
 * times the owner entered; touched only by the owner. Stats are relaxed counters bumped
 * on the slow path only. */
struct cs_impl {
	uint32_t state;
	uint32_t owner;
	uint64_t spin;
	uint32_t recursion;
	uint32_t flags;
	const char *name;
	uint64_t contentions, sleeps, spins_won;
	uint64_t reserved;
};
_Static_assert(sizeof(struct cs_impl) == sizeof(weft_cs), "cs layout");

static inline struct cs_impl *cs_of(weft_cs *cs)
{
	return (struct cs_impl *)(void *)cs;
}

/* Takes the section for a thread that just slept on a condition variable: it may have
 * been requeued from the condition's futex onto &state, so it must leave state at 2. */
WEFT_INTERNAL void weft__cs_enter_after_wait(weft_cs *cs);

#endif
