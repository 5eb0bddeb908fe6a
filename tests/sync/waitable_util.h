/* waitable_util.h - helpers shared by the waitable-object suites (event, sema, mutex,
 * wait_many, thread, apc, timer, process). Workers record; the main thread asserts. */
#ifndef WEFT_WAITABLE_UTIL_H
#define WEFT_WAITABLE_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <weft/sync.h>

#include "handle.h"
#include "weft_test.h"

/* Wait blocks currently linked on h (waiters that are, or are about to stop, waiting). */
static inline int wu_waiters_on(weft_handle *h)
{
	int n = 0;
	weft__obj_lock(h);
	for (struct weft__wait_block *wb = h->head; wb; wb = wb->next)
		n++;
	weft__obj_unlock(h);
	return n;
}

/* Polls until at least n wait blocks are linked on h (bounded by the ctest timeout). */
static inline void wu_wait_waiters(weft_handle *h, int n)
{
	while (wu_waiters_on(h) < n)
		weft_sleep_ex(1, false);
}

static inline uint32_t wu_load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void wu_add(uint32_t *p, uint32_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}

/* Polls until *p >= v. */
static inline void wu_wait_count(const uint32_t *p, uint32_t v)
{
	while (wu_load(p) < v)
		weft_sleep_ex(1, false);
}

static inline uint64_t wu_ms_since(uint64_t t0_ns)
{
	return (weft_test_now_ns() - t0_ns) / 1000000u;
}

/* Starts fn on a weft thread and returns its handle (asserting success). */
static inline weft_handle *wu_start(weft_thread_fn fn, void *arg)
{
	weft_handle *t = weft_thread_create(fn, arg, NULL, NULL);
	assert_non_null(t);
	return t;
}

/* Waits for the thread to end and closes its handle. */
static inline void wu_join(weft_handle *t)
{
	assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
	weft_handle_close(t);
}

#endif
