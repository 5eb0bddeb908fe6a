/* backend_uring.c - io_uring: the kernel runs the operations and posts their results.
 *
 * How completions reach the waiting threads: one ring per port, both of its queues
 * used under the port's io lock. Any thread submits under it; right after submitting,
 * still under it, the submitter drains the completion queue: io_uring runs an operation
 * inline during the submit when it can (a read from the page cache, a recv of data
 * already buffered, a send into an empty socket buffer), so its CQE is already there
 * and its packet reaches the port's queue from the submitting thread, with no thread
 * hop. Everything that had to wait is reaped by one reaper thread per port, which sleeps
 * in io_uring_wait_cqe without the lock, then drains under it. Every result goes to
 * port.c, which advances multi-stage operations or queues the packet and hands it to
 * the most recent waiting thread (LIFO) under the concurrency limit - the same path as
 * a posted packet, so the port's semantics are identical on both backends. Why a reaper rather than letting waiting threads enter the ring
 * (leader/followers): the waiters then always sleep on their own futex words, which is
 * what makes LIFO wake order and the released/paused accounting exact and keeps posted
 * packets (the thread pool's hot path) free of any ring traffic; the price is one
 * futex wake per I/O completion, which the waiter's brief spin hides while the port is
 * busy. The reaper blocks every signal, so no user handler interrupts it.
 *
 * Operations map to one SQE each: read/write at ov->offset, accept, connect, recv,
 * send with MSG_WAITALL (the kernel keeps sending until every byte is out; port.c still
 * re-arms a short send), recvmsg/sendmsg for recvfrom/sendto, and sendfile as a POLLOUT
 * poll followed by sendfile(2) from the reaper (io_uring has no sendfile opcode; the
 * splice pair through a pipe would cost two SQEs and a pipe per operation). Cancel is
 * IORING_OP_ASYNC_CANCEL by user_data; the cancelled operation still posts its own CQE
 * (-ECANCELED, or its result if it won), so it completes exactly once.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* user_data of internal SQEs; operations use their (8-aligned) address. */
#define TAG_WAKE 1u
#define TAG_CANCEL 2u

struct ur {
	weft_port *port;
	struct io_uring ring;
	uint32_t stop; /* atomic: set by wake */
};

