/* test_port.c - the completion port's queue and threads: LIFO wake order, the
 * concurrency limit, paused threads, close, and a million packets each taken once. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/pool.h>
#include <weft/sync.h>

#include "atomic.h"
#include "port_util.h"

static void test_port_backend_named(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	assert_non_null(p);
	const char *env = getenv("WEFT_BACKEND");
	const char *name = weft_port_backend(p);
	assert_true(strcmp(name, "uring") == 0 || strcmp(name, "epoll") == 0);
	if (env && *env)
		assert_string_equal(name, env);
	weft_port_close(p);
}

static void test_port_post_get_fields(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	weft_overlapped ov;
	assert_int_equal(weft_port_post(p, 7, 42, &ov), 0);
	assert_int_equal(weft_port_post(p, 8, 43, NULL), 0);
	uint32_t bytes = 0;
	uintptr_t key = 0;
	weft_overlapped *got = NULL;
	assert_int_equal(weft_port_get(p, &bytes, &key, &got, 0), 0);
	assert_int_equal(bytes, 7);
	assert_int_equal(key, 42);
	assert_ptr_equal(got, &ov);
	weft_completion c[4];
	uint32_t n = 99;
	assert_int_equal(weft_port_get_many(p, c, 4, &n, 0, false), 0);
	assert_int_equal(n, 1);
	assert_int_equal(c[0].bytes, 8);
	assert_int_equal(c[0].key, 43);
	assert_null(c[0].ov);
	assert_int_equal(weft_port_get_many(p, c, 0, &n, 0, false), -EINVAL);
	weft_port_close(p);
}

static void test_port_timeout(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), -ETIMEDOUT);
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 50), -ETIMEDOUT);
	uint64_t dt = weft_test_now_ns() - t0;
	assert_true(dt >= 50000000ull);
	assert_true(dt < 2000000000ull);
	weft_port_close(p);
}

/* ---- LIFO: the thread that started waiting last gets the first packet ---- */

#define LIFO_N 4
struct lifo_arg {
	weft_port *p;
	int rc;
	uintptr_t key;
};

static void *lifo_thread(void *a)
{
	struct lifo_arg *x = a;
	x->rc = weft_port_get(x->p, NULL, &x->key, NULL, 20000);
	return NULL;
}

static void test_port_lifo_order(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(LIFO_N);
	pthread_t th[LIFO_N];
	struct lifo_arg a[LIFO_N];
	for (int i = 0; i < LIFO_N; i++) {
		a[i] = (struct lifo_arg){p, -1, 0};
		pthread_create(&th[i], NULL, lifo_thread, &a[i]);
		wait_waiters(p, (uint32_t)i + 1);
	}
	/* One packet at a time: each must go to the most recent waiter still waiting. */
	for (int k = 0; k < LIFO_N; k++) {
		assert_int_equal(weft_port_post(p, 0, (uintptr_t)k + 1, NULL), 0);
		wait_waiters(p, (uint32_t)(LIFO_N - k - 1));
	}
	for (int i = 0; i < LIFO_N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < LIFO_N; i++) {
		assert_int_equal(a[i].rc, 0);
		assert_int_equal(a[i].key, (uintptr_t)(LIFO_N - i));
	}
	weft_port_close(p);
}

/* ---- the concurrency limit with more threads than slots ---- */

#define LIM_THREADS 6
#define LIM_CONC 2
struct lim_shared {
	weft_port *p;
	uint32_t running, max_running;
	uint64_t got[LIM_THREADS];
};
struct lim_arg {
	struct lim_shared *s;
	int idx;
};

static void *lim_thread(void *a)
{
	struct lim_arg *x = a;
	struct lim_shared *s = x->s;
	for (;;) {
		uintptr_t key;
		if (weft_port_get(s->p, NULL, &key, NULL, WEFT_INFINITE) != 0 || key == 0)
			break;
		uint32_t now = weft__fadd_acqrel(&s->running, 1u) + 1;
		uint32_t m = weft__load_rlx(&s->max_running);
		while (now > m && !weft__cas_rlx(&s->max_running, &m, now))
			;
		/* a little work, without any weft primitive (which would pause the thread) */
		for (volatile int i = 0; i < 2000; i++)
			;
		s->got[x->idx]++;
		weft__fsub_rel(&s->running, 1u);
	}
	return NULL;
}

