/* test_echo.c - the completion-port server framework (<weft/net.h>) serving TCP echo on
 * 127.0.0.1, on each backend (ctest runs it with WEFT_BACKEND=uring and =epoll; 77 when
 * the forced backend is not available here).
 *
 * The clients are plain non-blocking sockets driven by epoll in the test's main thread.
 * Server callbacks run on port threads: they only count into atomics, and the main
 * thread asserts. Every wait is bounded by a deadline and fails the test when it passes. */
#include "weft_test.h"
#include "pool/port_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/net.h>

#include "atomic.h"

/* ---- a server whose callbacks count ------------------------------------------------- */

struct counts {
	uint64_t accepts, closes, close_peer, close_shutdown, close_aborted, close_timeout, close_other;
	uint64_t data_calls;
	uint64_t write_done_bytes;
	uint32_t quit_on_q;         /* on_data closes the connection when it sees a 'q' */
	uint32_t cork_cmds;         /* on_data runs the cork commands (test_echo_cork) */
	int cork_rc[3];             /* results of weft_conn_set_cork: on, off, after close */
};

static struct counts cnt;

static int cb_accept(weft_conn *c)
{
	weft_conn_set_user(c, &cnt);
	weft__fadd_rlx(&cnt.accepts, 1);
	return 0;
}

static void cb_data(weft_conn *c, const void *data, size_t len)
{
	weft__fadd_rlx(&cnt.data_calls, 1);
	if (weft__load_rlx(&cnt.quit_on_q) && memchr(data, 'q', len)) {
		weft_conn_close(c);
		return;
	}
	if (weft__load_rlx(&cnt.cork_cmds) && len == 1) {
		/* 'C': cork, then send 4 bytes; 'U': uncork; 'X': close, then try to cork */
		char cmd = *(const char *)data;
		if (cmd == 'C') {
			weft__store_rlx(&cnt.cork_rc[0], weft_conn_set_cork(c, true));
			if (weft_conn_send(c, "HEAD", 4) < 0)
				weft_conn_close(c);
		} else if (cmd == 'U') {
			weft__store_rlx(&cnt.cork_rc[1], weft_conn_set_cork(c, false));
		} else if (cmd == 'X') {
			weft_conn_close(c);
			weft__store_rlx(&cnt.cork_rc[2], weft_conn_set_cork(c, true));
		}
		return;
	}
	int rc = weft_conn_send(c, data, len);
	if (rc < 0)
		weft_conn_close(c);   /* the test then sees a short echo and fails */
}

static void cb_write_done(weft_conn *c, size_t bytes)
{
	(void)c;
	weft__fadd_rlx(&cnt.write_done_bytes, bytes);
}

static void cb_close(weft_conn *c, int reason)
{
	(void)c;
	if (reason == 0)
		weft__fadd_rlx(&cnt.close_peer, 1);
	else if (reason == -ESHUTDOWN)
		weft__fadd_rlx(&cnt.close_shutdown, 1);
	else if (reason == -ECONNABORTED)
		weft__fadd_rlx(&cnt.close_aborted, 1);
	else if (reason == -ETIMEDOUT)
		weft__fadd_rlx(&cnt.close_timeout, 1);
	else
		weft__fadd_rlx(&cnt.close_other, 1);
	/* release: the last count; pairs with the acquire in wait_closes() */
	weft__fadd_rel(&cnt.closes, 1);
}

static const weft_server_callbacks callbacks = {
	.on_accept = cb_accept, .on_data = cb_data, .on_write_done = cb_write_done, .on_close = cb_close,
};

static weft_server *start_idle(uint32_t threads, uint32_t max_conns, uint32_t buf_size, uint32_t sq_max,
                               uint32_t idle_ms)
{
	memset(&cnt, 0, sizeof cnt);
	weft_server_config cfg = { .listen = "127.0.0.1:0", .threads = threads, .accepts = 8,
		.max_conns = max_conns, .buf_size = buf_size, .send_queue_max = sq_max,
		.idle_timeout_ms = idle_ms, .cb = &callbacks };
	int err = 0;
	weft_server *s = weft_server_create(&cfg, &err);
	if (!s)
		fail_msg("weft_server_create: %s", strerror(-err));
	assert_int_equal(err, 0);
	assert_true(weft_server_port(s) > 0);
	const char *be = getenv("WEFT_BACKEND");
	if (be)
		assert_string_equal(weft_server_backend(s), be);
	return s;
}

