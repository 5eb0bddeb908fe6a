/* The Interlocked family: return values match Win32, and concurrent updates are exact. */
#include <pthread.h>

#include <weft/interlocked.h>
#include <weft/sync.h>

#include "weft_test.h"

static void test_interlocked_values(void **state)
{
	(void)state;
	volatile int32_t v = 5;
	assert_int_equal(weft_interlocked_increment(&v), 6);
	assert_int_equal(weft_interlocked_decrement(&v), 5);
	assert_int_equal(weft_interlocked_exchange_add(&v, 10), 5);
	assert_int_equal(v, 15);
	assert_int_equal(weft_interlocked_exchange(&v, 3), 15);
	assert_int_equal(weft_interlocked_compare_exchange(&v, 9, 4), 3); /* no match */
	assert_int_equal(v, 3);
	assert_int_equal(weft_interlocked_compare_exchange(&v, 9, 3), 3); /* match */
	assert_int_equal(v, 9);
	assert_int_equal(weft_interlocked_and(&v, 8), 9);
	assert_int_equal(weft_interlocked_or(&v, 3), 8);
	assert_int_equal(weft_interlocked_xor(&v, 1), 11);
	assert_int_equal(v, 10);
	volatile int64_t w = INT64_C(1) << 40;
	assert_true(weft_interlocked_increment64(&w) == (INT64_C(1) << 40) + 1);
	assert_true(weft_interlocked_compare_exchange64_acq(&w, 7, (INT64_C(1) << 40) + 1) == (INT64_C(1) << 40) + 1);
	assert_true(w == 7);
	assert_true(weft_interlocked_exchange_add64_nf(&w, -7) == 7 && w == 0);
	assert_int_equal(weft_interlocked_increment_rel(&v), 11);
	int a, b;
	void *volatile p = &a;
	assert_ptr_equal(weft_interlocked_compare_exchange_pointer(&p, &b, &b), &a);
	assert_ptr_equal(weft_interlocked_compare_exchange_pointer(&p, &b, &a), &a);
	assert_ptr_equal(weft_interlocked_exchange_pointer(&p, NULL), &b);
	weft_memory_barrier();
}

struct shared {
	volatile int32_t counter;
	volatile int64_t sum;
	uint64_t iters;
};

static void *adder(void *arg)
{
	struct shared *s = arg;
	for (uint64_t i = 0; i < s->iters; i++) {
		weft_interlocked_increment(&s->counter);
		weft_interlocked_exchange_add64(&s->sum, 3);
		weft_interlocked_decrement_nf(&s->counter);
		weft_interlocked_increment_acq(&s->counter);
	}
	return NULL;
}

static void test_interlocked_concurrent(void **state)
{
	(void)state;
	static struct shared s;
	s = (struct shared){ .iters = weft_test_iters(200000) };
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, adder, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(s.counter, (int32_t)(4 * s.iters));
	assert_true(s.sum == (int64_t)(12 * s.iters));
	assert_true(WEFT_CACHE_LINE == 64);
	assert_true(weft_cpu_count() >= 1);
	assert_true(weft_current_tid() > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interlocked_values),
		cmocka_unit_test(test_interlocked_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
