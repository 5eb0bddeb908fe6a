/* test_pool_wait.c - wait objects: signaled, timed out, already signaled, many at once,
 * re-armed from the callback, cancelled, on a thread handle, in a cleanup group. */
#include <pthread.h>
#include <string.h>

#include <weft/waitable.h>

#include "tp_util.h"

#define MS 1000000ull

struct got {
	uint32_t calls;	 /* atomic */
	int32_t result;	 /* atomic */
	uint64_t at;	 /* atomic */
};

static void on_wait(void *arg, int result)
{
	struct got *g = arg;
	weft__store_rlx(&g->result, result);
	weft__store_rlx(&g->at, weft_test_now_ns());
	weft__fadd_rel(&g->calls, 1u);
}

static void test_pool_wait_signaled(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_handle *ev = weft_event_create(false, false);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	assert_non_null(w);
	assert_int_equal(weft_pool_waiter_set(w, ev, 5000), 0);
	tp_sleep_ms(30);
	assert_int_equal(weft__load_acq(&g.calls), 0);
	weft_event_set(ev);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g.calls) == 1, 5000));
	assert_int_equal(weft__load_rlx(&g.result), WEFT_WAIT_OBJECT_0);
	/* One-shot: a second signal does not call again until re-armed. */
	weft_event_set(ev);
	tp_sleep_ms(50);
	assert_int_equal(weft__load_acq(&g.calls), 1);
	/* The auto-reset event was not consumed by anyone: still set. */
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_OBJECT_0);
	weft_pool_waiter_close(w);
	weft_handle_close(ev);
	weft_pool_destroy(p);
}

static void test_pool_wait_timeout(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_handle *ev = weft_event_create(true, false);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_pool_waiter_set(w, ev, 50), 0);
	weft_handle_close(ev); /* the waiter holds its own duplicate */
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g.calls) == 1, 5000));
	assert_int_equal(weft__load_rlx(&g.result), WEFT_WAIT_TIMEOUT);
	uint64_t dt = weft__load_rlx(&g.at) - t0;
	assert_true(dt >= 50 * MS);
	assert_true(dt < 2000 * MS);
	weft_pool_waiter_wait(w, false);
	weft_pool_waiter_close(w);
	weft_pool_destroy(p);
}

static void test_pool_wait_already_signaled_semaphore(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_handle *sem = weft_semaphore_create(2, 10);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	assert_int_equal(weft_pool_waiter_set(w, sem, 0), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g.calls) == 1, 5000));
	assert_int_equal(weft__load_rlx(&g.result), WEFT_WAIT_OBJECT_0);
	int32_t prev = -1;
	assert_int_equal(weft_semaphore_release(sem, 1, &prev), 0);
	assert_int_equal(prev, 1); /* the wait took one unit */
	weft_pool_waiter_close(w);
	weft_handle_close(sem);
	weft_pool_destroy(p);
}

/* Re-armed from its own callback: five units of a semaphore, five calls. */
struct rearm {
	weft_pool_waiter *w;
	weft_handle *sem;
	uint32_t calls;
};

static void on_rearm(void *arg, int result)
{
	struct rearm *r = arg;
	if (result == WEFT_WAIT_OBJECT_0 && weft__fadd_acqrel(&r->calls, 1u) + 1 < 5)
		weft_pool_waiter_set(r->w, r->sem, WEFT_INFINITE);
}

static void test_pool_wait_rearm_from_callback(void **state)
{
	(void)state;
	struct rearm r = {0};
	weft_pool *p = weft_pool_create(NULL);
	r.sem = weft_semaphore_create(0, 100);
	r.w = weft_pool_waiter_create(p, on_rearm, &r);
	weft_pool_waiter_set(r.w, r.sem, WEFT_INFINITE);
	assert_int_equal(weft_semaphore_release(r.sem, 7, NULL), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&r.calls) == 5, 5000));
	weft_pool_waiter_wait(r.w, false);
	int32_t prev = -1;
	weft_semaphore_release(r.sem, 1, &prev);
	assert_int_equal(prev, 2); /* exactly 5 taken */
	weft_pool_waiter_close(r.w);
	weft_handle_close(r.sem);
	weft_pool_destroy(p);
}

