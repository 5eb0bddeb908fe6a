/* test_sema.c - semaphores: bad arguments, counts, over-maximum, waking exactly `count`
 * waiters, and a producer/consumer stress that counts every unit. */
#include <errno.h>

#include "waitable_util.h"

static void test_sema_bad_input(void **state)
{
	(void)state;
	assert_null(weft_semaphore_create(-1, 1));
	assert_null(weft_semaphore_create(0, 0));
	assert_null(weft_semaphore_create(2, 1));
	weft_handle *s = weft_semaphore_create(0, 3), *ev = weft_event_create(true, true);
	assert_int_equal(weft_semaphore_release(NULL, 1, NULL), -EINVAL);
	assert_int_equal(weft_semaphore_release(ev, 1, NULL), -EINVAL); /* wrong kind */
	assert_int_equal(weft_semaphore_release(s, 0, NULL), -EINVAL);
	assert_int_equal(weft_semaphore_release(s, -1, NULL), -EINVAL);
	assert_int_equal(weft_mutex_release(s), -EINVAL);
	weft_handle_close(s);
	weft_handle_close(ev);
}

static void test_sema_counts(void **state)
{
	(void)state;
	weft_handle *s = weft_semaphore_create(1, 5);
	int32_t prev = -1;
	assert_int_equal(weft_semaphore_release(s, 3, &prev), 0);
	assert_int_equal(prev, 1);
	/* over the maximum: refused whole, count unchanged */
	assert_int_equal(weft_semaphore_release(s, 2, &prev), -EOVERFLOW);
	assert_int_equal(weft_semaphore_release(s, 1, &prev), 0);
	assert_int_equal(prev, 4);
	assert_int_equal(weft_semaphore_release(s, 1, &prev), -EOVERFLOW);
	for (int i = 0; i < 5; i++)
		assert_int_equal(weft_wait(s, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(s, 0), WEFT_WAIT_TIMEOUT);
	assert_int_equal(weft_semaphore_release(s, 5, &prev), 0);
	assert_int_equal(prev, 0);
	/* INT32_MAX maximum does not overflow the check */
	weft_handle *big = weft_semaphore_create(INT32_MAX - 1, INT32_MAX);
	assert_int_equal(weft_semaphore_release(big, 1, &prev), 0);
	assert_int_equal(prev, INT32_MAX - 1);
	assert_int_equal(weft_semaphore_release(big, INT32_MAX, NULL), -EOVERFLOW);
	weft_handle_close(big);
	weft_handle_close(s);
}

struct sem_shared {
	weft_handle *s;
	uint32_t woken;
};

static unsigned sem_waiter(void *arg)
{
	struct sem_shared *s = arg;
	if (weft_wait(s->s, WEFT_INFINITE) == WEFT_WAIT_OBJECT_0)
		wu_add(&s->woken, 1);
	return 0;
}

static void test_sema_release_wakes_count(void **state)
{
	(void)state;
	struct sem_shared s = { .s = weft_semaphore_create(0, 100) };
	weft_handle *t[5];
	for (int i = 0; i < 5; i++)
		t[i] = wu_start(sem_waiter, &s);
	wu_wait_waiters(s.s, 5);
	assert_int_equal(weft_semaphore_release(s.s, 2, NULL), 0);
	wu_wait_count(&s.woken, 2);
	weft_sleep_ex(20, false);
	assert_int_equal(wu_load(&s.woken), 2);
	assert_int_equal(weft_wait(s.s, 0), WEFT_WAIT_TIMEOUT); /* both units taken */
	assert_int_equal(weft_semaphore_release(s.s, 4, NULL), 0);
	for (int i = 0; i < 5; i++)
		wu_join(t[i]);
	assert_int_equal(s.woken, 5);
	/* one unit left over */
	assert_int_equal(weft_wait(s.s, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(s.s, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(s.s);
}

struct pc {
	weft_handle *items, *space;
	uint64_t per_producer, per_consumer;
	uint64_t produced, consumed; /* atomic */
};

static unsigned producer(void *arg)
{
	struct pc *p = arg;
	for (uint64_t i = 0; i < p->per_producer; i++) {
		if (weft_wait(p->space, WEFT_INFINITE) != WEFT_WAIT_OBJECT_0)
			return 1;
		__atomic_fetch_add(&p->produced, 1, __ATOMIC_RELAXED);
		if (weft_semaphore_release(p->items, 1, NULL) != 0)
			return 2;
	}
	return 0;
}

static unsigned consumer(void *arg)
{
	struct pc *p = arg;
	for (uint64_t i = 0; i < p->per_consumer; i++) {
		if (weft_wait(p->items, WEFT_INFINITE) != WEFT_WAIT_OBJECT_0)
			return 1;
		__atomic_fetch_add(&p->consumed, 1, __ATOMIC_RELAXED);
		if (weft_semaphore_release(p->space, 1, NULL) != 0)
			return 2;
	}
	return 0;
}

/* A bounded buffer of 4 slots between 3 producers and 2 consumers: every unit released
 * is taken exactly once and no release ever overflows. */
static void test_sema_producer_consumer(void **state)
{
	(void)state;
	uint64_t n = weft_test_iters(12000);
	struct pc p = { weft_semaphore_create(0, 4), weft_semaphore_create(4, 4), n, n * 3 / 2, 0, 0 };
	weft_handle *t[5];
	for (int i = 0; i < 3; i++)
		t[i] = wu_start(producer, &p);
	for (int i = 3; i < 5; i++)
		t[i] = wu_start(consumer, &p);
	for (int i = 0; i < 5; i++) {
		unsigned code = 99;
		assert_int_equal(weft_wait(t[i], WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
		assert_int_equal(weft_thread_exit_code(t[i], &code), 0);
		assert_int_equal(code, 0);
		weft_handle_close(t[i]);
	}
	assert_int_equal(p.produced, 3 * n);
	assert_int_equal(p.consumed, 3 * n);
	assert_int_equal(weft_wait(p.items, 0), WEFT_WAIT_TIMEOUT);
	int32_t prev;
	assert_int_equal(weft_semaphore_release(p.space, 1, &prev), -EOVERFLOW);
	weft_handle_close(p.items);
	weft_handle_close(p.space);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sema_bad_input),
		cmocka_unit_test(test_sema_counts),
		cmocka_unit_test(test_sema_release_wakes_count),
		cmocka_unit_test(test_sema_producer_consumer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
