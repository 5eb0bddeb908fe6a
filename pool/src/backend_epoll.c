/* backend_epoll.c - readiness turned into completions, for kernels (or sandboxes)
 * without io_uring.
 *
 * How completions reach the waiting threads: every associated fd is registered once,
 * edge-triggered, for both directions; each fd keeps two FIFOs of pending operations
 * (receive side, send side) under a small per-fd lock. arm first tries the system call
 * itself, in the submitting thread, when nothing is queued ahead on that side: a recv
 * with data already buffered, a send into an empty socket buffer or a read of a cached
 * file completes at once and its packet goes straight into the port's queue, costing no
 * extra thread hop. Only an operation that would block is queued. One reaper thread per
 * port sleeps in epoll_wait; on an edge it runs the fd's queued operations in order
 * until one would block again, drops the fd lock, and reports each result to port.c,
 * which queues the packet and hands it to the most recent waiting thread (LIFO) under
 * the port's concurrency limit - the same path as a posted packet, so the observable
 * semantics match the io_uring backend exactly. A single reaper (rather than worker
 * threads calling epoll_wait themselves) keeps the waiting threads on their own futexes,
 * where LIFO order and the released/paused accounting are exact; it costs one wake-up
 * per completion that had to wait for readiness.
 *
 * Why the per-fd lock closes the edge-triggered race: arm tries and queues under it,
 * and the reaper retries the queue under it after every edge, so an edge that arrives
 * between a failed try and the queueing finds the op queued.
 *
 * Regular files cannot be polled: reads and writes on them run synchronously in arm
 * (pread/pwrite; fast from the page cache, blocking on a cold disk). The bytes-after-
 * accept stage works on a socket that is not a device: it is registered one-shot with
 * the op itself as epoll data (tagged with bit 0).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"

struct epdev {
	uint32_t lock;
	struct weft__op *rq, *rq_tail; /* receive side: accept, recv, recvfrom, read */
	struct weft__op *wq, *wq_tail; /* send side: send, sendto, sendfile, write, connect */
};
_Static_assert(sizeof(struct epdev) <= sizeof(((struct weft__device *)0)->be_area), "epdev fits");

struct ep {
	weft_port *port;
	int epfd, evfd;
	uint32_t stop;		 /* atomic: set by wake */
	uint32_t slock;		 /* guards staged */
	struct weft__op *staged; /* accept ops waiting for their first bytes */
};

static struct epdev *epdev_of(struct weft__device *dev)
{
	return (struct epdev *)(void *)dev->be_area;
}

static int ep_init(weft_port *port, void **be)
{
	struct ep *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->port = port;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int r = 0;
	if (e->epfd < 0 || e->evfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev) < 0)
		r = -errno;
	if (r < 0) {
		if (e->epfd >= 0)
			close(e->epfd);
		if (e->evfd >= 0)
			close(e->evfd);
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
	close(e->evfd);
	free(e);
}

static int ep_attach(void *be, struct weft__device *dev)
{
	struct ep *e = be;
	/* the per-fd state is zero from calloc, or empty again since disassociate */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = dev};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, dev->fd, &ev) < 0) {
		if (errno == EPERM)
			return 0; /* a regular file: its operations run synchronously */
		return -errno;
	}
	return 0;
}

static void ep_detach(void *be, struct weft__device *dev)
{
	struct ep *e = be;
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, dev->fd, NULL);
}

