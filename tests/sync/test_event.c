/* test_event.c - events: auto-reset wakes exactly one, manual wakes all, pulse, timeouts,
 * bad input, closing a handle while another thread waits on it. */
#include <errno.h>

#include "waitable_util.h"

struct ev_shared {
	weft_handle *ev;
	uint32_t timeout;
	uint32_t woken;
	int results[16];
};

static unsigned waiter(void *arg)
{
	struct ev_shared *s = arg;
	int r = weft_wait(s->ev, s->timeout);
	uint32_t slot = __atomic_fetch_add(&s->woken, 1, __ATOMIC_ACQ_REL);
	s->results[slot] = r;
	return 0;
}

static void test_event_bad_input(void **state)
{
	(void)state;
	weft_handle *sem = weft_semaphore_create(1, 1);
	assert_int_equal(weft_wait(NULL, 0), -EINVAL);
	assert_int_equal(weft_wait_ex(NULL, 0, true), -EINVAL);
	assert_int_equal(weft_event_set2(NULL), -EINVAL);
	assert_int_equal(weft_event_reset2(NULL), -EINVAL);
	assert_int_equal(weft_event_set2(sem), -EINVAL); /* wrong kind */
	weft_event_set(NULL);                            /* ignored, no crash */
	weft_event_set(sem);
	weft_event_pulse(sem);
	assert_null(weft_handle_dup(NULL));
	weft_handle_close(NULL);
	/* a closed handle (its memory sits in weft's quarantine, tagged dead) */
	weft_handle *gone = weft_event_create(true, true);
	weft_handle_close(gone);
	assert_int_equal(weft_wait(gone, 0), -EINVAL);
	assert_int_equal(weft_event_set2(gone), -EINVAL);
	assert_null(weft_handle_dup(gone));
	weft_handle *two[2] = { sem, gone };
	assert_int_equal(weft_wait_many(two, 2, false, 0), -EINVAL);
	weft_handle_close(gone); /* double close: ignored */
	/* the semaphore was not touched by the event calls */
	assert_int_equal(weft_wait(sem, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(sem, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(sem);
}

static void test_event_initial_state(void **state)
{
	(void)state;
	weft_handle *a = weft_event_create(false, true), *m = weft_event_create(true, false);
	assert_int_equal(weft_wait(a, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(a, 0), WEFT_WAIT_TIMEOUT); /* auto-reset consumed it */
	assert_int_equal(weft_wait(m, 0), WEFT_WAIT_TIMEOUT);
	weft_event_set(m);
	for (int i = 0; i < 3; i++)
		assert_int_equal(weft_wait(m, 0), WEFT_WAIT_OBJECT_0); /* manual stays set */
	weft_event_reset(m);
	assert_int_equal(weft_wait(m, 0), WEFT_WAIT_TIMEOUT);
	weft_handle *d = weft_handle_dup(m);
	assert_ptr_equal(d, m);
	weft_handle_close(d);
	weft_handle_close(a);
	weft_handle_close(m);
}

#define N 6

static void test_event_auto_wakes_exactly_one(void **state)
{
	(void)state;
	struct ev_shared s = { .ev = weft_event_create(false, false), .timeout = WEFT_INFINITE };
	weft_handle *t[N];
	for (int i = 0; i < N; i++)
		t[i] = wu_start(waiter, &s);
	wu_wait_waiters(s.ev, N);
	for (uint32_t k = 1; k <= N; k++) {
		weft_event_set(s.ev);
		wu_wait_count(&s.woken, k);
		weft_sleep_ex(20, false); /* room for a wrong extra wake-up to show */
		assert_int_equal(wu_load(&s.woken), k);
		/* the waiter consumed the set: nothing left for a poll */
		assert_int_equal(weft_wait(s.ev, 0), WEFT_WAIT_TIMEOUT);
		if (k < N)
			wu_wait_waiters(s.ev, (int)(N - k)); /* the woken one has unlinked */
	}
	for (int i = 0; i < N; i++) {
		wu_join(t[i]);
		assert_int_equal(s.results[i], WEFT_WAIT_OBJECT_0);
	}
	weft_handle_close(s.ev);
}

static void test_event_manual_wakes_all(void **state)
{
	(void)state;
	struct ev_shared s = { .ev = weft_event_create(true, false), .timeout = WEFT_INFINITE };
	weft_handle *t[N];
	for (int i = 0; i < N; i++)
		t[i] = wu_start(waiter, &s);
	wu_wait_waiters(s.ev, N);
	weft_event_set(s.ev);
	for (int i = 0; i < N; i++)
		wu_join(t[i]);
	assert_int_equal(s.woken, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(s.results[i], WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(s.ev, 0), WEFT_WAIT_OBJECT_0); /* still set */
	weft_handle_close(s.ev);
}

static void test_event_pulse(void **state)
{
	(void)state;
	/* manual: every current waiter goes, the event ends reset */
	struct ev_shared s = { .ev = weft_event_create(true, false), .timeout = WEFT_INFINITE };
	weft_handle *t[N];
	for (int i = 0; i < N; i++)
		t[i] = wu_start(waiter, &s);
	wu_wait_waiters(s.ev, N);
	weft_event_pulse(s.ev);
	for (int i = 0; i < N; i++)
		wu_join(t[i]);
	assert_int_equal(s.woken, N);
	assert_int_equal(weft_wait(s.ev, 0), WEFT_WAIT_TIMEOUT);
	/* no waiter: a pulse leaves nothing behind */
	weft_event_pulse(s.ev);
	assert_int_equal(weft_wait(s.ev, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(s.ev);

	/* auto: exactly one of two waiters goes */
	struct ev_shared a = { .ev = weft_event_create(false, false), .timeout = WEFT_INFINITE };
	weft_handle *t0 = wu_start(waiter, &a), *t1 = wu_start(waiter, &a);
	wu_wait_waiters(a.ev, 2);
	weft_event_pulse(a.ev);
	wu_wait_count(&a.woken, 1);
	weft_sleep_ex(20, false);
	assert_int_equal(wu_load(&a.woken), 1);
	assert_int_equal(weft_wait(a.ev, 0), WEFT_WAIT_TIMEOUT);
	weft_event_set(a.ev);
	wu_join(t0);
	wu_join(t1);
	assert_int_equal(a.woken, 2);
	weft_handle_close(a.ev);
}

static void test_event_timeout(void **state)
{
	(void)state;
	weft_handle *ev = weft_event_create(false, false);
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_TIMEOUT);
	t0 = weft_test_now_ns();
	assert_int_equal(weft_wait(ev, 50), WEFT_WAIT_TIMEOUT);
	uint64_t ms = wu_ms_since(t0);
	assert_true(ms >= 50 && ms < 2000);
	/* a timed-out waiter left nothing linked */
	assert_int_equal(wu_waiters_on(ev), 0);
	weft_handle_close(ev);
}

/* The waiter holds its own reference: closing the only handle mid-wait is safe. */
static void test_event_close_while_waiting(void **state)
{
	(void)state;
	struct ev_shared s = { .ev = weft_event_create(false, false), .timeout = 200 };
	weft_handle *t = wu_start(waiter, &s);
	wu_wait_waiters(s.ev, 1);
	weft_handle_close(s.ev); /* the wait's reference keeps the object alive */
	wu_join(t);
	assert_int_equal(s.results[0], WEFT_WAIT_TIMEOUT);

	/* and a set through a duplicate still reaches the waiter */
	struct ev_shared d = { .ev = weft_event_create(false, false), .timeout = WEFT_INFINITE };
	weft_handle *dup = weft_handle_dup(d.ev);
	t = wu_start(waiter, &d);
	wu_wait_waiters(d.ev, 1);
	weft_handle_close(d.ev);
	weft_event_set(dup);
	wu_join(t);
	assert_int_equal(d.results[0], WEFT_WAIT_OBJECT_0);
	weft_handle_close(dup);
}

struct pingpong {
	weft_handle *ping, *pong;
	uint64_t iters;
	uint64_t got;
};

static unsigned ponger(void *arg)
{
	struct pingpong *p = arg;
	for (uint64_t i = 0; i < p->iters; i++) {
		if (weft_wait(p->ping, WEFT_INFINITE) != WEFT_WAIT_OBJECT_0)
			break;
		p->got++;
		weft_event_set(p->pong);
	}
	return 0;
}

/* Two auto-reset events bounce a token: every set is seen exactly once. */
static void test_event_pingpong(void **state)
{
	(void)state;
	struct pingpong p = { weft_event_create(false, false), weft_event_create(false, false),
			      weft_test_iters(20000), 0 };
	weft_handle *t = wu_start(ponger, &p);
	uint64_t back = 0;
	for (uint64_t i = 0; i < p.iters; i++) {
		weft_event_set(p.ping);
		if (weft_wait(p.pong, WEFT_INFINITE) == WEFT_WAIT_OBJECT_0)
			back++;
	}
	wu_join(t);
	assert_int_equal(back, p.iters);
	assert_int_equal(p.got, p.iters);
	weft_handle_close(p.ping);
	weft_handle_close(p.pong);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_bad_input),
		cmocka_unit_test(test_event_initial_state),
		cmocka_unit_test(test_event_auto_wakes_exactly_one),
		cmocka_unit_test(test_event_manual_wakes_all),
		cmocka_unit_test(test_event_pulse),
		cmocka_unit_test(test_event_timeout),
		cmocka_unit_test(test_event_close_while_waiting),
		cmocka_unit_test(test_event_pingpong),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
