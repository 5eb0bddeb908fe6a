/* test_wait_many.c - wait-any and wait-all: bad input, lowest index wins, 1,000 objects
 * either way, timeouts, wait-all atomicity (nothing consumed until everything can be),
 * and overlapping wait-all sets racing without deadlock or double consumption. */
#include <errno.h>
#include <stdlib.h>

#include "waitable_util.h"

static void test_wait_many_bad_input(void **state)
{
	(void)state;
	weft_handle *e = weft_event_create(true, true);
	weft_handle *hs[3] = { e, NULL, e };
	assert_int_equal(weft_wait_many(NULL, 1, false, 0), -EINVAL);
	assert_int_equal(weft_wait_many(hs, 0, false, 0), -EINVAL);
	assert_int_equal(weft_wait_many(hs, 0, true, 0), -EINVAL);
	assert_int_equal(weft_wait_many(hs, (size_t)WEFT_WAIT_MAX_OBJECTS + 1, false, 0), -EINVAL);
	assert_int_equal(weft_wait_many(hs, 2, false, 0), -EINVAL); /* a NULL entry */
	hs[1] = e;
	assert_int_equal(weft_wait_many(hs, 2, true, 0), -EINVAL);  /* duplicate in wait-all */
	assert_int_equal(weft_wait_many(hs, 3, false, 0), WEFT_WAIT_OBJECT_0); /* fine in wait-any */
	assert_int_equal(weft_wait_many_ex(hs, 1, true, 0, true), WEFT_WAIT_OBJECT_0);
	weft_handle_close(e);
}

static void test_wait_many_lowest_index(void **state)
{
	(void)state;
	weft_handle *hs[4];
	for (int i = 0; i < 4; i++)
		hs[i] = weft_event_create(false, false);
	weft_event_set(hs[3]);
	weft_event_set(hs[1]);
	assert_int_equal(weft_wait_many(hs, 4, false, 0), WEFT_WAIT_OBJECT_0 + 1);
	/* only index 1 was consumed */
	assert_int_equal(weft_wait_many(hs, 4, false, 0), WEFT_WAIT_OBJECT_0 + 3);
	assert_int_equal(weft_wait_many(hs, 4, false, 0), WEFT_WAIT_TIMEOUT);
	for (int i = 0; i < 4; i++)
		weft_handle_close(hs[i]);
}

struct setter {
	weft_handle *h;
	int which; /* 0 event_set, 1 semaphore_release */
	uint32_t delay_ms;
};

static unsigned set_later(void *arg)
{
	struct setter *s = arg;
	weft_sleep_ex(s->delay_ms, false);
	if (s->which == 0)
		weft_event_set(s->h);
	else
		weft_semaphore_release(s->h, 1, NULL);
	return 0;
}

#define MANY 1000

static void test_wait_many_any_1000(void **state)
{
	(void)state;
	weft_handle **hs = calloc(MANY, sizeof *hs);
	assert_non_null(hs);
	for (int i = 0; i < MANY; i++)
		hs[i] = weft_event_create(false, false);
	/* signaled before the wait: the lowest of them */
	weft_event_set(hs[999]);
	weft_event_set(hs[500]);
	assert_int_equal(weft_wait_many(hs, MANY, false, WEFT_INFINITE), 500);
	assert_int_equal(weft_wait_many(hs, MANY, false, WEFT_INFINITE), 999);
	/* signaled while blocked */
	struct setter s = { hs[737], 0, 20 };
	weft_handle *t = wu_start(set_later, &s);
	assert_int_equal(weft_wait_many(hs, MANY, false, WEFT_INFINITE), 737);
	wu_join(t);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(wu_waiters_on(hs[i]), 0); /* everything unlinked */
		weft_handle_close(hs[i]);
	}
	free(hs);
}

