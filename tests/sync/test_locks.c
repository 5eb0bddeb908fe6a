/* The shared lock conformance suite over spin, ticket, mcs, cs and srw (exclusive). */
#include <stdlib.h>

#include <weft/sync.h>

#include "lock_suite.h"

static void *aligned_new(size_t size)
{
	void *p = NULL;
	assert_int_equal(posix_memalign(&p, 64, size), 0);
	return p;
}

static void *spin_create(void)
{
	weft_spinlock *l = aligned_new(sizeof *l);
	weft_spin_init(l);
	return l;
}
static void spin_lock(void *l, void *c) { (void)c; weft_spin_lock(l); }
static bool spin_try(void *l, void *c) { (void)c; return weft_spin_trylock(l); }
static void spin_unlock(void *l, void *c) { (void)c; weft_spin_unlock(l); }

static void *ticket_create(void)
{
	weft_ticketlock *l = aligned_new(sizeof *l);
	weft_ticket_init(l);
	return l;
}
static void ticket_lock(void *l, void *c) { (void)c; weft_ticket_lock(l); }
static bool ticket_try(void *l, void *c) { (void)c; return weft_ticket_trylock(l); }
static void ticket_unlock(void *l, void *c) { (void)c; weft_ticket_unlock(l); }

static void *mcs_create(void)
{
	weft_mcslock *l = aligned_new(sizeof *l);
	weft_mcs_init(l);
	return l;
}
static void mcs_lock(void *l, void *c) { weft_mcs_lock(l, c); }
static bool mcs_try(void *l, void *c) { return weft_mcs_trylock(l, c); }
static void mcs_unlock(void *l, void *c) { weft_mcs_unlock(l, c); }

static void *cs_create(void)
{
	weft_cs *l = aligned_new(sizeof *l);
	weft_cs_init(l, WEFT_CS_DEFAULT_SPIN);
	return l;
}
/* Spin count 0: every contended enter sleeps, exercising the membarrier hand-shake. */
static void *cs_nospin_create(void)
{
	weft_cs *l = aligned_new(sizeof *l);
	weft_cs_init(l, 0);
	return l;
}
static void cs_destroy(void *l) { weft_cs_destroy(l); free(l); }
static void cs_lock(void *l, void *c) { (void)c; weft_cs_enter(l); }
static bool cs_try(void *l, void *c) { (void)c; return weft_cs_try_enter(l); }
static void cs_unlock(void *l, void *c) { (void)c; weft_cs_leave(l); }

static void *srw_create(void)
{
	weft_srw *l = aligned_new(sizeof *l);
	weft_srw_init(l);
	return l;
}
static void srw_lock(void *l, void *c) { (void)c; weft_srw_lock_exclusive(l); }
static bool srw_try(void *l, void *c) { (void)c; return weft_srw_try_lock_exclusive(l); }
static void srw_unlock(void *l, void *c) { (void)c; weft_srw_unlock_exclusive(l); }

static const struct lock_ops LOCKS[] = {
	{ "spin", spin_create, free, spin_lock, spin_try, spin_unlock },
	{ "ticket", ticket_create, free, ticket_lock, ticket_try, ticket_unlock },
	{ "mcs", mcs_create, free, mcs_lock, mcs_try, mcs_unlock },
	{ "cs", cs_create, cs_destroy, cs_lock, cs_try, cs_unlock },
	{ "cs0", cs_nospin_create, cs_destroy, cs_lock, cs_try, cs_unlock },
	{ "srw", srw_create, free, srw_lock, srw_try, srw_unlock },
};

static void stress_all(unsigned threads)
{
	/* Oversubscribed runs (more threads than CPUs) get fewer iterations each: a FIFO
	 * lock then pays a wake-up per hand-off. */
	uint64_t iters = weft_test_iters(threads <= 2 ? 200000 : 50000);
	for (size_t i = 0; i < sizeof LOCKS / sizeof LOCKS[0]; i++) {
		uint64_t t0 = weft_test_now_ns();
		lock_suite_stress(&LOCKS[i], threads, iters);
		print_message("  %-6s x%u: %.0f ms\n", LOCKS[i].name, threads, (weft_test_now_ns() - t0) / 1e6);
	}
}

static void test_locks_counter_2(void **state) { (void)state; stress_all(2); }
static void test_locks_counter_4(void **state) { (void)state; stress_all(4); }
static void test_locks_counter_8(void **state) { (void)state; stress_all(8); }

static void test_locks_try(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof LOCKS / sizeof LOCKS[0]; i++)
		lock_suite_try(&LOCKS[i]);
}

static void test_locks_static_init(void **state)
{
	(void)state;
	static weft_spinlock s = WEFT_SPINLOCK_INIT;
	static weft_ticketlock t = WEFT_TICKETLOCK_INIT;
	static weft_mcslock m = WEFT_MCSLOCK_INIT;
	static weft_cs cs = WEFT_CS_INIT;
	static weft_srw srw = WEFT_SRW_INIT;
	weft_mcs_node n;
	assert_true(weft_spin_trylock(&s));
	assert_false(weft_spin_trylock(&s));
	weft_spin_unlock(&s);
	weft_ticket_lock(&t);
	assert_false(weft_ticket_trylock(&t));
	weft_ticket_unlock(&t);
	weft_mcs_lock(&m, &n);
	weft_mcs_unlock(&m, &n);
	weft_cs_enter(&cs);
	weft_cs_leave(&cs);
	weft_srw_lock_shared(&srw);
	weft_srw_unlock_shared(&srw);
	/* alignment: each lock owns its cache line */
	assert_int_equal((uintptr_t)&s % 64, 0);
	assert_int_equal((uintptr_t)&t % 64, 0);
	assert_int_equal((uintptr_t)&cs % 64, 0);
}

static void test_locks_free_after_last_unlock(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof LOCKS / sizeof LOCKS[0]; i++)
		lock_suite_free_after_unlock(&LOCKS[i], (unsigned)weft_test_iters(4000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locks_static_init),
		cmocka_unit_test(test_locks_try),
		cmocka_unit_test(test_locks_free_after_last_unlock),
		cmocka_unit_test(test_locks_counter_2),
		cmocka_unit_test(test_locks_counter_4),
		cmocka_unit_test(test_locks_counter_8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
