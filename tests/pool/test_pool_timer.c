/* test_pool_timer.c - timers on the pool: one-shot within tolerance, periodic without
 * drift, cancel, re-arm, windows, and 100,000 timers on one timer thread. */
#include <dirent.h>
#include <pthread.h>
#include <string.h>

#include "pool_internal.h"
#include "tp_util.h"

#define MS 1000000ull

struct shot {
	uint64_t at[256]; /* fire times (ns) */
	uint32_t claim;	  /* atomic: slot counter */
	uint32_t n;	  /* atomic: calls whose time is stored (release) */
};

static void record(void *arg)
{
	struct shot *s = arg;
	uint32_t k = weft__fadd_rlx(&s->claim, 1u);
	if (k < 256)
		s->at[k] = weft_test_now_ns();
	weft__fadd_rel(&s->n, 1u); /* publishes at[k] to the acquire loads of n */
}

static void test_pool_timer_one_shot_in_tolerance(void **state)
{
	(void)state;
	static struct shot s;
	memset(&s, 0, sizeof s);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_timer *t = weft_pool_timer_create(p, record, &s);
	assert_non_null(t);
	assert_false(weft_pool_timer_is_set(t));
	uint64_t t0 = weft_test_now_ns();
	weft_pool_timer_set(t, 50, 0, 0);
	assert_true(weft_pool_timer_is_set(t));
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&s.n) == 1, 5000));
	weft_pool_timer_wait(t, false);
	tp_sleep_ms(100);
	assert_int_equal(weft__load_acq(&s.n), 1); /* once */
	assert_false(weft_pool_timer_is_set(t));
	uint64_t dt = s.at[0] - t0;
	assert_true(dt >= 50 * MS);
	assert_true(dt < 2000 * MS);
	assert_int_equal(weft_pool_timer_fired(t), 1);
	weft_pool_timer_close(t);
	weft_pool_destroy(p);
}

static uint64_t due_of(weft_pool *p, weft_pool_timer *t)
{
	pthread_mutex_lock(&p->timer_lock);
	uint64_t d = t->due_ns;
	pthread_mutex_unlock(&p->timer_lock);
	return d;
}

/* Period 10 ms for ~300 ms: every call is on or after its due time, the schedule stays
 * on the grid due0 + k * period (the drift check: latency never moves the next due
 * time), and the count is about right. */
static void test_pool_timer_periodic_no_drift(void **state)
{
	(void)state;
	static struct shot s;
	memset(&s, 0, sizeof s);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_timer *t = weft_pool_timer_create(p, record, &s);
	weft_pool_timer_set(t, 20, 10, 0);
	uint64_t due0 = due_of(p, t);
	tp_sleep_ms(320);
	uint64_t due_now = due_of(p, t);
	weft_pool_timer_wait(t, true);
	uint64_t t_end = weft_test_now_ns();
	assert_false(weft_pool_timer_is_set(t));
	uint32_t n = weft__load_acq(&s.n);
	weft_pool_timer_close(t);
	weft_pool_destroy(p);
	assert_true(due_now > due0);
	assert_int_equal((due_now - due0) % (10 * MS), 0);
	assert_true(n >= 5);  /* generous: a loaded machine may skip periods */
	assert_true(n <= (t_end - due0) / (10 * MS) + 1); /* never more than one per period */
	uint32_t m = n < 256 ? n : 256;
	for (uint32_t k = 0; k < m; k++)
		assert_true(s.at[k] >= due0 + (uint64_t)k * 10 * MS); /* never early */
}

/* A periodic callback slower than its period does not pile up calls. */
static void slow_tick(void *arg)
{
	weft__fadd_rlx((uint64_t *)arg, 1u);
	tp_sleep_ms(30);
}

static void test_pool_timer_slow_callback_merges(void **state)
{
	(void)state;
	uint64_t n = 0;
	weft_pool_config cfg = {1, 1, 1, "tp-slow"};
	weft_pool *p = weft_pool_create(&cfg);
	weft_pool_timer *t = weft_pool_timer_create(p, slow_tick, &n);
	uint64_t t0 = weft_test_now_ns();
	weft_pool_timer_set(t, 0, 1, 0);
	tp_sleep_ms(200);
	weft_pool_timer_wait(t, true);
	uint64_t dt = weft_test_now_ns() - t0;
	uint64_t ran = weft__load_acq(&n);
	uint64_t fired = weft_pool_timer_fired(t);
	weft_pool_timer_close(t);
	weft_pool_destroy(p);
	assert_true(ran >= 2);
	assert_true(ran <= dt / (30 * MS) + 2); /* one 30 ms call at a time, not one per ms */
	assert_true(fired > ran);
}

