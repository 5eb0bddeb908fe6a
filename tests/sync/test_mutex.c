/* test_mutex.c - mutexes: recursion, ownership (-EPERM), abandonment on every exit path
 * and through wait-many, and mutual exclusion under contention. */
#include <errno.h>
#include <pthread.h>

#include "lock_suite.h"
#include "waitable_util.h"

static void test_mutex_recursion(void **state)
{
	(void)state;
	weft_handle *m = weft_mutex_create(false);
	assert_int_equal(weft_mutex_release(m), -EPERM); /* not owned */
	for (int i = 0; i < 3; i++)
		assert_int_equal(weft_wait(m, 0), WEFT_WAIT_OBJECT_0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(weft_mutex_release(m), 0);
	assert_int_equal(weft_mutex_release(m), -EPERM);
	assert_int_equal(weft_mutex_release(NULL), -EINVAL);
	/* releasing an event as a mutex: a clear error, the event untouched */
	weft_handle *ev = weft_event_create(false, true);
	assert_int_equal(weft_mutex_release(ev), -EINVAL);
	assert_int_equal(weft_semaphore_release(m, 1, NULL), -EINVAL);
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_OBJECT_0);
	weft_handle_close(ev);
	weft_handle_close(m);

	weft_handle *o = weft_mutex_create(true);
	assert_int_equal(weft_mutex_release(o), 0);
	assert_int_equal(weft_mutex_release(o), -EPERM);
	weft_handle_close(o);
}

struct mx {
	weft_handle *m;
	int r1, r2;
	uint32_t step;
	int how; /* 0 return, 1 weft_thread_exit, 2 keep recursion 2 and return */
};

static unsigned foreign_release(void *arg)
{
	struct mx *s = arg;
	s->r1 = weft_mutex_release(s->m);   /* owned by main: -EPERM */
	s->r2 = weft_wait(s->m, 0);         /* held by main: timeout */
	return 0;
}

static void test_mutex_non_owner_eperm(void **state)
{
	(void)state;
	struct mx s = { .m = weft_mutex_create(true) };
	wu_join(wu_start(foreign_release, &s));
	assert_int_equal(s.r1, -EPERM);
	assert_int_equal(s.r2, WEFT_WAIT_TIMEOUT);
	assert_int_equal(weft_mutex_release(s.m), 0);
	weft_handle_close(s.m);
}

static unsigned take_and_die(void *arg)
{
	struct mx *s = arg;
	s->r1 = weft_wait(s->m, WEFT_INFINITE);
	if (s->how == 2)
		weft_wait(s->m, WEFT_INFINITE);
	wu_add(&s->step, 1);
	if (s->how == 1)
		weft_thread_exit(5);
	return 4;
}

static void *take_and_die_pthread(void *arg)
{
	struct mx *s = arg;
	s->r1 = weft_wait(s->m, WEFT_INFINITE);
	wu_add(&s->step, 1);
	return NULL;
}

/* An owner that ends without releasing, by each exit path, abandons the mutex: the next
 * wait gets it with WEFT_WAIT_ABANDONED_0 and then owns it normally. */
static void test_mutex_abandoned_on_exit(void **state)
{
	(void)state;
	for (int how = 0; how < 4; how++) {
		struct mx s = { .m = weft_mutex_create(false), .how = how };
		if (how < 3) {
			weft_handle *t = wu_start(take_and_die, &s);
			unsigned code = 0;
			assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
			assert_int_equal(weft_thread_exit_code(t, &code), 0);
			assert_int_equal(code, how == 1 ? 5u : 4u);
			weft_handle_close(t);
		} else {
			pthread_t pt; /* a plain pthread, adopted lazily */
			assert_int_equal(pthread_create(&pt, NULL, take_and_die_pthread, &s), 0);
			assert_int_equal(pthread_join(pt, NULL), 0);
		}
		assert_int_equal(s.r1, WEFT_WAIT_OBJECT_0);
		assert_int_equal(weft_wait(s.m, WEFT_INFINITE), WEFT_WAIT_ABANDONED_0);
		/* the abandonment is reported once; ownership is ordinary afterwards */
		assert_int_equal(weft_wait(s.m, 0), WEFT_WAIT_OBJECT_0);
		assert_int_equal(weft_mutex_release(s.m), 0);
		assert_int_equal(weft_mutex_release(s.m), 0);
		assert_int_equal(weft_mutex_release(s.m), -EPERM);
		weft_handle_close(s.m);
	}
}

struct hold {
	weft_handle *m, *go;
	uint32_t owned;
};

static unsigned hold_until_go(void *arg)
{
	struct hold *h = arg;
	weft_wait(h->m, WEFT_INFINITE);
	wu_add(&h->owned, 1);
	weft_wait(h->go, WEFT_INFINITE);
	weft_thread_exit(0); /* still owning */
}

/* A waiter already blocked when the owner dies is handed the mutex, abandoned, at its
 * index in a wait-many; the mutex survives the creator closing its handle first. */