static void test_wait_many_all_1000(void **state)
{
	(void)state;
	weft_handle **hs = calloc(MANY, sizeof *hs);
	assert_non_null(hs);
	for (int i = 0; i < MANY; i++)
		hs[i] = weft_semaphore_create(i == 0 ? 0 : 1, 2);
	/* all but hs[0] available: times out, consuming nothing */
	assert_int_equal(weft_wait_many(hs, MANY, true, 30), WEFT_WAIT_TIMEOUT);
	for (int i = 1; i < MANY; i++) {
		int32_t prev = -1;
		assert_int_equal(weft_semaphore_release(hs[i], 1, &prev), 0);
		assert_int_equal(prev, 1);
	}
	struct setter s = { hs[0], 1, 20 };
	weft_handle *t = wu_start(set_later, &s);
	assert_int_equal(weft_wait_many(hs, MANY, true, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
	wu_join(t);
	/* exactly one unit of each was taken */
	assert_int_equal(weft_wait(hs[0], 0), WEFT_WAIT_TIMEOUT);
	for (int i = 1; i < MANY; i++) {
		int32_t prev = -1;
		assert_int_equal(weft_semaphore_release(hs[i], 1, &prev), 0);
		assert_int_equal(prev, 1);
		weft_handle_close(hs[i]);
	}
	weft_handle_close(hs[0]);
	free(hs);
}

static void test_wait_many_timeouts(void **state)
{
	(void)state;
	weft_handle *hs[3] = { weft_event_create(false, false), weft_semaphore_create(0, 1),
			       weft_mutex_create(false) };
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_wait_many(hs, 2, false, 50), WEFT_WAIT_TIMEOUT);
	uint64_t ms = wu_ms_since(t0);
	assert_true(ms >= 50 && ms < 2000);
	t0 = weft_test_now_ns();
	assert_int_equal(weft_wait_many(hs, 3, true, 50), WEFT_WAIT_TIMEOUT);
	ms = wu_ms_since(t0);
	assert_true(ms >= 50 && ms < 2000);
	/* the free mutex was not taken by the failed wait-all */
	assert_int_equal(weft_mutex_release(hs[2]), -EPERM);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wu_waiters_on(hs[i]), 0);
		weft_handle_close(hs[i]);
	}
}

struct allw {
	weft_handle *hs[2];
	int res;
	uint32_t done;
};

static unsigned all_waiter(void *arg)
{
	struct allw *a = arg;
	a->res = weft_wait_many(a->hs, 2, true, WEFT_INFINITE);
	wu_add(&a->done, 1);
	return 0;
}

static unsigned any_waiter(void *arg)
{
	struct allw *a = arg;
	a->res = weft_wait_many(a->hs, 1, false, WEFT_INFINITE);
	wu_add(&a->done, 1);
	return 0;
}

/* An auto-reset event signaled under a blocked wait-all whose other object is not ready
 * is not consumed by it: a wait-any waiter on the same event gets it. */
