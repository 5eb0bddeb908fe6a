/* test_apc.c - APCs: FIFO order on the target thread, waking alertable sleeps and waits
 * (WEFT_WAIT_IO_COMPLETION), non-alertable waits ignoring them, the seed's "wake a
 * sleeping thread so it can exit", bad input, and the internal arm/disarm interface the
 * completion port uses. */
#include <errno.h>
#include <string.h>

#include "apc.h"
#include "waitable_util.h"

struct apc_rec {
	uint32_t n;
	uintptr_t order[16];
	uint32_t tids[16];
};

static struct apc_rec rec;

static void record(uintptr_t arg)
{
	uint32_t i = __atomic_fetch_add(&rec.n, 1, __ATOMIC_ACQ_REL);
	if (i < 16) {
		rec.order[i] = arg;
		rec.tids[i] = weft_current_tid();
	}
}

static void reset_rec(void)
{
	__atomic_store_n(&rec.n, 0, __ATOMIC_RELEASE);
}

struct target {
	weft_handle *go;
	int mode; /* 0 sleep_ex, 1 wait_ex, 2 wait_many_ex any, 3 wait_many_ex all */
	int res, res2;
	uint32_t tid;
	uint32_t ready;
};

static unsigned alertable_target(void *arg)
{
	struct target *t = arg;
	t->tid = weft_current_tid();
	/* APCs queued while we wait non-alertably stay queued */
	wu_add(&t->ready, 1);
	weft_wait(t->go, WEFT_INFINITE);
	weft_handle *other = weft_event_create(false, false);
	weft_handle *hs[2] = { t->go, other };
	weft_event_reset(t->go);
	switch (t->mode) {
	case 0:
		t->res = weft_sleep_ex(WEFT_INFINITE, true);
		break;
	case 1:
		t->res = weft_wait_ex(t->go, WEFT_INFINITE, true);
		break;
	case 2:
		t->res = weft_wait_many_ex(hs, 2, false, WEFT_INFINITE, true);
		break;
	default:
		t->res = weft_wait_many_ex(hs, 2, true, WEFT_INFINITE, true);
		break;
	}
	/* nothing pending any more: a poll returns normally */
	t->res2 = weft_sleep_ex(0, true);
	weft_handle_close(other);
	return 0;
}

/* Queued while the target is busy, run in FIFO order on the target, all in its next
 * alertable wait of each kind. */
static void test_apc_fifo_on_target(void **state)
{
	(void)state;
	for (int mode = 0; mode < 4; mode++) {
		reset_rec();
		struct target tg = { .go = weft_event_create(true, false), .mode = mode };
		weft_handle *t = wu_start(alertable_target, &tg);
		wu_wait_count(&tg.ready, 1);
		for (uintptr_t i = 0; i < 5; i++)
			assert_int_equal(weft_thread_queue_apc(t, record, i + 1), 0);
		weft_sleep_ex(10, false);
		assert_int_equal(wu_load(&rec.n), 0); /* not alertable yet: nothing ran */
		weft_event_set(tg.go);
		wu_join(t);
		assert_int_equal(tg.res, WEFT_WAIT_IO_COMPLETION);
		assert_int_equal(tg.res2, 0);
		assert_int_equal(rec.n, 5);
		for (uintptr_t i = 0; i < 5; i++) {
			assert_int_equal(rec.order[i], i + 1);
			assert_int_equal(rec.tids[i], tg.tid);
		}
		weft_handle_close(tg.go);
	}
}

static uint32_t quit;

static void ask_quit(uintptr_t arg)
{
	__atomic_store_n(&quit, (uint32_t)arg, __ATOMIC_RELEASE);
}

static unsigned sleeper(void *arg)
{
	uint32_t *ready = arg;
	unsigned loops = 0;
	wu_add(ready, 1);
	while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
		if (weft_sleep_ex(WEFT_INFINITE, true) == WEFT_WAIT_IO_COMPLETION)
			loops++;
	}
	return 100 + loops;
}

/* The seed's recipe: a thread sleeping alertably forever is woken by an APC and exits. */
static void test_apc_wakes_sleeper_to_exit(void **state)
{
	(void)state;
	uint32_t ready = 0;
	__atomic_store_n(&quit, 0, __ATOMIC_RELEASE);
	weft_handle *t = wu_start(sleeper, &ready);
	wu_wait_count(&ready, 1);
	weft_sleep_ex(20, false); /* let it reach the sleep (either order works) */
	assert_int_equal(weft_thread_queue_apc(t, ask_quit, 1), 0);
	assert_int_equal(weft_wait(t, 5000), WEFT_WAIT_OBJECT_0);
	unsigned code = 0;
	weft_thread_exit_code(t, &code);
	assert_int_equal(code, 101);
	/* ended: queuing is refused */
	assert_int_equal(weft_thread_queue_apc(t, ask_quit, 1), -ESRCH);
	weft_handle_close(t);
}

struct nonalert {
	weft_handle *ev;
	uint32_t ready;
	int r1, r2;
};