static weft_server *start(uint32_t threads, uint32_t max_conns, uint32_t buf_size, uint32_t sq_max)
{
	return start_idle(threads, max_conns, buf_size, sq_max, 0);
}

static weft_server_stats stats(weft_server *s)
{
	weft_server_stats st;
	weft_server_get_stats(s, &st);
	return st;
}

/* Waits until the server has no connection left (bounded). */
static void wait_idle(weft_server *s, uint64_t closes)
{
	uint64_t end = weft_test_now_ns() + 10000000000ull;
	while (stats(s).active != 0 || weft__load_acq(&cnt.closes) < closes) {
		if (weft_test_now_ns() > end)
			fail_msg("server still has %llu connections, %llu closes of %llu",
			         (unsigned long long)stats(s).active,
			         (unsigned long long)weft__load_acq(&cnt.closes), (unsigned long long)closes);
		usleep(1000);
	}
}

/* ---- clients ------------------------------------------------------------------------ */

static int client_connect(int port, int bufsize)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (bufsize) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

static void set_nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static inline uint8_t pat(uint32_t conn, uint64_t off)
{
	return (uint8_t)(conn * 31u + off * 7u + (off >> 9));
}

/* Blocking round trip of len bytes (with a poll deadline); returns bytes echoed. */
static size_t roundtrip(int fd, const char *msg, size_t len)
{
	assert_int_equal(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
	char buf[4096];
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			fail_msg("no echo within 10 s");
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		assert_memory_equal(buf, msg + got, (size_t)n);
		got += (size_t)n;
	}
	return got;
}

