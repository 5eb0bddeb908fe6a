/* test_port_fast.c - the port's lock-free ring and the paths around it: packets through
 * the overflow queue keep their order, every packet (posts and I/O completions, taken by
 * get and get_many, with the ring overflowing) is taken exactly once, the concurrency
 * limit holds when released threads take from the ring without the lock, a port over
 * its limit releases no one, and close under traffic loses nothing posted. */
#include <errno.h>
#include <fcntl.h>
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

#define RING 2048u /* WEFT__RING_CAP (pool/src/port_impl.h) */

/* ---- one producer's packets stay in order through ring and overflow ---- */

static void test_port_fast_fifo_through_overflow(void **state)
{
	(void)state;
	weft_port *p = weft_port_create(1);
	const uint32_t n = 3 * RING + 100; /* the ring fills: the rest go to the overflow */
	uint32_t next_post = 0, next_get = 0;
	for (; next_post < n; next_post++)
		assert_int_equal(weft_port_post(p, next_post, next_post + 1, NULL), 0);
	/* take some, post more while the overflow is still not empty, take the rest, in
	 * batches of varying size */
	weft_completion c[37];
	for (int round = 0; round < 4; round++) {
		for (uint32_t k = 0; k < RING / 2; k++, next_post++)
			assert_int_equal(weft_port_post(p, next_post, next_post + 1, NULL), 0);
		uint32_t want = (round + 1) * RING;
		while (next_get < want) {
			uint32_t got = 0;
			uint32_t max = 1 + (next_get % 37);
			assert_int_equal(weft_port_get_many(p, c, max, &got, 0, false), 0);
			assert_true(got >= 1 && got <= max);
			for (uint32_t i = 0; i < got; i++, next_get++) {
				assert_int_equal(c[i].key, next_get + 1);
				assert_int_equal(c[i].bytes, next_get);
			}
		}
	}
	while (next_get < next_post) {
		uint32_t got = 0;
		assert_int_equal(weft_port_get_many(p, c, 37, &got, 0, false), 0);
		for (uint32_t i = 0; i < got; i++, next_get++)
			assert_int_equal(c[i].key, next_get + 1);
	}
	uint32_t got = 0;
	assert_int_equal(weft_port_get_many(p, c, 37, &got, 0, false), -ETIMEDOUT);
	assert_int_equal(got, 0);
	/* with the overflow drained, posts use the ring again */
	assert_int_equal(weft_port_post(p, 7, 8, NULL), 0);
	uintptr_t key = 0;
	assert_int_equal(weft_port_get(p, NULL, &key, NULL, 0), 0);
	assert_int_equal(key, 8);
	weft_port_close(p);
}

/* ---- posts and completions from several threads, get and get_many, each once ---- */

#define MIX_PROD 3
#define MIX_CONS 4
#define FILE_KEY ((uintptr_t)1 << 40)
#define STOP_KEY ((uintptr_t)1 << 41)

struct mix_io {
	weft_overlapped ov;
	uint32_t idx;
	char buf[8];
};

struct mix_shared {
	weft_port *p;
	int fd;
	uint64_t nposts; /* per producer */
	uint32_t nio;	 /* reads submitted by the io thread */
	struct mix_io *ios;
	uint8_t *seen; /* posts: [prod * nposts + i]; consumers only, each index once */
	uint8_t *io_seen;
	uint64_t taken[MIX_CONS]; /* atomic: main polls */
	uint64_t bad[MIX_CONS];
	uint64_t io_errors;
	int submit_rc;
};
struct mix_arg {
	struct mix_shared *s;
	int idx;
};

static void *mix_producer(void *v)
{
	struct mix_arg *a = v;
	struct mix_shared *s = a->s;
	for (uint64_t i = 0; i < s->nposts; i++) {
		uint64_t id = (uint64_t)a->idx * s->nposts + i;
		if (weft_port_post(s->p, (uint32_t)id, (uintptr_t)id + 1, NULL) != 0)
			abort();
		if ((i & 4095) == 4095)
			usleep(100); /* let the consumers catch up now and then: ring empty, waiters */
	}
	return NULL;
}

