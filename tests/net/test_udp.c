/* test_udp.c - UDP on the completion port (weft_udp_*), echoing on 127.0.0.1, on each
 * backend (77 when the forced one is not available). Callbacks run on port threads and
 * only count into atomics; the main thread asserts. Every wait has a deadline. */
#include "weft_test.h"
#include "pool/port_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/net.h>

#include "atomic.h"

static uint64_t echo_failures;   /* atomic: sendto refused inside the callback */

static void echo_datagram(weft_udp *u, const void *data, size_t len, const struct sockaddr *from,
			  socklen_t fromlen)
{
	if (weft_udp_sendto(u, data, len, from, fromlen) < 0)
		weft__fadd_rlx(&echo_failures, 1);
}

static weft_udp *start(uint32_t threads, uint32_t max_dgram, uint32_t max_sends)
{
	weft__store_rlx(&echo_failures, 0);
	weft_udp_config cfg = { .bind = "127.0.0.1:0", .threads = threads, .recvs = 4,
		.max_datagram = max_dgram, .max_sends = max_sends, .on_datagram = echo_datagram };
	int err = 0;
	weft_udp *u = weft_udp_create(&cfg, &err);
	if (!u)
		fail_msg("weft_udp_create: %s", strerror(-err));
	assert_true(weft_udp_port(u) > 0);
	const char *be = getenv("WEFT_BACKEND");
	if (be)
		assert_string_equal(weft_udp_backend(u), be);
	return u;
}

static int client(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int big = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	return fd;
}

static struct sockaddr_in server_addr(weft_udp *u)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)weft_udp_port(u)) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* Sends one datagram and waits for its echo (10 s); returns the echo's length, -1 if none. */
static ssize_t echo_once(int fd, const struct sockaddr_in *to, const char *msg, size_t len, char *back,
			 size_t cap)
{
	assert_int_equal(sendto(fd, msg, len, 0, (const struct sockaddr *)to, sizeof *to), (ssize_t)len);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		return -1;
	return recv(fd, back, cap, 0);
}

static weft_udp_stats stats(weft_udp *u)
{
	weft_udp_stats st;
	weft_udp_get_stats(u, &st);
	return st;
}

/* Several clients, datagrams of many sizes (0 to 8 KB), each echoed byte for byte; on 2
 * port threads and on 1 (the port's solo mode). */
static void udp_echo(uint32_t threads)
{
	weft_udp *u = start(threads, 0, 0);
	struct sockaddr_in to = server_addr(u);
	enum { C = 4 };
	int fds[C];
	for (int i = 0; i < C; i++)
		fds[i] = client();
	unsigned n = (unsigned)weft_test_iters(2000);
	static char msg[8200], back[9000];
	uint64_t bytes = 0;
	for (unsigned k = 0; k < n; k++) {
		size_t len = (k * 613u) % 8193u;
		for (size_t j = 0; j < len; j++)
			msg[j] = (char)(k * 7u + j * 13u);
		ssize_t r = echo_once(fds[k % C], &to, msg, len, back, sizeof back);
		if (r != (ssize_t)len)
			fail_msg("datagram %u: echo of %zd bytes, want %zu", k, r, len);
		assert_memory_equal(back, msg, len);
		bytes += len;
	}
	/* the last send completion may still be on its way to a port thread */
	weft_udp_stats st = stats(u);
	for (uint64_t end = weft_test_now_ns() + 10000000000ull; st.datagrams_out != n && weft_test_now_ns() < end;
	     st = stats(u))
		usleep(1000);
	assert_int_equal(st.datagrams_in, n);
	assert_int_equal(st.datagrams_out, n);
	assert_int_equal(st.bytes_in, bytes);
	assert_int_equal(st.bytes_out, bytes);
	assert_int_equal(st.errors, 0);
	assert_int_equal(weft__load_rlx(&echo_failures), 0);
	for (int i = 0; i < C; i++)
		close(fds[i]);
	weft_udp_destroy(u);
}

static void test_udp_echo(void **state)
{
	(void)state;
	udp_echo(2);
}

static void test_udp_echo_solo(void **state)
{
	(void)state;
	udp_echo(1);
}

