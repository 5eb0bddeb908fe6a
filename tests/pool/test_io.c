/* test_io.c - asynchronous operations completing onto the port, on the backend named
 * by WEFT_BACKEND: every operation, its errors, cancel, closed fds and ports, and a TCP
 * echo with a byte-exact check. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/pool.h>

#include "atomic.h"
#include "port_util.h"

/* ---- files ---- */

static void test_io_file_read_write_offset(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	char path[] = "/tmp/weft-io-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(weft_port_associate(p, fd, 11), 0);
	assert_int_equal(weft_port_associate(p, fd, 12), -EEXIST);
	weft_overlapped w = {.offset = 4096}, r = {.offset = 4096 + 6}, eof = {.offset = 1u << 20};
	assert_int_equal(weft_port_write(p, fd, "hello world", 11, &w), 0);
	expect(p, &w, 11);
	assert_int_equal(w.status, 0);
	assert_int_equal(w.bytes, 11);
	char buf[32] = {0};
	assert_int_equal(weft_port_read(p, fd, buf, sizeof buf, &r), 0);
	expect(p, &r, 11);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.bytes, 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(weft_port_read(p, fd, buf, sizeof buf, &eof), 0);
	expect(p, &eof, 11);
	assert_int_equal(eof.status, 0);
	assert_int_equal(eof.bytes, 0);
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	/* an error found by the kernel completes onto the port: writing a read-only fd */
	int ro = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	assert_int_equal(weft_port_associate(p, ro, 13), 0);
	weft_overlapped bad = {0};
	assert_int_equal(weft_port_write(p, ro, "x", 1, &bad), 0);
	expect(p, &bad, 13);
	assert_int_equal(bad.status, -EBADF);
	assert_int_equal(bad.bytes, 0);
	assert_int_equal(weft_port_close_fd(p, ro), 0);
	weft_port_close(p);
}

static void test_io_bad_fd(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	weft_overlapped ov;
	char b[4];
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(weft_port_recv(p, fds[0], b, 4, &ov), -EBADF); /* not associated */
	assert_int_equal(weft_port_associate(p, -1, 0), -EBADF);
	close(fds[1]);
	assert_int_equal(weft_port_associate(p, fds[1], 0), -EBADF); /* closed */
	assert_int_equal(weft_port_disassociate(p, fds[0]), -ENOENT);
	assert_int_equal(weft_port_cancel(p, fds[0], NULL), -ENOENT);
	close(fds[0]);
	expect_none(p);
	weft_port_close(p);
}

