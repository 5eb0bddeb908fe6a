/* test_bufpool.c - the net module's buffer pool (net/src/bufpool.c): recycling without
 * allocation once warm, the cap on idle buffers, and every buffer accounted for when
 * threads take and return them at once. */
#include "weft_test.h"

#include <pthread.h>
#include <string.h>

#include "atomic.h"
#include "bufpool.h"

static void test_bufpool_recycles(void **state)
{
	(void)state;
	struct weft__bufpool p;
	assert_int_equal(weft__bufpool_init(&p, 1024, 4, 8), 0);
	assert_int_equal(p.allocs, 4);
	assert_int_equal(p.nfree, 4);
	struct weft__buf *b[8];
	for (int i = 0; i < 4; i++) {
		b[i] = weft__bufpool_get(&p);
		assert_non_null(b[i]);
		assert_int_equal(b[i]->len, 0);
		assert_null(b[i]->next);
		memset(b[i]->data, i, 1024);   /* the whole capacity is usable (ASan) */
	}
	assert_int_equal(p.allocs, 4);     /* all four came from the free list */
	assert_int_equal(p.out, 4);
	b[4] = weft__bufpool_get(&p);      /* the fifth is new */
	assert_int_equal(p.allocs, 5);
	for (int i = 0; i < 5; i++)
		weft__bufpool_put(&p, b[i]);
	weft__bufpool_put(&p, NULL);
	assert_int_equal(p.out, 0);
	assert_int_equal(p.nfree, 5);
	/* warm: get/put cycles allocate nothing */
	for (int r = 0; r < 1000; r++) {
		struct weft__buf *x = weft__bufpool_get(&p), *y = weft__bufpool_get(&p);
		x->len = 7;
		weft__bufpool_put(&p, x);
		weft__bufpool_put(&p, y);
	}
	assert_int_equal(p.allocs, 5);
	/* a recycled buffer comes back empty */
	struct weft__buf *x = weft__bufpool_get(&p);
	assert_int_equal(x->len, 0);
	weft__bufpool_put(&p, x);
	weft__bufpool_fini(&p);
}

static void test_bufpool_cap(void **state)
{
	(void)state;
	struct weft__bufpool p;
	assert_int_equal(weft__bufpool_init(&p, 64, 0, 3), 0);
	struct weft__buf *b[6];
	for (int i = 0; i < 6; i++)
		b[i] = weft__bufpool_get(&p);
	assert_int_equal(p.allocs, 6);
	for (int i = 0; i < 6; i++)
		weft__bufpool_put(&p, b[i]);   /* three are kept, three freed (ASan: no leak) */
	assert_int_equal(p.nfree, 3);
	assert_int_equal(p.out, 0);
	weft__bufpool_fini(&p);
	assert_int_equal(p.nfree, 0);
}

struct worker {
	struct weft__bufpool *p;
	unsigned rounds;
	unsigned id;
	unsigned corrupt;   /* buffers found changed under us: must stay 0 */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct weft__buf *held[4];
	for (unsigned r = 0; r < w->rounds; r++) {
		for (int i = 0; i < 4; i++) {
			held[i] = weft__bufpool_get(w->p);
			memset(held[i]->data, (int)w->id, 32);
		}
		for (int i = 0; i < 4; i++) {
			for (int j = 0; j < 32; j++)
				if ((unsigned char)held[i]->data[j] != (unsigned char)w->id)
					w->corrupt++;
			weft__bufpool_put(w->p, held[i]);
		}
	}
	return NULL;
}

/* Threads taking and returning at once: no buffer is handed to two holders, none is lost. */
static void test_bufpool_threads(void **state)
{
	(void)state;
	struct weft__bufpool p;
	assert_int_equal(weft__bufpool_init(&p, 64, 16, 64), 0);
	enum { T = 4 };
	struct worker w[T];
	pthread_t th[T];
	for (unsigned i = 0; i < T; i++) {
		w[i] = (struct worker){ .p = &p, .rounds = (unsigned)weft_test_iters(20000), .id = i + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].corrupt, 0);
	}
	assert_int_equal(p.out, 0);
	assert_true(p.allocs <= 16 + 4 * T);   /* at most what was held at once */
	assert_int_equal(p.nfree, p.allocs);  /* everything back, nothing over the cap */
	weft__bufpool_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bufpool_recycles),
		cmocka_unit_test(test_bufpool_cap),
		cmocka_unit_test(test_bufpool_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
