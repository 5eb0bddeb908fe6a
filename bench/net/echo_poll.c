/* echo_poll.c - the poll model: one thread, one pollfd array kept dense (a closed
 * client's slot is filled by the last one), a linear scan of revents per round. */
#define _GNU_SOURCE
#include <poll.h>

#include "echo_common.h"

static struct pollfd *pfds;          /* pfds[0] is the listener */
static struct echo_conn **conns;     /* conns[i] serves pfds[i], i >= 1 */
static size_t count, cap;

static int add_conn(int fd)
{
	if (count == cap) {
		size_t ncap = cap ? cap * 2 : 256;
		struct pollfd *np = realloc(pfds, ncap * sizeof *np);
		if (!np)
			return -1;
		pfds = np;
		struct echo_conn **nc = realloc(conns, ncap * sizeof *nc);
		if (!nc)
			return -1;
		conns = nc;
		cap = ncap;
	}
	struct echo_conn *c = malloc(sizeof *c);
	if (!c)
		return -1;
	c->fd = fd;
	c->off = c->len = 0;
	pfds[count] = (struct pollfd){ .fd = fd, .events = POLLIN };
	conns[count] = c;
	count++;
	return 0;
}

static void drop(size_t i)
{
	close(pfds[i].fd);
	free(conns[i]);
	count--;
	pfds[i] = pfds[count];
	conns[i] = conns[count];
}

int main(int argc, char **argv)
{
	struct echo_opts o = echo_parse_args(argc, argv, "poll");
	int lfd = echo_listen(&o, true);
	if (add_conn(lfd) < 0)
		echo_die("malloc");
	for (;;) {
		int n = poll(pfds, count, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			echo_die("poll");
		}
		/* Walk downwards so drop()'s swap-with-last never skips an unvisited slot. */
		for (size_t i = count - 1; i >= 1; i--) {
			short re = pfds[i].revents;
			if (!re)
				continue;
			struct echo_conn *c = conns[i];
			int r = (re & POLLOUT) ? echo_flush(c) : echo_on_readable(c);
			if (r == ECHO_CLOSED) {
				drop(i);
				continue;
			}
			pfds[i].events = c->off < c->len ? POLLOUT : POLLIN;
		}
		if (pfds[0].revents & POLLIN) {
			for (;;) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					break;
				echo_tune(fd);
				if (add_conn(fd) < 0)
					close(fd);
			}
		}
	}
}