/* True when the peer closed (EOF or reset) within 10 s. */
static bool sees_close(int fd)
{
	char b[64];
	uint64_t end = weft_test_now_ns() + 10000000000ull;
	while (weft_test_now_ns() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) != 1)
			continue;
		ssize_t n = recv(fd, b, sizeof b, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- tests -------------------------------------------------------------------------- */

struct echo_client {
	int fd;
	uint64_t total, sent, got;
};

/* 1000 connections at once, each sending a different amount (3..27 KB, in pieces as the
 * socket takes them) and checking every byte of its echo; on 2 port threads, and on 1
 * (the port's solo mode: the thread is the port's reaper). */
static void echo_thousand(uint32_t threads)
{
	const uint32_t n = 1000;
	weft_server *s = start(threads, 0, 0, 0);
	int port = weft_server_port(s);
	struct echo_client *cl = calloc(n, sizeof *cl);
	assert_non_null(cl);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		cl[i].fd = client_connect(port, 0);
		set_nonblock(cl[i].fd);
		cl[i].total = 3000 + (uint64_t)(i % 25) * 1000 + i % 7;
		total += cl[i].total;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = i };
		assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev), 0);
	}
	uint32_t done = 0;
	char buf[8192];
	uint64_t end = weft_test_now_ns() + 30000000000ull;
	while (done < n) {
		if (weft_test_now_ns() > end)
			fail_msg("only %u of %u connections got their echo in 30 s", done, n);
		struct epoll_event evs[128];
		int k = epoll_wait(ep, evs, 128, 100);
		for (int e = 0; e < k; e++) {
			uint32_t i = evs[e].data.u32;
			struct echo_client *c = &cl[i];
			if ((evs[e].events & EPOLLOUT) && c->sent < c->total) {
				size_t len = c->total - c->sent < sizeof buf ? (size_t)(c->total - c->sent) : sizeof buf;
				for (size_t j = 0; j < len; j++)
					buf[j] = (char)pat(i, c->sent + j);
				ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN)
					fail_msg("client %u send: %s", i, strerror(errno));
				if (w > 0)
					c->sent += (uint64_t)w;
				if (c->sent == c->total) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
					assert_int_equal(epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev), 0);
				}
			}
			if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				ssize_t r = recv(c->fd, buf, sizeof buf, 0);
				if (r == 0 || (r < 0 && errno != EAGAIN))
					fail_msg("client %u: connection closed after %llu of %llu bytes", i,
					         (unsigned long long)c->got, (unsigned long long)c->total);
				for (ssize_t j = 0; j < r; j++)
					if ((uint8_t)buf[j] != pat(i, c->got + (uint64_t)j))
						fail_msg("client %u: byte %llu differs", i, (unsigned long long)(c->got + (uint64_t)j));
				if (r > 0) {
					c->got += (uint64_t)r;
					assert_true(c->got <= c->sent);
					if (c->got == c->total) {
						done++;
						epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					}
				}
			}
		}
	}
	/* The last send completion may still be on its way to a port thread when the client
	 * has the bytes: give the counters a (bounded) moment. */
	weft_server_stats st = stats(s);
	for (uint64_t until = weft_test_now_ns() + 10000000000ull;
	     (st.bytes_out != total || weft__load_rlx(&cnt.write_done_bytes) != total) &&
	     weft_test_now_ns() < until;
	     st = stats(s))
		usleep(1000);
	assert_int_equal(st.accepted, n);
	assert_int_equal(st.active, n);
	assert_int_equal(st.refused, 0);
	assert_int_equal(st.bytes_in, total);
	assert_int_equal(st.bytes_out, total);
	assert_int_equal(weft__load_rlx(&cnt.accepts), n);
	assert_int_equal(weft__load_rlx(&cnt.write_done_bytes), total);
	for (uint32_t i = 0; i < n; i++)
		close(cl[i].fd);
	wait_idle(s, n);
	st = stats(s);
	assert_int_equal(st.closed, n);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.queued_bytes, 0);
	assert_int_equal(st.buf_in_use, 0);
	assert_int_equal(weft__load_rlx(&cnt.close_peer), n);
	assert_int_equal(weft_server_stop(s, 1000), 0);
	weft_server_destroy(s);
	close(ep);
	free(cl);
}

static void test_echo_thousand_connections(void **state)
{
	(void)state;
	echo_thousand(2);
}

static void test_echo_thousand_connections_solo(void **state)
{
	(void)state;
	echo_thousand(1);
}

/* A client that sends and never reads: the server stops reading it once its send queue
 * is half full, so what the server holds stays under send_queue_max; every byte still
 * comes back once the client reads. */
static void test_echo_backpressure(void **state)
{
	(void)state;
	const uint32_t sq_max = 64 * 1024;
	weft_server *s = start(2, 0, 4096, sq_max);
	int fd = client_connect(weft_server_port(s), 16384);
	set_nonblock(fd);
	const uint64_t cap = 64ull << 20;
	char buf[16384];
	uint64_t sent = 0, last_progress = weft_test_now_ns();
	uint64_t max_queued = 0, give_up = weft_test_now_ns() + 20000000000ull;
	/* Send until stuck for 300 ms after the server paused reading (a server merely
	 * descheduled on a busy machine does not count as stuck). */
	while (sent < cap && weft_test_now_ns() < give_up &&
	       !(weft_test_now_ns() - last_progress > 300000000ull && stats(s).recv_pauses > 0)) {
		for (size_t j = 0; j < sizeof buf; j++)
			buf[j] = (char)pat(7, sent + j);
		ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (uint64_t)w;
			last_progress = weft_test_now_ns();
		} else {
			assert_true(w < 0 && errno == EAGAIN);
			usleep(2000);
		}
		uint64_t q = stats(s).queued_bytes;
		max_queued = q > max_queued ? q : max_queued;
	}
	weft_server_stats st = stats(s);
	assert_true(sent < cap);                      /* the client got stuck: the server stopped reading */
	assert_true(st.recv_pauses >= 1);
	assert_true(max_queued <= sq_max);
	assert_true(st.queued_bytes <= sq_max);
	assert_true(st.bytes_in < sent);              /* the rest waits in the kernel, not in weft */
	/* Now read it all back. */
	uint64_t got = 0, end = weft_test_now_ns() + 30000000000ull;
	while (got < sent) {
		if (weft_test_now_ns() > end)
			fail_msg("echo stalled at %llu of %llu bytes", (unsigned long long)got, (unsigned long long)sent);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) != 1)
			continue;
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		assert_true(r > 0);
		for (ssize_t j = 0; j < r; j++)
			if ((uint8_t)buf[j] != pat(7, got + (uint64_t)j))
				fail_msg("byte %llu differs", (unsigned long long)(got + (uint64_t)j));
		got += (uint64_t)r;
		uint64_t q = stats(s).queued_bytes;
		assert_true(q <= sq_max);
	}
	assert_int_equal(got, sent);
	close(fd);
	wait_idle(s, 1);
	st = stats(s);
	assert_int_equal(st.bytes_in, sent);
	assert_int_equal(st.bytes_out, sent);
	weft_server_destroy(s);
}