static void test_port_concurrency_limit(void **state)
{
	(void)state;
	struct lim_shared s = {.p = weft_port_create(LIM_CONC)};
	pthread_t th[LIM_THREADS];
	struct lim_arg a[LIM_THREADS];
	for (int i = 0; i < LIM_THREADS; i++) {
		a[i] = (struct lim_arg){&s, i};
		pthread_create(&th[i], NULL, lim_thread, &a[i]);
	}
	wait_waiters(s.p, LIM_THREADS);
	uint64_t n = weft_test_iters(40000);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(weft_port_post(s.p, 0, 1, NULL), 0);
	for (int i = 0; i < LIM_THREADS; i++)
		weft_port_post(s.p, 0, 0, NULL);
	uint64_t total = 0;
	for (int i = 0; i < LIM_THREADS; i++) {
		pthread_join(th[i], NULL);
		total += s.got[i];
	}
	assert_int_equal(total, n);
	assert_true(s.max_running >= 1);
	assert_true(s.max_running <= LIM_CONC);
	weft_port_close(s.p);
}

/* ---- a released thread that blocks in a weft primitive lets another one run ---- */

struct pause_shared {
	weft_port *p;
	weft_cs cs;
	weft_cond cond;
	int flag;
	bool woken_by_b; /* the blocked thread saw the flag, not a timeout */
	int rc_a, rc_b;
	uintptr_t key_b;
};

static void *pause_a(void *v)
{
	struct pause_shared *s = v;
	uintptr_t key;
	s->rc_a = weft_port_get(s->p, NULL, &key, NULL, 20000);
	weft_cs_enter(&s->cs);
	uint64_t t0 = weft_test_now_ns();
	/* The port has concurrency 1: B can only get its packet while A sleeps here. */
	while (!s->flag && weft_test_now_ns() - t0 < 10000000000ull)
		weft_cond_sleep_cs(&s->cond, &s->cs, 1000);
	s->woken_by_b = s->flag;
	weft_cs_leave(&s->cs);
	return NULL;
}

static void *pause_b(void *v)
{
	struct pause_shared *s = v;
	s->rc_b = weft_port_get(s->p, NULL, &s->key_b, NULL, 20000);
	weft_cs_enter(&s->cs);
	s->flag = 1;
	weft_cond_wake(&s->cond);
	weft_cs_leave(&s->cs);
	return NULL;
}

static void test_port_blocked_thread_pauses(void **state)
{
	(void)state;
	struct pause_shared s = {.p = weft_port_create(1)};
	weft_cs_init(&s.cs, 0);
	weft_cond_init(&s.cond);
	pthread_t ta, tb;
	pthread_create(&ta, NULL, pause_a, &s);
	wait_waiters(s.p, 1);
	assert_int_equal(weft_port_post(s.p, 0, 1, NULL), 0);
	wait_waiters(s.p, 0);
	pthread_create(&tb, NULL, pause_b, &s);
	wait_waiters(s.p, 1);
	assert_int_equal(weft_port_post(s.p, 0, 2, NULL), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(s.rc_a, 0);
	assert_int_equal(s.rc_b, 0);
	assert_int_equal(s.key_b, 2);
	assert_true(s.woken_by_b);
	weft_port_close(s.p);
}

/* Without a pause, a released thread holds its slot: a packet waits even though a
 * thread waits. */
static void test_port_running_thread_holds_slot(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	assert_int_equal(weft_port_post(p, 0, 1, NULL), 0);
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), 0); /* main is released */
	pthread_t t;
	struct lifo_arg a = {p, -1, 0};
	pthread_create(&t, NULL, lifo_thread, &a);
	wait_waiters(p, 1);
	assert_int_equal(weft_port_post(p, 0, 2, NULL), 0);
	usleep(50000);
	assert_int_equal(weft__port_waiters(p), 1); /* still waiting: main holds the slot */
	/* main comes back into get: it takes the packet itself (it is the newest) */
	uintptr_t key = 0;
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, 0), 0);
	assert_int_equal(key, 2);
	assert_int_equal(weft_port_post(p, 0, 3, NULL), 0);
	usleep(20000);
	assert_int_equal(weft__port_waiters(p), 1);
	/* main sleeps in a weft primitive: it pauses and its slot goes to the waiter */
	weft_cs cs;
	weft_cond cond;
	weft_cs_init(&cs, 0);
	weft_cond_init(&cond);
	weft_cs_enter(&cs);
	weft_cond_sleep_cs(&cond, &cs, 100);
	weft_cs_leave(&cs);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.key, 3);
	weft_port_close(p);
}

