/* Critical section: recursion, try semantics across threads, misuse detection, stats. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft/sync.h>

#include "weft_test.h"

static void test_cs_recursion(void **state)
{
	(void)state;
	weft_cs cs;
	weft_cs_init(&cs, 100);
	for (int i = 0; i < 10; i++)
		weft_cs_enter(&cs);
	assert_true(weft_cs_try_enter(&cs));
	assert_true(weft_cs_is_owned(&cs));
	for (int i = 0; i < 11; i++) {
		assert_true(weft_cs_is_owned(&cs));
		weft_cs_leave(&cs);
	}
	assert_false(weft_cs_is_owned(&cs));
	weft_cs_destroy(&cs);
}

struct probe {
	weft_cs *cs;
	bool got;
};

static void *try_other(void *arg)
{
	struct probe *p = arg;
	p->got = weft_cs_try_enter(p->cs);
	if (p->got)
		weft_cs_leave(p->cs);
	return NULL;
}

/* A recursively held section stays held until the last leave. */
static void test_cs_try_while_recursive(void **state)
{
	(void)state;
	weft_cs cs;
	weft_cs_init(&cs, 0);
	weft_cs_enter(&cs);
	weft_cs_enter(&cs);
	weft_cs_leave(&cs);
	struct probe p = { &cs, true };
	pthread_t t;
	pthread_create(&t, NULL, try_other, &p);
	pthread_join(t, NULL);
	assert_false(p.got);
	weft_cs_leave(&cs);
	pthread_create(&t, NULL, try_other, &p);
	pthread_join(t, NULL);
	assert_true(p.got);
}

static void *leave_foreign(void *arg)
{
	weft_cs_leave(arg);
	return NULL;
}

/* Runs fn in a child and expects it to abort with a message naming the section. */
static void expect_abort(void (*fn)(void), const char *needle)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		fn();
		_exit(0);
	}
	close(pipefd[1]);
	char buf[1024] = { 0 };
	size_t got = 0;
	ssize_t r;
	while (got < sizeof buf - 1 && (r = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)r;
	close(pipefd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	assert_non_null(strstr(buf, needle));
}

static void child_foreign_leave(void)
{
	static weft_cs cs;
	weft_cs_init(&cs, 0);
	weft_cs_set_name(&cs, "accounts-lock");
	weft_cs_enter(&cs);
	pthread_t t;
	pthread_create(&t, NULL, leave_foreign, &cs);
	pthread_join(t, NULL);
}

static void child_leave_unheld(void)
{
	weft_cs cs;
	weft_cs_init(&cs, 0);
	weft_cs_set_name(&cs, "never-entered");
	weft_cs_leave(&cs);
}

static void test_cs_misuse_detected(void **state)
{
	(void)state;
	expect_abort(child_foreign_leave, "\"accounts-lock\"): thread");
	expect_abort(child_leave_unheld, "never-entered");
}

struct contend {
	weft_cs *cs;
	uint64_t iters, *counter;
};

static void *contend_thread(void *arg)
{
	struct contend *c = arg;
	for (uint64_t i = 0; i < c->iters; i++) {
		weft_cs_enter(c->cs);
		(*c->counter)++;
		weft_cs_leave(c->cs);
	}
	return NULL;
}

/* Statistics count contended enters; an uncontended run counts nothing. */
static void test_cs_stats(void **state)
{
	(void)state;
	weft_cs cs;
	weft_cs_init(&cs, 0);
	weft_cs_stats st;
	for (int i = 0; i < 1000; i++) {
		weft_cs_enter(&cs);
		weft_cs_leave(&cs);
	}
	weft_cs_get_stats(&cs, &st);
	assert_int_equal(st.contentions, 0);
	assert_int_equal(st.sleeps, 0);

	/* Hold it while another thread enters: that enter must count as contended. */
	uint64_t counter = 0;
	struct contend c = { &cs, 1, &counter };
	weft_cs_enter(&cs);
	pthread_t t;
	pthread_create(&t, NULL, contend_thread, &c);
	usleep(20000);
	weft_cs_leave(&cs);
	pthread_join(t, NULL);
	assert_int_equal(counter, 1);
	weft_cs_get_stats(&cs, &st);
	assert_true(st.contentions >= 1);
	assert_true(st.sleeps >= 1); /* spin count 0: it had to sleep */
	assert_int_equal(weft_cs_set_spin_count(&cs, 50), 0);
	assert_int_equal(weft_cs_set_spin_count(&cs, 0), 50);
}

/* The refcounted-object pattern: whoever drops the last reference frees the object
 * (and its section) right after its own leave returns, while the other thread may still
 * be inside its leave. leave must not touch the section after releasing it: ASan
 * reports any such use after free. */
struct shared_obj {
	weft_cs cs;
	int refs;
};

struct drop_arg {
	struct shared_obj *volatile *slot;
	pthread_barrier_t *go;
	unsigned rounds;
};

static void drop_ref(struct shared_obj *o)
{
	weft_cs_enter(&o->cs);
	bool last = --o->refs == 0;
	weft_cs_leave(&o->cs);
	if (last) {
		weft_cs_destroy(&o->cs);
		free(o);
	}
}

static void *dropper(void *arg)
{
	struct drop_arg *a = arg;
	for (unsigned i = 0; i < a->rounds; i++) {
		pthread_barrier_wait(a->go);
		drop_ref(*a->slot);
		pthread_barrier_wait(a->go);
	}
	return NULL;
}

static void test_cs_free_after_last_leave(void **state)
{
	(void)state;
	static struct shared_obj *volatile slot;
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 3);
	struct drop_arg a = { &slot, &go, (unsigned)weft_test_iters(20000) };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, dropper, &a);
	for (unsigned i = 0; i < a.rounds; i++) {
		struct shared_obj *o = NULL;
		assert_int_equal(posix_memalign((void **)&o, 64, sizeof *o), 0);
		weft_cs_init(&o->cs, i % 2 ? 0 : 100); /* half the rounds sleep at once */
		o->refs = 2;
		slot = o;
		pthread_barrier_wait(&go); /* both drop their reference */
		pthread_barrier_wait(&go); /* both done; the last one freed it */
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cs_recursion),
		cmocka_unit_test(test_cs_try_while_recursive),
		cmocka_unit_test(test_cs_misuse_detected),
		cmocka_unit_test(test_cs_stats),
		cmocka_unit_test(test_cs_free_after_last_leave),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
