/* test_pool_queue.c - the pool's own queue (the ring workers drain before the port) and
 * its wake protocol: several submitters, each item counted once; items submitted from
 * callbacks; destroy racing submitters; injection when every worker blocks with items
 * queued in the ring; the full-ring fallback to port packets; no lost wake-up across
 * thousands of idle gaps; work objects mixed with items. */
#include <pthread.h>
#include <string.h>

#include "tp_util.h"

/* ---- several submitters, each item exactly once ---- */

#define NSUB 4

struct multi {
	weft_pool *p;
	uint8_t *seen; /* one counter per item, NSUB * per items */
	uint64_t per;
	uint32_t go;
};

struct sub_arg {
	struct multi *m;
	uint32_t id;
};

static void bump8(void *arg)
{
	weft__fadd_rlx((uint8_t *)arg, 1u);
}

static void *multi_submitter(void *v)
{
	struct sub_arg *a = v;
	struct multi *m = a->m;
	while (!weft__load_acq(&m->go))
		sched_yield();
	uint8_t *mine = m->seen + (uint64_t)a->id * m->per;
	for (uint64_t i = 0; i < m->per; i++) {
		if ((i & 0xfff) == 0)
			while (tp_stats(m->p).queued > 200000)
				tp_sleep_ms(1);
		int r = weft_pool_submit(m->p, bump8, &mine[i]);
		if (r != 0)
			abort();
	}
	return NULL;
}

static void test_queue_multi_submitters_once(void **state)
{
	(void)state;
	struct multi m = {0};
	m.per = weft_test_iters(400000);
	m.seen = calloc(NSUB * m.per, 1);
	assert_non_null(m.seen);
	weft_pool_config cfg = {2, 8, 0, "tq-multi"};
	m.p = weft_pool_create(&cfg);
	assert_non_null(m.p);
	pthread_t th[NSUB];
	struct sub_arg args[NSUB];
	for (uint32_t i = 0; i < NSUB; i++) {
		args[i] = (struct sub_arg){&m, i};
		assert_int_equal(pthread_create(&th[i], NULL, multi_submitter, &args[i]), 0);
	}
	weft__store_rel(&m.go, 1u);
	for (uint32_t i = 0; i < NSUB; i++)
		pthread_join(th[i], NULL);
	weft_pool_destroy(m.p);
	for (uint64_t i = 0; i < NSUB * m.per; i++)
		if (m.seen[i] != 1)
			fail_msg("item %llu ran %u times", (unsigned long long)i, m.seen[i]);
	free(m.seen);
}

/* ---- items submitted from callbacks (a tree: each node submits its two children) ---- */

struct tree {
	weft_pool *p;
	uint32_t depth;
	uint8_t *seen; /* 2^(depth+1) - 1 nodes, heap-numbered from 1 */
	uint64_t ran;  /* atomic */
};

static struct tree g_tree;

static void tree_node(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	weft__fadd_rlx(&g_tree.seen[id], 1u);
	weft__fadd_rlx(&g_tree.ran, 1u);
	if (id < ((uintptr_t)1 << g_tree.depth)) {
		if (weft_pool_submit(g_tree.p, tree_node, (void *)(2 * id)) != 0 ||
		    weft_pool_submit(g_tree.p, tree_node, (void *)(2 * id + 1)) != 0)
			abort();
	}
}

static void test_queue_submit_from_callbacks(void **state)
{
	(void)state;
	g_tree.depth = weft_test_iters(8) > 1 ? 17 : 14; /* 262,143 or 32,767 nodes */
	uint64_t nodes = ((uint64_t)1 << (g_tree.depth + 1)) - 1;
	g_tree.seen = calloc(nodes + 1, 1);
	assert_non_null(g_tree.seen);
	g_tree.ran = 0;
	weft_pool_config cfg = {2, 8, 0, "tq-tree"};
	g_tree.p = weft_pool_create(&cfg);
	assert_non_null(g_tree.p);
	assert_int_equal(weft_pool_submit(g_tree.p, tree_node, (void *)(uintptr_t)1), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&g_tree.ran) == nodes, 20000));
	weft_pool_destroy(g_tree.p);
	for (uint64_t i = 1; i <= nodes; i++)
		if (g_tree.seen[i] != 1)
			fail_msg("node %llu ran %u times", (unsigned long long)i, g_tree.seen[i]);
	free(g_tree.seen);
}

