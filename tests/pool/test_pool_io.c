/* test_pool_io.c - I/O objects: completions of asynchronous operations dispatched to a
 * callback on a pool thread; many operations each called back once; cancel on wait;
 * close with operations in flight; a loopback echo of bytes checked exactly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "tp_util.h"

struct op {
	weft_overlapped ov;
	char buf[64];
	uint32_t index;
};

struct ioctx {
	uint32_t calls;	    /* atomic */
	uint32_t cancelled; /* atomic */
	uint64_t bytes;	    /* atomic */
	uint32_t on_pool;   /* atomic: callbacks that ran on a pool thread */
	uint32_t seen[64];  /* atomic: per operation */
};

static void on_io(void *arg, weft_overlapped *ov, int32_t status, uint32_t bytes)
{
	struct ioctx *c = arg;
	struct op *o = weft_container_of(ov, struct op, ov);
	if (weft_pool_is_worker(NULL))
		weft__fadd_rlx(&c->on_pool, 1u);
	if (status == -ECANCELED)
		weft__fadd_rlx(&c->cancelled, 1u);
	weft__fadd_rlx(&c->bytes, bytes);
	weft__fadd_rlx(&c->seen[o->index], 1u);
	weft__fadd_rel(&c->calls, 1u);
}

/* 64 reads pre-posted on one end of a socket pair; 64 small writes on the other end:
 * every read completes once, on a pool thread, and the byte total matches. */
static void test_pool_io_reads_complete_once(void **state)
{
	(void)state;
	static struct op ops[64];
	static struct ioctx c;
	memset(ops, 0, sizeof ops);
	memset(&c, 0, sizeof c);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_io *io = weft_pool_io_create(p, sv[0], on_io, &c);
	assert_non_null(io);
	for (uint32_t i = 0; i < 64; i++) {
		ops[i].index = i;
		assert_int_equal(weft_pool_io_recv(io, ops[i].buf, 4, &ops[i].ov), 0);
	}
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(sv[1], "abcd", 4), 4);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.calls) == 64, 10000));
	weft_pool_io_wait(io, false);
	assert_int_equal(weft__load_acq(&c.bytes), 256);
	assert_int_equal(weft__load_acq(&c.on_pool), 64);
	for (int i = 0; i < 64; i++)
		assert_int_equal(c.seen[i], 1);
	weft_pool_io_close(io);
	weft_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* wait(cancel) cancels operations still pending: each completes with -ECANCELED, once. */
static void test_pool_io_wait_cancels(void **state)
{
	(void)state;
	static struct op ops[8];
	static struct ioctx c;
	memset(ops, 0, sizeof ops);
	memset(&c, 0, sizeof c);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_io *io = weft_pool_io_create(p, sv[0], on_io, &c);
	for (uint32_t i = 0; i < 8; i++) {
		ops[i].index = i;
		assert_int_equal(weft_pool_io_recv(io, ops[i].buf, 4, &ops[i].ov), 0);
	}
	weft_pool_io_wait(io, true);
	assert_int_equal(weft__load_acq(&c.calls), 8);
	assert_int_equal(weft__load_acq(&c.cancelled), 8);
	weft_pool_io_close(io);
	weft_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* Close with operations in flight: they complete (cancelled) and their callbacks still
 * run after close returned; the object outlives them (ASan checks). */
static void test_pool_io_close_with_ops_in_flight(void **state)
{
	(void)state;
	static struct op ops[8];
	static struct ioctx c;
	memset(ops, 0, sizeof ops);
	memset(&c, 0, sizeof c);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	weft_pool *p = weft_pool_create(NULL);
	weft_pool_io *io = weft_pool_io_create(p, sv[0], on_io, &c);
	for (uint32_t i = 0; i < 8; i++) {
		ops[i].index = i;
		assert_int_equal(weft_pool_io_recv(io, ops[i].buf, 4, &ops[i].ov), 0);
	}
	weft_pool_io_close(io);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&c.calls) == 8, 10000));
	weft_pool_destroy(p);
	assert_int_equal(c.cancelled, 8);
	close(sv[0]);
	close(sv[1]);
}

/* ---- a TCP echo served by I/O objects on 127.0.0.1 ---- */

struct conn {
	weft_pool_io *io;
	int fd;
	weft_overlapped rov, sov;
	char buf[16384];
	uint32_t closed; /* atomic */
};

