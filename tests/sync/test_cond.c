/* Condition variable: no lost wake-up over many hand-offs, timeouts, SRW modes,
 * wake_all (with the requeue onto the critical section) wakes everyone. */
#include <pthread.h>
#include <unistd.h>

#include <weft/sync.h>

#include "weft_test.h"

/* A bounded queue of one slot, producer/consumer with two condition variables. */
struct pc {
	weft_cs cs;
	weft_cond not_empty, not_full;
	bool full;
	uint64_t value, n, sum_seen, next_expected, out_of_order;
};

static void *producer(void *arg)
{
	struct pc *q = arg;
	for (uint64_t i = 1; i <= q->n; i++) {
		weft_cs_enter(&q->cs);
		while (q->full)
			weft_cond_sleep_cs(&q->not_full, &q->cs, WEFT_INFINITE);
		q->value = i;
		q->full = true;
		weft_cond_wake(&q->not_empty);
		weft_cs_leave(&q->cs);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct pc *q = arg;
	for (uint64_t i = 1; i <= q->n; i++) {
		weft_cs_enter(&q->cs);
		while (!q->full)
			weft_cond_sleep_cs(&q->not_empty, &q->cs, WEFT_INFINITE);
		if (q->value != i)
			q->out_of_order++;
		q->sum_seen += q->value;
		q->full = false;
		weft_cond_wake(&q->not_full);
		weft_cs_leave(&q->cs);
	}
	return NULL;
}

static void test_cond_no_lost_wakeup(void **state)
{
	(void)state;
	static struct pc q;
	q = (struct pc){ .n = weft_test_iters(100000) };
	if (q.n < 100000)
		q.n = 100000 / 4; /* sanitizers: still tens of thousands of hand-offs */
	weft_cs_init(&q.cs, 0);
	weft_cond_init(&q.not_empty);
	weft_cond_init(&q.not_full);
	pthread_t p, c;
	pthread_create(&c, NULL, consumer, &q);
	pthread_create(&p, NULL, producer, &q);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	assert_int_equal(q.out_of_order, 0);
	assert_int_equal(q.sum_seen, q.n * (q.n + 1) / 2);
}

static void test_cond_timeout(void **state)
{
	(void)state;
	weft_cs cs;
	weft_cond c = WEFT_COND_INIT;
	weft_cs_init(&cs, 0);
	weft_cs_enter(&cs);
	uint64_t t0 = weft_test_now_ns();
	assert_false(weft_cond_sleep_cs(&c, &cs, 50));
	uint64_t el = weft_test_now_ns() - t0;
	assert_true(weft_cs_is_owned(&cs));
	weft_cs_leave(&cs);
	assert_true(el >= 50000000ull);
	assert_true(el < 2000000000ull);

	weft_srw s = WEFT_SRW_INIT;
	weft_srw_lock_shared(&s);
	t0 = weft_test_now_ns();
	assert_false(weft_cond_sleep_srw(&c, &s, 30, true));
	el = weft_test_now_ns() - t0;
	weft_srw_unlock_shared(&s);
	assert_true(el >= 30000000ull && el < 2000000000ull);
	/* zero timeout: returns at once */
	weft_srw_lock_exclusive(&s);
	assert_false(weft_cond_sleep_srw(&c, &s, 0, false));
	assert_false(weft_srw_try_lock_shared(&s)); /* still held exclusive */
	weft_srw_unlock_exclusive(&s);
}

/* wake_all wakes every sleeper, for each lock kind. */
struct herd {
	weft_cs cs;
	weft_srw srw;
	weft_cond c;
	int mode; /* 0 cs, 1 srw shared, 2 srw exclusive */
	uint32_t generation, asleep, woke, bad_mode;
};

static void *herd_member(void *arg)
{
	struct herd *h = arg;
	if (h->mode == 0) {
		weft_cs_enter(&h->cs);
		uint32_t g = h->generation;
		__atomic_add_fetch(&h->asleep, 1, __ATOMIC_RELAXED);
		while (h->generation == g)
			weft_cond_sleep_cs(&h->c, &h->cs, WEFT_INFINITE);
		if (!weft_cs_is_owned(&h->cs))
			h->bad_mode++;
		h->woke++;
		weft_cs_leave(&h->cs);
	} else {
		bool shared = h->mode == 1;
		if (shared)
			weft_srw_lock_shared(&h->srw);
		else
			weft_srw_lock_exclusive(&h->srw);
		uint32_t g = __atomic_load_n(&h->generation, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->asleep, 1, __ATOMIC_RELAXED);
		while (__atomic_load_n(&h->generation, __ATOMIC_RELAXED) == g)
			weft_cond_sleep_srw(&h->c, &h->srw, WEFT_INFINITE, shared);
		/* back in the right mode: exclusive excludes a writer's try, shared admits a reader */
		if (shared ? weft_srw_try_lock_exclusive(&h->srw) : weft_srw_try_lock_shared(&h->srw))
			__atomic_add_fetch(&h->bad_mode, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->woke, 1, __ATOMIC_RELAXED);
		if (shared)
			weft_srw_unlock_shared(&h->srw);
		else
			weft_srw_unlock_exclusive(&h->srw);
	}
	return NULL;
}

static void run_herd(int mode)
{
	static struct herd h;
	h = (struct herd){ .srw = WEFT_SRW_INIT, .c = WEFT_COND_INIT, .mode = mode };
	weft_cs_init(&h.cs, 0);
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, herd_member, &h);
	while (__atomic_load_n(&h.asleep, __ATOMIC_RELAXED) < 8)
		usleep(1000);
	usleep(20000); /* let them reach the futex */
	if (mode == 0) {
		weft_cs_enter(&h.cs);
		h.generation++;
		weft_cond_wake_all(&h.c);
		weft_cs_leave(&h.cs);
	} else {
		weft_srw_lock_exclusive(&h.srw);
		__atomic_add_fetch(&h.generation, 1, __ATOMIC_RELAXED);
		weft_cond_wake_all(&h.c);
		weft_srw_unlock_exclusive(&h.srw);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(h.woke, 8);
	assert_int_equal(h.bad_mode, 0);
}

static void test_cond_wake_all_cs(void **state) { (void)state; run_herd(0); }
static void test_cond_wake_all_srw_shared(void **state) { (void)state; run_herd(1); }
static void test_cond_wake_all_srw_exclusive(void **state) { (void)state; run_herd(2); }

/* Repeated wake_all rounds under the critical section (the requeue path). */
static void test_cond_wake_all_rounds(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++)
		run_herd(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cond_no_lost_wakeup),
		cmocka_unit_test(test_cond_timeout),
		cmocka_unit_test(test_cond_wake_all_cs),
		cmocka_unit_test(test_cond_wake_all_srw_shared),
		cmocka_unit_test(test_cond_wake_all_srw_exclusive),
		cmocka_unit_test(test_cond_wake_all_rounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
