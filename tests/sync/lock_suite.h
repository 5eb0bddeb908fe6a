/* lock_suite.h - one conformance and counter-stress suite for every mutual-exclusion
 * lock, driven by an ops table (concurrencykit's harness idea). */
#ifndef WEFT_LOCK_SUITE_H
#define WEFT_LOCK_SUITE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft_test.h"

struct lock_ops {
	const char *name;
	void *(*create)(void);
	void (*destroy)(void *lock);
	/* ctx: per-thread scratch (an MCS node), 64-byte aligned */
	void (*lock)(void *lock, void *ctx);
	bool (*trylock)(void *lock, void *ctx); /* NULL if the lock has no try form */
	void (*unlock)(void *lock, void *ctx);
};

struct stress_shared {
	const struct lock_ops *ops;
	void *lock;
	uint64_t iters;
	uint64_t counter;     /* protected by the lock, deliberately not atomic */
	uint32_t inside;      /* atomically counted: must never exceed 1 */
	uint32_t max_inside;
	uint64_t try_ok;
	pthread_barrier_t start;
};

static void *stress_thread(void *arg)
{
	struct stress_shared *s = arg;
	_Alignas(64) char ctx[64];
	pthread_barrier_wait(&s->start);
	for (uint64_t i = 0; i < s->iters; i++) {
		bool via_try = s->ops->trylock && (i % 16) == 0 && s->ops->trylock(s->lock, ctx);
		if (!via_try)
			s->ops->lock(s->lock, ctx);
		uint32_t in = __atomic_add_fetch(&s->inside, 1, __ATOMIC_RELAXED);
		if (in > __atomic_load_n(&s->max_inside, __ATOMIC_RELAXED))
			__atomic_store_n(&s->max_inside, in, __ATOMIC_RELAXED);
		s->counter++;
		if (via_try)
			s->try_ok++;
		__atomic_sub_fetch(&s->inside, 1, __ATOMIC_RELAXED);
		s->ops->unlock(s->lock, ctx);
	}
	return NULL;
}

/* Every increment made under the lock is seen: the final count is exact, and no two
 * threads were ever inside together. */
static inline void lock_suite_stress(const struct lock_ops *ops, unsigned threads, uint64_t iters)
{
	struct stress_shared s = { .ops = ops, .lock = ops->create(), .iters = iters };
	pthread_t t[16];
	assert_true(threads <= 16);
	pthread_barrier_init(&s.start, NULL, threads);
	for (unsigned i = 0; i < threads; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s), 0);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&s.start);
	assert_int_equal(s.counter, (uint64_t)threads * iters);
	assert_int_equal(s.max_inside, 1);
	ops->destroy(s.lock);
}

struct try_probe {
	const struct lock_ops *ops;
	void *lock;
	bool got;
};

static void *try_probe_thread(void *arg)
{
	struct try_probe *p = arg;
	_Alignas(64) char ctx[64];
	p->got = p->ops->trylock(p->lock, ctx);
	if (p->got)
		p->ops->unlock(p->lock, ctx);
	return NULL;
}

/* trylock fails while another thread holds the lock and succeeds once it is free. */
static inline void lock_suite_try(const struct lock_ops *ops)
{
	if (!ops->trylock)
		return;
	void *l = ops->create();
	_Alignas(64) char ctx[64];
	struct try_probe p = { ops, l, true };
	pthread_t t;
	ops->lock(l, ctx);
	pthread_create(&t, NULL, try_probe_thread, &p);
	pthread_join(t, NULL);
	assert_false(p.got);
	ops->unlock(l, ctx);
	p.got = false;
	pthread_create(&t, NULL, try_probe_thread, &p);
	pthread_join(t, NULL);
	assert_true(p.got);
	assert_true(ops->trylock(l, ctx));
	ops->unlock(l, ctx);
	ops->destroy(l);
}

/* The refcounted-object pattern: two threads drop a reference under the lock, and the
 * one that drops the last frees the lock right after its own unlock returns - while the
 * other may still be inside its unlock. An unlock that touches the lock after releasing
 * it is a use after free (ASan) or a race with the free (TSan). */
struct free_race {
	const struct lock_ops *ops;
	void *volatile lock;
	int refs;
	pthread_barrier_t go;
	unsigned rounds;
};

static void *free_race_thread(void *arg)
{
	struct free_race *r = arg;
	_Alignas(64) char ctx[64];
	for (unsigned i = 0; i < r->rounds; i++) {
		pthread_barrier_wait(&r->go);
		void *l = r->lock;
		r->ops->lock(l, ctx);
		bool last = --r->refs == 0;
		r->ops->unlock(l, ctx);
		if (last)
			r->ops->destroy(l);
		pthread_barrier_wait(&r->go);
	}
	return NULL;
}

static inline void lock_suite_free_after_unlock(const struct lock_ops *ops, unsigned rounds)
{
	static struct free_race r;
	r = (struct free_race){ .ops = ops, .rounds = rounds };
	pthread_barrier_init(&r.go, NULL, 3);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, free_race_thread, &r);
	for (unsigned i = 0; i < rounds; i++) {
		r.lock = ops->create();
		r.refs = 2;
		pthread_barrier_wait(&r.go);
		pthread_barrier_wait(&r.go);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&r.go);
}

#endif