/* a pipe: read without offset, write, EOF */
static void test_io_pipe_read_eof(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_int_equal(weft_port_associate(p, fds[0], 1), 0);
	assert_int_equal(weft_port_associate(p, fds[1], 2), 0);
	char buf[16];
	weft_overlapped r = {0}, w = {0};
	assert_int_equal(weft_port_read(p, fds[0], buf, sizeof buf, &r), 0);
	expect_none(p); /* nothing written yet: the read waits */
	assert_int_equal(weft_port_write(p, fds[1], "abc", 3, &w), 0);
	int seen_r = 0, seen_w = 0;
	for (int i = 0; i < 2; i++) {
		weft_overlapped *ov;
		uintptr_t key;
		assert_int_equal(weft_port_get(p, NULL, &key, &ov, T_MS), 0);
		if (ov == &r) {
			seen_r++;
			assert_int_equal(key, 1);
		} else {
			assert_ptr_equal(ov, &w);
			seen_w++;
		}
	}
	assert_int_equal(seen_r, 1);
	assert_int_equal(seen_w, 1);
	assert_int_equal(r.bytes, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(weft_port_close_fd(p, fds[1]), 0);
	assert_int_equal(weft_port_read(p, fds[0], buf, sizeof buf, &r), 0);
	expect(p, &r, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.bytes, 0); /* EOF */
	assert_int_equal(weft_port_close_fd(p, fds[0]), 0);
	weft_port_close(p);
}

/* ---- TCP ---- */

static void test_io_accept_connect_send_recv(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	uint16_t port;
	int l = listener(&port);
	assert_int_equal(weft_port_associate(p, l, 100), 0);
	int acc[2];
	weft_overlapped aov[2];
	memset(aov, 0, sizeof aov);
	for (int i = 0; i < 2; i++) /* pre-posted accepts, as with AcceptEx */
		assert_int_equal(weft_port_accept(p, l, &acc[i], NULL, 0, &aov[i]), 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(weft_port_associate(p, c, 200), 0);
	struct sockaddr_in sa = loop_addr(port);
	weft_overlapped cov = {0};
	assert_int_equal(weft_port_connect(p, c, (struct sockaddr *)&sa, sizeof sa, &cov), 0);
	int got_accept = 0, got_connect = 0;
	int s = -1;
	for (int i = 0; i < 2; i++) {
		weft_overlapped *ov;
		uintptr_t key;
		assert_int_equal(weft_port_get(p, NULL, &key, &ov, T_MS), 0);
		if (ov == &cov) {
			got_connect++;
			assert_int_equal(key, 200);
			assert_int_equal(cov.status, 0);
		} else {
			got_accept++;
			assert_int_equal(key, 100);
			assert_ptr_equal(ov, &aov[0]); /* accepts complete in order */
			assert_int_equal(ov->status, 0);
			s = acc[0];
		}
	}
	assert_int_equal(got_accept, 1);
	assert_int_equal(got_connect, 1);
	assert_true(s >= 0);
	assert_int_equal(weft_port_associate(p, s, 300), 0);
	char rbuf[64];
	weft_overlapped rov = {0}, sov = {0};
	assert_int_equal(weft_port_recv(p, s, rbuf, sizeof rbuf, &rov), 0);
	assert_int_equal(weft_port_send(p, c, "ping", 4, &sov), 0);
	for (int i = 0; i < 2; i++) {
		weft_overlapped *ov;
		assert_int_equal(weft_port_get(p, NULL, NULL, &ov, T_MS), 0);
		assert_true(ov == &rov || ov == &sov);
	}
	assert_int_equal(sov.status, 0);
	assert_int_equal(sov.bytes, 4);
	assert_int_equal(rov.status, 0);
	assert_int_equal(rov.bytes, 4);
	assert_memory_equal(rbuf, "ping", 4);
	/* the second accept is still pending: close the listener under it */
	assert_int_equal(weft_port_close_fd(p, l), 0);
	expect(p, &aov[1], 100);
	assert_int_equal(aov[1].status, -ECANCELED);
	assert_int_equal(acc[1], -1);
	/* EOF: the peer shuts down its side */
	shutdown(c, SHUT_WR);
	assert_int_equal(weft_port_recv(p, s, rbuf, sizeof rbuf, &rov), 0);
	expect(p, &rov, 300);
	assert_int_equal(rov.status, 0);
	assert_int_equal(rov.bytes, 0);
	assert_int_equal(weft_port_close_fd(p, s), 0);
	assert_int_equal(weft_port_close_fd(p, c), 0);
	expect_none(p);
	weft_port_close(p);
}

static void test_io_accept_first_bytes(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	uint16_t port;
	int l = listener(&port);
	assert_int_equal(weft_port_associate(p, l, 1), 0);
	int acc = -2;
	char buf[64];
	weft_overlapped aov = {0};
	assert_int_equal(weft_port_accept(p, l, &acc, buf, sizeof buf, &aov), 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = loop_addr(port);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
	expect_none(p); /* connected, but no bytes yet */
	assert_int_equal(send(c, "first", 5, 0), 5);
	expect(p, &aov, 1);
	assert_int_equal(aov.status, 0);
	assert_int_equal(aov.bytes, 5);
	assert_memory_equal(buf, "first", 5);
	assert_true(acc >= 0);
	close(acc);
	/* an accept waiting for bytes, cancelled: the connection is dropped */
	assert_int_equal(weft_port_accept(p, l, &acc, buf, sizeof buf, &aov), 0);
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c2, (struct sockaddr *)&sa, sizeof sa), 0);
	usleep(20000);
	assert_int_equal(weft_port_cancel(p, l, &aov), 0);
	expect(p, &aov, 1);
	assert_int_equal(aov.status, -ECANCELED);
	assert_int_equal(acc, -1);
	char x;
	assert_int_equal(recv(c2, &x, 1, 0), 0); /* the server side was closed */
	close(c);
	close(c2);
	assert_int_equal(weft_port_close_fd(p, l), 0);
	weft_port_close(p);
}

static void test_io_connect_refused(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	uint16_t port;
	int l = listener(&port);
	close(l); /* nobody listens there any more */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(weft_port_associate(p, c, 5), 0);
	struct sockaddr_in sa = loop_addr(port);
	weft_overlapped cov = {0};
	assert_int_equal(weft_port_connect(p, c, (struct sockaddr *)&sa, sizeof sa, &cov), 0);
	expect(p, &cov, 5);
	assert_int_equal(cov.status, -ECONNREFUSED);
	assert_int_equal(weft_port_close_fd(p, c), 0);
	weft_port_close(p);
}

static void test_io_peer_reset(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 7), 0);
	char buf[16];
	weft_overlapped rov = {0}, sov = {0};
	assert_int_equal(weft_port_recv(p, a, buf, sizeof buf, &rov), 0);
	struct linger lg = {1, 0};
	setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(b); /* RST */
	expect(p, &rov, 7);
	assert_int_equal(rov.status, -ECONNRESET);
	/* sending to a reset peer fails too, without SIGPIPE */
	static char big[1 << 16];
	assert_int_equal(weft_port_send(p, a, big, sizeof big, &sov), 0);
	expect(p, &sov, 7);
	assert_true(sov.status == -EPIPE || sov.status == -ECONNRESET);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	weft_port_close(p);
}