/* The largest IPv4 datagram comes back whole; one over max_datagram is cut to it. */
static void test_udp_sizes(void **state)
{
	(void)state;
	weft_udp *u = start(1, 0, 0);
	struct sockaddr_in to = server_addr(u);
	int fd = client();
	static char msg[65507], back[65536];
	for (size_t j = 0; j < sizeof msg; j++)
		msg[j] = (char)(j * 31u);
	assert_int_equal(echo_once(fd, &to, msg, sizeof msg, back, sizeof back), (ssize_t)sizeof msg);
	assert_memory_equal(back, msg, sizeof msg);
	close(fd);
	weft_udp_destroy(u);

	u = start(1, 1000, 0);
	to = server_addr(u);
	fd = client();
	assert_int_equal(echo_once(fd, &to, msg, 1500, back, sizeof back), 1000);
	assert_memory_equal(back, msg, 1000);
	/* sendto refuses what does not fit */
	assert_int_equal(weft_udp_sendto(u, msg, 1001, (struct sockaddr *)&to, sizeof to), -EMSGSIZE);
	assert_int_equal(weft_udp_sendto(u, msg, 10, NULL, 0), -EINVAL);
	close(fd);
	weft_udp_destroy(u);
}

/* A burst from many sockets at once: whatever the socket buffers kept is echoed exactly
 * once, intact; every datagram is accounted for as echoed or dropped. */
static void test_udp_burst(void **state)
{
	(void)state;
	weft_udp *u = start(2, 2048, 8);
	struct sockaddr_in to = server_addr(u);
	enum { C = 16, PER = 64 };
	int fds[C];
	char msg[512];
	for (int i = 0; i < C; i++) {
		fds[i] = client();
		for (int k = 0; k < PER; k++) {
			memset(msg, 'A' + (i + k) % 26, sizeof msg);
			msg[0] = (char)i;
			msg[1] = (char)k;
			(void)sendto(fds[i], msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
		}
	}
	/* Collect echoes until nothing arrives for 300 ms (after the server went quiet). */
	static uint8_t seen[C][PER];
	memset(seen, 0, sizeof seen);
	uint64_t got = 0, last = weft_test_now_ns(), end = last + 20000000000ull;
	while (weft_test_now_ns() - last < 300000000ull || stats(u).datagrams_in != stats(u).datagrams_out + stats(u).dropped) {
		if (weft_test_now_ns() > end)
			fail_msg("server never settled");
		for (int i = 0; i < C; i++) {
			char back[600];
			ssize_t r = recv(fds[i], back, sizeof back, MSG_DONTWAIT);
			if (r < 0)
				continue;
			assert_int_equal(r, sizeof msg);
			int ci = back[0], k = back[1];
			assert_int_equal(ci, i);
			assert_true(k >= 0 && k < PER);
			for (size_t j = 2; j < sizeof msg; j++)
				assert_int_equal(back[j], 'A' + (i + k) % 26);
			assert_int_equal(seen[i][k], 0);   /* echoed once */
			seen[i][k] = 1;
			got++;
			last = weft_test_now_ns();
		}
		usleep(1000);
	}
	weft_udp_stats st = stats(u);
	assert_true(got > 0);
	assert_int_equal(st.datagrams_out, got);
	assert_int_equal(st.datagrams_in, st.datagrams_out + st.dropped);
	assert_int_equal(st.dropped, weft__load_rlx(&echo_failures));
	assert_true(st.datagrams_in <= (uint64_t)C * PER);
	for (int i = 0; i < C; i++)
		close(fds[i]);
	weft_udp_destroy(u);
}

/* Destroy while datagrams keep arriving: no crash, no leak (ASan), nothing after. */
static void test_udp_destroy_under_load(void **state)
{
	(void)state;
	for (int round = 0; round < 5; round++) {
		weft_udp *u = start(2, 0, 0);
		struct sockaddr_in to = server_addr(u);
		int fd = client();
		char msg[100] = { 0 };
		for (int k = 0; k < 200; k++)
			(void)sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
		weft_udp_destroy(u);
		close(fd);
	}
}

static void test_udp_bad_config(void **state)
{
	(void)state;
	int err = 0;
	weft_udp_config cfg = { .bind = "127.0.0.1" };
	assert_null(weft_udp_create(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	cfg.bind = "localhost:53";
	assert_null(weft_udp_create(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(weft_udp_create(NULL, &err));
	assert_int_equal(err, -EINVAL);
	weft_udp *u = start(1, 0, 0);
	char spec[32];
	snprintf(spec, sizeof spec, "127.0.0.1:%d", weft_udp_port(u));
	cfg.bind = spec;
	assert_null(weft_udp_create(&cfg, &err));
	assert_int_equal(err, -EADDRINUSE);
	weft_udp_destroy(u);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_udp_bad_config),
		cmocka_unit_test(test_udp_echo),
		cmocka_unit_test(test_udp_echo_solo),
		cmocka_unit_test(test_udp_sizes),
		cmocka_unit_test(test_udp_burst),
		cmocka_unit_test(test_udp_destroy_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