static unsigned nonalert_target(void *arg)
{
	struct nonalert *n = arg;
	wu_add(&n->ready, 1);
	n->r1 = weft_wait(n->ev, 100);        /* non-alertable: the APC waits */
	n->r2 = weft_sleep_ex(0, true);       /* runs it now */
	return 0;
}

static void test_apc_nonalertable_waits_ignore(void **state)
{
	(void)state;
	reset_rec();
	struct nonalert n = { .ev = weft_event_create(false, false) };
	weft_handle *t = wu_start(nonalert_target, &n);
	wu_wait_waiters(n.ev, 1);
	assert_int_equal(weft_thread_queue_apc(t, record, 77), 0);
	wu_join(t);
	assert_int_equal(n.r1, WEFT_WAIT_TIMEOUT);
	assert_int_equal(n.r2, WEFT_WAIT_IO_COMPLETION);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.order[0], 77);
	weft_handle_close(n.ev);
}

static void test_apc_bad_input(void **state)
{
	(void)state;
	weft_handle *ev = weft_event_create(false, false);
	weft_handle *me = weft_thread_current();
	assert_int_equal(weft_thread_queue_apc(NULL, record, 0), -EINVAL);
	assert_int_equal(weft_thread_queue_apc(ev, record, 0), -EINVAL);
	assert_int_equal(weft_thread_queue_apc(me, NULL, 0), -EINVAL);
	/* to oneself: runs at the next alertable wait, also a zero-timeout one */
	reset_rec();
	assert_int_equal(weft_thread_queue_apc(me, record, 5), 0);
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_TIMEOUT);
	assert_int_equal(rec.n, 0);
	assert_int_equal(weft_wait_ex(ev, 0, true), WEFT_WAIT_IO_COMPLETION);
	assert_int_equal(rec.n, 1);
	assert_int_equal(weft_sleep_ex(0, true), 0);
	/* an alertable wait with a signaled object and nothing queued is a plain wait */
	weft_event_set(ev);
	assert_int_equal(weft_wait_ex(ev, 0, true), WEFT_WAIT_OBJECT_0);
	/* signaled objects win over queued APCs, which stay queued: wait-any and wait-all */
	weft_handle *m = weft_event_create(true, true);
	weft_handle *hs[2] = { m, ev };
	reset_rec();
	assert_int_equal(weft_thread_queue_apc(me, record, 6), 0);
	assert_int_equal(weft_wait_many_ex(hs, 2, false, WEFT_INFINITE, true), WEFT_WAIT_OBJECT_0);
	weft_event_set(ev);
	assert_int_equal(weft_wait_many_ex(hs, 2, true, WEFT_INFINITE, true), WEFT_WAIT_OBJECT_0);
	assert_int_equal(rec.n, 0);
	/* ev was consumed by the wait-all: now the APC ends the wait */
	assert_int_equal(weft_wait_many_ex(hs, 2, true, WEFT_INFINITE, true), WEFT_WAIT_IO_COMPLETION);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.order[0], 6);
	weft_handle_close(m);
	weft_handle_close(me);
	weft_handle_close(ev);
}

/* ---- the port's interface: weft__apc_arm / weft__apc_disarm / weft__apc_run ---- */
struct armed {
	uint32_t wakes;
	uint32_t armed;
	uint32_t release;
	int pending_first, pending_second, ran;
};

static void port_wake(void *ctx)
{
	struct armed *a = ctx;
	wu_add(&a->wakes, 1);
}

static unsigned port_like(void *arg)
{
	struct armed *a = arg;
	a->pending_first = weft__apc_arm(port_wake, a);
	wu_add(&a->armed, 1);
	wu_wait_count(&a->release, 1);
	weft__apc_disarm();
	a->pending_second = weft__apc_arm(port_wake, a); /* now pending: true */
	weft__apc_disarm();
	a->ran = weft__apc_run();
	return 0;
}

static void test_apc_arm_interface(void **state)
{
	(void)state;
	reset_rec();
	struct armed a = { 0 };
	weft_handle *t = wu_start(port_like, &a);
	wu_wait_count(&a.armed, 1);
	assert_int_equal(weft_thread_queue_apc(t, record, 1), 0);
	assert_int_equal(weft_thread_queue_apc(t, record, 2), 0);
	assert_int_equal(wu_load(&a.wakes), 2); /* called from the queuing thread, at once */
	__atomic_store_n(&a.release, 1, __ATOMIC_RELEASE);
	wu_join(t);
	assert_int_equal(a.pending_first, 0);
	assert_int_equal(a.pending_second, 1);
	assert_int_equal(a.ran, 2);
	assert_int_equal(a.wakes, 2); /* not called after disarm */
	assert_int_equal(rec.order[0], 1);
	assert_int_equal(rec.order[1], 2);
}

/* Many APCs from several threads while the target loops in alertable waits: each runs
 * exactly once. */
struct flood {
	weft_handle *target;
	uint64_t per;
	uint64_t ran; /* only the target writes it */
	uint32_t stop;
};

static struct flood fl;

static void count_apc(uintptr_t arg)
{
	(void)arg;
	fl.ran++;
}

