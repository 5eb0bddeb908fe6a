/* test_thread.c - the _beginthreadex lifecycle: suspended start, resume counts, exit
 * codes by each exit path, the handle signaled on exit and outliving the thread, ids,
 * names, stack size, affinity, priority, last error, TLS slots with destructors, and the
 * per-thread block freed in all three ways (LeakSanitizer checks at exit in the ASan
 * build; the last test leaves a thread running on purpose). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "waitable_util.h"

struct runflag {
	uint32_t ran;
	uint32_t tid;
	weft_handle *go;
	unsigned code;
	int how;
};

static unsigned mark_ran(void *arg)
{
	struct runflag *r = arg;
	__atomic_store_n(&r->tid, weft_current_tid(), __ATOMIC_RELEASE);
	wu_add(&r->ran, 1);
	if (r->go)
		weft_wait(r->go, WEFT_INFINITE);
	if (r->how == 1)
		weft_thread_exit(r->code);
	if (r->how == 2)
		pthread_exit(NULL); /* the block is finished by the key destructor; code 0 */
	return r->code;
}

static void test_thread_suspended_does_not_run(void **state)
{
	(void)state;
	struct runflag r = { .code = 3 };
	weft_thread_attr attr = { 0, WEFT_THREAD_SUSPENDED, "susp" };
	uint32_t tid = 0;
	weft_handle *t = weft_thread_create(mark_ran, &r, &attr, &tid);
	assert_non_null(t);
	assert_true(tid != 0);
	assert_int_equal(weft_thread_id(t), tid);
	weft_sleep_ex(50, false);
	assert_int_equal(wu_load(&r.ran), 0);
	unsigned code = 0;
	assert_int_equal(weft_thread_exit_code(t, &code), 0);
	assert_int_equal(code, WEFT_STILL_ACTIVE);
	assert_int_equal(weft_wait(t, 0), WEFT_WAIT_TIMEOUT);
	/* the thread exists: its name is already visible */
	char path[64], comm[32] = { 0 };
	snprintf(path, sizeof path, "/proc/self/task/%u/comm", tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof comm, f));
	fclose(f);
	assert_string_equal(comm, "susp\n");
	/* the seed's usage count of 2: the creator's reference and the thread's own */
	assert_int_equal(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 2);
	/* resume counts down 1 -> 0, then reports 0 */
	assert_int_equal(weft_thread_resume(t), 1);
	assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
	/* the thread drops its own reference right after signaling: only ours is left */
	for (int i = 0; i < 5000 && __atomic_load_n(&t->refs, __ATOMIC_ACQUIRE) != 1; i++)
		weft_sleep_ex(1, false);
	assert_int_equal(__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(wu_load(&r.ran), 1);
	assert_int_equal(r.tid, tid);
	assert_int_equal(weft_thread_resume(t), 0);
	assert_int_equal(weft_thread_exit_code(t, &code), 0);
	assert_int_equal(code, 3);
	weft_handle_close(t);
	assert_int_equal(weft_thread_resume(NULL), -EINVAL);
}

static void test_thread_exit_codes(void **state)
{
	(void)state;
	for (int how = 0; how < 3; how++) {
		struct runflag r = { .code = 40u + (unsigned)how, .how = how, .go = weft_event_create(true, false) };
		weft_handle *t = wu_start(mark_ran, &r);
		wu_wait_count(&r.ran, 1);
		unsigned code = 0;
		assert_int_equal(weft_thread_exit_code(t, &code), 0);
		assert_int_equal(code, WEFT_STILL_ACTIVE);
		assert_int_equal(weft_wait(t, 0), WEFT_WAIT_TIMEOUT);
		weft_event_set(r.go);
		assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
		/* stays signaled, for every later waiter */
		assert_int_equal(weft_wait(t, 0), WEFT_WAIT_OBJECT_0);
		assert_int_equal(weft_thread_exit_code(t, &code), 0);
		assert_int_equal(code, how == 2 ? 0u : r.code);
		weft_handle_close(t);
		weft_handle_close(r.go);
	}
	unsigned code;
	assert_int_equal(weft_thread_exit_code(NULL, &code), -EINVAL);
}

/* Closing the creator's handle never kills the thread, and its own reference keeps the
 * object alive until it ends. */
