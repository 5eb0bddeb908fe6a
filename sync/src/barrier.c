/* barrier.c - synchronization barrier. w[0] arrivals in this phase, w[1] phase number
 * (the futex word), w[2] total, w[3] spin rounds. The last arrival resets the count,
 * then bumps the phase with release and wakes the sleepers; the others spin on the
 * phase, then sleep until it moves. A released thread may re-enter at once: the reset
 * happened before the phase moved, and it saw the move. */
#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define DEFAULT_SPIN 400u /* ~10 us of PAUSE */

int weft_barrier_init(weft_barrier *b, uint32_t total, int32_t spin_count)
{
	if (!b || total == 0)
		return -EINVAL;
	*b = (weft_barrier){{0}};
	b->_private[2] = total;
	b->_private[3] = spin_count < 0 ? DEFAULT_SPIN : (uint32_t)spin_count;
	return 0;
}

void weft_barrier_destroy(weft_barrier *b)
{
	(void)b;
}

bool weft_barrier_enter(weft_barrier *b)
{
	uint32_t *count = &b->_private[0], *phase = &b->_private[1];
	/* acquire: pairs with the release increment of the phase by the previous last one. */
	uint32_t p = weft__load_acq(phase);
	/* acq_rel: the last arrival acquires every earlier arrival's writes. */
	if (weft__fadd_acqrel(count, 1u) + 1 == b->_private[2]) {
		weft__store_rlx(count, 0u);
		/* release: publishes the reset and all arrivals' writes to the released. */
		weft__fadd_rel(phase, 1u);
		weft__futex_wake(phase, INT_MAX);
		return true;
	}
	for (uint32_t i = weft__smp() ? b->_private[3] : 0; i > 0; i--) {
		if (weft__load_acq(phase) != p)
			return false;
		weft_cpu_relax();
	}
	weft__block_begin();
	while (weft__load_acq(phase) == p)
		weft__futex_wait(phase, p, NULL);
	weft__block_end();
	return false;
}
