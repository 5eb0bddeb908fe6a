/* echo_select.c - the select model: one thread, one fd_set rebuilt per round, a linear
 * scan over every client. select cannot watch an fd >= FD_SETSIZE (1024), so clients
 * past that are refused; that ceiling is part of what this model measures. */
#define _GNU_SOURCE
#include <sys/select.h>

#include "echo_common.h"

static struct echo_conn *conns[FD_SETSIZE];

static void drop(int fd)
{
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

static void accept_all(int lfd, int *maxfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (fd >= FD_SETSIZE) {
			fprintf(stderr, "echo_select: fd %d >= FD_SETSIZE, refusing a client\n", fd);
			close(fd);
			continue;
		}
		struct echo_conn *c = malloc(sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		echo_tune(fd);
		c->fd = fd;
		c->off = c->len = 0;
		conns[fd] = c;
		if (fd > *maxfd)
			*maxfd = fd;
	}
}

int main(int argc, char **argv)
{
	struct echo_opts o = echo_parse_args(argc, argv, "select");
	int lfd = echo_listen(&o, true);
	int maxfd = lfd;
	for (;;) {
		fd_set rd, wr;
		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_SET(lfd, &rd);
		int top = lfd;
		for (int fd = 0; fd <= maxfd; fd++) {
			struct echo_conn *c = conns[fd];
			if (!c)
				continue;
			/* Pending bytes: wait to write them, do not read more. */
			if (c->off < c->len)
				FD_SET(fd, &wr);
			else
				FD_SET(fd, &rd);
			top = fd;
		}
		maxfd = top;
		int n = select(maxfd + 1, &rd, &wr, NULL, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			echo_die("select");
		}
		if (FD_ISSET(lfd, &rd))
			accept_all(lfd, &maxfd);
		for (int fd = 0; fd <= top && n > 0; fd++) {
			struct echo_conn *c = conns[fd];
			if (!c || fd == lfd)
				continue;
			int r = ECHO_MORE;
			if (FD_ISSET(fd, &wr))
				r = echo_flush(c);
			else if (FD_ISSET(fd, &rd))
				r = echo_on_readable(c);
			if (r == ECHO_CLOSED)
				drop(fd);
		}
	}
}