static void *mix_io_thread(void *v)
{
	struct mix_shared *s = v;
	for (uint32_t i = 0; i < s->nio; i++) {
		struct mix_io *io = &s->ios[i];
		io->idx = i;
		io->ov.offset = (uint64_t)(i % 64) * 8;
		int r = weft_port_read(s->p, s->fd, io->buf, 8, &io->ov);
		if (r != 0) {
			s->submit_rc = r;
			break;
		}
	}
	return NULL;
}

static void *mix_consumer(void *v)
{
	struct mix_arg *a = v;
	struct mix_shared *s = a->s;
	weft_completion c[16];
	/* consumer 0: get; 1: get_many(16); 2: get_many(3) with short timeouts; 3: get
	 * with timeout 0 and retries (the released thread's path without a spin) */
	for (;;) {
		uint32_t n = 0;
		int r;
		if (a->idx == 0 || a->idx == 3) {
			r = weft_port_get(s->p, &c[0].bytes, &c[0].key, &c[0].ov,
					  a->idx == 3 ? 0 : WEFT_INFINITE);
			n = r == 0;
		} else {
			r = weft_port_get_many(s->p, c, a->idx == 1 ? 16 : 3, &n,
					       a->idx == 2 ? 1 : WEFT_INFINITE, false);
		}
		if (r == -ETIMEDOUT) {
			sched_yield();
			continue;
		}
		if (r != 0)
			abort();
		uint32_t stops = 0;
		for (uint32_t i = 0; i < n; i++) {
			uintptr_t k = c[i].key;
			if (k == STOP_KEY) {
				stops++;
			} else if (k == FILE_KEY) {
				struct mix_io *io = weft_container_of(c[i].ov, struct mix_io, ov);
				if (io->idx >= s->nio || s->io_seen[io->idx]++)
					s->bad[a->idx]++;
				else if (io->ov.status != 0 || io->ov.bytes != 8 ||
					 memcmp(io->buf, "01234567", 8) != 0)
					s->bad[a->idx]++;
				weft__fadd_rel(&s->taken[a->idx], 1u);
			} else {
				uint64_t id = k - 1;
				if (id >= MIX_PROD * s->nposts || c[i].bytes != (uint32_t)id || s->seen[id]++)
					s->bad[a->idx]++;
				weft__fadd_rel(&s->taken[a->idx], 1u);
			}
		}
		if (stops) {
			while (--stops) /* a batch took another consumer's stop: pass it on */
				weft_port_post(s->p, 0, STOP_KEY, NULL);
			return NULL;
		}
	}
}

static void test_port_fast_mixed_exactly_once(void **state)
{
	(void)state;
	struct mix_shared s = {.p = weft_port_create(2),
			       .nposts = weft_test_iters(200000),
			       .nio = (uint32_t)weft_test_iters(20000)};
	assert_non_null(s.p);
	char path[] = "/tmp/weft-port-fast-XXXXXX";
	s.fd = mkstemp(path);
	assert_true(s.fd >= 0);
	unlink(path);
	char block[512];
	for (int i = 0; i < 512; i++)
		block[i] = (char)('0' + i % 8);
	assert_int_equal(write(s.fd, block, sizeof block), (ssize_t)sizeof block);
	assert_int_equal(weft_port_associate(s.p, s.fd, FILE_KEY), 0);
	s.seen = calloc(MIX_PROD * s.nposts, 1);
	s.io_seen = calloc(s.nio, 1);
	s.ios = calloc(s.nio, sizeof *s.ios);
	pthread_t cons[MIX_CONS], prod[MIX_PROD], iot;
	struct mix_arg ca[MIX_CONS], pa[MIX_PROD];
	for (int i = 0; i < MIX_CONS; i++) {
		ca[i] = (struct mix_arg){&s, i};
		pthread_create(&cons[i], NULL, mix_consumer, &ca[i]);
	}
	for (int i = 0; i < MIX_PROD; i++) {
		pa[i] = (struct mix_arg){&s, i};
		pthread_create(&prod[i], NULL, mix_producer, &pa[i]);
	}
	pthread_create(&iot, NULL, mix_io_thread, &s);
	for (int i = 0; i < MIX_PROD; i++)
		pthread_join(prod[i], NULL);
	pthread_join(iot, NULL);
	assert_int_equal(s.submit_rc, 0);
	uint64_t want = MIX_PROD * s.nposts + s.nio, total;
	uint64_t t0 = weft_test_now_ns();
	do {
		total = 0;
		for (int i = 0; i < MIX_CONS; i++)
			total += weft__load_acq(&s.taken[i]);
		if (total < want)
			usleep(1000);
	} while (total < want && weft_test_now_ns() - t0 < 20000000000ull);
	assert_int_equal(total, want);
	for (int i = 0; i < MIX_CONS; i++)
		assert_int_equal(weft_port_post(s.p, 0, STOP_KEY, NULL), 0);
	total = 0;
	for (int i = 0; i < MIX_CONS; i++) {
		pthread_join(cons[i], NULL);
		total += s.taken[i];
		assert_int_equal(s.bad[i], 0);
	}
	assert_int_equal(total, want);
	for (uint64_t i = 0; i < MIX_PROD * s.nposts; i++)
		if (s.seen[i] != 1)
			fail_msg("packet %llu seen %u times", (unsigned long long)i, s.seen[i]);
	for (uint32_t i = 0; i < s.nio; i++)
		if (s.io_seen[i] != 1)
			fail_msg("completion %u seen %u times", i, s.io_seen[i]);
	weft_port_close(s.p);
	close(s.fd);
	free(s.seen);
	free(s.io_seen);
	free(s.ios);
}

