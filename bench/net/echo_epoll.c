/* echo_epoll.c - the event-driven model: one thread, level-triggered epoll, only ready
 * clients reported. A client with a short write switches its interest to EPOLLOUT until
 * the pending bytes are gone. */
#define _GNU_SOURCE
#include <sys/epoll.h>

#include "echo_common.h"

#define MAX_EVENTS 256

int main(int argc, char **argv)
{
	struct echo_opts o = echo_parse_args(argc, argv, "epoll");
	int lfd = echo_listen(&o, true);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		echo_die("epoll_create1");
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		echo_die("epoll_ctl");
	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			echo_die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct echo_conn *c = evs[i].data.ptr;
			if (!c) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					struct echo_conn *nc = malloc(sizeof *nc);
					if (!nc) {
						close(fd);
						continue;
					}
					echo_tune(fd);
					nc->fd = fd;
					nc->off = nc->len = 0;
					struct epoll_event cev = { .events = EPOLLIN, .data.ptr = nc };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
						close(fd);
						free(nc);
					}
				}
				continue;
			}
			bool was_pending = c->off < c->len;
			int r = (evs[i].events & EPOLLOUT) ? echo_flush(c) : echo_on_readable(c);
			if (r == ECHO_CLOSED) {
				close(c->fd);  /* closing removes it from the epoll set */
				free(c);
				continue;
			}
			bool pending = c->off < c->len;
			if (pending != was_pending) {
				struct epoll_event cev = { .events = pending ? EPOLLOUT : EPOLLIN, .data.ptr = c };
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
			}
		}
	}
}