/* ---- close ---- */

static void test_port_close_wakes_all(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(2);
	pthread_t th[LIFO_N];
	struct lifo_arg a[LIFO_N];
	for (int i = 0; i < LIFO_N; i++) {
		a[i] = (struct lifo_arg){p, 1, 0};
		pthread_create(&th[i], NULL, lifo_thread, &a[i]);
	}
	wait_waiters(p, LIFO_N);
	weft_port_close(p);
	for (int i = 0; i < LIFO_N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, -ESHUTDOWN);
	}
}

static void test_port_close_drains(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	for (uintptr_t k = 1; k <= 3; k++)
		assert_int_equal(weft_port_post(p, 0, k, NULL), 0);
	uintptr_t key;
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, 0), 0); /* main now uses the port */
	weft_port_close(p);
	assert_int_equal(weft_port_post(p, 0, 9, NULL), -ESHUTDOWN);
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, WEFT_INFINITE), 0);
	assert_int_equal(key, 2);
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, WEFT_INFINITE), 0);
	assert_int_equal(key, 3);
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, WEFT_INFINITE), -ESHUTDOWN);
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, 0), -ESHUTDOWN);
}

/* ---- a million packets, each taken exactly once ---- */

#define MANY_CONS 4
#define MANY_PROD 2
struct many_shared {
	weft_port *p;
	uint64_t n;
	uint8_t *seen;
	uint64_t taken[MANY_CONS];
	uint64_t dup[MANY_CONS];
};
struct many_arg {
	struct many_shared *s;
	int idx;
};

static void *many_producer(void *v)
{
	struct many_arg *x = v;
	struct many_shared *s = x->s;
	for (uint64_t i = (uint64_t)x->idx; i < s->n; i += MANY_PROD)
		if (weft_port_post(s->p, (uint32_t)i, (uintptr_t)i + 1, NULL) != 0)
			abort();
	return NULL;
}

static void *many_consumer(void *v)
{
	struct many_arg *x = v;
	struct many_shared *s = x->s;
	weft_completion c[16];
	uint32_t max = (x->idx & 1) ? 16 : 1; /* half the consumers take batches */
	for (;;) {
		uint32_t n = 0;
		if (weft_port_get_many(s->p, c, max, &n, WEFT_INFINITE, false) != 0)
			return NULL;
		uint32_t stops = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (c[i].key == 0) {
				stops++; /* a stop packet */
				continue;
			}
			uint64_t k = c[i].key - 1;
			if (k >= s->n || c[i].bytes != (uint32_t)k || s->seen[k]++)
				s->dup[x->idx]++;
			weft__fadd_rel(&s->taken[x->idx], 1u);
		}
		if (stops) {
			/* one stop is ours; a batch may have taken another consumer's too */
			while (--stops)
				weft_port_post(s->p, 0, 0, NULL);
			return NULL;
		}
	}
}