static int sys_err(void)
{
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static int try_connect(struct weft__op *op)
{
	if (op->bstate == 0) {
		if (connect(op->fd, op->addr, op->alen) == 0)
			return 0;
		if (errno != EINPROGRESS && errno != EAGAIN)
			return -errno;
		op->bstate = 1;
		return -EAGAIN;
	}
	/* An edge on the fd does not mean the connect finished (the first edge after
	 * registering an unconnected socket is EPOLLOUT|EPOLLHUP): ask. */
	struct pollfd pf = {.fd = op->fd, .events = POLLOUT};
	if (poll(&pf, 1, 0) == 0)
		return -EAGAIN;
	int err = 0;
	socklen_t l = sizeof err;
	if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		return -errno;
	return -err;
}

/* One attempt at op's stage: >= 0 done (bytes, new fd, 0), -EAGAIN would block, else
 * an error. send and sendfile loop until all is out, advancing op->done, and then say 0. */
static int try_op(struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	ssize_t n;
	for (;;) {
		switch (op->kind) {
		case WEFT__OP_READ:
			n = op->dev->seekable ? pread(op->fd, op->buf, op->len, (off_t)ov->offset)
					      : read(op->fd, op->buf, op->len);
			break;
		case WEFT__OP_WRITE:
			n = op->dev->seekable ? pwrite(op->fd, op->buf, op->len, (off_t)ov->offset)
					      : write(op->fd, op->buf, op->len);
			break;
		case WEFT__OP_ACCEPT:
			n = op->stage == 0 ? accept4(op->fd, NULL, NULL, SOCK_CLOEXEC)
					   : recv(op->fd, op->buf, op->len, MSG_DONTWAIT);
			break;
		case WEFT__OP_RECV:
			n = recv(op->fd, op->buf, op->len, MSG_DONTWAIT);
			break;
		case WEFT__OP_RECVFROM:
			n = recvfrom(op->fd, op->buf, op->len, MSG_DONTWAIT, op->addr, op->fromlen);
			break;
		case WEFT__OP_SENDTO:
			n = sendto(op->fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL, op->addr, op->alen);
			break;
		case WEFT__OP_SEND:
			n = 0;
			while (op->done < op->len) {
				n = send(op->fd, (char *)op->buf + op->done, op->len - op->done,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
				if (n < 0)
					break;
				op->done += (uint32_t)n;
				n = 0;
			}
			break;
		case WEFT__OP_SENDFILE:
			return weft__sendfile_some(op);
		case WEFT__OP_CONNECT:
			return try_connect(op);
		default:
			return -EINVAL;
		}
		if (n >= 0)
			return (int)n;
		if (errno != EINTR)
			return sys_err();
	}
}

/* The fast path (no io lock): a regular file cannot be polled, its read or write runs
 * here, synchronously (pread/pwrite: at once from the page cache, blocking on a cold
 * disk). */
static int ep_try_fast(struct weft__op *op)
{
	return try_op(op);
}

static bool recv_side(const struct weft__op *op)
{
	return op->kind == WEFT__OP_READ || op->kind == WEFT__OP_ACCEPT || op->kind == WEFT__OP_RECV ||
	       op->kind == WEFT__OP_RECVFROM;
}

/* The first-bytes stage of an accept: the new socket is registered one-shot. */
static int arm_staged(struct ep *e, struct weft__op *op, int *res)
{
	int r = try_op(op);
	if (r != -EAGAIN) {
		*res = r;
		return 1;
	}
	weft__plock(&e->slock);
	op->qnext = e->staged;
	e->staged = op;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
				 .data.ptr = (void *)((uintptr_t)op | 1u)};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, op->fd, &ev) < 0) {
		*res = -errno;
		e->staged = op->qnext;
		weft__punlock(&e->slock);
		return 1;
	}
	weft__punlock(&e->slock);
	return 0;
}

static int ep_arm(void *be, struct weft__op *op, int *res)
{
	struct ep *e = be;
	if (op->kind == WEFT__OP_ACCEPT && op->stage == 1)
		return arm_staged(e, op, res);
	struct epdev *d = epdev_of(op->dev);
	bool rd = recv_side(op);
	struct weft__op **head = rd ? &d->rq : &d->wq, **tail = rd ? &d->rq_tail : &d->wq_tail;
	weft__plock(&d->lock);
	/* Try at once unless others wait ahead on this side (FIFO); a connect always tries
	 * now, since its address is only valid during the call. */
	if (!*head || op->kind == WEFT__OP_CONNECT) {
		int r = try_op(op);
		if (r != -EAGAIN) {
			weft__punlock(&d->lock);
			*res = r;
			return 1;
		}
	}
	op->qnext = NULL;
	if (*head)
		(*tail)->qnext = op;
	else
		*head = op;
	*tail = op;
	weft__punlock(&d->lock);
	return 0;
}

static bool unqueue(struct weft__op **head, struct weft__op **tail, struct weft__op *op)
{
	struct weft__op *prev = NULL;
	for (struct weft__op *o = *head; o; prev = o, o = o->qnext) {
		if (o != op)
			continue;
		if (prev)
			prev->qnext = o->qnext;
		else
			*head = o->qnext;
		if (*tail == o)
			*tail = prev;
		return true;
	}
	return false;
}

