/* backend_epoll.c - readiness turned into completions (in progress). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

struct ep {
	int epfd;
};

static int ep_init(weft_port *port, void **be)
{
	(void)port;
	struct ep *e = malloc(sizeof *e);
	if (!e)
		return -ENOMEM;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		int r = -errno;
		free(e);
		return r;
	}
	*be = e;
	return 0;
}

static void ep_fini(void *be)
{
	struct ep *e = be;
	close(e->epfd);
	free(e);
}

const struct weft__backend_ops weft__backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
};