static void test_port_million_packets_once(void **state)
{
	(void)state;
	struct many_shared s = {.p = weft_port_create(0), .n = weft_test_iters(1000000)};
	s.seen = calloc(s.n, 1);
	pthread_t cons[MANY_CONS], prod[MANY_PROD];
	struct many_arg ca[MANY_CONS], pa[MANY_PROD];
	for (int i = 0; i < MANY_CONS; i++) {
		ca[i] = (struct many_arg){&s, i};
		pthread_create(&cons[i], NULL, many_consumer, &ca[i]);
	}
	for (int i = 0; i < MANY_PROD; i++) {
		pa[i] = (struct many_arg){&s, i};
		pthread_create(&prod[i], NULL, many_producer, &pa[i]);
	}
	for (int i = 0; i < MANY_PROD; i++)
		pthread_join(prod[i], NULL);
	/* Stop packets go in once every real one was taken. */
	uint64_t total;
	do {
		total = 0;
		for (int i = 0; i < MANY_CONS; i++)
			total += weft__load_acq(&s.taken[i]);
		if (total < s.n)
			usleep(1000);
	} while (total < s.n);
	for (int i = 0; i < MANY_CONS; i++)
		assert_int_equal(weft_port_post(s.p, 0, 0, NULL), 0);
	total = 0;
	for (int i = 0; i < MANY_CONS; i++) {
		pthread_join(cons[i], NULL);
		total += s.taken[i];
		assert_int_equal(s.dup[i], 0);
	}
	assert_int_equal(total, s.n);
	for (uint64_t i = 0; i < s.n; i++)
		if (s.seen[i] != 1)
			fail_msg("packet %llu seen %u times", (unsigned long long)i, s.seen[i]);
	free(s.seen);
	weft_port_close(s.p);
}

/* ---- close in the middle of traffic: nothing lost, nobody hangs ---- */

struct storm {
	weft_port *p;
	uint64_t posted;   /* producer: posts that succeeded */
	uint64_t taken[4]; /* consumers (atomic: main polls) */
	uint32_t started;  /* atomic: consumers that made their first get */
	int last_rc[4];
};
struct storm_arg {
	struct storm *s;
	int idx;
};

static void *storm_consumer(void *v)
{
	struct storm_arg *a = v;
	struct storm *s = a->s;
	weft_completion c[8];
	bool first = true;
	for (;;) {
		uint32_t n = 0;
		int r = (a->idx & 1) ? weft_port_get_many(s->p, c, 8, &n, 1, false)
				     : weft_port_get(s->p, NULL, NULL, NULL, 1);
		if (r == 0 && !(a->idx & 1))
			n = 1;
		if (first) {
			weft__fadd_rel(&s->started, 1u);
			first = false;
		}
		if (r == -ESHUTDOWN) {
			s->last_rc[a->idx] = r;
			return NULL;
		}
		if (r == 0)
			weft__fadd_rel(&s->taken[a->idx], n);
	}
}

static void *storm_producer(void *v)
{
	struct storm *s = v;
	/* a get first: the thread then holds on to the port, so its post after the close
	 * (which fails with -ESHUTDOWN) touches live memory */
	if (weft_port_get(s->p, NULL, NULL, NULL, 0) != -ETIMEDOUT)
		abort();
	weft__fadd_rel(&s->started, 1u);
	while (weft_port_post(s->p, 1, 1, NULL) == 0)
		s->posted++;
	return NULL;
}

static void test_port_close_under_traffic(void **state)
{
	(void)state;
	struct storm s = {.p = weft_port_create(2)};
	pthread_t cons[4], prod;
	struct storm_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct storm_arg){&s, i};
		pthread_create(&cons[i], NULL, storm_consumer, &a[i]);
	}
	/* every consumer has used the port before it closes (see weft_port_close) */
	while (weft__load_acq(&s.started) != 4)
		usleep(200);
	pthread_create(&prod, NULL, storm_producer, &s);
	while (weft__load_acq(&s.started) != 5) /* the producer too, before the close */
		usleep(200);
	usleep(50000);
	weft_port_close(s.p);
	pthread_join(prod, NULL);
	uint64_t taken = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(cons[i], NULL);
		assert_int_equal(s.last_rc[i], -ESHUTDOWN);
		taken += s.taken[i];
	}
	assert_true(s.posted > 0);
	assert_int_equal(taken, s.posted); /* drained, each once */
}