/* ---- the limit with threads taking from the ring, in bursts ---- */

#define LIM_THREADS 5
#define LIM_CONC 2
struct lim_shared {
	weft_port *p;
	uint32_t running, max_running; /* atomic */
	uint64_t got[LIM_THREADS];
};
struct lim_arg {
	struct lim_shared *s;
	int idx;
};

static void *lim_thread(void *v)
{
	struct lim_arg *a = v;
	struct lim_shared *s = a->s;
	weft_completion c[4];
	for (;;) {
		uint32_t n = 0;
		if (weft_port_get_many(s->p, c, (uint32_t)(a->idx % 4) + 1, &n, WEFT_INFINITE, false) != 0)
			break;
		uint32_t now = weft__fadd_acqrel(&s->running, 1u) + 1;
		uint32_t m = weft__load_rlx(&s->max_running);
		while (now > m && !weft__cas_rlx(&s->max_running, &m, now))
			;
		bool stop = false;
		for (uint32_t i = 0; i < n; i++) {
			if (c[i].key == 0)
				stop = true;
			else
				s->got[a->idx]++;
		}
		for (volatile int i = 0; i < 300; i++)
			;
		weft__fsub_rel(&s->running, 1u);
		if (stop) {
			uint32_t stops = 0;
			for (uint32_t i = 0; i < n; i++)
				stops += c[i].key == 0;
			while (--stops)
				weft_port_post(s->p, 0, 0, NULL);
			break;
		}
	}
	return NULL;
}

