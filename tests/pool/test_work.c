/* test_work.c - work objects: N submits run N times, wait with and without cancel, help
 * while waiting from a pool thread, close with calls queued, concurrent submitters, and
 * cleanup groups. */
#include <pthread.h>
#include <string.h>

#include "tp_util.h"

struct counter {
	uint64_t n; /* atomic */
	tp_gate gate;
	uint32_t block_first;
	uint32_t started; /* atomic */
};

static void count_fn(void *arg)
{
	struct counter *c = arg;
	uint32_t k = weft__fadd_acqrel(&c->started, 1u);
	if (c->block_first && k == 0)
		gate_wait(&c->gate);
	weft__fadd_rlx(&c->n, 1u);
}

static void test_work_submit_many_runs_each(void **state)
{
	(void)state;
	struct counter c = {0};
	weft_pool *p = weft_pool_create(NULL);
	assert_non_null(p);
	weft_work *w = weft_work_create(p, count_fn, &c);
	assert_non_null(w);
	uint64_t n = weft_test_iters(200000);
	for (uint64_t i = 0; i < n; i++)
		weft_work_submit(w);
	weft_work_wait(w, false);
	assert_int_equal(weft__load_acq(&c.n), n);
	/* Reusable after a wait. */
	for (int i = 0; i < 10; i++)
		weft_work_submit(w);
	weft_work_wait(w, false);
	assert_int_equal(weft__load_acq(&c.n), n + 10);
	weft_work_close(w);
	weft_pool_destroy(p);
	assert_null(weft_work_create(NULL, count_fn, &c));
	assert_null(weft_work_create(p = weft_pool_create(NULL), NULL, NULL));
	weft_pool_destroy(p);
}

struct releaser {
	tp_gate *gate;
	uint32_t ms;
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;
	tp_sleep_ms(r->ms);
	gate_open(r->gate);
	return NULL;
}

/* One thread only: the first call blocks; wait(cancel) drops the 9 queued ones and
 * returns once the started one finished. */
static void test_work_wait_cancel_pending(void **state)
{
	(void)state;
	static struct counter c;
	memset(&c, 0, sizeof c);
	c.block_first = 1;
	weft_pool_config cfg = {1, 1, 1, "tp-cancel"};
	weft_pool *p = weft_pool_create(&cfg);
	weft_work *w = weft_work_create(p, count_fn, &c);
	for (int i = 0; i < 10; i++)
		weft_work_submit(w);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.started) == 1, 5000));
	pthread_t th;
	struct releaser r = {&c.gate, 100};
	assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
	uint64_t t0 = weft_test_now_ns();
	weft_work_wait(w, true);
	uint64_t dt = weft_test_now_ns() - t0;
	pthread_join(th, NULL);
	assert_int_equal(weft__load_acq(&c.n), 1); /* the started one finished */
	assert_true(dt >= 50000000ull);		    /* it waited for it */
	/* Cancelled ones never run, even later. */
	weft_work_submit(w);
	weft_work_wait(w, false);
	weft_work_close(w);
	weft_pool_destroy(p);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.started, 2);
}

static void test_work_wait_without_cancel_runs_all(void **state)
{
	(void)state;
	static struct counter c;
	memset(&c, 0, sizeof c);
	c.block_first = 1;
	weft_pool_config cfg = {1, 1, 1, "tp-nocancel"};
	weft_pool *p = weft_pool_create(&cfg);
	weft_work *w = weft_work_create(p, count_fn, &c);
	for (int i = 0; i < 10; i++)
		weft_work_submit(w);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.started) == 1, 5000));
	pthread_t th;
	struct releaser r = {&c.gate, 50};
	assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
	weft_work_wait(w, false);
	assert_int_equal(weft__load_acq(&c.n), 10);
	pthread_join(th, NULL);
	weft_work_close(w);
	weft_pool_destroy(p);
}

/* Help while waiting: a callback on a one-thread pool waits for a work object it just
 * submitted. The only thread is the waiter, so the call must run inline on it. */
struct helper {
	weft_work *inner;
	uint32_t inner_tid, outer_tid, done;
};

static void help_inner(void *arg)
{
	struct helper *h = arg;
	weft__store_rlx(&h->inner_tid, weft_current_tid());
}

static void help_outer(void *arg)
{
	struct helper *h = arg;
	weft__store_rlx(&h->outer_tid, weft_current_tid());
	weft_work_submit(h->inner);
	weft_work_submit(h->inner);
	weft_work_wait(h->inner, false);
	weft__store_rel(&h->done, 1u);
}

static void test_work_wait_from_pool_thread_helps(void **state)
{
	(void)state;
	struct helper h = {0};
	weft_pool_config cfg = {1, 1, 1, "tp-help"};
	weft_pool *p = weft_pool_create(&cfg);
	h.inner = weft_work_create(p, help_inner, &h);
	weft_work *outer = weft_work_create(p, help_outer, &h);
	weft_work_submit(outer);
	weft_work_wait(outer, false);
	assert_int_equal(weft__load_acq(&h.done), 1);
	assert_int_equal(h.inner_tid, h.outer_tid);
	assert_int_equal(tp_stats(p).starvations, 0);
	weft_work_close(outer);
	weft_work_close(h.inner);
	weft_pool_destroy(p);
}