/* send completes only when every byte is out, however large */
static void *drain_thread(void *v)
{
	int *fd = v;
	static char sink[1 << 16];
	uint64_t total = 0;
	ssize_t n;
	while ((n = recv(fd[0], sink, sizeof sink, 0)) > 0)
		total += (uint64_t)n;
	fd[1] = (int)(total >> 10);
	return NULL;
}

static void test_io_send_all_bytes(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	int sz = 4096;
	setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	assert_int_equal(weft_port_associate(p, a, 1), 0);
	uint32_t len = 8u << 20; /* far beyond the socket buffer */
	char *big = malloc(len);
	memset(big, 'x', len);
	int arg[2] = {b, 0};
	pthread_t t;
	pthread_create(&t, NULL, drain_thread, arg);
	weft_overlapped sov = {0};
	assert_int_equal(weft_port_send(p, a, big, len, &sov), 0);
	expect(p, &sov, 1);
	assert_int_equal(sov.status, 0);
	assert_int_equal(sov.bytes, len);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	pthread_join(t, NULL);
	assert_int_equal(arg[1], (int)(len >> 10));
	close(b);
	free(big);
	weft_port_close(p);
}

/* ---- cancel, closed fds, closed port ---- */

static void test_io_cancel(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 3), 0);
	char buf[3][8];
	weft_overlapped ov[3];
	memset(ov, 0, sizeof ov);
	for (int i = 0; i < 3; i++)
		assert_int_equal(weft_port_recv(p, a, buf[i], 8, &ov[i]), 0);
	assert_int_equal(weft_port_cancel(p, b, &ov[0]), -ENOENT); /* wrong fd */
	assert_int_equal(weft_port_cancel(p, a, &ov[1]), 0);
	expect(p, &ov[1], 3);
	assert_int_equal(ov[1].status, -ECANCELED);
	assert_int_equal(weft_port_cancel(p, a, &ov[1]), -ENOENT); /* completed already */
	assert_int_equal(weft_port_cancel(p, a, NULL), 0);	   /* all the rest */
	int seen[3] = {0};
	for (int i = 0; i < 2; i++) {
		weft_overlapped *got;
		assert_int_equal(weft_port_get(p, NULL, NULL, &got, T_MS), 0);
		seen[got - ov]++;
		assert_int_equal(got->status, -ECANCELED);
	}
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[2], 1);
	expect_none(p); /* exactly once */
	assert_int_equal(weft_port_cancel(p, a, NULL), -ENOENT);
	/* the socket still works after a cancel */
	assert_int_equal(weft_port_recv(p, a, buf[0], 8, &ov[0]), 0);
	assert_int_equal(send(b, "ok", 2, 0), 2);
	expect(p, &ov[0], 3);
	assert_int_equal(ov[0].status, 0);
	assert_int_equal(ov[0].bytes, 2);
	close(b);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	weft_port_close(p);
}

static void test_io_close_fd_completes_pending(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 9), 0);
	char buf[4][8];
	weft_overlapped ov[4];
	memset(ov, 0, sizeof ov);
	for (int i = 0; i < 4; i++)
		assert_int_equal(weft_port_recv(p, a, buf[i], 8, &ov[i]), 0);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	/* close_fd returned: every operation has completed, into the queue */
	int seen[4] = {0};
	for (int i = 0; i < 4; i++) {
		weft_overlapped *got;
		uintptr_t key;
		assert_int_equal(weft_port_get(p, NULL, &key, &got, 0), 0);
		assert_int_equal(key, 9);
		assert_int_equal(got->status, -ECANCELED);
		seen[got - ov]++;
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(seen[i], 1);
	expect_none(p);
	weft_overlapped late = {0};
	assert_int_equal(weft_port_recv(p, a, buf[0], 8, &late), -EBADF);
	close(b);
	weft_port_close(p);
}