static int ur_init(weft_port *port, void **be)
{
	struct ur *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->port = port;
	int r = io_uring_queue_init(port ? 256 : 2, &u->ring, 0);
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

static int ur_attach(void *be, struct weft__device *dev)
{
	(void)be;
	(void)dev;
	return 0;
}

static void ur_detach(void *be, struct weft__device *dev)
{
	(void)be;
	(void)dev;
}

/* An SQE, flushing the submission queue once if it is full (io lock held). */
static struct io_uring_sqe *sqe_get(struct ur *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static void prep(struct io_uring_sqe *sqe, struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	char *buf = op->buf;
	switch (op->kind) {
	case WEFT__OP_READ:
		io_uring_prep_read(sqe, op->fd, buf, op->len, op->dev->seekable ? ov->offset : (uint64_t)-1);
		break;
	case WEFT__OP_WRITE:
		io_uring_prep_write(sqe, op->fd, buf, op->len, op->dev->seekable ? ov->offset : (uint64_t)-1);
		break;
	case WEFT__OP_ACCEPT:
		if (op->stage == 0)
			io_uring_prep_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
		else
			io_uring_prep_recv(sqe, op->fd, buf, op->len, 0);
		break;
	case WEFT__OP_CONNECT:
		io_uring_prep_connect(sqe, op->fd, op->addr, op->alen);
		break;
	case WEFT__OP_RECV:
		io_uring_prep_recv(sqe, op->fd, buf, op->len, 0);
		break;
	case WEFT__OP_SEND:
		io_uring_prep_send(sqe, op->fd, buf + op->done, op->len - op->done, MSG_WAITALL | MSG_NOSIGNAL);
		break;
	case WEFT__OP_RECVFROM:
	case WEFT__OP_SENDTO:
		op->iov = (struct iovec){buf, op->len};
		memset(&op->msg, 0, sizeof op->msg);
		op->msg.msg_iov = &op->iov;
		op->msg.msg_iovlen = 1;
		op->msg.msg_name = op->addr;
		if (op->kind == WEFT__OP_RECVFROM) {
			op->msg.msg_namelen = op->addr ? *op->fromlen : 0;
			io_uring_prep_recvmsg(sqe, op->fd, &op->msg, 0);
		} else {
			op->msg.msg_namelen = op->alen;
			io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL);
		}
		break;
	case WEFT__OP_SENDFILE:
		io_uring_prep_poll_add(sqe, op->fd, POLLOUT);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
}

static int ur_arm(void *be, struct weft__op *op, int *res)
{
	struct ur *u = be;
	struct io_uring_sqe *sqe = sqe_get(u);
	if (!sqe) {
		*res = -EBUSY;
		return 1;
	}
	prep(sqe, op);
	int r = io_uring_submit(&u->ring);
	if (r < 0) {
		*res = r;
		return 1;
	}
	return 0;
}

static bool ur_cancel(void *be, struct weft__op *op)
{
	struct ur *u = be;
	struct io_uring_sqe *sqe = sqe_get(u);
	if (sqe) {
		io_uring_prep_cancel(sqe, op, 0);
		io_uring_sqe_set_data64(sqe, TAG_CANCEL);
		io_uring_submit(&u->ring);
	}
	return false;
}

/* One CQE of an operation, under the io lock: the stage's result, or for sendfile the
 * poll's, after which the reaper sends what the socket takes. */
static int ur_reap(void *be, struct weft__op *op, int res)
{
	(void)be;
	/* io_uring cancels the requests of a thread that exits (kernel 5.x/6.x do_exit ->
	 * io_uring_files_cancel); on Windows, I/O on a handle associated with a port
	 * survives its thread. Nobody asked for this cancel: run the stage again, from
	 * this (live) thread. */
	if (res == -ECANCELED && !op->cancel)
		return -EAGAIN;
	if (res == -EISCONN && op->kind == WEFT__OP_CONNECT && op->retries)
		return 0; /* a re-armed connect found the first one done */
	if (op->kind == WEFT__OP_SENDFILE && res >= 0) {
		/* port.c adds a positive result to done: report what this round sent */
		uint32_t before = op->done;
		int r = weft__sendfile_some(op);
		uint32_t sent = op->done - before;
		if (r == 0 || r == -EAGAIN) {
			op->done = before;
			res = sent ? (int)sent : r;
		} else {
			res = r; /* an error: done keeps what went out */
		}
	}
	if (op->kind == WEFT__OP_RECVFROM && res >= 0 && op->addr)
		*op->fromlen = op->msg.msg_namelen;
	return res;
}

/* Reports every CQE available (io lock held: the submitters drain too). */
static void ur_drain(void *be)
{
	struct ur *u = be;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		if (tag != TAG_WAKE && tag != TAG_CANCEL)
			weft__port_stage_done_locked(u->port, (struct weft__op *)(uintptr_t)tag, cqe->res);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
}

/* True when the CQ holds entries; atomic loads of the ring's indexes, which the drainer
 * (io lock holder) and the kernel write. */
static bool cq_nonempty(struct ur *u)
{
	/* acquire: pairs with the kernel's tail release / the drainer's head release. */
	return weft__load_acq(u->ring.cq.ktail) != weft__load_acq(u->ring.cq.khead);
}

static void ur_wait(void *be)
{
	struct ur *u = be;
	uint64_t last = 0;
	/* acquire: pairs with the release in ur_wake. */
	while (!weft__load_acq(&u->stop)) {
		if (!cq_nonempty(u)) {
			if (weft__now_ns() - last < WEFT__REAPER_SPIN_NS) {
				weft_cpu_relax();
				continue;
			}
			/* Sleeps without the io lock until a CQE is there; a submitter may drain
			 * it first, the drain below then finds nothing and the loop sleeps again.
			 * The raw enter, not io_uring_wait_cqe: that one reads the CQ head with
			 * plain loads, and only the lock holder may write it. */
			if (io_uring_enter((unsigned)u->ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS, NULL) < 0)
				continue; /* -EINTR */
		}
		weft__port_io_lock(u->port);
		ur_drain(u);
		weft__port_io_unlock(u->port);
		last = weft__now_ns();
	}
}

static void ur_wake(void *be)
{
	struct ur *u = be;
	weft__store_rel(&u->stop, 1u);
	struct io_uring_sqe *sqe = sqe_get(u);
	if (sqe) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, TAG_WAKE);
		io_uring_submit(&u->ring);
	}
}

const struct weft__backend_ops weft__backend_uring = {
	.name = "uring",
	.init = ur_init,
	.fini = ur_fini,
	.attach = ur_attach,
	.detach = ur_detach,
	.arm = ur_arm,
	.cancel = ur_cancel,
	.reap = ur_reap,
	.drain = ur_drain,
	.wait = ur_wait,
	.wake = ur_wake,
};