static void test_wait_many_all_does_not_consume(void **state)
{
	(void)state;
	weft_handle *a = weft_event_create(false, false), *b = weft_event_create(false, false);
	struct allw all = { { a, b }, -1, 0 }, any = { { a, NULL }, -1, 0 };
	weft_handle *ta = wu_start(all_waiter, &all);
	wu_wait_waiters(a, 1);
	weft_handle *tb = wu_start(any_waiter, &any);
	wu_wait_waiters(a, 2);
	weft_event_set(a);
	wu_join(tb);
	assert_int_equal(any.res, WEFT_WAIT_OBJECT_0);
	assert_int_equal(wu_load(&all.done), 0);
	/* now set both: the wait-all completes and consumes both */
	weft_event_set(b);
	weft_sleep_ex(10, false);
	assert_int_equal(wu_load(&all.done), 0); /* b alone is not enough either */
	weft_event_set(a);
	wu_join(ta);
	assert_int_equal(all.res, WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(a, 0), WEFT_WAIT_TIMEOUT);
	assert_int_equal(weft_wait(b, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(a);
	weft_handle_close(b);
}

/* Three resources in a ring, three threads each taking two with wait-all (the dining
 * philosophers): no deadlock, and no resource is ever held by two threads at once. */
struct ring {
	weft_handle *res[3];
	uint32_t busy[3];
	uint64_t iters;
	uint32_t violations;
	uint64_t rounds[3];
	int failures;
	int kind; /* 0 semaphores, 1 mutexes, 2 auto-reset events */
};

static void ring_give(struct ring *r, weft_handle *h)
{
	if (r->kind == 0)
		weft_semaphore_release(h, 1, NULL);
	else if (r->kind == 1)
		weft_mutex_release(h);
	else
		weft_event_set(h);
}

struct ring_arg {
	struct ring *r;
	int me;
};

static unsigned ring_worker(void *arg)
{
	struct ring_arg *ra = arg;
	struct ring *r = ra->r;
	int a = ra->me, b = (ra->me + 1) % 3;
	weft_handle *hs[2] = { r->res[a], r->res[b] };
	for (uint64_t i = 0; i < r->iters; i++) {
		if (weft_wait_many(hs, 2, true, WEFT_INFINITE) != WEFT_WAIT_OBJECT_0) {
			__atomic_fetch_add(&r->failures, 1, __ATOMIC_RELAXED);
			return 1;
		}
		if (__atomic_exchange_n(&r->busy[a], 1, __ATOMIC_ACQ_REL) != 0)
			wu_add(&r->violations, 1);
		if (__atomic_exchange_n(&r->busy[b], 1, __ATOMIC_ACQ_REL) != 0)
			wu_add(&r->violations, 1);
		r->rounds[ra->me]++;
		__atomic_store_n(&r->busy[a], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r->busy[b], 0, __ATOMIC_RELEASE);
		/* the resources go back one at a time */
		ring_give(r, r->res[b]);
		ring_give(r, r->res[a]);
	}
	return 0;
}

static void ring_run(int kind);

static void test_wait_many_all_overlap_race(void **state)
{
	(void)state;
	for (int kind = 0; kind < 3; kind++)
		ring_run(kind);
}

static void ring_run(int kind)
{
	struct ring r = { .iters = weft_test_iters(5000), .kind = kind };
	for (int i = 0; i < 3; i++)
		r.res[i] = kind == 0 ? weft_semaphore_create(1, 1)
			 : kind == 1 ? weft_mutex_create(false) : weft_event_create(false, true);
	struct ring_arg ra[3];
	weft_handle *t[3];
	for (int i = 0; i < 3; i++) {
		ra[i] = (struct ring_arg){ &r, i };
		t[i] = wu_start(ring_worker, &ra[i]);
	}
	for (int i = 0; i < 3; i++)
		wu_join(t[i]);
	assert_int_equal(r.failures, 0);
	assert_int_equal(r.violations, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r.rounds[i], r.iters);
		/* every unit came back: each resource is available exactly once again */
		assert_int_equal(weft_wait(r.res[i], 0), WEFT_WAIT_OBJECT_0);
		if (kind != 1) /* a mutex is re-entrant for its owner */
			assert_int_equal(weft_wait(r.res[i], 0), WEFT_WAIT_TIMEOUT);
		else
			assert_int_equal(weft_mutex_release(r.res[i]), 0);
		weft_handle_close(r.res[i]);
	}
}

/* Wait-any and wait-all competing for the same auto-reset events: every set is consumed
 * exactly once in total. */
struct mix {
	weft_handle *ev[2];
	uint64_t sets;
	uint64_t got_any, got_all; /* atomic */
	uint32_t stop;
};

static unsigned mix_any(void *arg)
{
	struct mix *m = arg;
	while (!wu_load(&m->stop)) {
		int r = weft_wait_many(m->ev, 2, false, 5);
		if (r == 0 || r == 1)
			__atomic_fetch_add(&m->got_any, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static unsigned mix_all(void *arg)
{
	struct mix *m = arg;
	while (!wu_load(&m->stop)) {
		if (weft_wait_many(m->ev, 2, true, 5) == WEFT_WAIT_OBJECT_0)
			__atomic_fetch_add(&m->got_all, 2, __ATOMIC_RELAXED);
	}
	return 0;
}

static void test_wait_many_any_all_mix(void **state)
{
	(void)state;
	struct mix m = { { weft_semaphore_create(0, 1 << 30), weft_semaphore_create(0, 1 << 30) },
			 weft_test_iters(20000), 0, 0, 0 };
	weft_handle *t[3] = { wu_start(mix_any, &m), wu_start(mix_all, &m), wu_start(mix_all, &m) };
	for (uint64_t i = 0; i < m.sets; i++)
		weft_semaphore_release(m.ev[i & 1], 1, NULL);
	/* drain: wait until every unit was consumed */
	while (__atomic_load_n(&m.got_any, __ATOMIC_ACQUIRE) + __atomic_load_n(&m.got_all, __ATOMIC_ACQUIRE) < m.sets)
		weft_sleep_ex(1, false);
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		wu_join(t[i]);
	assert_int_equal(m.got_any + m.got_all, m.sets);
	assert_int_equal(weft_wait_many(m.ev, 2, false, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(m.ev[0]);
	weft_handle_close(m.ev[1]);
}

/* Wait-any over 8 semaphores with 1 ms timeouts against two releasers: claims race
 * timeouts and the linking pass. Every result is an index or a timeout, and every unit
 * released is taken exactly once. */
struct race {
	weft_handle *s[8];
	uint64_t per;
	uint64_t taken, bad; /* atomic */
	uint32_t stop;
};

static unsigned race_taker(void *arg)
{
	struct race *r = arg;
	while (!wu_load(&r->stop)) {
		int res = weft_wait_many(r->s, 8, false, 1);
		if (res >= 0 && res < 8)
			__atomic_fetch_add(&r->taken, 1, __ATOMIC_RELAXED);
		else if (res != WEFT_WAIT_TIMEOUT)
			__atomic_fetch_add(&r->bad, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static unsigned race_giver(void *arg)
{
	struct race *r = arg;
	uint32_t x = (uint32_t)(uintptr_t)&x | 1u;
	for (uint64_t i = 0; i < r->per; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (weft_semaphore_release(r->s[x % 8], 1, NULL) != 0)
			__atomic_fetch_add(&r->bad, 1, __ATOMIC_RELAXED);
		if ((i & 63) == 0)
			weft_sleep_ex(0, false);
	}
	return 0;
}

static void test_wait_many_any_claim_race(void **state)
{
	(void)state;
	struct race r = { .per = weft_test_iters(20000) };
	for (int i = 0; i < 8; i++)
		r.s[i] = weft_semaphore_create(0, 1 << 30);
	weft_handle *t[5];
	for (int i = 0; i < 3; i++)
		t[i] = wu_start(race_taker, &r);
	t[3] = wu_start(race_giver, &r);
	t[4] = wu_start(race_giver, &r);
	wu_join(t[3]);
	wu_join(t[4]);
	while (__atomic_load_n(&r.taken, __ATOMIC_ACQUIRE) < 2 * r.per && __atomic_load_n(&r.bad, __ATOMIC_ACQUIRE) == 0)
		weft_sleep_ex(1, false);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		wu_join(t[i]);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.taken, 2 * r.per);
	assert_int_equal(weft_wait_many(r.s, 8, false, 0), WEFT_WAIT_TIMEOUT);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(wu_waiters_on(r.s[i]), 0);
		weft_handle_close(r.s[i]);
	}
}

static unsigned quick(void *arg)
{
	(void)arg;
	return 7;
}

/* Mixed kinds in one wait: a thread handle becomes signaled when the thread ends. */
static void test_wait_many_mixed_kinds(void **state)
{
	(void)state;
	weft_handle *t = wu_start(quick, NULL);
	weft_handle *hs[3] = { weft_event_create(true, false), weft_semaphore_create(0, 1), t };
	assert_int_equal(weft_wait_many(hs, 3, false, WEFT_INFINITE), 2);
	/* a thread handle stays signaled */
	assert_int_equal(weft_wait_many(hs, 3, false, 0), 2);
	weft_event_set(hs[0]);
	weft_semaphore_release(hs[1], 1, NULL);
	assert_int_equal(weft_wait_many(hs, 3, true, 0), WEFT_WAIT_OBJECT_0);
	assert_int_equal(weft_wait(hs[1], 0), WEFT_WAIT_TIMEOUT);
	assert_int_equal(weft_wait(hs[0], 0), WEFT_WAIT_OBJECT_0); /* manual: still set */
	for (int i = 0; i < 3; i++)
		weft_handle_close(hs[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_many_bad_input),
		cmocka_unit_test(test_wait_many_lowest_index),
		cmocka_unit_test(test_wait_many_any_1000),
		cmocka_unit_test(test_wait_many_all_1000),
		cmocka_unit_test(test_wait_many_timeouts),
		cmocka_unit_test(test_wait_many_all_does_not_consume),
		cmocka_unit_test(test_wait_many_all_overlap_race),
		cmocka_unit_test(test_wait_many_any_all_mix),
		cmocka_unit_test(test_wait_many_any_claim_race),
		cmocka_unit_test(test_wait_many_mixed_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