static unsigned flood_target(void *arg)
{
	(void)arg;
	weft_handle *ev = weft_event_create(false, false);
	while (!wu_load(&fl.stop) || fl.ran < 3 * fl.per)
		weft_wait_ex(ev, 10, true);
	weft_handle_close(ev);
	return 0;
}

static unsigned flooder(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < fl.per; i++)
		if (weft_thread_queue_apc(fl.target, count_apc, i) != 0)
			return 1;
	return 0;
}

static void test_apc_flood_counts(void **state)
{
	(void)state;
	fl.per = weft_test_iters(20000);
	fl.ran = 0;
	fl.stop = 0;
	fl.target = wu_start(flood_target, NULL);
	weft_handle *q[3];
	for (int i = 0; i < 3; i++)
		q[i] = wu_start(flooder, NULL);
	for (int i = 0; i < 3; i++)
		wu_join(q[i]);
	__atomic_store_n(&fl.stop, 1, __ATOMIC_RELEASE);
	wu_join(fl.target);
	assert_int_equal(fl.ran, 3 * fl.per);
}

/* APCs racing hand-offs: a thread waits alertably (wait-any over two semaphores, and
 * wait-all over two others) while one thread releases units and another queues APCs.
 * Every unit is taken exactly once, every APC runs exactly once, nothing is lost when an
 * alert and a claim arrive together. */
struct alert_race {
	weft_handle *any[2], *all[2];
	uint64_t units;          /* released per semaphore */
	uint64_t apcs;           /* queued */
	uint64_t got_any, got_all, ran; /* written by the target only */
	uint64_t bad;
	uint32_t stop;
	weft_handle *target;
};

static struct alert_race ar;

static void ar_apc(uintptr_t arg)
{
	(void)arg;
	ar.ran++;
}

static unsigned ar_target(void *arg)
{
	(void)arg;
	for (uint64_t i = 0;; i++) {
		bool done = wu_load(&ar.stop) && ar.ran == ar.apcs && ar.got_any == 2 * ar.units &&
			    ar.got_all == ar.units;
		if (done)
			break;
		bool any_left = ar.got_any < 2 * ar.units, all_left = ar.got_all < ar.units;
		if (!any_left && !all_left) {
			weft_sleep_ex(2, true); /* only APCs left */
			continue;
		}
		bool use_any = any_left && (!all_left || (i & 1));
		int r = use_any ? weft_wait_many_ex(ar.any, 2, false, 2, true)
				: weft_wait_many_ex(ar.all, 2, true, 2, true);
		if (r == 0 || r == 1)
			use_any ? ar.got_any++ : ar.got_all++;
		else if (r != WEFT_WAIT_TIMEOUT && r != WEFT_WAIT_IO_COMPLETION)
			ar.bad++;
	}
	return 0;
}

static unsigned ar_releaser(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < ar.units; i++) {
		weft_semaphore_release(ar.any[0], 1, NULL);
		weft_semaphore_release(ar.any[1], 1, NULL);
		weft_semaphore_release(ar.all[0], 1, NULL);
		weft_semaphore_release(ar.all[1], 1, NULL);
		if ((i & 15) == 0)
			weft_sleep_ex(0, false);
	}
	return 0;
}

static unsigned ar_queuer(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < ar.apcs; i++) {
		if (weft_thread_queue_apc(ar.target, ar_apc, i) != 0)
			return 1;
		if ((i & 15) == 0)
			weft_sleep_ex(0, false);
	}
	return 0;
}

static void test_apc_alert_vs_handoff_race(void **state)
{
	(void)state;
	memset(&ar, 0, sizeof ar);
	ar.units = weft_test_iters(8000);
	ar.apcs = weft_test_iters(8000);
	for (int i = 0; i < 2; i++) {
		ar.any[i] = weft_semaphore_create(0, 1 << 30);
		ar.all[i] = weft_semaphore_create(0, 1 << 30);
	}
	ar.target = wu_start(ar_target, NULL);
	weft_handle *r = wu_start(ar_releaser, NULL), *q = wu_start(ar_queuer, NULL);
	wu_join(r);
	wu_join(q);
	__atomic_store_n(&ar.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(weft_wait(ar.target, 60000), WEFT_WAIT_OBJECT_0);
	weft_handle_close(ar.target);
	assert_int_equal(ar.bad, 0);
	assert_int_equal(ar.ran, ar.apcs);
	assert_int_equal(ar.got_any, 2 * ar.units);
	assert_int_equal(ar.got_all, ar.units);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(weft_wait(ar.any[i], 0), WEFT_WAIT_TIMEOUT);
		assert_int_equal(weft_wait(ar.all[i], 0), WEFT_WAIT_TIMEOUT);
		weft_handle_close(ar.any[i]);
		weft_handle_close(ar.all[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apc_fifo_on_target),
		cmocka_unit_test(test_apc_wakes_sleeper_to_exit),
		cmocka_unit_test(test_apc_nonalertable_waits_ignore),
		cmocka_unit_test(test_apc_bad_input),
		cmocka_unit_test(test_apc_arm_interface),
		cmocka_unit_test(test_apc_flood_counts),
		cmocka_unit_test(test_apc_alert_vs_handoff_race),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
