/* test_timer.c - waitable timers: one-shot and periodic, manual and auto reset, set
 * resets the signal, cancel, the completion APC, closing an armed timer, bad input. */
#include <errno.h>

#include "waitable_util.h"

static void test_timer_one_shot_manual(void **state)
{
	(void)state;
	weft_handle *t = weft_timer_create(true);
	assert_non_null(t);
	assert_int_equal(weft_wait(t, 0), WEFT_WAIT_TIMEOUT); /* inactive */
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_timer_set(t, 50, 0, NULL, 0), 0);
	assert_int_equal(weft_wait(t, 5000), WEFT_WAIT_OBJECT_0);
	uint64_t ms = wu_ms_since(t0);
	assert_true(ms >= 49 && ms < 2000);
	/* manual: stays signaled */
	assert_int_equal(weft_wait(t, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(t, 0), WEFT_WAIT_OBJECT_0);
	/* setting it again makes it non-signaled until it expires */
	assert_int_equal(weft_timer_set(t, 3600 * 1000, 0, NULL, 0), 0);
	assert_int_equal(weft_wait(t, 0), WEFT_WAIT_TIMEOUT);
	assert_int_equal(weft_timer_cancel(t), 0);
	weft_handle_close(t);
}

static void test_timer_one_shot_auto(void **state)
{
	(void)state;
	weft_handle *t = weft_timer_create(false);
	assert_int_equal(weft_timer_set(t, 0, 0, NULL, 0), 0); /* due now */
	assert_int_equal(weft_wait(t, 5000), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(t, 30), WEFT_WAIT_TIMEOUT); /* consumed, one-shot */
	weft_handle_close(t);
}

static void test_timer_periodic_and_cancel(void **state)
{
	(void)state;
	weft_handle *t = weft_timer_create(false);
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_timer_set(t, 10, 10, NULL, 0), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(weft_wait(t, 5000), WEFT_WAIT_OBJECT_0);
	assert_true(wu_ms_since(t0) >= 49);
	assert_int_equal(weft_timer_cancel(t), 0);
	(void)weft_wait(t, 0); /* an expiry from before the cancel may still be signaled */
	assert_int_equal(weft_wait(t, 60), WEFT_WAIT_TIMEOUT);
	weft_handle_close(t);
}

static uint32_t apc_calls;
static uintptr_t apc_last;
static uint32_t apc_tid;

static void on_timer(uintptr_t arg)
{
	apc_last = arg;
	apc_tid = weft_current_tid();
	wu_add(&apc_calls, 1);
}

/* The completion routine runs on the thread that set the timer, in its alertable wait. */
static void test_timer_completion_apc(void **state)
{
	(void)state;
	weft_handle *t = weft_timer_create(true);
	assert_int_equal(weft_timer_set(t, 20, 0, on_timer, 42), 0);
	assert_int_equal(weft_wait(t, 5000), WEFT_WAIT_OBJECT_0); /* non-alertable: no APC yet */
	assert_int_equal(wu_load(&apc_calls), 0);
	int r;
	while ((r = weft_sleep_ex(5000, true)) != WEFT_WAIT_IO_COMPLETION)
		assert_int_equal(r, 0);
	assert_int_equal(apc_calls, 1);
	assert_int_equal(apc_last, 42);
	assert_int_equal(apc_tid, weft_current_tid());
	weft_handle_close(t);
}

/* Closing an armed periodic timer stops it; waiters on a timer in a wait-any. */
static void test_timer_close_armed_and_wait_many(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++) {
		weft_handle *t = weft_timer_create(i & 1);
		assert_int_equal(weft_timer_set(t, 1, 1, NULL, 0), 0);
		if (i & 2)
			weft_sleep_ex(2, false);
		weft_handle_close(t);
	}
	weft_handle *ev = weft_event_create(false, false), *t = weft_timer_create(false);
	weft_handle *hs[2] = { ev, t };
	assert_int_equal(weft_timer_set(t, 20, 0, NULL, 0), 0);
	assert_int_equal(weft_wait_many(hs, 2, false, 5000), 1);
	weft_event_set(ev);
	assert_int_equal(weft_timer_set(t, 20, 0, NULL, 0), 0);
	assert_int_equal(weft_wait_many(hs, 2, true, 5000), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(ev);
	weft_handle_close(t);
}

static void test_timer_bad_input(void **state)
{
	(void)state;
	weft_handle *ev = weft_event_create(false, false);
	assert_int_equal(weft_timer_set(NULL, 1, 0, NULL, 0), -EINVAL);
	assert_int_equal(weft_timer_set(ev, 1, 0, NULL, 0), -EINVAL);
	assert_int_equal(weft_timer_cancel(NULL), -EINVAL);
	assert_int_equal(weft_timer_cancel(ev), -EINVAL);
	weft_handle_close(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_one_shot_manual),
		cmocka_unit_test(test_timer_one_shot_auto),
		cmocka_unit_test(test_timer_periodic_and_cancel),
		cmocka_unit_test(test_timer_completion_apc),
		cmocka_unit_test(test_timer_close_armed_and_wait_many),
		cmocka_unit_test(test_timer_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
