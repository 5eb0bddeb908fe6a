/* port_util.h - helpers shared by the completion-port suites (test_port, test_port_fast,
 * test_io, test_port_io) and, through tp_util.h, the thread-pool suites: backend skip, a
 * port on the backend WEFT_BACKEND names, completions expected or not, and waiting for a
 * number of threads to wait in the port. */
#ifndef PORT_UTIL_H
#define PORT_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <weft/pool.h>

#include "weft_test.h"

#define T_MS 10000u /* generous bound for a completion that must come */

/* Internal: the number of threads waiting in the port (for ordering the tests). */
uint32_t weft__port_waiters(weft_port *p);

/* True (after saying so) when WEFT_BACKEND names a backend this machine lacks: the
 * suite then exits 77 (skipped). */
static inline int tp_skip_backend(void)
{
	const char *be = getenv("WEFT_BACKEND");
	if (be && *be && !weft_port_backend_available(be)) {
		fprintf(stderr, "backend %s unavailable here: skipped\n", be);
		return 1;
	}
	return 0;
}

/* A port on the backend WEFT_BACKEND names (checked). */
static inline weft_port *mkport(uint32_t concurrency)
{
	weft_port *p = weft_port_create(concurrency);
	assert_non_null(p);
	const char *be = getenv("WEFT_BACKEND");
	if (be && *be)
		assert_string_equal(weft_port_backend(p), be);
	return p;
}

/* Dequeues one completion and checks it is ov's. */
static inline void expect(weft_port *p, weft_overlapped *ov, uintptr_t key)
{
	uint32_t bytes;
	uintptr_t k;
	weft_overlapped *got = NULL;
	assert_int_equal(weft_port_get(p, &bytes, &k, &got, T_MS), 0);
	assert_ptr_equal(got, ov);
	assert_int_equal(k, key);
	assert_int_equal(bytes, ov->bytes);
}

static inline void expect_none(weft_port *p)
{
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 30), -ETIMEDOUT);
}

static inline void wait_waiters(weft_port *p, uint32_t n)
{
	while (weft__port_waiters(p) != n)
		usleep(200);
}

#endif