/* ---- destroy racing submitters: every accepted item runs once, the rest get -ESHUTDOWN */

#define RACE_SUB 3
#define RACE_MAX 2000000u

struct race {
	weft_pool *p;
	uint8_t *seen;           /* RACE_SUB * RACE_MAX */
	uint64_t accepted[RACE_SUB]; /* written by each submitter, read after join */
	uint32_t started, saw_shutdown; /* atomics */
	uint64_t extra_accepted, extra_ran; /* atomics: items past RACE_MAX per submitter */
	uint32_t nsub;
};

struct race_arg {
	struct race *r;
	uint32_t id;
};

static void race_extra(void *arg)
{
	struct race *r = arg;
	weft__fadd_rlx(&r->extra_ran, 1u);
}

static void race_keeper(void *arg)
{
	struct race *r = arg;
	/* Keeps destroy draining until every submitter saw -ESHUTDOWN, so none touches the
	 * pool after it was freed. */
	while (weft__load_acq(&r->saw_shutdown) < r->nsub)
		tp_sleep_ms(1);
}

static void *race_submitter(void *v)
{
	struct race_arg *a = v;
	struct race *r = a->r;
	uint8_t *mine = r->seen + (uint64_t)a->id * RACE_MAX;
	uint64_t i = 0;
	weft__fadd_rel(&r->started, 1u);
	uint64_t extra = 0;
	for (;; i++) {
		if ((i & 0xfff) == 0)
			while (tp_stats(r->p).queued > 50000 && !weft__load_acq(&r->saw_shutdown))
				sched_yield();
		int e;
		if (i < RACE_MAX) {
			e = weft_pool_submit(r->p, bump8, &mine[i]);
		} else {
			/* Out of counters before destroy came: go on with counted extras. */
			e = weft_pool_submit(r->p, race_extra, r);
			if (e == 0)
				extra++;
		}
		if (e == -ESHUTDOWN)
			break;
		if (e != 0)
			abort();
	}
	r->accepted[a->id] = i < RACE_MAX ? i : RACE_MAX;
	weft__fadd_rel(&r->extra_accepted, extra);
	weft__fadd_rel(&r->saw_shutdown, 1u);
	return NULL;
}

static void test_queue_destroy_races_submitters(void **state)
{
	(void)state;
	uint32_t rounds = weft_test_iters(8) > 1 ? 5 : 2;
	for (uint32_t round = 0; round < rounds; round++) {
		struct race r = {0};
		r.nsub = RACE_SUB;
		r.seen = calloc((size_t)RACE_SUB * RACE_MAX, 1);
		assert_non_null(r.seen);
		weft_pool_config cfg = {2, 8, 0, "tq-race"};
		r.p = weft_pool_create(&cfg);
		assert_non_null(r.p);
		assert_int_equal(weft_pool_submit(r.p, race_keeper, &r), 0);
		pthread_t th[RACE_SUB];
		struct race_arg args[RACE_SUB];
		for (uint32_t i = 0; i < RACE_SUB; i++) {
			args[i] = (struct race_arg){&r, i};
			assert_int_equal(pthread_create(&th[i], NULL, race_submitter, &args[i]), 0);
		}
		while (weft__load_acq(&r.started) < RACE_SUB)
			sched_yield();
		tp_sleep_ms(2 + 5 * round);
		weft_pool_destroy(r.p);
		for (uint32_t i = 0; i < RACE_SUB; i++)
			pthread_join(th[i], NULL);
		uint64_t total = 0;
		for (uint32_t s = 0; s < RACE_SUB; s++) {
			const uint8_t *mine = r.seen + (uint64_t)s * RACE_MAX;
			for (uint64_t i = 0; i < RACE_MAX; i++) {
				uint8_t want = i < r.accepted[s];
				if (mine[i] != want)
					fail_msg("round %u submitter %u item %llu ran %u times (accepted %llu)", round,
						 s, (unsigned long long)i, mine[i], (unsigned long long)r.accepted[s]);
			}
			total += r.accepted[s];
		}
		assert_true(total > 0);
		assert_int_equal(r.extra_ran, r.extra_accepted);
		free(r.seen);
	}
}