static void test_mutex_abandoned_handoff_wait_many(void **state)
{
	(void)state;
	struct hold h = { weft_mutex_create(false), weft_event_create(true, false), 0 };
	weft_handle *t = wu_start(hold_until_go, &h);
	wu_wait_count(&h.owned, 1);
	weft_handle *ev = weft_event_create(false, false);
	weft_handle *set[2] = { ev, h.m };
	weft_event_set(h.go);
	assert_int_equal(weft_wait_many(set, 2, false, WEFT_INFINITE), WEFT_WAIT_ABANDONED_0 + 1);
	assert_int_equal(weft_mutex_release(h.m), 0);
	wu_join(t);

	/* wait-all over an abandoned mutex: ABANDONED_0 + its index, all acquired */
	weft_handle *t2 = wu_start(hold_until_go, &h);
	wu_wait_count(&h.owned, 2);
	weft_event_set(ev);
	assert_int_equal(weft_wait_many(set, 2, true, WEFT_INFINITE), WEFT_WAIT_ABANDONED_0 + 1);
	assert_int_equal(weft_wait(ev, 0), WEFT_WAIT_TIMEOUT); /* consumed by the wait-all */
	assert_int_equal(weft_mutex_release(h.m), 0);
	wu_join(t2);
	weft_handle_close(ev);
	weft_handle_close(h.go);
	weft_handle_close(h.m);
}

/* Closing every handle of an owned mutex does not free it under its owner. */
static void test_mutex_close_while_owned(void **state)
{
	(void)state;
	struct hold h = { weft_mutex_create(false), weft_event_create(true, false), 0 };
	weft_handle *t = wu_start(hold_until_go, &h);
	wu_wait_count(&h.owned, 1);
	weft_handle_close(h.m); /* the owner's ownership reference keeps it alive */
	weft_event_set(h.go);   /* the owner exits, abandons and drops the last reference */
	wu_join(t);
	weft_handle_close(h.go);
}

struct excl {
	weft_handle *m;
	uint64_t iters;
	uint64_t counter; /* protected by the mutex, deliberately not atomic */
	uint32_t inside, violations;
};

static unsigned excl_worker(void *arg)
{
	struct excl *e = arg;
	for (uint64_t i = 0; i < e->iters; i++) {
		if (weft_wait(e->m, WEFT_INFINITE) != WEFT_WAIT_OBJECT_0)
			return 1;
		if (__atomic_fetch_add(&e->inside, 1, __ATOMIC_RELAXED) != 0)
			wu_add(&e->violations, 1);
		e->counter++;
		__atomic_fetch_sub(&e->inside, 1, __ATOMIC_RELAXED);
		if (weft_mutex_release(e->m) != 0)
			return 2;
	}
	return 0;
}

static void test_mutex_exclusion_stress(void **state)
{
	(void)state;
	struct excl e = { .m = weft_mutex_create(false), .iters = weft_test_iters(20000) };
	weft_handle *t[4];
	for (int i = 0; i < 4; i++)
		t[i] = wu_start(excl_worker, &e);
	for (int i = 0; i < 4; i++) {
		unsigned code = 9;
		assert_int_equal(weft_wait(t[i], WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
		weft_thread_exit_code(t[i], &code);
		assert_int_equal(code, 0);
		weft_handle_close(t[i]);
	}
	assert_int_equal(e.counter, 4 * e.iters);
	assert_int_equal(e.violations, 0);
	weft_handle_close(e.m);
}

/* The shared lock conformance suite (plain pthreads, so the lazily created per-thread
 * block path carries the ownership), with the mutex as a lock and wait(0) as trylock. */
static void *wm_create(void) { return weft_mutex_create(false); }
static void wm_destroy(void *l) { weft_handle_close(l); }
static void wm_lock(void *l, void *c) { (void)c; weft_wait(l, WEFT_INFINITE); }
static bool wm_try(void *l, void *c) { (void)c; return weft_wait(l, 0) == WEFT_WAIT_OBJECT_0; }
static void wm_unlock(void *l, void *c) { (void)c; weft_mutex_release(l); }
static const struct lock_ops WM_OPS = { "weft_mutex", wm_create, wm_destroy, wm_lock, wm_try, wm_unlock };

static void test_mutex_lock_suite(void **state)
{
	(void)state;
	lock_suite_try(&WM_OPS);
	lock_suite_stress(&WM_OPS, 2, weft_test_iters(50000));
	lock_suite_stress(&WM_OPS, 4, weft_test_iters(20000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutex_recursion),
		cmocka_unit_test(test_mutex_non_owner_eperm),
		cmocka_unit_test(test_mutex_abandoned_on_exit),
		cmocka_unit_test(test_mutex_abandoned_handoff_wait_many),
		cmocka_unit_test(test_mutex_close_while_owned),
		cmocka_unit_test(test_mutex_exclusion_stress),
		cmocka_unit_test(test_mutex_lock_suite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