static void test_io_port_close_completes_pending(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 4), 0);
	assert_int_equal(weft_port_post(p, 0, 77, NULL), 0);
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), 0); /* main uses the port */
	char buf[8];
	weft_overlapped ov = {0};
	assert_int_equal(weft_port_recv(p, a, buf, 8, &ov), 0);
	weft_port_close(p);
	weft_overlapped late = {0};
	assert_int_equal(weft_port_recv(p, a, buf, 8, &late), -ESHUTDOWN);
	weft_overlapped *got = NULL;
	assert_int_equal(weft_port_get(p, NULL, NULL, &got, 0), 0);
	assert_ptr_equal(got, &ov);
	assert_int_equal(ov.status, -ECANCELED);
	assert_int_equal(weft_port_get(p, NULL, NULL, &got, 0), -ESHUTDOWN);
	close(a);
	close(b);
}

/* An fd number closed through the port and reused by a new socket starts clean. */
static void test_io_fd_number_reused(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	for (int round = 0; round < 3; round++) {
		int a, b;
		tcp_pair(&a, &b);
		assert_int_equal(weft_port_associate(p, a, 10 + (uintptr_t)round), 0);
		char buf[8];
		weft_overlapped ov = {0}, pending = {0};
		assert_int_equal(weft_port_recv(p, a, buf, sizeof buf, &pending), 0);
		assert_int_equal(send(b, "x", 1, 0), 1);
		expect(p, &pending, 10 + (uintptr_t)round);
		assert_int_equal(pending.bytes, 1);
		assert_int_equal(weft_port_recv(p, a, buf, sizeof buf, &ov), 0);
		assert_int_equal(weft_port_close_fd(p, a), 0); /* the number is free again */
		expect(p, &ov, 10 + (uintptr_t)round);
		assert_int_equal(ov.status, -ECANCELED);
		close(b);
	}
	expect_none(p);
	weft_port_close(p);
}

/* Cancel racing a completion, many times: every operation completes exactly once,
 * either with its data or -ECANCELED, and no byte is lost or duplicated. */
struct racer {
	int fd;
	uint32_t go, stop; /* atomic */
	uint64_t sent;
};

static void *race_sender(void *v)
{
	struct racer *r = v;
	uint32_t seen = 0;
	for (;;) {
		uint32_t g;
		for (uint32_t spins = 0; (g = weft__load_acq(&r->go)) == seen && !weft__load_acq(&r->stop);
		     spins++)
			if (spins > 200)
				sched_yield();
		if (weft__load_acq(&r->stop))
			return NULL;
		seen = g;
		if (send(r->fd, "z", 1, 0) == 1)
			r->sent++;
	}
}

static void test_io_cancel_races_completion(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 1), 0);
	struct racer r = {.fd = b};
	pthread_t t;
	pthread_create(&t, NULL, race_sender, &r);
	uint64_t got = 0, cancelled = 0, n = weft_test_iters(4000);
	char buf[64];
	for (uint64_t i = 0; i < n; i++) {
		weft_overlapped ov = {0};
		assert_int_equal(weft_port_recv(p, a, buf, sizeof buf, &ov), 0);
		weft__store_rel(&r.go, (uint32_t)i + 1); /* the sender races the cancel below */
		if (i & 1)
			sched_yield();
		int c = weft_port_cancel(p, a, &ov);
		assert_true(c == 0 || c == -ENOENT);
		weft_overlapped *o;
		assert_int_equal(weft_port_get(p, NULL, NULL, &o, T_MS), 0);
		assert_ptr_equal(o, &ov);
		if (ov.status == -ECANCELED) {
			cancelled++;
		} else {
			assert_int_equal(ov.status, 0);
			assert_true(ov.bytes >= 1);
			got += ov.bytes;
		}
		assert_int_equal(weft_port_get(p, NULL, NULL, &o, 0), -ETIMEDOUT); /* once */
	}
	weft__store_rel(&r.stop, 1u);
	pthread_join(t, NULL);
	/* what the cancelled receives left behind is still in the socket */
	while (got < r.sent) {
		weft_overlapped ov = {0};
		assert_int_equal(weft_port_recv(p, a, buf, sizeof buf, &ov), 0);
		expect(p, &ov, 1);
		assert_int_equal(ov.status, 0);
		got += ov.bytes;
	}
	assert_int_equal(got, r.sent);
	close(b);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	weft_port_close(p);
	if (getenv("WEFT_TEST_VERBOSE"))
		fprintf(stderr, "cancel race: %llu cancelled of %llu\n", (unsigned long long)cancelled,
			(unsigned long long)n);
}