static void test_pool_timer_cancel_and_rearm(void **state)
{
	(void)state;
	static struct shot s;
	memset(&s, 0, sizeof s);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_timer *t = weft_pool_timer_create(p, record, &s);
	weft_pool_timer_set(t, 100, 0, 0);
	weft_pool_timer_wait(t, true); /* cancel: disarms */
	assert_false(weft_pool_timer_is_set(t));
	tp_sleep_ms(200);
	assert_int_equal(weft__load_acq(&s.n), 0);
	/* Re-arming replaces the previous due time. */
	weft_pool_timer_set(t, 5000, 0, 0);
	uint64_t t0 = weft_test_now_ns();
	weft_pool_timer_set(t, 10, 0, 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&s.n) == 1, 5000));
	assert_true(s.at[0] - t0 >= 10 * MS);
	/* Disarm with WEFT_INFINITE. */
	weft_pool_timer_set(t, 100, 0, 0);
	weft_pool_timer_set(t, WEFT_INFINITE, 0, 0);
	tp_sleep_ms(200);
	assert_int_equal(weft__load_acq(&s.n), 1);
	weft_pool_timer_close(t);
	weft_pool_destroy(p);
}

/* A windowed timer may be late by its window, never early; a close one without a window
 * is on time. Both fire. */
static void test_pool_timer_window(void **state)
{
	(void)state;
	static struct shot a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_timer *ta = weft_pool_timer_create(p, record, &a);
	weft_pool_timer *tb = weft_pool_timer_create(p, record, &b);
	uint64_t t0 = weft_test_now_ns();
	weft_pool_timer_set(ta, 10, 0, 40);
	weft_pool_timer_set(tb, 30, 0, 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&a.n) == 1 && weft__load_acq(&b.n) == 1, 5000));
	assert_true(a.at[0] - t0 >= 10 * MS);
	assert_true(b.at[0] - t0 >= 30 * MS);
	weft_pool_timer_close(ta);
	weft_pool_timer_close(tb);
	weft_pool_destroy(p);
}

static uint32_t task_count(void)
{
	uint32_t n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void count8(void *arg)
{
	weft__fadd_rlx((uint8_t *)arg, 1u);
}

/* 100,000 one-shot timers spread over 200 ms: each fires exactly once, and the process
 * gained no thread per timer (one timer thread for all). */
static void test_pool_timer_hundred_thousand(void **state)
{
	(void)state;
	uint32_t n = (uint32_t)weft_test_iters(100000);
	uint8_t *seen = calloc(n, 1);
	weft_pool_timer **ts = calloc(n, sizeof *ts);
	weft_pool_config cfg = {2, 4, 0, "tp-100k"};
	weft_pool *p = weft_pool_create(&cfg);
	uint32_t tasks0 = task_count();
	uint32_t seed = 12345;
	for (uint32_t i = 0; i < n; i++) {
		ts[i] = weft_pool_timer_create(p, count8, &seen[i]);
		assert_non_null(ts[i]);
		seed = seed * 1103515245u + 12345u;
		weft_pool_timer_set(ts[i], (seed >> 8) % 200, 0, (seed >> 20) % 3);
	}
	assert_true(task_count() <= tasks0 + 4);
	bool all = TP_WAIT_UNTIL(({
		bool ok = true;
		for (uint32_t i = 0; ok && i < n; i++)
			ok = weft__load_acq(&seen[i]) == 1;
		ok;
	}), 30000);
	assert_true(all);
	for (uint32_t i = 0; i < n; i++)
		weft_pool_timer_close(ts[i]);
	weft_pool_destroy(p);
	for (uint32_t i = 0; i < n; i++)
		if (seen[i] != 1)
			fail_msg("timer %u fired %u times", i, seen[i]);
	free(seen);
	free(ts);
}

/* A timer re-armed from its own callback (a one-shot chain). */
struct chain {
	weft_pool_timer *t;
	uint32_t n;
};

static void chain_fn(void *arg)
{
	struct chain *c = arg;
	if (weft__fadd_acqrel(&c->n, 1u) + 1 < 5)
		weft_pool_timer_set(c->t, 1, 0, 0);
}

static void test_pool_timer_rearm_from_callback(void **state)
{
	(void)state;
	struct chain c = {0};
	weft_pool *p = weft_pool_create(NULL);
	c.t = weft_pool_timer_create(p, chain_fn, &c);
	weft_pool_timer_set(c.t, 1, 0, 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.n) == 5, 5000));
	weft_pool_timer_wait(c.t, false);
	weft_pool_timer_close(c.t);
	weft_pool_destroy(p);
	assert_int_equal(c.n, 5);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_timer_one_shot_in_tolerance),
		cmocka_unit_test(test_pool_timer_periodic_no_drift),
		cmocka_unit_test(test_pool_timer_slow_callback_merges),
		cmocka_unit_test(test_pool_timer_cancel_and_rearm),
		cmocka_unit_test(test_pool_timer_window),
		cmocka_unit_test(test_pool_timer_hundred_thousand),
		cmocka_unit_test(test_pool_timer_rearm_from_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
