/* test_pool.c - the thread pool: every item once (10,000,000 of them), destroy under load,
 * the nested-wait deadlock (avoided by injection; reported when max_threads is too small),
 * may-run-long, retirement, thread names, errors. */
#include <dirent.h>
#include <pthread.h>
#include <string.h>

#include <weft/waitable.h>

#include "tp_util.h"

static void test_pool_defaults(void **state)
{
	(void)state;
	weft_pool *p = weft_pool_create(NULL);
	assert_non_null(p);
	weft_pool_stats s = tp_stats(p);
	assert_int_equal(s.min_threads, 1);
	assert_true(s.max_threads >= 64);
	assert_int_equal(s.concurrency, weft_cpu_count());
	assert_true(TP_WAIT_UNTIL(tp_stats(p).threads == 1, 2000));
	assert_int_equal(weft_pool_submit(p, NULL, NULL), -EINVAL);
	assert_int_equal(weft_pool_submit(NULL, NULL, NULL), -EINVAL);
	weft_pool_destroy(p);
}

/* ---- every item exactly once ---- */

static void bump(void *arg)
{
	weft__fadd_rlx((uint8_t *)arg, 1u);
}

static void test_pool_ten_million_once(void **state)
{
	(void)state;
	uint64_t n = weft_test_iters(10000000);
	uint8_t *seen = calloc(n, 1);
	assert_non_null(seen);
	weft_pool_config cfg = {2, 8, 0, "tp-many"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	uint64_t t0 = weft_test_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		/* Keep at most ~1M queued so memory stays bounded. */
		if ((i & 0xffff) == 0)
			while (tp_stats(p).queued > 1000000)
				tp_sleep_ms(1);
		int r = weft_pool_submit(p, bump, &seen[i]);
		if (r != 0)
			fail_msg("submit %llu: %d", (unsigned long long)i, r);
	}
	weft_pool_destroy(p);
	uint64_t t1 = weft_test_now_ns();
	for (uint64_t i = 0; i < n; i++)
		if (seen[i] != 1)
			fail_msg("item %llu ran %u times", (unsigned long long)i, seen[i]);
	fprintf(stderr, "  %llu items: %.1f ns per item (submit + run, destroy included)\n",
		(unsigned long long)n, (double)(t1 - t0) / (double)n);
	free(seen);
}

/* ---- destroy under load ---- */

struct load {
	weft_pool *p;
	uint64_t accepted; /* atomic: submits that returned 0 (external and chained) */
	uint64_t ran;      /* atomic */
	uint32_t saw_shutdown; /* atomic: external submitters that got -ESHUTDOWN */
	uint32_t nsub;
	uint32_t go;
};

static void load_item(void *arg)
{
	struct load *l = arg;
	weft__fadd_rlx(&l->ran, 1u);
	/* Chains: each run tries to submit one more until the pool refuses. */
	if (weft_pool_submit(l->p, load_item, l) == 0)
		weft__fadd_rlx(&l->accepted, 1u);
}

/* Holds destroy's drain open until every external submitter saw -ESHUTDOWN, so they
 * never touch the pool after destroy freed it. */
static void keeper(void *arg)
{
	struct load *l = arg;
	weft__fadd_rlx(&l->ran, 1u);
	while (weft__load_acq(&l->saw_shutdown) < l->nsub)
		tp_sleep_ms(1);
}

static void *load_submitter(void *arg)
{
	struct load *l = arg;
	while (!weft__load_acq(&l->go))
		tp_sleep_ms(1);
	for (uint32_t k = 1;; k++) {
		if ((k & 1023) == 0)
			while (tp_stats(l->p).queued > 100000)
				tp_sleep_ms(1);
		int r = weft_pool_submit(l->p, load_item, l);
		if (r == -ESHUTDOWN)
			break;
		if (r == 0)
			weft__fadd_rlx(&l->accepted, 1u);
	}
	weft__fadd_rel(&l->saw_shutdown, 1u);
	return NULL;
}

static void test_pool_destroy_under_load_loses_nothing(void **state)
{
	(void)state;
	struct load l = {0};
	weft_pool_config cfg = {2, 16, 2, "tp-load"};
	l.p = weft_pool_create(&cfg);
	assert_non_null(l.p);
	l.nsub = 3;
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, load_submitter, &l), 0);
	assert_int_equal(weft_pool_submit(l.p, keeper, &l), 0);
	weft__fadd_rlx(&l.accepted, 1u);
	for (int i = 0; i < 8; i++)
		if (weft_pool_submit(l.p, load_item, &l) == 0)
			weft__fadd_rlx(&l.accepted, 1u);
	weft__store_rel(&l.go, 1u);
	tp_sleep_ms(50);
	weft_pool_destroy(l.p);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(l.saw_shutdown, 3);
	assert_true(l.accepted > 10);
	assert_int_equal(l.ran, l.accepted);
}