static bool ep_cancel(void *be, struct weft__op *op)
{
	struct ep *e = be;
	bool took;
	if (op->kind == WEFT__OP_ACCEPT && op->stage == 1) {
		weft__plock(&e->slock);
		struct weft__op *tail = NULL;
		took = unqueue(&e->staged, &tail, op);
		if (took)
			epoll_ctl(e->epfd, EPOLL_CTL_DEL, op->fd, NULL);
		weft__punlock(&e->slock);
		return took;
	}
	struct epdev *d = epdev_of(op->dev);
	weft__plock(&d->lock);
	took = unqueue(&d->rq, &d->rq_tail, op) || unqueue(&d->wq, &d->wq_tail, op);
	weft__punlock(&d->lock);
	return took;
}

/* Runs an fd's queues after an edge; reports outside the fd lock. */
static void dev_event(struct ep *e, struct weft__device *dev)
{
	struct epdev *d = epdev_of(dev);
	struct weft__op *done = NULL, **dt = &done;
	weft__plock(&d->lock);
	for (int side = 0; side < 2; side++) {
		struct weft__op **head = side ? &d->wq : &d->rq, **tail = side ? &d->wq_tail : &d->rq_tail;
		while (*head) {
			struct weft__op *op = *head;
			int r = try_op(op);
			if (r == -EAGAIN)
				break;
			*head = op->qnext;
			if (!*head)
				*tail = NULL;
			op->res = r;
			op->qnext = NULL;
			*dt = op;
			dt = &op->qnext;
		}
	}
	weft__punlock(&d->lock);
	while (done) {
		/* read before reporting: the completed op belongs to the user once queued */
		struct weft__op *next = done->qnext;
		weft__port_stage_done(e->port, done, done->res);
		done = next;
	}
}

/* The first bytes arrived (or the peer left) on an accepted socket. The pointer comes
 * from the kernel and may be stale (the op was cancelled and reused): it is only
 * compared against the staged list, never followed, until found there. */
static void staged_event(struct ep *e, struct weft__op *op)
{
	weft__plock(&e->slock);
	struct weft__op *tail = NULL, **pp = &e->staged;
	while (*pp && *pp != op)
		pp = &(*pp)->qnext;
	if (!*pp) {
		weft__punlock(&e->slock);
		return;
	}
	int r = try_op(op);
	if (r == -EAGAIN) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
					 .data.ptr = (void *)((uintptr_t)op | 1u)};
		epoll_ctl(e->epfd, EPOLL_CTL_MOD, op->fd, &ev);
		weft__punlock(&e->slock);
		return;
	}
	unqueue(&e->staged, &tail, op);
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, op->fd, NULL);
	weft__punlock(&e->slock);
	weft__port_stage_done(e->port, op, r);
}

static void ep_wait(void *be)
{
	struct ep *e = be;
	struct epoll_event ev[64];
	uint64_t last = 0;
	uint32_t spins = 0;
	/* acquire: pairs with the release in ep_wake. */
	while (!weft__load_acq(&e->stop)) {
		bool spin = weft__now_ns() - last < WEFT__REAPER_SPIN_NS;
		int n = epoll_wait(e->epfd, ev, 64, spin ? 0 : -1);
		if (n > 0)
			last = weft__now_ns();
		else if (spin && (++spins & 7) == 0)
			sched_yield(); /* a worker may be waiting for this CPU */
		for (int i = 0; i < n; i++) {
			uintptr_t v = (uintptr_t)ev[i].data.ptr;
			if (v == 0) {
				uint64_t x;
				if (read(e->evfd, &x, sizeof x) < 0) {
					/* EAGAIN: already drained */
				}
			} else if (v & 1u) {
				staged_event(e, (struct weft__op *)(v & ~(uintptr_t)1u));
			} else {
				dev_event(e, (struct weft__device *)ev[i].data.ptr);
			}
		}
	}
}

static void ep_wake(void *be)
{
	struct ep *e = be;
	weft__store_rel(&e->stop, 1u);
	uint64_t one = 1;
	if (write(e->evfd, &one, sizeof one) < 0) {
		/* the counter cannot overflow here: one write per close */
	}
}

const struct weft__backend_ops weft__backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .attach = ep_attach,
    .detach = ep_detach,
    .try_fast = ep_try_fast,
    .arm = ep_arm,
    .cancel = ep_cancel,
    .wait = ep_wait,
    .wake = ep_wake,
};
