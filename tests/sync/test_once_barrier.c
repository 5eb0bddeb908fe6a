/* Init-once runs exactly once under a race (and retries after a failure); the barrier
 * lines phases up over many rounds and names exactly one last thread per phase. */
#include <pthread.h>

#include <weft/sync.h>

#include "weft_test.h"

#define THREADS 8

struct race {
	weft_once once;
	pthread_barrier_t go;
	uint32_t runs;
	uint32_t bad_ctx;
	int fail_first;
};

static bool init_fn(weft_once *once, void *param, void **ctx)
{
	(void)once;
	struct race *r = param;
	uint32_t n = __atomic_add_fetch(&r->runs, 1, __ATOMIC_RELAXED);
	if (r->fail_first && n == 1)
		return false;
	*ctx = (void *)(uintptr_t)0xC0FFEE;
	return true;
}

static void *once_thread(void *arg)
{
	struct race *r = arg;
	void *ctx = NULL;
	pthread_barrier_wait(&r->go);
	int rc;
	while ((rc = weft_once_execute(&r->once, init_fn, r, &ctx)) == -EAGAIN)
		;
	if (rc != 0 || ctx != (void *)(uintptr_t)0xC0FFEE)
		__atomic_add_fetch(&r->bad_ctx, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void run_once_race(int fail_first)
{
	static struct race r;
	r = (struct race){ .once = WEFT_ONCE_INIT, .fail_first = fail_first };
	pthread_barrier_init(&r.go, NULL, THREADS);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, once_thread, &r);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&r.go);
	assert_int_equal(r.runs, fail_first ? 2 : 1);
	assert_int_equal(r.bad_ctx, 0);
}

static void test_once_exactly_once(void **state)
{
	(void)state;
	for (int i = 0; i < 50; i++)
		run_once_race(0);
}

static void test_once_retry_after_failure(void **state)
{
	(void)state;
	run_once_race(1);
	weft_once o;
	weft_once_init(&o);
	assert_int_equal(weft_once_execute(NULL, init_fn, NULL, NULL), -EINVAL);
	assert_int_equal(weft_once_execute(&o, NULL, NULL, NULL), -EINVAL);
}

struct phases {
	weft_barrier b;
	uint64_t rounds;
	uint32_t arrived[THREADS];
	uint32_t lasts;      /* how many "last" results in total */
	uint32_t misaligned; /* a thread saw a peer not yet at this round */
};

struct barg {
	struct phases *p;
	unsigned me;
};

static void *phase_thread(void *arg)
{
	struct barg *a = arg;
	struct phases *p = a->p;
	for (uint32_t r = 1; r <= p->rounds; r++) {
		__atomic_store_n(&p->arrived[a->me], r, __ATOMIC_RELAXED);
		if (weft_barrier_enter(&p->b))
			__atomic_add_fetch(&p->lasts, 1, __ATOMIC_RELAXED);
		/* After the barrier every peer has arrived at round r (and none can be
		 * past r+1's arrival store without this thread also entering). */
		for (unsigned i = 0; i < THREADS; i++) {
			uint32_t v = __atomic_load_n(&p->arrived[i], __ATOMIC_RELAXED);
			if (v < r || v > r + 1)
				__atomic_add_fetch(&p->misaligned, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void run_barrier(int32_t spin)
{
	static struct phases p;
	p = (struct phases){ .rounds = weft_test_iters(4000) };
	assert_int_equal(weft_barrier_init(&p.b, THREADS, spin), 0);
	struct barg a[THREADS];
	pthread_t t[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		a[i] = (struct barg){ &p, i };
		pthread_create(&t[i], NULL, phase_thread, &a[i]);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	weft_barrier_destroy(&p.b);
	assert_int_equal(p.lasts, p.rounds);
	assert_int_equal(p.misaligned, 0);
}

static void test_barrier_phases(void **state)
{
	(void)state;
	run_barrier(-1);
	run_barrier(0);
	weft_barrier b;
	assert_int_equal(weft_barrier_init(&b, 0, 0), -EINVAL);
	assert_int_equal(weft_barrier_init(&b, 1, 0), 0);
	assert_true(weft_barrier_enter(&b)); /* a lone thread is always last */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_exactly_once),
		cmocka_unit_test(test_once_retry_after_failure),
		cmocka_unit_test(test_barrier_phases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