/* max_conns: connections past the limit are closed at accept; a freed slot is reused. */
static void test_echo_max_conns(void **state)
{
	(void)state;
	weft_server *s = start(2, 3, 0, 0);
	int port = weft_server_port(s);
	int fds[3];
	for (int i = 0; i < 3; i++) {
		fds[i] = client_connect(port, 0);
		assert_int_equal(roundtrip(fds[i], "hello", 5), 5);
	}
	int extra[2];
	for (int i = 0; i < 2; i++) {
		extra[i] = client_connect(port, 0);
		assert_true(sees_close(extra[i]));
		close(extra[i]);
	}
	weft_server_stats st = stats(s);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.accepted, 3);
	assert_int_equal(st.active, 3);
	close(fds[0]);
	for (uint64_t end = weft_test_now_ns() + 10000000000ull; stats(s).active != 2;) {
		if (weft_test_now_ns() > end)
			fail_msg("closed connection still counted");
		usleep(1000);
	}
	fds[0] = client_connect(port, 0);
	assert_int_equal(roundtrip(fds[0], "again", 5), 5);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	wait_idle(s, 4);
	assert_int_equal(stats(s).errors, 0);
	weft_server_destroy(s);
}

/* Graceful stop: connections that finish within the timeout are not forced; those that
 * do not are closed at the deadline with -ESHUTDOWN; the listener is gone at once. */
static void test_echo_stop(void **state)
{
	(void)state;
	weft_server *s = start(2, 0, 0, 0);
	int port = weft_server_port(s);
	enum { N = 10 };
	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = client_connect(port, 0);
		assert_int_equal(roundtrip(fds[i], "x", 1), 1);
	}
	uint64_t t0 = weft_test_now_ns();
	assert_int_equal(weft_server_stop(s, 100), N);
	uint64_t dt = weft_test_now_ns() - t0;
	assert_true(dt >= 100000000ull);     /* it waited for the deadline */
	assert_true(dt < 5000000000ull);
	assert_int_equal(weft__load_acq(&cnt.closes), N);
	assert_int_equal(weft__load_rlx(&cnt.close_shutdown), N);
	for (int i = 0; i < N; i++) {
		assert_true(sees_close(fds[i]));
		close(fds[i]);
	}
	/* nothing listens any more */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
	close(fd);
	assert_int_equal(weft_server_stop(s, 100), 0);   /* once is enough */
	weft_server_destroy(s);

	/* Clients that hang up within the timeout: nothing forced. */
	s = start(2, 0, 0, 0);
	port = weft_server_port(s);
	for (int i = 0; i < N; i++) {
		fds[i] = client_connect(port, 0);
		assert_int_equal(roundtrip(fds[i], "y", 1), 1);
		close(fds[i]);
	}
	assert_int_equal(weft_server_stop(s, 10000), 0);
	assert_int_equal(weft__load_acq(&cnt.closes), N);
	assert_int_equal(weft__load_rlx(&cnt.close_peer), N);
	weft_server_destroy(s);
}