/* ---- every worker blocked, the awaited items queued in the ring: injection ---- */

#define BLK 8

struct blk {
	weft_pool *p;
	tp_gate gate[BLK];
	uint32_t waiter_ran[BLK], opener_ran[BLK];
	uint8_t *seen;
	uint64_t nfill;
};

struct blk_arg {
	struct blk *b;
	uint32_t i;
};
static struct blk_arg blk_args[BLK];

static void blk_opener(void *arg)
{
	struct blk_arg *a = arg;
	weft__fadd_rlx(&a->b->opener_ran[a->i], 1u);
	gate_open(&a->b->gate[a->i]);
}

/* Blocks (through the blocking hook) until its opener, queued in the ring behind filler
 * items, ran. */
static void blk_waiter(void *arg)
{
	struct blk_arg *a = arg;
	weft__fadd_rlx(&a->b->waiter_ran[a->i], 1u);
	gate_wait(&a->b->gate[a->i]);
}

static void test_queue_injection_with_ring_items(void **state)
{
	(void)state;
	static struct blk b;
	memset(&b, 0, sizeof b);
	/* One thread, concurrency 1: the first waiter blocks the only worker while everything
	 * else sits in the ring. More than the ring holds, so the tail goes to the port. */
	b.nfill = 20000;
	b.seen = calloc(b.nfill, 1);
	assert_non_null(b.seen);
	weft_pool_config cfg = {1, BLK + 4, 1, "tq-inject"};
	b.p = weft_pool_create(&cfg);
	assert_non_null(b.p);
	for (uint32_t i = 0; i < BLK; i++) {
		blk_args[i] = (struct blk_arg){&b, i};
		assert_int_equal(weft_pool_submit(b.p, blk_waiter, &blk_args[i]), 0);
	}
	for (uint64_t i = 0; i < b.nfill; i++)
		assert_int_equal(weft_pool_submit(b.p, bump8, &b.seen[i]), 0);
	for (uint32_t i = 0; i < BLK; i++)
		assert_int_equal(weft_pool_submit(b.p, blk_opener, &blk_args[i]), 0);
	bool done = TP_WAIT_UNTIL(({
					  bool all = true;
					  for (uint32_t i = 0; i < BLK; i++)
						  all = all && weft__load_acq(&b.gate[i].open);
					  all;
				  }),
				  20000);
	weft_pool_stats s = tp_stats(b.p);
	assert_true(done);
	assert_true(s.injected >= 1);
	weft_pool_destroy(b.p);
	for (uint32_t i = 0; i < BLK; i++) {
		assert_int_equal(b.waiter_ran[i], 1);
		assert_int_equal(b.opener_ran[i], 1);
	}
	for (uint64_t i = 0; i < b.nfill; i++)
		if (b.seen[i] != 1)
			fail_msg("filler %llu ran %u times", (unsigned long long)i, b.seen[i]);
	free(b.seen);
}

/* ---- at max_threads with every worker blocked on ring items: starvation is counted ---- */

static void test_queue_starvation_visible(void **state)
{
	(void)state;
	static struct blk b;
	memset(&b, 0, sizeof b);
	weft_pool_config cfg = {1, 1, 1, "tq-starve"};
	b.p = weft_pool_create(&cfg);
	assert_non_null(b.p);
	blk_args[0] = (struct blk_arg){&b, 0};
	assert_int_equal(weft_pool_submit(b.p, blk_waiter, &blk_args[0]), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&b.waiter_ran[0]) == 1, 5000));
	assert_int_equal(weft_pool_submit(b.p, blk_opener, &blk_args[0]), 0);
	assert_true(TP_WAIT_UNTIL(tp_stats(b.p).starvations >= 1, 5000));
	weft_pool_stats s = tp_stats(b.p);
	assert_int_equal(s.threads, 1);
	assert_true(s.queued >= 1);
	/* Nothing lost: let the only thread go by hand; the opener still runs once. */
	gate_open(&b.gate[0]);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&b.opener_ran[0]) == 1, 5000));
	weft_pool_destroy(b.p);
	assert_int_equal(b.opener_ran[0], 1);
}