static void test_pool_wait_many_objects(void **state)
{
	(void)state;
	enum { N = 1000 };
	static struct got g[N];
	static weft_handle *ev[N];
	static weft_pool_waiter *w[N];
	memset(g, 0, sizeof g);
	weft_pool *p = weft_pool_create(NULL);
	for (int i = 0; i < N; i++) {
		ev[i] = weft_event_create(true, false);
		w[i] = weft_pool_waiter_create(p, on_wait, &g[i]);
		assert_int_equal(weft_pool_waiter_set(w[i], ev[i], i % 2 ? WEFT_INFINITE : 60000), 0);
	}
	for (int i = N - 1; i >= 0; i--)
		weft_event_set(ev[i]);
	bool all = TP_WAIT_UNTIL(({
		bool ok = true;
		for (int i = 0; ok && i < N; i++)
			ok = weft__load_acq(&g[i].calls) == 1;
		ok;
	}), 20000);
	assert_true(all);
	for (int i = 0; i < N; i++) {
		weft_pool_waiter_close(w[i]);
		weft_handle_close(ev[i]);
	}
	weft_pool_destroy(p);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].result, WEFT_WAIT_OBJECT_0);
	}
}

static void test_pool_wait_cancel(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_handle *ev = weft_event_create(true, false);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	weft_pool_waiter_set(w, ev, 100);
	weft_pool_waiter_wait(w, true); /* disarms */
	weft_event_set(ev);
	tp_sleep_ms(200);
	assert_int_equal(weft__load_acq(&g.calls), 0);
	/* Disarm with NULL, then re-arm. */
	weft_pool_waiter_set(w, ev, WEFT_INFINITE);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g.calls) == 1, 5000));
	weft_pool_waiter_close(w);
	weft_handle_close(ev);
	weft_pool_destroy(p);
}

static unsigned short_thread(void *arg)
{
	(void)arg;
	tp_sleep_ms(30);
	return 7;
}

static void test_pool_wait_thread_handle(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_handle *th = weft_thread_create(short_thread, NULL, NULL, NULL);
	assert_non_null(th);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	weft_pool_waiter_set(w, th, 10000);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g.calls) == 1, 5000));
	assert_int_equal(weft__load_rlx(&g.result), WEFT_WAIT_OBJECT_0);
	unsigned code = 0;
	assert_int_equal(weft_thread_exit_code(th, &code), 0);
	assert_int_equal(code, 7);
	weft_pool_waiter_close(w);
	weft_handle_close(th);
	weft_pool_destroy(p);
}

static void test_pool_wait_cleanup_group(void **state)
{
	(void)state;
	struct got g = {0};
	weft_pool *p = weft_pool_create(NULL);
	weft_cleanup_group *grp = weft_cleanup_group_create(p);
	weft_handle *ev = weft_event_create(true, false);
	weft_pool_waiter *w = weft_pool_waiter_create(p, on_wait, &g);
	assert_int_equal(weft_cleanup_group_add_waiter(grp, w), 0);
	weft_pool_waiter_set(w, ev, WEFT_INFINITE);
	weft_cleanup_group_close(grp, true); /* disarms, closes */
	weft_event_set(ev);
	tp_sleep_ms(50);
	weft_handle_close(ev);
	weft_pool_destroy(p);
	assert_int_equal(g.calls, 0);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_wait_signaled),
		cmocka_unit_test(test_pool_wait_timeout),
		cmocka_unit_test(test_pool_wait_already_signaled_semaphore),
		cmocka_unit_test(test_pool_wait_rearm_from_callback),
		cmocka_unit_test(test_pool_wait_many_objects),
		cmocka_unit_test(test_pool_wait_cancel),
		cmocka_unit_test(test_pool_wait_thread_handle),
		cmocka_unit_test(test_pool_wait_cleanup_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