static void test_port_fast_limit_in_bursts(void **state)
{
	(void)state;
	struct lim_shared s = {.p = weft_port_create(LIM_CONC)};
	pthread_t th[LIM_THREADS];
	struct lim_arg a[LIM_THREADS];
	for (int i = 0; i < LIM_THREADS; i++) {
		a[i] = (struct lim_arg){&s, i};
		pthread_create(&th[i], NULL, lim_thread, &a[i]);
	}
	uint64_t n = 0, bursts = weft_test_iters(400);
	for (uint64_t b = 0; b < bursts; b++) {
		uint32_t k = (uint32_t)(b % 97) * 7 + 1; /* sometimes more than the ring holds */
		if (b % 50 == 49)
			k = RING + 500;
		for (uint32_t i = 0; i < k; i++, n++)
			assert_int_equal(weft_port_post(s.p, 0, 1, NULL), 0);
		if (b % 8 == 0)
			usleep(300); /* the threads drain, spin, become waiters */
	}
	for (int i = 0; i < LIM_THREADS; i++)
		assert_int_equal(weft_port_post(s.p, 0, 0, NULL), 0);
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

/* ---- over the limit: a thread back in get waits, the newest one takes ---- */

struct over_shared {
	weft_port *p;
	uint32_t step; /* atomic: main -> B */
	int rc1, rc2, rc3;
	uintptr_t key1;
};

static void *over_b(void *v)
{
	struct over_shared *s = v;
	s->rc1 = weft_port_get(s->p, NULL, &s->key1, NULL, 20000); /* while main pauses */
	weft__store_rel(&s->step, 1u);
	/* released: wait for main without any weft primitive (that would pause us) */
	while (weft__load_acq(&s->step) != 2)
		usleep(100);
	s->rc2 = weft_port_get(s->p, NULL, NULL, NULL, 100); /* the port is over its limit */
	weft__store_rel(&s->step, 3u);
	s->rc3 = weft_port_get(s->p, NULL, NULL, NULL, WEFT_INFINITE); /* until close */
	return NULL;
}

static void test_port_fast_over_limit(void **state)
{
	(void)state;
	struct over_shared s = {.p = weft_port_create(1)};
	assert_int_equal(weft_port_post(s.p, 0, 1, NULL), 0);
	uintptr_t key = 0;
	assert_int_equal(weft_port_get(s.p, NULL, &key, NULL, 0), 0); /* main released */
	pthread_t b;
	pthread_create(&b, NULL, over_b, &s);
	wait_waiters(s.p, 1);
	assert_int_equal(weft_port_post(s.p, 0, 2, NULL), 0); /* waits: main holds the slot */
	/* main pauses: B gets packet 2; main wakes: released 2 on a limit of 1 */
	weft_cs cs;
	weft_cond cond;
	weft_cs_init(&cs, 0);
	weft_cond_init(&cond);
	while (weft__load_acq(&s.step) != 1) {
		weft_cs_enter(&cs);
		weft_cond_sleep_cs(&cond, &cs, 20);
		weft_cs_leave(&cs);
	}
	assert_int_equal(s.rc1, 0);
	assert_int_equal(s.key1, 2);
	assert_int_equal(weft_port_post(s.p, 0, 3, NULL), 0); /* queued: over the limit */
	weft__store_rel(&s.step, 2u);
	while (weft__load_acq(&s.step) != 3)
		usleep(100);
	assert_int_equal(s.rc2, -ETIMEDOUT); /* B back in get: still 2 released, no packet */
	/* B is now a waiter (released 1: main): main back in get is the newest: it takes */
	wait_waiters(s.p, 1);
	key = 0;
	assert_int_equal(weft_port_get(s.p, NULL, &key, NULL, 0), 0);
	assert_int_equal(key, 3);
	assert_int_equal(weft__port_waiters(s.p), 1);
	weft_port_close(s.p);
	pthread_join(b, NULL);
	assert_int_equal(s.rc3, -ESHUTDOWN);
	weft_cs_destroy(&cs);
}

/* ---- close under posts and gets: each successful post is taken once ---- */

struct storm {
	weft_port *p;
	uint64_t posted[2]; /* producers: posts that succeeded (read after join) */
	uint64_t taken[3];  /* consumers */
	uint32_t started;   /* atomic */
	int last_rc[3];
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
	/* a get first: the thread is then associated with the port before it closes */
	if (weft_port_get(s->p, NULL, NULL, NULL, 0) != -ETIMEDOUT)
		abort();
	weft__fadd_rel(&s->started, 1u);
	for (;;) {
		uint32_t n = 0;
		int r = a->idx == 1 ? weft_port_get_many(s->p, c, 8, &n, WEFT_INFINITE, false)
				    : weft_port_get(s->p, NULL, NULL, NULL, a->idx == 0 ? WEFT_INFINITE : 0);
		if (r == 0 && a->idx != 1)
			n = 1;
		if (r == -ESHUTDOWN) {
			s->last_rc[a->idx] = r;
			return NULL;
		}
		if (r == 0)
			s->taken[a->idx] += n;
	}
}

static void *storm_producer(void *v)
{
	struct storm_arg *a = v;
	struct storm *s = a->s;
	/* a get first: the thread then holds on to the port, so its post after the close
	 * touches live memory */
	if (weft_port_get(s->p, NULL, NULL, NULL, 0) != -ETIMEDOUT)
		abort();
	weft__fadd_rel(&s->started, 1u);
	while (weft_port_post(s->p, 1, 1, NULL) == 0)
		s->posted[a->idx]++;
	return NULL;
}

static void test_port_fast_close_under_posts(void **state)
{
	(void)state;
	int rounds = (int)weft_test_iters(24);
	for (int round = 0; round < rounds; round++) {
		struct storm s = {.p = weft_port_create(2)};
		pthread_t cons[3], prod[2];
		struct storm_arg ca[3], pa[2];
		for (int i = 0; i < 3; i++) {
			ca[i] = (struct storm_arg){&s, i};
			pthread_create(&cons[i], NULL, storm_consumer, &ca[i]);
		}
		while (weft__load_acq(&s.started) != 3)
			usleep(100);
		for (int i = 0; i < 2; i++) {
			pa[i] = (struct storm_arg){&s, i};
			pthread_create(&prod[i], NULL, storm_producer, &pa[i]);
		}
		while (weft__load_acq(&s.started) != 5)
			usleep(100);
		usleep(1000 + 500 * (unsigned)round);
		weft_port_close(s.p);
		for (int i = 0; i < 2; i++)
			pthread_join(prod[i], NULL);
		uint64_t taken = 0;
		for (int i = 0; i < 3; i++) {
			pthread_join(cons[i], NULL);
			assert_int_equal(s.last_rc[i], -ESHUTDOWN);
			taken += s.taken[i];
		}
		assert_true(s.posted[0] + s.posted[1] > 0);
		assert_int_equal(taken, s.posted[0] + s.posted[1]);
	}
}

/* ---- a thread looking at the ring keeps posts from waking an older waiter, and does
 * not strand what it leaves behind ---- */

struct spin_shared {
	weft_port *p;
	uint32_t go;   /* atomic: S is about to call get */
	uint32_t done; /* atomic: main has W's result */
	int rc_w, rc_s;
	uintptr_t key_w, key_s;
};

static void *spin_w(void *v)
{
	struct spin_shared *s = v;
	s->rc_w = weft_port_get(s->p, NULL, &s->key_w, NULL, 5000);
	return NULL;
}

static void *spin_s(void *v)
{
	struct spin_shared *s = v;
	if (weft_port_get(s->p, NULL, NULL, NULL, 0) != -ETIMEDOUT) /* now released */
		abort();
	weft__store_rel(&s->go, 1u);
	/* back into get: it looks at the ring a moment first; takes one packet, then
	 * never comes back (the second packet must reach W anyway) */
	s->rc_s = weft_port_get(s->p, NULL, &s->key_s, NULL, 10000);
	/* stay released and on the port (leaving it, or pausing in a weft primitive, would
	 * hand the rest over) until W is done */
	while (!weft__load_acq(&s->done))
		usleep(100);
	return NULL;
}

static void test_port_fast_spinner_leaves_rest(void **state)
{
	(void)state;
	int rounds = (int)weft_test_iters(200);
	for (int r = 0; r < rounds; r++) {
		struct spin_shared s = {.p = weft_port_create(2)};
		pthread_t w, sp;
		pthread_create(&w, NULL, spin_w, &s);
		wait_waiters(s.p, 1);
		pthread_create(&sp, NULL, spin_s, &s);
		while (!weft__load_acq(&s.go))
			;
		for (volatile int i = 0; i < (r % 20) * 50; i++) /* land in S's look, or after */
			;
		assert_int_equal(weft_port_post(s.p, 0, 1, NULL), 0);
		assert_int_equal(weft_port_post(s.p, 0, 2, NULL), 0);
		pthread_join(w, NULL);
		weft__store_rel(&s.done, 1u);
		pthread_join(sp, NULL);
		assert_int_equal(s.rc_s, 0);
		assert_int_equal(s.rc_w, 0);
		assert_int_equal(s.key_s + s.key_w, 3);
		weft_port_close(s.p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_fast_fifo_through_overflow),
	    cmocka_unit_test(test_port_fast_mixed_exactly_once),
	    cmocka_unit_test(test_port_fast_limit_in_bursts),
	    cmocka_unit_test(test_port_fast_over_limit),
	    cmocka_unit_test(test_port_fast_close_under_posts),
	    cmocka_unit_test(test_port_fast_spinner_leaves_rest),
	};
	if (tp_skip_backend())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
