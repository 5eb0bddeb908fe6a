/* once.c - init-once. _private[0]: low 32 bits the state (0 not done, 1 running,
 * 2 done); _private[1]: the context produced by the successful run. Arrivals while one
 * thread runs the function sleep on the state word until it leaves 1. */
#include "atomic.h"
#include "futex.h"
#include "internal.h"

enum { ONCE_NONE, ONCE_RUNNING, ONCE_DONE };

static inline uint32_t *state(weft_once *o)
{
	return (uint32_t *)(void *)&o->_private[0];
}

void weft_once_init(weft_once *once)
{
	*once = (weft_once)WEFT_ONCE_INIT;
}

int weft_once_execute(weft_once *once, weft_once_fn fn, void *param, void **context)
{
	if (!once || !fn)
		return -EINVAL;
	for (;;) {
		/* acquire: pairs with the release store of DONE, so the context and everything
		 * fn initialized are visible. */
		uint32_t s = weft__load_acq(state(once));
		if (s == ONCE_DONE) {
			if (context)
				*context = (void *)(uintptr_t)weft__load_rlx(&once->_private[1]);
			return 0;
		}
		if (s == ONCE_NONE && weft__cas_acq(state(once), &s, ONCE_RUNNING)) {
			void *ctx = NULL;
			bool ok = fn(once, param, &ctx);
			if (ok)
				weft__store_rlx(&once->_private[1], (uint64_t)(uintptr_t)ctx);
			/* release: publishes fn's work and the context to the acquire above. */
			weft__store_rel(state(once), ok ? (uint32_t)ONCE_DONE : (uint32_t)ONCE_NONE);
			weft__futex_wake(state(once), INT_MAX);
			if (context && ok)
				*context = ctx;
			return ok ? 0 : -EAGAIN;
		}
		if (s == ONCE_RUNNING) {
			weft__block_begin();
			weft__futex_wait(state(once), ONCE_RUNNING, NULL);
			weft__block_end();
		}
	}
}