/* ---- alertable get_many: APCs run in the waiting thread ---- */

struct alert_shared {
	weft_port *p;
	int rc_wait, rc_pending, rc_packet;
	uint32_t n_wait, n_packet;
	uint32_t apc_ran;     /* atomic: how many APCs ran */
	uint32_t apc_in_self; /* the APC ran on the waiting thread */
	uint32_t tid;
	uint32_t step; /* atomic: main -> thread hand-shake */
};
static struct alert_shared *alert_s;

static void alert_apc(uintptr_t arg)
{
	(void)arg;
	if (weft_current_tid() == weft__load_rlx(&alert_s->tid))
		weft__fadd_rlx(&alert_s->apc_in_self, 1u);
	weft__fadd_rel(&alert_s->apc_ran, 1u);
}

static unsigned alert_thread(void *v)
{
	struct alert_shared *s = v;
	weft_completion c[4];
	weft__store_rel(&s->tid, weft_current_tid());
	/* 1: nothing queued, an APC arrives while it sleeps */
	s->rc_wait = weft_port_get_many(s->p, c, 4, &s->n_wait, 20000, true);
	/* 2: an APC already pending: returns at once */
	while (weft__load_acq(&s->step) != 1)
		usleep(200);
	s->rc_pending = weft_port_get_many(s->p, c, 4, &s->n_packet, 20000, true);
	/* 3: a packet and an APC: the packet wins, the APC stays queued */
	while (weft__load_acq(&s->step) != 2)
		usleep(200);
	s->rc_packet = weft_port_get_many(s->p, c, 4, &s->n_packet, 20000, true);
	weft_sleep_ex(0, true); /* runs the APC left over */
	return 0;
}

static void test_port_alertable_runs_apcs(void **state)
{
	(void)state;
	struct alert_shared s = {.p = weft_port_create(1)};
	alert_s = &s;
	weft_handle *th = weft_thread_create(alert_thread, &s, NULL, NULL);
	assert_non_null(th);
	wait_waiters(s.p, 1);
	assert_int_equal(weft_thread_queue_apc(th, alert_apc, 1), 0);
	while (weft__load_acq(&s.apc_ran) != 1)
		usleep(200);
	assert_int_equal(weft_thread_queue_apc(th, alert_apc, 2), 0);
	weft__store_rel(&s.step, 1u);
	while (weft__load_acq(&s.apc_ran) != 2)
		usleep(200);
	assert_int_equal(weft_port_post(s.p, 5, 6, NULL), 0);
	assert_int_equal(weft_thread_queue_apc(th, alert_apc, 3), 0);
	weft__store_rel(&s.step, 2u);
	assert_int_equal(weft_wait(th, 20000), WEFT_WAIT_OBJECT_0);
	weft_handle_close(th);
	assert_int_equal(s.rc_wait, WEFT_WAIT_IO_COMPLETION);
	assert_int_equal(s.n_wait, 0);
	assert_int_equal(s.rc_pending, WEFT_WAIT_IO_COMPLETION);
	assert_int_equal(s.rc_packet, 0);
	assert_int_equal(s.n_packet, 1);
	assert_int_equal(s.apc_ran, 3);
	assert_int_equal(s.apc_in_self, 3);
	weft_port_close(s.p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_backend_named),
	    cmocka_unit_test(test_port_post_get_fields),
	    cmocka_unit_test(test_port_timeout),
	    cmocka_unit_test(test_port_lifo_order),
	    cmocka_unit_test(test_port_concurrency_limit),
	    cmocka_unit_test(test_port_blocked_thread_pauses),
	    cmocka_unit_test(test_port_running_thread_holds_slot),
	    cmocka_unit_test(test_port_close_wakes_all),
	    cmocka_unit_test(test_port_close_drains),
	    cmocka_unit_test(test_port_million_packets_once),
	    cmocka_unit_test(test_port_alertable_runs_apcs),
	    cmocka_unit_test(test_port_close_under_traffic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