/* Closing a port with many operations in flight on many sockets: each completes once. */
static void test_io_port_close_many_in_flight(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	enum { NS = 16, PER = 4 };
	int a[NS], b[NS];
	static weft_overlapped ov[NS][PER];
	static char buf[NS][PER][8];
	memset(ov, 0, sizeof ov);
	assert_int_equal(weft_port_post(p, 0, 0, NULL), 0);
	assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), 0); /* main uses the port */
	for (int i = 0; i < NS; i++) {
		tcp_pair(&a[i], &b[i]);
		assert_int_equal(weft_port_associate(p, a[i], (uintptr_t)i + 1), 0);
		for (int k = 0; k < PER; k++)
			assert_int_equal(weft_port_recv(p, a[i], buf[i][k], 8, &ov[i][k]), 0);
	}
	for (int i = 0; i < NS; i += 2)
		assert_int_equal(send(b[i], "d", 1, 0), 1); /* some complete for real */
	weft_port_close(p);
	int seen[NS][PER];
	memset(seen, 0, sizeof seen);
	weft_overlapped *o;
	uintptr_t key;
	int total = 0;
	while (weft_port_get(p, NULL, &key, &o, 0) == 0) {
		int i = (int)key - 1;
		assert_true(i >= 0 && i < NS);
		int k = (int)(o - ov[i]);
		assert_true(k >= 0 && k < PER);
		seen[i][k]++;
		assert_true(o->status == -ECANCELED || (o->status == 0 && o->bytes == 1));
		total++;
	}
	assert_int_equal(total, NS * PER);
	for (int i = 0; i < NS; i++)
		for (int k = 0; k < PER; k++)
			assert_int_equal(seen[i][k], 1);
	for (int i = 0; i < NS; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* Second stages armed from whichever thread drains the completion of the first (the
 * reaper, the submitter, or a waiter polling while it spins): accept-with-bytes many
 * times, the first bytes sent a little after the connect. */
struct late_client {
	uint16_t port;
	uint32_t n;
	int failures;
};

static void *late_client_main(void *v)
{
	struct late_client *c = v;
	struct sockaddr_in sa = loop_addr(c->port);
	for (uint32_t i = 0; i < c->n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
			c->failures++;
		usleep(i % 7 * 15); /* 0..90 us: lands in the spin window or after it */
		if (send(fd, "abcd", 4, 0) != 4)
			c->failures++;
		char x;
		if (recv(fd, &x, 1, 0) != 0) /* wait for the server to close */
			c->failures++;
		close(fd);
	}
	return NULL;
}

static void test_io_second_stage_from_any_thread(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	struct late_client c = {.n = (uint32_t)weft_test_iters(400)};
	int l = listener(&c.port);
	assert_int_equal(weft_port_associate(p, l, 1), 0);
	pthread_t t;
	pthread_create(&t, NULL, late_client_main, &c);
	for (uint32_t i = 0; i < c.n; i++) {
		int acc = -1;
		char buf[16];
		weft_overlapped ov = {0};
		assert_int_equal(weft_port_accept(p, l, &acc, buf, sizeof buf, &ov), 0);
		expect(p, &ov, 1);
		assert_int_equal(ov.status, 0);
		assert_int_equal(ov.bytes, 4);
		assert_memory_equal(buf, "abcd", 4);
		close(acc);
	}
	pthread_join(t, NULL);
	assert_int_equal(c.failures, 0);
	assert_int_equal(weft_port_close_fd(p, l), 0);
	weft_port_close(p);
}

/* ---- datagrams ---- */

static int udp_bound(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	*a = loop_addr(0);
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
	socklen_t l = sizeof *a;
	getsockname(fd, (struct sockaddr *)a, &l);
	return fd;
}

static void test_io_recvfrom_sendto(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	struct sockaddr_in aa, ba;
	int a = udp_bound(&aa), b = udp_bound(&ba);
	assert_int_equal(weft_port_associate(p, a, 1), 0);
	assert_int_equal(weft_port_associate(p, b, 2), 0);
	char buf[32];
	struct sockaddr_in from = {0};
	socklen_t fromlen = sizeof from;
	weft_overlapped rov = {0}, sov = {0};
	assert_int_equal(weft_port_recvfrom(p, b, buf, sizeof buf, (struct sockaddr *)&from, &fromlen, &rov),
			 0);
	{
		struct sockaddr_in to = ba; /* copied during the call */
		assert_int_equal(weft_port_sendto(p, a, "dgram", 5, (struct sockaddr *)&to, sizeof to, &sov),
				 0);
		memset(&to, 0, sizeof to);
	}
	for (int i = 0; i < 2; i++) {
		weft_overlapped *got;
		assert_int_equal(weft_port_get(p, NULL, NULL, &got, T_MS), 0);
		assert_true(got == &rov || got == &sov);
	}
	assert_int_equal(sov.status, 0);
	assert_int_equal(sov.bytes, 5);
	assert_int_equal(rov.status, 0);
	assert_int_equal(rov.bytes, 5);
	assert_memory_equal(buf, "dgram", 5);
	assert_int_equal(fromlen, sizeof from);
	assert_int_equal(from.sin_port, aa.sin_port);
	assert_int_equal(from.sin_addr.s_addr, aa.sin_addr.s_addr);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	assert_int_equal(weft_port_close_fd(p, b), 0);
	weft_port_close(p);
}

/* More completions at once than the io_uring CQ holds (512): none is lost. */
static void test_io_completion_burst(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	struct sockaddr_in aa, ba;
	int a = udp_bound(&aa), b = udp_bound(&ba);
	int big = 4 << 20;
	setsockopt(b, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	assert_int_equal(weft_port_associate(p, b, 2), 0);
	enum { N = 1500 };
	static weft_overlapped ov[N];
	static char buf[N][8];
	memset(ov, 0, sizeof ov);
	for (int i = 0; i < N; i++)
		assert_int_equal(weft_port_recv(p, b, buf[i], 8, &ov[i]), 0);
	for (int i = 0; i < N; i++) {
		uint32_t v = (uint32_t)i;
		assert_int_equal(sendto(a, &v, sizeof v, 0, (struct sockaddr *)&ba, sizeof ba), 4);
	}
	static uint8_t seen[N], payload[N];
	memset(seen, 0, sizeof seen);
	memset(payload, 0, sizeof payload);
	for (int i = 0; i < N; i++) {
		weft_overlapped *got;
		assert_int_equal(weft_port_get(p, NULL, NULL, &got, T_MS), 0);
		int k = (int)(got - ov);
		assert_true(k >= 0 && k < N);
		seen[k]++;
		assert_int_equal(got->status, 0);
		assert_int_equal(got->bytes, 4);
		uint32_t v;
		memcpy(&v, buf[k], 4);
		assert_true(v < N);
		payload[v]++;
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(seen[i], 1);
		assert_int_equal(payload[i], 1);
	}
	expect_none(p);
	close(a);
	assert_int_equal(weft_port_close_fd(p, b), 0);
	weft_port_close(p);
}

/* ---- sendfile ---- */

static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 131u + (i >> 11) + 7u);
}