/* Close with calls still queued: they run, and the memory goes when they are done
 * (ASan checks the lifetime). */
static void test_work_close_with_calls_queued(void **state)
{
	(void)state;
	static struct counter c;
	memset(&c, 0, sizeof c);
	c.block_first = 1;
	weft_pool_config cfg = {1, 1, 1, "tp-close"};
	weft_pool *p = weft_pool_create(&cfg);
	weft_work *w = weft_work_create(p, count_fn, &c);
	for (int i = 0; i < 5; i++)
		weft_work_submit(w);
	weft_work_close(w);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.started) == 1, 5000));
	gate_open(&c.gate);
	weft_pool_destroy(p);
	assert_int_equal(c.n, 5);
}

struct subs {
	weft_work *w;
	uint64_t per;
};

static void *submit_loop(void *arg)
{
	struct subs *s = arg;
	for (uint64_t i = 0; i < s->per; i++)
		weft_work_submit(s->w);
	return NULL;
}

static void test_work_concurrent_submitters(void **state)
{
	(void)state;
	struct counter c = {0};
	weft_pool *p = weft_pool_create(NULL);
	struct subs s = {weft_work_create(p, count_fn, &c), weft_test_iters(100000)};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, submit_loop, &s), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	weft_work_wait(s.w, false);
	assert_int_equal(weft__load_acq(&c.n), 4 * s.per);
	weft_work_close(s.w);
	weft_pool_destroy(p);
}

static void tick(void *arg)
{
	weft__fadd_rlx((uint64_t *)arg, 1u);
}

static void test_work_cleanup_group_closes_members(void **state)
{
	(void)state;
	uint64_t works = 0, timers = 0;
	weft_pool *p = weft_pool_create(NULL);
	weft_cleanup_group *g = weft_cleanup_group_create(p);
	assert_non_null(g);
	weft_work *ws[10];
	for (int i = 0; i < 10; i++) {
		ws[i] = weft_work_create(p, tick, &works);
		assert_int_equal(weft_cleanup_group_add_work(g, ws[i]), 0);
		for (int k = 0; k < 100; k++)
			weft_work_submit(ws[i]);
	}
	assert_int_equal(weft_cleanup_group_add_work(g, ws[0]), -EBUSY);
	weft_pool_timer *ts[5];
	for (int i = 0; i < 5; i++) {
		ts[i] = weft_pool_timer_create(p, tick, &timers);
		assert_int_equal(weft_cleanup_group_add_timer(g, ts[i]), 0);
		weft_pool_timer_set(ts[i], 0, 0, 0);
	}
	/* One member closed by hand leaves the group. */
	weft_work_wait(ws[9], false);
	weft_work_close(ws[9]);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&timers) == 5, 5000));
	weft_cleanup_group_close(g, false);
	assert_int_equal(weft__load_acq(&works), 1000);
	/* A second group, cancelling: nothing queued runs after close returns. */
	g = weft_cleanup_group_create(p);
	weft_pool_timer *late = weft_pool_timer_create(p, tick, &timers);
	weft_cleanup_group_add_timer(g, late);
	weft_pool_timer_set(late, 60000, 0, 0);
	weft_cleanup_group_close(g, true);
	weft_pool_destroy(p);
	assert_int_equal(timers, 5);
}

/* 64 outer calls each wait for an inner work object they submitted, on a pool of two
 * threads that may not grow: helping (the waiter runs the inner call itself) makes it
 * complete without a single extra thread. */
struct nested {
	weft_pool *p;
	uint32_t inner_runs; /* atomic */
	uint32_t outer_done; /* atomic */
};

static void nested_inner(void *arg)
{
	weft__fadd_rlx(&((struct nested *)arg)->inner_runs, 1u);
}

static void nested_outer(void *arg)
{
	struct nested *n = arg;
	weft_work *in = weft_work_create(n->p, nested_inner, n);
	weft_work_submit(in);
	weft_work_wait(in, false);
	weft_work_close(in);
	weft__fadd_rel(&n->outer_done, 1u);
}

static void test_work_nested_waits_help(void **state)
{
	(void)state;
	struct nested n = {0};
	weft_pool_config cfg = {2, 2, 2, "tp-nested"};
	n.p = weft_pool_create(&cfg);
	weft_work *outer = weft_work_create(n.p, nested_outer, &n);
	for (int i = 0; i < 64; i++)
		weft_work_submit(outer);
	weft_work_wait(outer, false);
	assert_int_equal(weft__load_acq(&n.outer_done), 64);
	assert_int_equal(weft__load_acq(&n.inner_runs), 64);
	weft_pool_stats s = tp_stats(n.p);
	assert_int_equal(s.threads, 2);
	weft_work_close(outer);
	weft_pool_destroy(n.p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_work_submit_many_runs_each),
		cmocka_unit_test(test_work_wait_cancel_pending),
		cmocka_unit_test(test_work_wait_without_cancel_runs_all),
		cmocka_unit_test(test_work_wait_from_pool_thread_helps),
		cmocka_unit_test(test_work_close_with_calls_queued),
		cmocka_unit_test(test_work_concurrent_submitters),
		cmocka_unit_test(test_work_cleanup_group_closes_members),
		cmocka_unit_test(test_work_nested_waits_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