/* A warm server allocates no buffer per request. */
static void test_echo_no_alloc_when_warm(void **state)
{
	(void)state;
	weft_server *s = start(2, 0, 0, 0);
	enum { N = 8 };
	int fds[N];
	char msg[1000];
	for (int i = 0; i < N; i++)
		fds[i] = client_connect(weft_server_port(s), 0);
	unsigned rounds = (unsigned)weft_test_iters(400);
	weft_server_stats warm = { 0 };
	for (unsigned r = 0; r < 2 * rounds; r++) {
		if (r == rounds)
			warm = stats(s);   /* warm now: every later buffer comes from the pool */
		for (int i = 0; i < N; i++) {
			size_t len = 1 + (r * 37 + (unsigned)i) % sizeof msg;
			memset(msg, 'a' + (int)(r % 26), len);
			assert_int_equal(roundtrip(fds[i], msg, len), len);
		}
	}
	assert_int_equal(stats(s).buf_allocs, warm.buf_allocs);
	assert_true(warm.buf_allocs > 0);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	wait_idle(s, N);
	weft_server_destroy(s);
}

/* A callback closing its own connection; the peer sees the close, on_close says why. */
static void test_echo_close_from_callback(void **state)
{
	(void)state;
	weft_server *s = start(1, 0, 0, 0);
	weft__store_rlx(&cnt.quit_on_q, 1);
	int fd = client_connect(weft_server_port(s), 0);
	assert_int_equal(roundtrip(fd, "abc", 3), 3);
	assert_int_equal(send(fd, "q", 1, MSG_NOSIGNAL), 1);
	assert_true(sees_close(fd));
	close(fd);
	wait_idle(s, 1);
	assert_int_equal(weft__load_rlx(&cnt.close_aborted), 1);
	weft_server_destroy(s);
}

/* Peers that reset in the middle of a large echo: file descriptors, connections and
 * buffers all return to their baseline; on 2 port threads and on 1 (solo mode: the
 * thread closing a connection reaps its cancelled sends itself). */
static void reset_no_leak(uint32_t threads)
{
	weft_server *s = start(threads, 0, 4096, 16384);
	int fds_before = count_fds();
	unsigned n = (unsigned)weft_test_iters(40);
	char big[65536];
	memset(big, 'z', sizeof big);
	for (unsigned i = 0; i < n; i++) {
		int fd = client_connect(weft_server_port(s), 8192);
		set_nonblock(fd);
		for (int k = 0; k < 8; k++)
			(void)send(fd, big, sizeof big, MSG_NOSIGNAL);
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(fd);   /* RST */
	}
	wait_idle(s, n);
	weft_server_stats st = stats(s);
	assert_int_equal(st.accepted, n);
	assert_int_equal(st.closed, n);
	assert_int_equal(st.queued_bytes, 0);
	assert_int_equal(count_fds(), fds_before);
	/* every buffer is back */
	assert_int_equal(st.buf_in_use, 0);
	weft_server_destroy(s);
}

static void test_echo_reset_no_leak(void **state)
{
	(void)state;
	reset_no_leak(2);
}

static void test_echo_reset_no_leak_solo(void **state)
{
	(void)state;
	reset_no_leak(1);
}

/* idle_timeout_ms: a silent connection is closed (-ETIMEDOUT), never before the timeout;
 * one that keeps talking is not. */