/* ---- the nested-wait deadlock ---- */

#define NEST 64

struct nest {
	weft_pool *p;
	tp_gate inner_done[NEST];
	uint32_t outer_ran[NEST], inner_ran[NEST];
};

struct nest_arg {
	struct nest *n;
	uint32_t i;
};
static struct nest_arg nest_args[NEST];

static void nest_inner(void *arg)
{
	struct nest_arg *a = arg;
	weft__fadd_rlx(&a->n->inner_ran[a->i], 1u);
	gate_open(&a->n->inner_done[a->i]);
}

/* Each outer item submits an inner one (queued behind the other outers) and blocks until
 * it ran: with a fixed number of threads this deadlocks once every thread holds an outer. */
static void nest_outer(void *arg)
{
	struct nest_arg *a = arg;
	weft__fadd_rlx(&a->n->outer_ran[a->i], 1u);
	if (weft_pool_submit(a->n->p, nest_inner, a) != 0)
		abort();
	gate_wait(&a->n->inner_done[a->i]);
}

static void nest_submit_all(struct nest *n)
{
	for (uint32_t i = 0; i < NEST; i++) {
		nest_args[i].n = n;
		nest_args[i].i = i;
		assert_int_equal(weft_pool_submit(n->p, nest_outer, &nest_args[i]), 0);
	}
}

static bool nest_all_done(struct nest *n)
{
	for (uint32_t i = 0; i < NEST; i++)
		if (weft__load_acq(&n->inner_done[i].open) == 0)
			return false;
	return true;
}

static bool nest_inner_all_ran(struct nest *n)
{
	for (uint32_t i = 0; i < NEST; i++)
		if (weft__load_acq(&n->inner_ran[i]) == 0)
			return false;
	return true;
}

static void test_pool_nested_wait_completes(void **state)
{
	(void)state;
	static struct nest n;
	memset(&n, 0, sizeof n);
	weft_pool_config cfg = {2, NEST * 2 + 8, 2, "tp-nest"};
	n.p = weft_pool_create(&cfg);
	assert_non_null(n.p);
	nest_submit_all(&n);
	assert_true(TP_WAIT_UNTIL(nest_all_done(&n), 30000));
	weft_pool_stats s = tp_stats(n.p);
	weft_pool_destroy(n.p);
	for (uint32_t i = 0; i < NEST; i++) {
		assert_int_equal(n.outer_ran[i], 1);
		assert_int_equal(n.inner_ran[i], 1);
	}
	assert_true(s.injected > 0);
	assert_int_equal(s.starvations, 0);
}

static void test_pool_nested_wait_starvation_visible(void **state)
{
	(void)state;
	static struct nest n;
	memset(&n, 0, sizeof n);
	weft_pool_config cfg = {2, 4, 2, "tp-starve"};
	n.p = weft_pool_create(&cfg);
	assert_non_null(n.p);
	nest_submit_all(&n);
	/* Four threads, each holding an outer item that waits for work queued behind other
	 * outers: the pool cannot help itself and must say so. */
	bool starved = TP_WAIT_UNTIL(tp_stats(n.p).starvations > 0, 20000);
	weft_pool_stats s = tp_stats(n.p);
	/* Rescue: open every gate from outside, so every outer finishes. */
	for (uint32_t i = 0; i < NEST; i++)
		gate_open(&n.inner_done[i]);
	/* Every outer item must have run (and submitted its inner one) before destroy. */
	assert_true(TP_WAIT_UNTIL(nest_inner_all_ran(&n), 20000));
	weft_pool_destroy(n.p);
	assert_true(starved);
	assert_int_equal(s.threads, 4);
	assert_true(s.queued > 0);
	for (uint32_t i = 0; i < NEST; i++) {
		assert_int_equal(n.outer_ran[i], 1);
		assert_int_equal(n.inner_ran[i], 1);
	}
}

/* The same with real weft events: the sync layer's waits call the blocking hook. */
struct evnest {
	weft_pool *p;
	weft_handle *ev[16];
	uint32_t ran[16];
};
struct evarg {
	struct evnest *n;
	uint32_t i;
};
static struct evarg ev_args[16];