struct sink_arg {
	int fd;
	uint64_t got, bad;
};

static void *sink_thread(void *v)
{
	struct sink_arg *s = v;
	static uint8_t b[1 << 16];
	ssize_t n;
	while ((n = recv(s->fd, b, sizeof b, 0)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (b[i] != pat(s->got + 100 + (uint64_t)i))
				s->bad++;
		s->got += (uint64_t)n;
	}
	return NULL;
}

static void test_io_sendfile(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	char path[] = "/tmp/weft-sf-XXXXXX";
	int f = mkstemp(path);
	unlink(path);
	uint32_t size = 3u << 20;
	uint8_t *data = malloc(size);
	for (uint32_t i = 0; i < size; i++)
		data[i] = pat(i);
	assert_int_equal(write(f, data, size), (ssize_t)size);
	free(data);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, a, 1), 0);
	struct sink_arg s = {b, 0, 0};
	pthread_t t;
	pthread_create(&t, NULL, sink_thread, &s);
	/* from offset 100, more than the file holds: stops at end of file */
	weft_overlapped ov = {.offset = 100};
	assert_int_equal(weft_port_sendfile(p, a, f, size, &ov), 0);
	expect(p, &ov, 1);
	assert_int_equal(ov.status, 0);
	assert_int_equal(ov.bytes, size - 100);
	assert_int_equal(weft_port_close_fd(p, a), 0);
	pthread_join(t, NULL);
	assert_int_equal(s.got, size - 100);
	assert_int_equal(s.bad, 0);
	close(b);
	close(f);
	weft_port_close(p);
}

/* ---- a TCP echo through the port ----
 * Each connection has three per-I/O contexts (server echo, client sender, client
 * receiver), each embedding its weft_overlapped: workers recover the context with
 * weft_container_of, as with CONTAINING_RECORD. One operation per context is in flight
 * at a time, so a context is only touched by the thread that dequeued its completion. */

enum { R_SRV, R_TX, R_RX };
#define ECHO_CHUNK (64u << 10)
#define K_STOP 0

struct conn;
struct io_ctx {
	uint32_t role;
	struct conn *c;
	weft_overlapped ov;
	uint8_t buf[ECHO_CHUNK];
	bool sending; /* server: echoing what it received */
};