static void test_echo_idle_timeout(void **state)
{
	(void)state;
	weft_server *s = start_idle(2, 0, 0, 0, 1000);
	int quiet = client_connect(weft_server_port(s), 0);
	uint64_t t0 = weft_test_now_ns();
	int chatty = client_connect(weft_server_port(s), 0);
	bool quiet_open_early = false;
	while (weft_test_now_ns() - t0 < 2500000000ull) {
		assert_int_equal(roundtrip(chatty, "p", 1), 1);
		if (weft_test_now_ns() - t0 < 500000000ull) {
			char b;
			/* the server cannot have closed it yet: accepted after t0, timeout 1 s */
			quiet_open_early = recv(quiet, &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
			assert_true(quiet_open_early);
		}
		usleep(50000);
	}
	assert_true(quiet_open_early);
	assert_true(sees_close(quiet));
	assert_int_equal(roundtrip(chatty, "still here", 10), 10);
	assert_int_equal(stats(s).timeouts, 1);
	assert_int_equal(weft__load_rlx(&cnt.close_timeout), 1);
	close(quiet);
	close(chatty);
	wait_idle(s, 2);
	weft_server_destroy(s);
}

static void test_echo_bad_config(void **state)
{
	(void)state;
	int err = 0;
	weft_server_config cfg = { .listen = "127.0.0.1" };
	assert_null(weft_server_create(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	cfg.listen = "nohost:80";
	assert_null(weft_server_create(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	cfg.listen = "127.0.0.1:65536";
	assert_null(weft_server_create(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(weft_server_create(NULL, &err));
	assert_int_equal(err, -EINVAL);
	/* a port in use */
	weft_server *s = start(1, 0, 0, 0);
	char spec[32];
	snprintf(spec, sizeof spec, "127.0.0.1:%d", weft_server_port(s));
	cfg.listen = spec;
	assert_null(weft_server_create(&cfg, &err));
	assert_int_equal(err, -EADDRINUSE);
	weft_server_destroy(s);
}

/* weft_conn_set_cork: corked, the 4 bytes sent stay in the server's socket (TCP_CORK holds
 * a partial segment for up to 200 ms; the client looks for 100 ms after asking); uncorked,
 * they arrive at once. After weft_conn_close it answers -ENOTCONN. */
static void test_echo_cork(void **state)
{
	(void)state;
	weft_server *s = start(1, 0, 0, 0);
	weft__store_rlx(&cnt.cork_cmds, 1u);
	for (int i = 0; i < 3; i++)
		weft__store_rlx(&cnt.cork_rc[i], 1);
	int fd = client_connect(weft_server_port(s), 0);
	assert_int_equal(send(fd, "C", 1, MSG_NOSIGNAL), 1);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 100), 0);   /* held */
	assert_int_equal(send(fd, "U", 1, MSG_NOSIGNAL), 1);
	char b[8];
	size_t got = 0;
	while (got < 4) {
		if (poll(&p, 1, 2000) != 1)
			fail_msg("the corked bytes did not come within 2 s of uncorking");
		ssize_t n = recv(fd, b + got, sizeof b - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(got, 4);
	assert_memory_equal(b, "HEAD", 4);
	assert_int_equal(weft__load_rlx(&cnt.cork_rc[0]), 0);
	/* the bytes leave inside the uncorking call, before the callback records its result */
	uint64_t end = weft_test_now_ns() + 10000000000ull;
	while (weft__load_rlx(&cnt.cork_rc[1]) == 1 && weft_test_now_ns() < end)
		usleep(1000);
	assert_int_equal(weft__load_rlx(&cnt.cork_rc[1]), 0);
	assert_int_equal(send(fd, "X", 1, MSG_NOSIGNAL), 1);
	assert_true(sees_close(fd));
	wait_idle(s, 1);
	assert_int_equal(weft__load_rlx(&cnt.cork_rc[2]), -ENOTCONN);
	close(fd);
	weft_server_destroy(s);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_bad_config),
		cmocka_unit_test(test_echo_thousand_connections),
		cmocka_unit_test(test_echo_thousand_connections_solo),
		cmocka_unit_test(test_echo_backpressure),
		cmocka_unit_test(test_echo_max_conns),
		cmocka_unit_test(test_echo_stop),
		cmocka_unit_test(test_echo_no_alloc_when_warm),
		cmocka_unit_test(test_echo_close_from_callback),
		cmocka_unit_test(test_echo_reset_no_leak),
		cmocka_unit_test(test_echo_reset_no_leak_solo),
		cmocka_unit_test(test_echo_idle_timeout),
		cmocka_unit_test(test_echo_cork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
