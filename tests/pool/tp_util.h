/* tp_util.h - helpers shared by the thread-pool suites (test_pool, test_work,
 * test_pool_timer): backend skip, a gate that blocks like a weft primitive (it calls the
 * blocking hook), and bounded polling. */
#ifndef TP_UTIL_H
#define TP_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <weft/pool.h>
#include <weft/threadpool.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "port_util.h"

/* A one-shot gate: gate_wait sleeps (through the blocking hook, as every weft primitive
 * does) until gate_open. */
typedef struct tp_gate {
	uint32_t open;
} tp_gate;

static inline void gate_wait(tp_gate *g)
{
	while (!weft__load_acq(&g->open)) {
		weft__block_begin();
		weft__futex_wait(&g->open, 0, NULL);
		weft__block_end();
	}
}

static inline void gate_open(tp_gate *g)
{
	weft__store_rel(&g->open, 1u);
	weft__futex_wake(&g->open, INT32_MAX);
}

static inline void tp_sleep_ms(uint32_t ms)
{
	struct timespec d = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&d, NULL);
}

/* Polls cond every ms until true or timeout_ms passes; the result of the last poll. */
#define TP_WAIT_UNTIL(cond, timeout_ms)                                                         \
	({                                                                                      \
		uint64_t tp_end_ = weft_test_now_ns() + (uint64_t)(timeout_ms) * 1000000ull;     \
		bool tp_ok_;                                                                    \
		while (!(tp_ok_ = (cond)) && weft_test_now_ns() < tp_end_)                      \
			tp_sleep_ms(1);                                                         \
		tp_ok_;                                                                         \
	})

static inline weft_pool_stats tp_stats(weft_pool *p)
{
	weft_pool_stats s;
	weft_pool_get_stats(p, &s);
	return s;
}

#endif