struct conn {
	weft_port *p;
	int srv, cli;
	uint64_t total, sent, received, bad;
	struct io_ctx ctx[3];
	uint32_t done;	 /* atomic: 1 per finished client side (sender, receiver); 2: all */
	uint32_t errors; /* atomic */
};

static void echo_tx(struct conn *c)
{
	struct io_ctx *x = &c->ctx[R_TX];
	uint32_t n = c->total - c->sent < ECHO_CHUNK ? (uint32_t)(c->total - c->sent) : ECHO_CHUNK;
	for (uint32_t i = 0; i < n; i++)
		x->buf[i] = pat(c->sent + i);
	if (weft_port_send(c->p, c->cli, x->buf, n, &x->ov) != 0)
		weft__fadd_rlx(&c->errors, 1u);
}

static void echo_step(weft_overlapped *ov)
{
	struct io_ctx *x = weft_container_of(ov, struct io_ctx, ov);
	struct conn *c = x->c;
	if (ov->status != 0) {
		weft__fadd_rlx(&c->errors, 1u);
		weft__store_rel(&c->done, 2u);
		return;
	}
	switch (x->role) {
	case R_SRV:
		if (!x->sending && ov->bytes == 0)
			return; /* the client closed */
		x->sending = !x->sending;
		if (x->sending)
			weft_port_send(c->p, c->srv, x->buf, ov->bytes, ov);
		else
			weft_port_recv(c->p, c->srv, x->buf, ECHO_CHUNK, ov);
		break;
	case R_TX:
		c->sent += ov->bytes;
		if (c->sent < c->total)
			echo_tx(c);
		else
			weft__fadd_acqrel(&c->done, 1u);
		break;
	default:
		for (uint32_t i = 0; i < ov->bytes; i++)
			if (x->buf[i] != pat(c->received + i))
				c->bad++;
		c->received += ov->bytes;
		if (c->received == c->total || ov->bytes == 0)
			weft__fadd_acqrel(&c->done, 1u);
		else
			weft_port_recv(c->p, c->cli, x->buf, ECHO_CHUNK, ov);
	}
}

static void *echo_worker(void *v)
{
	weft_port *p = v;
	for (;;) {
		weft_completion comp[8];
		uint32_t n;
		if (weft_port_get_many(p, comp, 8, &n, WEFT_INFINITE, false) != 0)
			return NULL;
		uint32_t stops = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (comp[i].key == K_STOP)
				stops++;
			else
				echo_step(comp[i].ov);
		}
		if (stops) {
			while (--stops)
				weft_port_post(p, 0, K_STOP, NULL); /* another worker's */
			return NULL;
		}
	}
}

static void run_echo(uint32_t nconn, uint32_t nworkers, uint64_t bytes_each)
{
	weft_port *p = mkport(2);
	struct conn *cs = calloc(nconn, sizeof *cs);
	for (uint32_t k = 0; k < nconn; k++) {
		struct conn *c = &cs[k];
		c->p = p;
		c->total = bytes_each;
		tcp_pair(&c->cli, &c->srv);
		assert_int_equal(weft_port_associate(p, c->srv, 1 + 2 * k), 0);
		assert_int_equal(weft_port_associate(p, c->cli, 2 + 2 * k), 0);
		for (uint32_t r = 0; r < 3; r++)
			c->ctx[r] = (struct io_ctx){.role = r, .c = c};
	}
	pthread_t th[8];
	for (uint32_t i = 0; i < nworkers; i++)
		pthread_create(&th[i], NULL, echo_worker, p);
	for (uint32_t k = 0; k < nconn; k++) {
		struct conn *c = &cs[k];
		assert_int_equal(weft_port_recv(p, c->srv, c->ctx[R_SRV].buf, ECHO_CHUNK, &c->ctx[R_SRV].ov),
				 0);
		assert_int_equal(weft_port_recv(p, c->cli, c->ctx[R_RX].buf, ECHO_CHUNK, &c->ctx[R_RX].ov),
				 0);
		echo_tx(c);
	}
	uint64_t t0 = weft_test_now_ns();
	for (uint32_t k = 0; k < nconn; k++)
		while (weft__load_acq(&cs[k].done) < 2 && weft_test_now_ns() - t0 < 120000000000ull)
			usleep(2000);
	for (uint32_t i = 0; i < nworkers; i++)
		weft_port_post(p, 0, K_STOP, NULL);
	for (uint32_t i = 0; i < nworkers; i++)
		pthread_join(th[i], NULL);
	for (uint32_t k = 0; k < nconn; k++) {
		struct conn *c = &cs[k];
		assert_int_equal(c->errors, 0);
		assert_int_equal(c->sent, c->total);
		assert_int_equal(c->received, c->total);
		assert_int_equal(c->bad, 0);
		assert_int_equal(weft_port_close_fd(p, c->cli), 0);
		/* the server's last operation (a recv, or an echo the workers did not get to)
		 * completes exactly once, cancelled or done */
		assert_int_equal(weft_port_close_fd(p, c->srv), 0);
		weft_overlapped *got;
		assert_int_equal(weft_port_get(p, NULL, NULL, &got, 0), 0);
		assert_ptr_equal(got, &c->ctx[R_SRV].ov);
		assert_true(got->status == -ECANCELED || got->status == 0);
	}
	expect_none(p);
	weft_port_close(p);
	free(cs);
}

