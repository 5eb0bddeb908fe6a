/* port_util.h - helpers shared by the completion-port suites (test_port, test_port_fast,
 * test_io, test_port_io) and, through tp_util.h, the thread-pool suites: backend skip, a
 * port on the backend WEFT_BACKEND names, completions expected or not, and waiting for a
 * number of threads to wait in the port. */
#ifndef PORT_UTIL_H
#define PORT_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
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

/* A listening TCP socket on 127.0.0.1, any free port (*port). */
static inline int listener(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 64), 0);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

static inline struct sockaddr_in loop_addr(uint16_t port)
{
	return (struct sockaddr_in){
	    .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* A connected pair over loopback TCP, made with plain blocking calls: *a connected, *b
 * the accepted end. */
static inline void tcp_pair(int *a, int *b)
{
	uint16_t port;
	int l = listener(&port);
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = loop_addr(port);
	assert_int_equal(connect(*a, (struct sockaddr *)&sa, sizeof sa), 0);
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*b >= 0);
	close(l);
}

#endif
