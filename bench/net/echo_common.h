/* echo_common.h - what the I/O-model echo servers share: argument parsing, the
 * 127.0.0.1 listener, a per-connection echo buffer, and a safety alarm.
 *
 * These servers are benchmark subjects, not part of libweft. Each one is the plainest
 * honest version of its model: one thread per client, or one thread multiplexing every
 * client with select, poll or epoll. The buffer logic is shared so the models differ only
 * in how they wait. */
#ifndef WEFT_BENCH_ECHO_COMMON_H
#define WEFT_BENCH_ECHO_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_BUF_SIZE 65536

struct echo_opts {
	int port;            /* 0: the kernel picks one; printed on stdout either way */
	unsigned max_secs;   /* the process kills itself after this long (SIGALRM) */
	const char *name;
};

static inline void echo_usage(const char *name)
{
	fprintf(stderr,
		"usage: %s [-p PORT] [-T MAX_SECONDS]\n"
		"  Echo server (benchmark subject) listening on 127.0.0.1:PORT (0: any free port).\n"
		"  Prints 'listening 127.0.0.1:PORT' on stdout once ready. Exits on SIGINT/SIGTERM,\n"
		"  or after MAX_SECONDS (default 600) so a forgotten server never lingers.\n",
		name);
}

static inline struct echo_opts echo_parse_args(int argc, char **argv, const char *name)
{
	struct echo_opts o = { 0, 600, name };
	int c;
	while ((c = getopt(argc, argv, "p:T:h")) != -1) {
		switch (c) {
		case 'p': o.port = atoi(optarg); break;
		case 'T': o.max_secs = (unsigned)strtoul(optarg, NULL, 10); break;
		default: echo_usage(name); exit(c == 'h' ? 0 : 2);
		}
	}
	if (o.port < 0 || o.port > 65535) {
		echo_usage(name);
		exit(2);
	}
	/* A peer that resets must not kill the server with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (o.max_secs)
		alarm(o.max_secs);
	return o;
}

static inline void echo_die(const char *what)
{
	fprintf(stderr, "echo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline int echo_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Binds 127.0.0.1:port, listens, prints the line the driver script waits for. */
static inline int echo_listen(const struct echo_opts *o, bool nonblock)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		echo_die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		echo_die("bind");
	if (listen(fd, 4096) < 0)
		echo_die("listen");
	socklen_t len = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		echo_die("getsockname");
	printf("listening 127.0.0.1:%d (%s)\n", ntohs(a.sin_port), o->name);
	fflush(stdout);
	return fd;
}

static inline void echo_tune(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* One client of a multiplexing server. While bytes are pending (a short write), the
 * server stops reading this client and waits for writability instead: the echo never
 * buffers more than one read's worth per client. */
struct echo_conn {
	int fd;
	uint32_t off, len;   /* pending bytes are buf[off, len) */
	char buf[ECHO_BUF_SIZE];
};

enum { ECHO_MORE = 0, ECHO_CLOSED = 1 };

/* Flushes pending bytes. Returns ECHO_MORE (check c->off < c->len to see whether it
 * must wait for writability) or ECHO_CLOSED. */
static inline int echo_flush(struct echo_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (n > 0) {
			c->off += (uint32_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return ECHO_MORE;
		} else {
			return ECHO_CLOSED;
		}
	}
	c->off = c->len = 0;
	return ECHO_MORE;
}

/* The client is readable: read once and echo it back. */
static inline int echo_on_readable(struct echo_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
		if (n > 0) {
			c->off = 0;
			c->len = (uint32_t)n;
			return echo_flush(c);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return ECHO_MORE;
		return ECHO_CLOSED;
	}
}

#endif