struct server {
	weft_pool *p;
	weft_pool_io *lio;
	weft_overlapped aov;
	int lfd, accepted;
	struct conn c;
	uint64_t echoed; /* atomic */
	uint32_t errors; /* atomic */
};

static void conn_io(void *arg, weft_overlapped *ov, int32_t status, uint32_t bytes)
{
	struct server *s = arg;
	struct conn *c = &s->c;
	if (status < 0) {
		weft__fadd_rlx(&s->errors, 1u);
		weft__store_rel(&c->closed, 1u);
		return;
	}
	if (ov == &c->rov) {
		if (bytes == 0) {
			shutdown(c->fd, SHUT_WR);
			weft__store_rel(&c->closed, 1u);
			return;
		}
		if (weft_pool_io_send(c->io, c->buf, bytes, &c->sov) != 0)
			weft__fadd_rlx(&s->errors, 1u);
	} else {
		weft__fadd_rlx(&s->echoed, bytes);
		if (weft_pool_io_recv(c->io, c->buf, sizeof c->buf, &c->rov) != 0)
			weft__fadd_rlx(&s->errors, 1u);
	}
}

static void on_accept(void *arg, weft_overlapped *ov, int32_t status, uint32_t bytes)
{
	struct server *s = arg;
	(void)ov;
	(void)bytes;
	if (status < 0) {
		weft__fadd_rlx(&s->errors, 1u);
		return;
	}
	s->c.fd = s->accepted;
	s->c.io = weft_pool_io_create(s->p, s->c.fd, conn_io, s);
	if (!s->c.io || weft_pool_io_recv(s->c.io, s->c.buf, sizeof s->c.buf, &s->c.rov) != 0)
		weft__fadd_rlx(&s->errors, 1u);
}

struct client {
	int fd;
	uint64_t total;
};

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 11));
}

static void *client_writer(void *arg)
{
	struct client *c = arg;
	uint8_t buf[8192];
	for (uint64_t off = 0; off < c->total;) {
		size_t n = c->total - off < sizeof buf ? (size_t)(c->total - off) : sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		ssize_t w = write(c->fd, buf, n);
		if (w <= 0)
			break;
		off += (uint64_t)w;
	}
	shutdown(c->fd, SHUT_WR);
	return NULL;
}

static void test_pool_io_tcp_echo(void **state)
{
	(void)state;
	static struct server s;
	memset(&s, 0, sizeof s);
	s.p = weft_pool_create(NULL);
	s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s.lfd, 4), 0);
	assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&a, &alen), 0);
	s.lio = weft_pool_io_create(s.p, s.lfd, on_accept, &s);
	assert_non_null(s.lio);
	assert_int_equal(weft_pool_io_accept(s.lio, &s.accepted, NULL, 0, &s.aov), 0);

	struct client c = {socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), weft_test_iters(16u << 20)};
	assert_int_equal(connect(c.fd, (struct sockaddr *)&a, sizeof a), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, client_writer, &c), 0);
	uint8_t buf[8192];
	uint64_t got = 0, bad = 0;
	for (;;) {
		ssize_t r = read(c.fd, buf, sizeof buf);
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			bad += buf[i] != pattern(got + (uint64_t)i);
		got += (uint64_t)r;
	}
	pthread_join(th, NULL);
	assert_true(TP_WAIT_UNTIL(weft__load_acq(&s.c.closed) == 1, 10000));
	weft_pool_io_wait(s.c.io, false);
	weft_pool_io_close(s.c.io);
	close(s.c.fd);
	weft_pool_io_wait(s.lio, true);
	weft_pool_io_close(s.lio);
	close(s.lfd);
	close(c.fd);
	weft_pool_destroy(s.p);
	assert_int_equal(got, c.total);
	assert_int_equal(bad, 0);
	assert_int_equal(s.echoed, c.total);
	assert_int_equal(s.errors, 0);
}

static void test_pool_io_bad_args(void **state)
{
	(void)state;
	struct ioctx c = {0};
	weft_pool *p = weft_pool_create(NULL);
	assert_null(weft_pool_io_create(p, -1, on_io, &c));
	assert_null(weft_pool_io_create(p, 0, NULL, &c));
	assert_non_null(weft_pool_port(p));
	weft_pool_destroy(p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_io_reads_complete_once),
		cmocka_unit_test(test_pool_io_wait_cancels),
		cmocka_unit_test(test_pool_io_close_with_ops_in_flight),
		cmocka_unit_test(test_pool_io_tcp_echo),
		cmocka_unit_test(test_pool_io_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