static void ev_inner(void *arg)
{
	struct evarg *a = arg;
	weft_event_set(a->n->ev[a->i]);
}

static void ev_outer(void *arg)
{
	struct evarg *a = arg;
	if (weft_pool_submit(a->n->p, ev_inner, a) != 0)
		abort();
	if (weft_wait(a->n->ev[a->i], WEFT_INFINITE) == WEFT_WAIT_OBJECT_0)
		weft__fadd_rel(&a->n->ran[a->i], 1u);
}

static void test_pool_nested_wait_weft_events(void **state)
{
	(void)state;
	static struct evnest n;
	memset(&n, 0, sizeof n);
	weft_pool_config cfg = {1, 40, 1, "tp-evnest"};
	n.p = weft_pool_create(&cfg);
	for (uint32_t i = 0; i < 16; i++) {
		n.ev[i] = weft_event_create(false, false);
		ev_args[i].n = &n;
		ev_args[i].i = i;
	}
	for (uint32_t i = 0; i < 16; i++)
		assert_int_equal(weft_pool_submit(n.p, ev_outer, &ev_args[i]), 0);
	bool done = TP_WAIT_UNTIL(({
		bool ok = true;
		for (uint32_t i = 0; ok && i < 16; i++)
			ok = weft__load_acq(&n.ran[i]) == 1;
		ok;
	}), 30000);
	weft_pool_stats s = tp_stats(n.p);
	weft_pool_destroy(n.p);
	for (uint32_t i = 0; i < 16; i++)
		weft_handle_close(n.ev[i]);
	assert_true(done);
	assert_true(s.injected > 0);
}

/* ---- may run long ---- */

struct longrun {
	uint32_t flag;
	uint32_t ok;
	uint32_t done;
};

static void long_setter(void *arg)
{
	struct longrun *l = arg;
	weft__store_rel(&l->flag, 1u);
}

/* Spins (sleeping outside weft, which the blocking hook cannot see) until long_setter ran. */
static void long_spinner(void *arg)
{
	struct longrun *l = arg;
	weft__store_rlx(&l->ok, weft_callback_may_run_long() ? 1u : 2u);
	uint64_t end = weft_test_now_ns() + 20000000000ull;
	while (!weft__load_acq(&l->flag) && weft_test_now_ns() < end)
		tp_sleep_ms(1);
	weft__store_rel(&l->done, weft__load_acq(&l->flag) ? 1u : 2u);
}

static void test_pool_may_run_long_adds_thread(void **state)
{
	(void)state;
	struct longrun l = {0};
	weft_pool_config cfg = {1, 4, 1, "tp-long"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	assert_false(weft_callback_may_run_long()); /* not on a pool thread */
	assert_int_equal(weft_pool_submit(p, long_spinner, &l), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&l.ok) != 0, 5000));
	assert_int_equal(weft_pool_submit(p, long_setter, &l), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&l.done) != 0, 25000));
	weft_pool_destroy(p);
	assert_int_equal(l.ok, 1);
	assert_int_equal(l.done, 1);
}

/* A callback that blocks where weft cannot see it (a plain sleep loop), without
 * may-run-long, on a pool of concurrency 1: the queued item cannot run, and the pool says
 * so (no progress) instead of staying silent. */
static void unseen_blocker(void *arg)
{
	struct longrun *l = arg;
	weft__store_rel(&l->ok, 1u);
	uint64_t end = weft_test_now_ns() + 20000000000ull;
	while (!weft__load_acq(&l->flag) && weft_test_now_ns() < end)
		tp_sleep_ms(1);
	weft__store_rel(&l->done, 1u);
}

static void note_ran(void *arg)
{
	weft__fadd_rel(&((struct longrun *)arg)->done, 1u);
}

static void test_pool_no_progress_counted(void **state)
{
	(void)state;
	struct longrun l = {0};
	weft_pool_config cfg = {1, 4, 1, "tp-stall"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_int_equal(weft_pool_submit(p, unseen_blocker, &l), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&l.ok) == 1, 5000));
	assert_int_equal(weft_pool_submit(p, note_ran, &l), 0);
	bool counted = TP_WAIT_UNTIL(tp_stats(p).starvations > 0, 10000);
	uint32_t done_before = weft__load_acq(&l.done);
	weft__store_rel(&l.flag, 1u);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&l.done) == 2, 25000));
	weft_pool_destroy(p);
	assert_true(counted);
	assert_int_equal(done_before, 0);
}