/* ---- no lost wake-up: one item at a time across idle gaps of every length ---- */

struct ping {
	uint32_t done; /* futex word */
	uint64_t ran;
};

static void ping_item(void *arg)
{
	struct ping *pg = arg;
	pg->ran++;
	weft__store_rel(&pg->done, 1u);
	weft__futex_wake(&pg->done, 1);
}

static void test_queue_no_lost_wakeup(void **state)
{
	(void)state;
	weft_pool_config cfg = {2, 4, 0, "tq-ping"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	static struct ping pg;
	uint32_t n = (uint32_t)weft_test_iters(4000);
	uint32_t seed = 12345;
	for (uint32_t i = 0; i < n; i++) {
		weft__store_rlx(&pg.done, 0u);
		assert_int_equal(weft_pool_submit(p, ping_item, &pg), 0);
		uint64_t end = weft_test_now_ns() + 5000000000ull;
		while (!weft__load_acq(&pg.done)) {
			struct timespec d;
			weft__futex_wait(&pg.done, 0, weft__deadline(&d, 10));
			if (weft_test_now_ns() > end)
				fail_msg("item %u did not start within 5 s (lost wake-up)", i);
		}
		/* gaps from 0 to ~3 ms: workers caught spinning, parking and asleep */
		seed = seed * 1103515245u + 12345u;
		uint32_t us = (seed >> 16) % 3000;
		if (us < 1500) {
			struct timespec d = {0, (long)us * 1000L};
			nanosleep(&d, NULL);
		}
	}
	weft_pool_destroy(p);
	assert_int_equal(pg.ran, n);
}

/* ---- work objects and items through the same ring, several submitters ---- */

struct mixed {
	weft_pool *p;
	weft_work *work;
	uint64_t work_ran; /* atomic */
	uint8_t *seen;
	uint64_t per;
	uint32_t go;
};

static void mixed_work(void *arg)
{
	struct mixed *m = arg;
	weft__fadd_rlx(&m->work_ran, 1u);
}

static struct mixed g_mixed;

static void *mixed_submitter(void *v)
{
	uintptr_t id = (uintptr_t)v;
	struct mixed *m = &g_mixed;
	while (!weft__load_acq(&m->go))
		sched_yield();
	uint8_t *mine = m->seen + id * m->per;
	for (uint64_t i = 0; i < m->per; i++) {
		if ((i & 0xfff) == 0)
			while (tp_stats(m->p).queued > 100000)
				tp_sleep_ms(1);
		if (weft_pool_submit(m->p, bump8, &mine[i]) != 0)
			abort();
		weft_work_submit(m->work);
	}
	return NULL;
}

static void test_queue_work_objects_and_items(void **state)
{
	(void)state;
	struct mixed *m = &g_mixed;
	memset(m, 0, sizeof *m);
	m->per = weft_test_iters(100000);
	m->seen = calloc(2 * m->per, 1);
	assert_non_null(m->seen);
	weft_pool_config cfg = {2, 8, 0, "tq-mixed"};
	m->p = weft_pool_create(&cfg);
	assert_non_null(m->p);
	m->work = weft_work_create(m->p, mixed_work, m);
	assert_non_null(m->work);
	pthread_t th[2];
	for (uintptr_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mixed_submitter, (void *)i), 0);
	weft__store_rel(&m->go, 1u);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	weft_work_wait(m->work, false);
	assert_int_equal(weft__load_acq(&m->work_ran), 2 * m->per);
	weft_work_close(m->work);
	weft_pool_destroy(m->p);
	for (uint64_t i = 0; i < 2 * m->per; i++)
		if (m->seen[i] != 1)
			fail_msg("item %llu ran %u times", (unsigned long long)i, m->seen[i]);
	free(m->seen);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_multi_submitters_once),
		cmocka_unit_test(test_queue_submit_from_callbacks),
		cmocka_unit_test(test_queue_destroy_races_submitters),
		cmocka_unit_test(test_queue_injection_with_ring_items),
		cmocka_unit_test(test_queue_starvation_visible),
		cmocka_unit_test(test_queue_no_lost_wakeup),
		cmocka_unit_test(test_queue_work_objects_and_items),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
