/* backend_uring.c - io_uring (in progress). */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "backend.h"

struct ur {
	struct io_uring ring;
};

static int ur_init(weft_port *port, void **be)
{
	(void)port;
	struct ur *u = malloc(sizeof *u);
	if (!u)
		return -ENOMEM;
	int r = io_uring_queue_init(256, &u->ring, 0);
	if (r < 0) {
		free(u);
		return r;
	}
	*be = u;
	return 0;
}

static void ur_fini(void *be)
{
	struct ur *u = be;
	io_uring_queue_exit(&u->ring);
	free(u);
}

const struct weft__backend_ops weft__backend_uring = {
	.name = "uring",
	.init = ur_init,
	.fini = ur_fini,
};