static void test_thread_close_before_end(void **state)
{
	(void)state;
	struct runflag r = { .go = weft_event_create(true, false) };
	weft_handle *t = wu_start(mark_ran, &r);
	weft_handle *other = weft_handle_dup(t);
	weft_handle_close(t);
	wu_wait_count(&r.ran, 1);
	weft_event_set(r.go);
	assert_int_equal(weft_wait(other, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
	weft_handle_close(other);
	/* fire and forget: close at once, the thread finishes on its own (static: it may
	 * still read it after this test returned) */
	static struct runflag r2;
	weft_handle_close(wu_start(mark_ran, &r2));
	wu_wait_count(&r2.ran, 1);
	weft_handle_close(r.go);
}

struct stackinfo {
	size_t size;
	char comm[32];
	uint32_t tid;
	int cur_ok;
	int self_rename;
	char comm2[32];
};

static unsigned probe(void *arg)
{
	struct stackinfo *s = arg;
	pthread_attr_t a;
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstacksize(&a, &s->size);
		pthread_attr_destroy(&a);
	}
	pthread_getname_np(pthread_self(), s->comm, sizeof s->comm);
	s->tid = weft_current_tid();
	weft_handle *me = weft_thread_current();
	s->cur_ok = me && weft_thread_id(me) == s->tid && weft_wait(me, 0) == WEFT_WAIT_TIMEOUT;
	/* renaming oneself (the prctl path) */
	s->self_rename = weft_thread_set_name(me, "self-named");
	pthread_getname_np(pthread_self(), s->comm2, sizeof s->comm2);
	weft_handle_close(me);
	return 0;
}

static void test_thread_attrs(void **state)
{
	(void)state;
	struct stackinfo s = { 0 };
	uint32_t tid = 0;
	weft_handle *t = weft_thread_create(probe, &s, NULL, &tid);
	wu_join(t);
	assert_true(s.size >= WEFT_THREAD_DEFAULT_STACK && s.size < WEFT_THREAD_DEFAULT_STACK + 256 * 1024);
	assert_int_equal(s.tid, tid);
	assert_true(s.cur_ok);
	assert_int_equal(s.self_rename, 0);
	assert_string_equal(s.comm2, "self-named");

	weft_thread_attr attr = { 256 * 1024, 0, "a-very-long-thread-name" };
	t = weft_thread_create(probe, &s, &attr, NULL);
	wu_join(t);
	/* glibc may hand out a cached stack up to 4x the request */
	assert_true(s.size >= 256 * 1024 && s.size <= 4 * 256 * 1024);
	assert_string_equal(s.comm, "a-very-long-thr"); /* truncated to 15 bytes */
	assert_null(weft_thread_create(NULL, NULL, NULL, NULL));

	/* the main thread's own handle */
	weft_handle *me = weft_thread_current();
	assert_non_null(me);
	assert_int_equal(weft_thread_id(me), weft_current_tid());
	assert_int_equal(weft_wait(me, 0), WEFT_WAIT_TIMEOUT);
	weft_handle_close(me);
	assert_int_equal(weft_thread_id(NULL), 0);
}

static void test_thread_name_affinity_priority(void **state)
{
	(void)state;
	struct runflag r = { .go = weft_event_create(true, false) };
	weft_handle *t = wu_start(mark_ran, &r);
	wu_wait_count(&r.ran, 1);
	uint32_t tid = weft_thread_id(t);

	assert_int_equal(weft_thread_set_name(t, "renamed"), 0);
	char path[64], comm[32] = { 0 };
	snprintf(path, sizeof path, "/proc/self/task/%u/comm", tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof comm, f));
	fclose(f);
	assert_string_equal(comm, "renamed\n");

	uint64_t prev = 0;
	cpu_set_t allowed;
	assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
	int first = 0;
	while (!CPU_ISSET(first, &allowed))
		first++;
	assert_int_equal(weft_thread_set_affinity(t, 1ull << first, &prev), 0);
	assert_true(prev & (1ull << first));
	cpu_set_t now;
	assert_int_equal(sched_getaffinity((pid_t)tid, sizeof now, &now), 0);
	assert_int_equal(CPU_COUNT(&now), 1);
	assert_true(CPU_ISSET(first, &now));
	assert_int_equal(weft_thread_set_affinity(t, prev, NULL), 0);
	assert_int_equal(weft_thread_set_affinity(t, 0, NULL), -EINVAL);

	/* A new thread inherits its creator's nice value (NORMAL unless the test itself
	 * runs under `nice`). */
	int p = 99, mine = 98;
	weft_handle *self = weft_thread_current();
	assert_non_null(self);
	assert_int_equal(weft_thread_get_priority(self, &mine), 0);
	weft_handle_close(self);
	assert_int_equal(weft_thread_get_priority(t, &p), 0);
	assert_int_equal(p, mine);
	assert_int_equal(weft_thread_set_priority(t, WEFT_THREAD_PRIORITY_LOWEST), 0);
	assert_int_equal(weft_thread_get_priority(t, &p), 0);
	assert_int_equal(p, WEFT_THREAD_PRIORITY_LOWEST);
	int up = weft_thread_set_priority(t, WEFT_THREAD_PRIORITY_HIGHEST);
	assert_true(up == 0 || up == -EPERM || up == -EACCES); /* privileged only */
	assert_int_equal(weft_thread_set_priority(t, 7), -EINVAL);

	weft_event_set(r.go);
	assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
	/* ended: -ESRCH */
	assert_int_equal(weft_thread_set_name(t, "x"), -ESRCH);
	assert_int_equal(weft_thread_set_affinity(t, 1, NULL), -ESRCH);
	assert_int_equal(weft_thread_set_priority(t, 0), -ESRCH);
	assert_int_equal(weft_thread_get_priority(t, &p), -ESRCH);
	weft_handle_close(t);
	weft_handle_close(r.go);
}

