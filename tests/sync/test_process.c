/* test_process.c - process handles: spawn a child, wait on it, its exit code (normal and
 * by signal), WEFT_STILL_ACTIVE while it runs, wait-many with other objects, closing the
 * handle of a running child, bad input. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include "waitable_util.h"

static void test_process_exit_code(void **state)
{
	(void)state;
	char *argv[] = { "sh", "-c", "exit 7", NULL };
	uint32_t pid = 0;
	weft_handle *p = weft_process_spawn("sh", argv, NULL, &pid);
	assert_non_null(p);
	assert_true(pid > 0);
	assert_int_equal(weft_process_id(p), pid);
	assert_int_equal(weft_wait(p, 10000), WEFT_WAIT_OBJECT_0);
	unsigned code = 0;
	assert_int_equal(weft_process_exit_code(p, &code), 0);
	assert_int_equal(code, 7);
	assert_int_equal(weft_wait(p, 0), WEFT_WAIT_OBJECT_0); /* stays signaled */
	assert_int_equal(weft_process_kill(p, SIGTERM), -ESRCH); /* already reaped */
	weft_handle_close(p);
}

static void test_process_still_active_and_killed(void **state)
{
	(void)state;
	char *argv[] = { "sleep", "30", NULL };
	weft_handle *p = weft_process_spawn("sleep", argv, NULL, NULL);
	assert_non_null(p);
	unsigned code = 0;
	assert_int_equal(weft_process_exit_code(p, &code), 0);
	assert_int_equal(code, WEFT_STILL_ACTIVE);
	assert_int_equal(weft_wait(p, 30), WEFT_WAIT_TIMEOUT);
	/* wait-any over an event and the process */
	weft_handle *ev = weft_event_create(false, false);
	weft_handle *hs[2] = { ev, p };
	assert_int_equal(weft_process_kill(p, SIGTERM), 0);
	assert_int_equal(weft_wait_many(hs, 2, false, 10000), 1);
	assert_int_equal(weft_process_exit_code(p, &code), 0);
	assert_int_equal(code, 128 + SIGTERM);
	weft_handle_close(ev);
	weft_handle_close(p);
}

static void test_process_environment(void **state)
{
	(void)state;
	char *argv[] = { "sh", "-c", "exit $WEFT_CODE", NULL };
	char *envp[] = { "WEFT_CODE=42", NULL };
	weft_handle *p = weft_process_spawn("/bin/sh", argv, envp, NULL);
	assert_non_null(p);
	assert_int_equal(weft_wait(p, 10000), WEFT_WAIT_OBJECT_0);
	unsigned code = 0;
	weft_process_exit_code(p, &code);
	assert_int_equal(code, 42);
	weft_handle_close(p);
}

/* Several children waited on all at once. */
static void test_process_wait_all(void **state)
{
	(void)state;
	weft_handle *ps[4];
	for (int i = 0; i < 4; i++) {
		char cmd[32];
		snprintf(cmd, sizeof cmd, "exit %d", 10 + i);
		char *argv[] = { "sh", "-c", cmd, NULL };
		ps[i] = weft_process_spawn("sh", argv, NULL, NULL);
		assert_non_null(ps[i]);
	}
	assert_int_equal(weft_wait_many(ps, 4, true, 10000), WEFT_WAIT_OBJECT_0);
	for (int i = 0; i < 4; i++) {
		unsigned code = 0;
		weft_process_exit_code(ps[i], &code);
		assert_int_equal(code, 10u + (unsigned)i);
		weft_handle_close(ps[i]);
	}
}

/* Closing the handle of a running child neither kills it nor leaves a zombie behind. */
static void test_process_close_running(void **state)
{
	(void)state;
	char *argv[] = { "sleep", "0.05", NULL };
	uint32_t pid = 0;
	weft_handle *p = weft_process_spawn("sleep", argv, NULL, &pid);
	assert_non_null(p);
	weft_handle_close(p);
	/* the child is reaped by weft once it exits: kill(pid, 0) fails with ESRCH */
	int gone = 0;
	for (int i = 0; i < 5000 && !gone; i++) {
		if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
			gone = 1;
		else
			weft_sleep_ex(1, false);
	}
	assert_true(gone);
}

static void test_process_bad_input(void **state)
{
	(void)state;
	char *argv[] = { "weft-no-such-program", NULL };
	assert_null(weft_process_spawn("weft-no-such-program", argv, NULL, NULL));
	assert_null(weft_process_spawn(NULL, argv, NULL, NULL));
	assert_null(weft_process_spawn("sh", NULL, NULL, NULL));
	weft_handle *ev = weft_event_create(false, false);
	unsigned code;
	assert_int_equal(weft_process_exit_code(ev, &code), -EINVAL);
	assert_int_equal(weft_process_exit_code(NULL, &code), -EINVAL);
	assert_int_equal(weft_process_kill(ev, SIGTERM), -EINVAL);
	assert_int_equal(weft_process_id(ev), 0);
	weft_handle_close(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process_exit_code),
		cmocka_unit_test(test_process_still_active_and_killed),
		cmocka_unit_test(test_process_environment),
		cmocka_unit_test(test_process_wait_all),
		cmocka_unit_test(test_process_close_running),
		cmocka_unit_test(test_process_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