static void test_io_tcp_echo_100mb(void **state)
{
	(void)state;
	run_echo(1, 2, weft_test_iters(100ull << 20) + 12345); /* not a multiple of the chunk */
}

static void test_io_tcp_echo_many_connections(void **state)
{
	(void)state;
	run_echo(8, 4, weft_test_iters(4ull << 20) + 777);
}

/* An operation outlives the thread that submitted it (io_uring cancels an exiting
 * thread's requests; the port re-arms them, as Windows keeps I/O on a port's handles). */
struct sub_arg {
	weft_port *p;
	int fd;
	char buf[16];
	weft_overlapped ov;
	int rc;
};

static void *submit_and_exit(void *v)
{
	struct sub_arg *a = v;
	a->rc = weft_port_recv(a->p, a->fd, a->buf, sizeof a->buf, &a->ov);
	return NULL;
}

static void test_io_op_outlives_its_thread(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int a, b;
	tcp_pair(&a, &b);
	assert_int_equal(weft_port_associate(p, b, 5), 0);
	struct sub_arg *arg = calloc(1, sizeof *arg);
	arg->p = p;
	arg->fd = b;
	pthread_t t;
	pthread_create(&t, NULL, submit_and_exit, arg);
	pthread_join(t, NULL);
	assert_int_equal(arg->rc, 0);
	usleep(20000);
	assert_int_equal(send(a, "late", 4, 0), 4);
	expect(p, &arg->ov, 5);
	assert_int_equal(arg->ov.status, 0);
	assert_int_equal(arg->ov.bytes, 4);
	assert_memory_equal(arg->buf, "late", 4);
	free(arg);
	close(a);
	assert_int_equal(weft_port_close_fd(p, b), 0);
	weft_port_close(p);
}

/* A read that has to go to the disk (page cache dropped) still completes. */
static void test_io_file_read_uncached(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	char path[] = "/var/tmp/weft-unc-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		weft_port_close(p);
		skip();
	}
	unlink(path);
	static char data[1 << 16];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)pat(i);
	assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
	fsync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	assert_int_equal(weft_port_associate(p, fd, 8), 0);
	static char back[1 << 16];
	weft_overlapped ov = {.offset = 0};
	assert_int_equal(weft_port_read(p, fd, back, sizeof back, &ov), 0);
	expect(p, &ov, 8);
	assert_int_equal(ov.status, 0);
	assert_int_equal(ov.bytes, sizeof back);
	assert_memory_equal(back, data, sizeof data);
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	signal(SIGPIPE, SIG_IGN); /* sendfile cannot say MSG_NOSIGNAL */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_file_read_write_offset),
	    cmocka_unit_test(test_io_bad_fd),
	    cmocka_unit_test(test_io_pipe_read_eof),
	    cmocka_unit_test(test_io_accept_connect_send_recv),
	    cmocka_unit_test(test_io_accept_first_bytes),
	    cmocka_unit_test(test_io_connect_refused),
	    cmocka_unit_test(test_io_peer_reset),
	    cmocka_unit_test(test_io_send_all_bytes),
	    cmocka_unit_test(test_io_cancel),
	    cmocka_unit_test(test_io_close_fd_completes_pending),
	    cmocka_unit_test(test_io_port_close_completes_pending),
	    cmocka_unit_test(test_io_fd_number_reused),
	    cmocka_unit_test(test_io_second_stage_from_any_thread),
	    cmocka_unit_test(test_io_cancel_races_completion),
	    cmocka_unit_test(test_io_port_close_many_in_flight),
	    cmocka_unit_test(test_io_recvfrom_sendto),
	    cmocka_unit_test(test_io_completion_burst),
	    cmocka_unit_test(test_io_sendfile),
	    cmocka_unit_test(test_io_tcp_echo_100mb),
	    cmocka_unit_test(test_io_tcp_echo_many_connections),
	    cmocka_unit_test(test_io_op_outlives_its_thread),
	    cmocka_unit_test(test_io_file_read_uncached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