/* ---- per-thread block: last error, TLS slots, destructors on every exit path ---- */

static uint32_t dtor_calls;
static uintptr_t dtor_sum;
static int slot;

static void slot_dtor(void *v)
{
	__atomic_fetch_add(&dtor_sum, (uintptr_t)v, __ATOMIC_RELAXED);
	wu_add(&dtor_calls, 1);
}

static uint32_t apc_ran;

/* The live block count once it reaches base, or after ~5 s whatever it is. */
static uint32_t blocks_settle(uint32_t base)
{
	for (int i = 0; i < 5000 && weft__thread_blocks_live() != base; i++)
		weft_sleep_ex(1, false);
	return weft__thread_blocks_live();
}

static void never_runs(uintptr_t arg)
{
	(void)arg;
	wu_add(&apc_ran, 1);
}

struct blk {
	int how; /* 0 return, 1 weft_thread_exit, 2 pthread_exit */
	uintptr_t value;
	int err_before, err_after;
	void *got;
};

static unsigned block_user(void *arg)
{
	struct blk *b = arg;
	b->err_before = weft_get_last_error();
	weft_set_last_error(1234 + b->how);
	b->err_after = weft_get_last_error();
	weft_tls_set(slot, (void *)b->value);
	b->got = weft_tls_get(slot);
	/* use the APC queue and a wait, so the block has everything in it */
	weft_handle *me = weft_thread_current();
	weft_thread_queue_apc(me, never_runs, 0); /* dropped at exit */
	weft_handle_close(me);
	if (b->how == 1)
		weft_thread_exit(9);
	if (b->how == 2)
		pthread_exit(NULL);
	return 0;
}

static void *plain_block_user(void *arg)
{
	struct blk *b = arg;
	block_user(arg);
	(void)b;
	return NULL;
}