/* ---- retirement ---- */

struct burst {
	tp_gate release;
	uint32_t running;
};

static void burst_item(void *arg)
{
	struct burst *b = arg;
	weft__fadd_acqrel(&b->running, 1u);
	gate_wait(&b->release);
}

static void test_pool_idle_threads_retire(void **state)
{
	(void)state;
	static struct burst b;
	memset(&b, 0, sizeof b);
	weft_pool_config cfg = {1, 16, 2, "tp-retire"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	weft_pool_set_idle_timeout(p, 100);
	for (int i = 0; i < 8; i++)
		assert_int_equal(weft_pool_submit(p, burst_item, &b), 0);
	/* Each blocked item makes the pool inject a thread for the next. */
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&b.running) == 8, 10000));
	assert_true(tp_stats(p).threads >= 8);
	gate_open(&b.release);
	assert_true(TP_WAIT_UNTIL(tp_stats(p).threads == 1, 10000));
	weft_pool_stats s = tp_stats(p);
	assert_true(s.retired >= 7);
	assert_true(s.injected >= 7);
	assert_int_equal(s.idle, 1);
	/* The pool still works after shrinking. */
	assert_int_equal(weft_pool_submit(p, burst_item, &b), 0);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&b.running) == 9, 5000));
	weft_pool_destroy(p);
}

/* ---- thread names ---- */

static bool has_thread_named(const char *want)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		char path[300], comm[32] = {0};
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof comm, f)) {
			comm[strcspn(comm, "\n")] = 0;
			found = strcmp(comm, want) == 0;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

static void test_pool_threads_named(void **state)
{
	(void)state;
	weft_pool_config cfg = {2, 4, 0, "tpname"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	assert_true(TP_WAIT_UNTIL(has_thread_named("tpname-0") && has_thread_named("tpname-1"), 5000));
	weft_pool_destroy(p);
	assert_false(has_thread_named("tpname-0"));
}

static void test_pool_min_max_setters(void **state)
{
	(void)state;
	weft_pool_config cfg = {1, 2, 0, "tp-set"};
	weft_pool *p = weft_pool_create(&cfg);
	assert_non_null(p);
	assert_int_equal(weft_pool_set_min_threads(p, 3), 0);
	weft_pool_stats s = tp_stats(p);
	assert_int_equal(s.threads, 3);
	assert_int_equal(s.min_threads, 3);
	assert_int_equal(s.max_threads, 3);
	weft_pool_set_max_threads(p, 8);
	assert_int_equal(tp_stats(p).max_threads, 8);
	assert_int_equal(weft_pool_set_min_threads(p, 0), -EINVAL);
	weft_pool_destroy(p);
}

/* An idle pool sleeps: after a burst, the process uses (almost) no CPU while idle. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void test_pool_idle_burns_no_cpu(void **state)
{
	(void)state;
	static uint8_t seen[1000];
	memset(seen, 0, sizeof seen);
	weft_pool_config cfg = {2, 8, 0, "tp-idle"};
	weft_pool *p = weft_pool_create(&cfg);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(weft_pool_submit(p, bump, &seen[i]), 0);
	assert_true(TP_WAIT_UNTIL(tp_stats(p).completed == 1000, 5000));
	tp_sleep_ms(50); /* past any spin */
	uint64_t c0 = cpu_ns();
	tp_sleep_ms(500);
	uint64_t used = cpu_ns() - c0;
	weft_pool_destroy(p);
	/* Generous: a spinning thread would burn ~500 ms here. */
	assert_true(used < 50000000ull);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_defaults),
		cmocka_unit_test(test_pool_threads_named),
		cmocka_unit_test(test_pool_min_max_setters),
		cmocka_unit_test(test_pool_ten_million_once),
		cmocka_unit_test(test_pool_destroy_under_load_loses_nothing),
		cmocka_unit_test(test_pool_nested_wait_completes),
		cmocka_unit_test(test_pool_nested_wait_starvation_visible),
		cmocka_unit_test(test_pool_nested_wait_weft_events),
		cmocka_unit_test(test_pool_may_run_long_adds_thread),
		cmocka_unit_test(test_pool_no_progress_counted),
		cmocka_unit_test(test_pool_idle_threads_retire),
		cmocka_unit_test(test_pool_idle_burns_no_cpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