static void test_thread_block_freed_all_ways(void **state)
{
	(void)state;
	slot = weft_tls_alloc(slot_dtor);
	assert_true(slot >= 0);
	__atomic_store_n(&dtor_calls, 0, __ATOMIC_RELAXED);
	(void)weft_get_last_error();
	weft_handle_close(weft_thread_current()); /* main has its block from here on */
	uint32_t base = weft__thread_blocks_live();
	assert_true(base >= 1);
	uintptr_t expect = 0;
	int ways = 0;
	for (int plain = 0; plain < 2; plain++) {
		for (int how = 0; how < 3; how++) {
			struct blk b = { .how = how, .value = (uintptr_t)(100 * plain + how + 1) };
			expect += b.value;
			if (plain) {
				pthread_t pt;
				assert_int_equal(pthread_create(&pt, NULL, plain_block_user, &b), 0);
				assert_int_equal(pthread_join(pt, NULL), 0);
			} else {
				wu_join(wu_start(block_user, &b));
			}
			ways++;
			assert_int_equal(b.err_before, 0);
			assert_int_equal(b.err_after, 1234 + how);
			assert_ptr_equal(b.got, (void *)b.value);
			/* the destructor ran once when the thread ended (the dropped APC did not) */
			assert_int_equal(wu_load(&dtor_calls), ways);
			/* and the block is gone (a weft thread's handle is signaled just before
			 * the free, so poll briefly) */
			assert_int_equal(blocks_settle(base), base);
		}
	}
	assert_int_equal(__atomic_load_n(&dtor_sum, __ATOMIC_RELAXED), expect);
	assert_int_equal(wu_load(&apc_ran), 0); /* queued APCs of an ended thread never run */
	/* main's block: set, read back, then the slot is freed everywhere */
	assert_int_equal(weft_tls_set(slot, (void *)1), 0);
	assert_ptr_equal(weft_tls_get(slot), (void *)1);
	assert_int_equal(weft_tls_free(slot), 0);
	assert_null(weft_tls_get(slot));
	assert_int_equal(weft_tls_set(slot, (void *)1), -EINVAL);
	assert_int_equal(weft_tls_free(slot), -EINVAL);
	assert_int_equal(weft_tls_free(-1), -EINVAL);
}

/* Many short threads: handles and blocks recycle (ASan counts every byte). */
static unsigned nothing(void *arg)
{
	return (unsigned)(uintptr_t)arg;
}

static void test_thread_many_short(void **state)
{
	(void)state;
	uint64_t n = weft_test_iters(800);
	weft_handle_close(weft_thread_current());
	uint32_t base = weft__thread_blocks_live();
	for (uint64_t i = 0; i < n; i++) {
		weft_handle *t = wu_start(nothing, (void *)(uintptr_t)i);
		unsigned code = 0;
		assert_int_equal(weft_wait(t, WEFT_INFINITE), WEFT_WAIT_OBJECT_0);
		weft_thread_exit_code(t, &code);
		assert_int_equal(code, (unsigned)i);
		weft_handle_close(t);
	}
	assert_int_equal(blocks_settle(base), base);
}

static int exit_pipe[2];

static void exit_dtor(void *v)
{
	char c = (char)(uintptr_t)v;
	if (write(exit_pipe[1], &c, 1) != 1)
		_exit(3);
}

/* Process ending, for the thread that calls exit(): a child process gives its main
 * thread a block (a TLS value with a destructor), then calls exit(0). weft's library
 * destructor finishes that block, so the destructor runs and reports through a pipe. */
static void test_thread_block_freed_at_process_exit(void **state)
{
	(void)state;
	assert_int_equal(pipe(exit_pipe), 0);
	int s = weft_tls_alloc(exit_dtor);
	assert_true(s >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(exit_pipe[0]);
		weft_tls_set(s, (void *)(uintptr_t)'x');
		exit(0);
	}
	close(exit_pipe[1]);
	char c = 0;
	assert_int_equal(read(exit_pipe[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(exit_pipe[0]);
	assert_int_equal(weft_tls_free(s), 0);
}

static weft_handle *forever_ev;

static unsigned forever(void *arg)
{
	(void)arg;
	weft_tls_set(0, NULL);
	weft_wait(forever_ev, WEFT_INFINITE);
	return 0;
}

/* Process ending: this thread is still blocked when main returns; its block stays
 * reachable from weft's registry and LeakSanitizer (ASan build) reports no leak. */
static void test_thread_running_at_exit(void **state)
{
	(void)state;
	forever_ev = weft_event_create(true, false);
	weft_handle *t = wu_start(forever, NULL);
	wu_wait_waiters(forever_ev, 1);
	weft_handle_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_suspended_does_not_run),
		cmocka_unit_test(test_thread_exit_codes),
		cmocka_unit_test(test_thread_close_before_end),
		cmocka_unit_test(test_thread_attrs),
		cmocka_unit_test(test_thread_name_affinity_priority),
		cmocka_unit_test(test_thread_block_freed_all_ways),
		cmocka_unit_test(test_thread_many_short),
		cmocka_unit_test(test_thread_block_freed_at_process_exit),
		cmocka_unit_test(test_thread_running_at_exit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
