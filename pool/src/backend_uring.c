/* backend_uring.c - io_uring: the kernel runs the operations and posts their results.
 *
 * How completions reach the waiting threads, fastest path first:
 *  1. Inline. arm first makes the plain non-blocking system call (preadv2 RWF_NOWAIT,
 *     recv/send MSG_DONTWAIT, accept4 on the non-blocking listener...) unless an
 *     operation of the same side of that fd already waits (in the ring, or its turn on
 *     a stream: urdev). When the data is there (page cache, socket buffer) one system call beats
 *     a submit plus a CQE, and the packet goes into the port's queue from the submitting
 *     thread. Measured on the 2-vCPU dev VM: a cached 4 KiB read 0.6 us instead of
 *     ~1.4-3.7 us through the ring. Reads and writes of regular files make that call
 *     without the port's io lock (try_fast; port_io.c's fast path), so threads reading
 *     files through one port do not queue behind each other's system calls. A stream
 *     receive whose last two tries found nothing skips it (skip_inline), probing every
 *     16th: a request/response peer sends only after the answer it waits for.
 *  2. The reaper submits. Otherwise the submitter prepares one SQE under the port's io
 *     lock (the SQ has one producer at a time) and hands it to the reaper (hand_to_reaper:
 *     a flag, and an eventfd kick if the reaper sleeps), which submits it. So every
 *     request in the ring belongs to the reaper, and its task_work (how io_uring
 *     completes a poll-armed recv, send, accept...) runs on the reaper. The ring is set
 *     up with DEFER_TASKRUN | SINGLE_ISSUER | TASKRUN_FLAG, the reaper as its one issuer
 *     (kernel 6.1+; it enables the ring, created disabled, from its own thread): the
 *     task_work waits in the ring's list, the kernel flags IORING_SQ_TASKRUN and signals
 *     the eventfd, and the reaper, spinning or woken, runs it (io_uring_get_events),
 *     with the eventfd muted since it drains right after. Measured against the
 *     COOP_TASKRUN ring it replaces (task_work queued on the task, no IPI): TCP round
 *     trip medians 18.7 -> 15.2, 14.5 -> 13.9 and 17.1 -> 16.8 us in three interleaved
 *     sets, HTTP small file even (docs/port.md). Nobody else may enter the ring now:
 *     a stage (or a cancel) that finds the SQ full waits in a backlog that the reaper
 *     prepares once it has made room, and CQ overflow is flushed by the reaper. Older
 *     kernels get the COOP_TASKRUN ring (5.19+), where a caller may still submit a full
 *     SQ itself, else a plain ring every caller submits to. Before the reaper
 *     submitted, the task_work ran on whichever user thread had submitted, interrupted
 *     by an IPI (spinning in weft_port_get, typically), and its CQE woke the reaper
 *     through the eventfd: on a quiet 2-vCPU VM a TCP round trip took ~30 us against
 *     epoll's ~14. A thread's exit no longer cancels ring requests either (they are the
 *     reaper's); the re-arm below stays for the plain ring.
 *     Streams run one operation per side at a time (urdev): two receives in the ring
 *     at once complete in the order their polls wake, which is not the order they were
 *     posted; the next one starts when the previous one finishes (ur_finish).
 *  3. Spinning waiters. A thread spinning in weft_port_get before it sleeps polls the CQ
 *     (try-lock, drain), so a completion that lands meanwhile goes to a waiter without
 *     a reaper hop. Every caller of arm drains right after it, and arm mutes the
 *     eventfd meanwhile (IORING_CQ_EVENTFD_DISABLED), so what completes then does not
 *     wake the reaper for nothing.
 *  4. The reaper. One thread per port submits, runs its task_work, drains under the io
 *     lock (waiting for the lock to come free rather than queueing on it: the holder is
 *     usually a submitter draining), spins 30 us after completions it reported, and
 *     sleeps on the eventfd. In the port's solo mode (port_io.c) it runs the port's one
 *     user thread's function itself, whose gets do the reaper's round (ur_poll) and
 *     sleep on the eventfd (ur_sleep): one thread, the ring's issuer, does everything.
 * Every result goes to port.c, which advances multi-stage operations or queues the
 * packet and hands it to the most recent waiting thread (LIFO) under the concurrency
 * limit - the same path as a posted packet, so the port's semantics are identical on
 * both backends. Why not leader/followers on the ring (waiters sleeping in
 * io_uring_enter): the waiters then always sleep on their own futex words, which is
 * what makes LIFO wake order and the released/paused accounting exact, and keeps posted
 * packets (the thread pool's hot path) free of ring traffic.
 *
 * Operations map to one SQE each: read/write at ov->offset, accept, connect, recv,
 * send with MSG_WAITALL (the kernel keeps sending until every byte is out; port.c still
 * re-arms a short send), recvmsg/sendmsg for recvfrom/sendto, and sendfile as a POLLOUT
 * poll followed by sendfile(2) (io_uring has no sendfile opcode; the splice pair
 * through a pipe would cost two SQEs and a pipe per operation). Cancel is
 * IORING_OP_ASYNC_CANCEL by user_data; the cancelled operation still posts its own CQE
 * (-ECANCELED, or its result if it won), so it completes exactly once.
 *
 * Measured and not used (numbers in docs/port.md): the ring for cached file reads (a
 * submit plus CQE costs more than preadv2, even 8 SQEs per submit); registered files
 * (~80 ns saved per ring operation, 0.5 us per associate + disassociate to keep the
 * table); multishot accept and multishot recv with a provided buffer ring (no gain
 * measured, and weft_port_recv names its buffer); SQPOLL (the SQ thread and the
 * submitter fight over 2 vCPUs: 10-30x slower); COOP_TASKRUN with user threads as
 * submitters (saves the IPI, TCP round trip ~30 -> ~23 us on a quiet machine, but then
 * a completion waits until its submitting thread next
 * enters the kernel, however long its user code runs: hence 2. above, where only the
 * reaper submits).
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"

/* user_data of internal SQEs; operations use their (8-aligned) address. */
#define TAG_WAKE 1u
#define TAG_CANCEL 2u /* | the op's address */
/* How often a cancel is asked for, at most, while the op stays in flight. */
#define CANCEL_TRIES 200u

/* op->bstate: the side of its fd it is counted on (urdev rd / wr), and whether it waits
 * in the device's FIFO, or in the backlog for an SQE or for its cancel's SQE. */
#define BS_SIDE 3u   /* 1 read side, 2 write side (files, accepts: counted) */
#define BS_QUEUED 4u /* in the backlog: its stage is prepared once the SQ has room */
#define BS_CANCEL 8u /* in the backlog: its cancel is */
#define BS_FIFO 16u  /* in its device's FIFO, behind the side's current operation */

struct ur {
	weft_port *port;
	struct io_uring ring;
	int efd;	     /* the ring's eventfd: the reaper sleeps on it (-1: on the ring) */
	uint32_t stop;	     /* atomic: set by wake */
	uint32_t by_reaper;  /* SQEs are submitted by the reaper */
	uint32_t single;     /* DEFER_TASKRUN ring: only the reaper may enter the kernel */
	uint32_t sq_pending; /* atomic: SQEs prepared, waiting for the reaper's submit */
	uint32_t asleep;     /* io lock: the reaper sleeps (or is about to) on the eventfd */
	uint32_t solo_req;   /* atomic: the reaper is to run the port's solo function */
	/* io lock: stages and cancels waiting for room in a full SQ (linked by qnext), which
	 * only the reaper may submit on a single-issuer ring */
	struct weft__op *bl_head, *bl_tail;
};

/* The reaper's thread: the one that may submit on a single-issuer ring. */
static _Thread_local const struct ur *t_reaper;

/* Tests: SQ entries of the next rings (0: 256), set before the port starts its I/O; and
 * since the process started, single-issuer rings made and stages or cancels that had to
 * wait in a backlog. */
WEFT_INTERNAL uint32_t weft__uring_test_sq;
uint32_t weft__uring_test_sq;
static uint64_t n_single, n_backlogged; /* atomic */
WEFT_INTERNAL void weft__uring_counts(uint64_t *single, uint64_t *backlogged);
void weft__uring_counts(uint64_t *single, uint64_t *backlogged)
{
	*single = weft__load_rlx(&n_single); /* relaxed: statistics */
	*backlogged = weft__load_rlx(&n_backlogged);
}

static void kick(struct ur *u)
{
	uint64_t one = 1;
	if (write(u->efd, &one, sizeof one) < 0) {
		/* cannot overflow: the reaper reads it down */
	}
}

/* io lock held: the SQEs just prepared go to the kernel from the reaper (so their
 * task_work runs there); wakes it if it sleeps. */
static void hand_to_reaper(struct ur *u)
{
	weft__store_rel(&u->sq_pending, 1u); /* release: the SQEs; pairs with ur_wait */
	if (u->asleep) {
		u->asleep = 0;
		kick(u);
	}
}

/* The ring, best mode first (see the top of the file): DEFER_TASKRUN with the reaper as
 * its single issuer (kernel 6.1+; enabled by the reaper itself, ur_wait), else
 * COOP_TASKRUN with the reaper submitting (5.19+), else a plain ring every caller
 * submits to. The first two need the eventfd the reaper sleeps on. */
static int ring_init(struct ur *u, bool port)
{
	struct io_uring_params pr = {0};
	unsigned sq = weft__uring_test_sq ? weft__uring_test_sq : 256;
	int r = -EINVAL;
	if (port && u->efd >= 0) {
		pr.flags = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
			   IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
		pr.cq_entries = 4096; /* completions the kernel holds before its overflow list */
		r = io_uring_queue_init_params(sq, &u->ring, &pr);
		u->single = r == 0;
		if (r < 0)
			r = io_uring_queue_init(sq, &u->ring,
						IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
		u->by_reaper = r == 0;
		if (r == 0 && io_uring_register_eventfd(&u->ring, u->efd) < 0) {
			io_uring_queue_exit(&u->ring);
			u->by_reaper = u->single = 0;
			r = -EINVAL;
		}
	}
	if (r < 0) {
		r = io_uring_queue_init(port ? sq : 2, &u->ring, 0);
		if (r == 0 && u->efd >= 0 && io_uring_register_eventfd(&u->ring, u->efd) < 0) {
			close(u->efd); /* the reaper sleeps in the ring then */
			u->efd = -1;
		}
	}
	if (u->single)
		weft__fadd_rlx(&n_single, 1u);
	return r;
}

static int ur_init(weft_port *port, void **be)
{
	struct ur *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->port = port;
	u->efd = port ? eventfd(0, EFD_CLOEXEC) : -1;
	int r = ring_init(u, port != NULL);
	if (r < 0) {
		if (u->efd >= 0)
			close(u->efd);
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
	if (u->efd >= 0)
		close(u->efd);
	free(u);
}

/* Per fd, io lock. A stream (socket, pipe) runs one operation per side at a time: the
 * head of that side's FIFO, in the ring or between its stages, until it finishes
 * (ur_finish starts the next). Two receives in the ring at once complete in the order
 * their polls wake, which is not the order they were posted (kernel 6.18: the second
 * one took the first bytes), and a send must not overtake the rest of a short one.
 * Files at an offset and accepts need no order: any number go to the ring at once,
 * counted per side so that a new one does not try inline ahead of them either. */
struct urdev {
	uint32_t rd, wr;	     /* counted operations of each side in the ring */
	uint8_t no_nowait_write;     /* atomic: pwritev2(RWF_NOWAIT) said EOPNOTSUPP here */
	uint8_t rd_miss;	     /* stream receives whose inline try found nothing, in a row */
	uint8_t rd_skips;	     /* inline tries skipped since the last one made */
	struct weft__op *fifo[2][2]; /* streams: [read, write side][head, tail], by qnext */
};
_Static_assert(sizeof(struct urdev) <= sizeof(((struct weft__device *)0)->be_area), "urdev fits");

static struct urdev *urdev_of(struct weft__device *dev)
{
	return (struct urdev *)(void *)dev->be_area;
}

/* op left the ring (or never reached it): its side no longer waits there. */
static void side_done(struct weft__op *op)
{
	if (op->bstate & BS_SIDE) {
		struct urdev *d = urdev_of(op->dev);
		if ((op->bstate & BS_SIDE) == 1)
			d->rd--;
		else
			d->wr--;
	}
	op->bstate &= (uint8_t)~BS_SIDE;
}

static int ur_attach(void *be, struct weft__device *dev)
{
	(void)be;
	/* rd and wr are zero from calloc, or back to zero since disassociate; the flag
	 * belongs to the previous file (relaxed: no fast path runs on an inactive device) */
	weft__store_rlx(&urdev_of(dev)->no_nowait_write, (uint8_t)0);
	memset(urdev_of(dev)->fifo, 0, sizeof urdev_of(dev)->fifo); /* empty: no op left */
	urdev_of(dev)->rd_miss = urdev_of(dev)->rd_skips = 0;
	return 0;
}

static void ur_detach(void *be, struct weft__device *dev)
{
	(void)be;
	(void)dev;
}

/* True when this thread may enter the ring's kernel side (submit, get events). */
static bool may_enter(const struct ur *u)
{
	return !u->single || t_reaper == u;
}

/* An SQE, flushing the submission queue once if it is full and this thread may (io
 * lock held). NULL: the SQ is full; the caller queues in the backlog. */
static struct io_uring_sqe *sqe_get(struct ur *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe && may_enter(u)) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

/* io lock: op waits for an SQE (flag BS_QUEUED or BS_CANCEL), behind every other. */
static void backlog_push(struct ur *u, struct weft__op *op, uint8_t flag)
{
	weft__fadd_rlx(&n_backlogged, 1u);
	op->bstate |= flag;
	op->bnext = NULL;
	if (u->bl_tail)
		u->bl_tail->bnext = op;
	else
		u->bl_head = op;
	u->bl_tail = op;
}

/* io lock: takes op out of the backlog (it is there). */
static void backlog_remove(struct ur *u, struct weft__op *op)
{
	struct weft__op **pp = &u->bl_head, *prev = NULL;
	while (*pp != op) {
		prev = *pp;
		pp = &(*pp)->bnext;
	}
	*pp = op->bnext;
	if (u->bl_tail == op)
		u->bl_tail = prev;
	op->bnext = NULL;
	op->bstate &= (uint8_t) ~(BS_QUEUED | BS_CANCEL);
}

static void prep(struct io_uring_sqe *sqe, struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	char *buf = op->buf;
	switch (op->kind) {
	case WEFT__OP_READ: /* op->res: bytes the inline try already read (read_nowait) */
		io_uring_prep_read(sqe, op->fd, buf + op->res, op->len - (uint32_t)op->res,
				   op->dev->seekable ? ov->offset + (uint64_t)op->res : (uint64_t)-1);
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
		io_uring_prep_send(sqe, op->fd, buf + op->done, op->len - op->done,
				   MSG_WAITALL | MSG_NOSIGNAL);
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
	/* A socket stage reaches the ring only after its non-blocking try failed (or while
	 * an operation of its side waits ahead of it): the kernel arms its poll at once
	 * instead of trying the same recv/send again (kernel 5.19+; older ones ignore the
	 * flag). Measured: TCP round trip 16.2 -> 14.1 us (docs/port.md). */
	if (op->kind == WEFT__OP_RECV || op->kind == WEFT__OP_SEND ||
	    (op->kind == WEFT__OP_ACCEPT && op->stage == 1))
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data(sqe, op);
}

static int sys_res(ssize_t n)
{
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EOPNOTSUPP || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

static int read_nowait(struct weft__op *op);

/* The non-blocking attempt made before using the ring: when the data is already there
 * (page cache, socket buffer) one plain system call beats a submit plus a CQE. -EAGAIN:
 * it would block, use the ring. */
static int try_inline(struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	struct iovec iv = {op->buf, op->len};
	off_t off = op->dev->seekable ? (off_t)ov->offset : -1;
	switch (op->kind) {
	case WEFT__OP_READ:
		return read_nowait(op);
	case WEFT__OP_WRITE:
		return sys_res(pwritev2(op->fd, &iv, 1, off, RWF_NOWAIT));
	case WEFT__OP_ACCEPT:
		if (op->stage == 0)
			return sys_res(accept4(op->fd, NULL, NULL, SOCK_CLOEXEC));
		return sys_res(recv(op->fd, op->buf, op->len, MSG_DONTWAIT));
	case WEFT__OP_RECV:
		return sys_res(recv(op->fd, op->buf, op->len, MSG_DONTWAIT));
	case WEFT__OP_SEND:
		return sys_res(send(op->fd, (char *)op->buf + op->done, op->len - op->done,
				    MSG_DONTWAIT | MSG_NOSIGNAL));
	case WEFT__OP_RECVFROM:
		return sys_res(recvfrom(op->fd, op->buf, op->len, MSG_DONTWAIT, op->addr, op->fromlen));
	case WEFT__OP_SENDTO:
		return sys_res(
		    sendto(op->fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL, op->addr, op->alen));
	case WEFT__OP_SENDFILE:
		return weft__sendfile_some(op); /* advances done itself: 0 means finished */
	default:
		return -EAGAIN; /* connect: the ring */
	}
}

/* preadv2 / pwritev2 as raw system calls: the libc wrappers are cancellation points,
 * which costs two calls around every system call (~25 ns of a ~0.5 us cached read,
 * measured with perf); a port's I/O is no cancellation point anyway. x86-64 and the
 * other 64-bit ABIs take the offset whole in pos_l (pos_h is shifted out). */
static ssize_t rw2(long nr, int fd, void *buf, uint32_t len, off_t off, int flags)
{
	struct iovec iv = {buf, len};
	return syscall(nr, fd, &iv, 1, (unsigned long)off, 0ul, flags);
}

/* A read with RWF_NOWAIT. The page cache may hold only the start of the range: the
 * answer is then short without being the end of the file, so a seekable file is asked
 * again for the rest, and when that would block the bytes so far are parked in op->res
 * and the ring reads the rest (prep; ur_reap adds them back): a read completes short
 * only at the end of the file, as on the epoll backend and as a caller expects. */
static int read_nowait(struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	bool seekable = op->dev->seekable;
	uint32_t done = 0;
	op->res = 0;
	for (;;) {
		off_t off = seekable ? (off_t)(ov->offset + done) : -1;
		ssize_t n = rw2(SYS_preadv2, op->fd, (char *)op->buf + done, op->len - done, off, RWF_NOWAIT);
		if (n > 0) {
			done += (uint32_t)n;
			if (done == op->len || !seekable)
				return (int)done;
			continue;
		}
		if (n == 0)
			return (int)done; /* end of file */
		int r = sys_res(n);
		if (done == 0)
			return r;
		if (r != -EAGAIN)
			return (int)done; /* the bytes read; the error shows on the next read */
		op->res = (int32_t)done;
		return -EAGAIN;
	}
}

/* The fast path (no io lock): a regular file at an offset, with RWF_NOWAIT: served
 * from the page cache at once, else -EAGAIN and the ring (a real disk read, in
 * io_uring's worker pool). Buffered writes: ext4 and others answer RWF_NOWAIT with
 * EOPNOTSUPP (kernel 6.18 here), and a buffered write lands in the page cache without
 * waiting for the disk, so the write then runs synchronously, as on epoll (measured:
 * sync 4 KiB pwrite ~1 us; through the ring, io_uring hands it to a worker thread:
 * see docs/port.md). */
static int ur_try_fast(struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	off_t off = op->dev->seekable ? (off_t)ov->offset : -1;
	struct urdev *d = urdev_of(op->dev);
	ssize_t n;
	if (op->kind == WEFT__OP_READ)
		return read_nowait(op);
	/* relaxed: a per-file hint; at worst one more EOPNOTSUPP */
	if (!weft__load_rlx(&d->no_nowait_write)) {
		n = rw2(SYS_pwritev2, op->fd, op->buf, op->len, off, RWF_NOWAIT);
		if (n >= 0 || errno != EOPNOTSUPP)
			return sys_res(n);
		weft__store_rlx(&d->no_nowait_write, (uint8_t)1);
	}
	/* pwrite64 (write without an offset), not pwritev2: the vectored path costs ~50 ns
	 * more per call and there is no flag to pass any more */
	do
		n = off >= 0 ? syscall(SYS_pwrite64, op->fd, op->buf, (size_t)op->len, off)
			     : syscall(SYS_write, op->fd, op->buf, (size_t)op->len);
	while (n < 0 && errno == EINTR);
	return n >= 0 ? (int)n : -errno;
}

static void prep_cancel(struct io_uring_sqe *sqe, struct weft__op *op)
{
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_CANCEL);
}

/* io lock, a thread that may submit (the reaper): prepares what waits in the backlog, submitting whenever the
 * SQ fills. */
static void backlog_flush(struct ur *u)
{
	while (u->bl_head) {
		struct io_uring_sqe *sqe = sqe_get(u);
		if (!sqe)
			return; /* the kernel took none: next round */
		struct weft__op *op = u->bl_head;
		u->bl_head = op->bnext;
		if (!u->bl_head)
			u->bl_tail = NULL;
		op->bnext = NULL;
		if (op->bstate & BS_QUEUED)
			prep(sqe, op);
		else
			prep_cancel(sqe, op);
		op->bstate &= (uint8_t) ~(BS_QUEUED | BS_CANCEL);
	}
}

/* io lock: op's prepared stage goes to the ring: an SQE handed to the reaper (or
 * submitted, on a plain ring), or the backlog when the SQ is full and this thread may
 * not submit. 0, or a plain ring's submit error. */
static int to_ring(struct ur *u, struct weft__op *op)
{
	if (u->bl_head && may_enter(u))
		backlog_flush(u);
	/* behind what waits for room already: the kernel sees a side's stages in order */
	struct io_uring_sqe *sqe = u->bl_head ? NULL : sqe_get(u);
	if (!sqe) {
		backlog_push(u, op, BS_QUEUED);
		hand_to_reaper(u);
		return 0;
	}
	prep(sqe, op);
	if (u->by_reaper) {
		hand_to_reaper(u);
		return 0;
	}
	int r = io_uring_submit(&u->ring);
	return r < 0 ? r : 0;
}

static bool read_side(const struct weft__op *op)
{
	return op->kind == WEFT__OP_READ || op->kind == WEFT__OP_ACCEPT || op->kind == WEFT__OP_RECV ||
	       op->kind == WEFT__OP_RECVFROM;
}

/* The FIFO of op's side when op works on a stream (see urdev), else NULL. */
static struct weft__op **fifo_of(struct weft__op *op)
{
	/* the first-bytes stage of an accept works on the new socket, not a device */
	if (op->kind == WEFT__OP_ACCEPT || op->dev->seekable)
		return NULL;
	return urdev_of(op->dev)->fifo[read_side(op) ? 0 : 1];
}

/* A receive on a stream whose last inline tries found nothing (a request/response
 * peer: the next request comes only after the answer just sent) skips the try and goes
 * to the ring at once, where its poll is armed first (POLL_FIRST): one system call less
 * per receive in the submitting thread. Every SKIP_PROBE-th receive tries anyway, so a
 * peer that starts sending ahead (pipelining) is noticed. */
#define SKIP_AFTER 2u
#define SKIP_PROBE 16u
static bool skip_inline(struct weft__op *op, struct weft__op **fifo)
{
	if (!fifo || !(op->kind == WEFT__OP_RECV || op->kind == WEFT__OP_RECVFROM))
		return false;
	struct urdev *d = urdev_of(op->dev);
	if (d->rd_miss < SKIP_AFTER || ++d->rd_skips >= SKIP_PROBE)
		return false;
	return true;
}

static int arm_muted(struct ur *u, struct weft__op *op, int *res)
{
	bool on_dev = !(op->kind == WEFT__OP_ACCEPT && op->stage == 1);
	bool rd = read_side(op);
	struct weft__op **fifo = fifo_of(op);
	uint32_t *count = on_dev && !fifo ? (rd ? &urdev_of(op->dev)->rd : &urdev_of(op->dev)->wr) : NULL;
	bool tried = op->tried; /* the fast path just tried this stage */
	op->tried = 0;
	if (fifo && fifo[0] && fifo[0] != op) {
		/* another operation runs on this side: op starts when it finishes */
		op->qnext = NULL;
		fifo[1]->qnext = op;
		fifo[1] = op;
		op->bstate |= BS_FIFO;
		return 0;
	}
	if (!tried && (!count || *count == 0) && !skip_inline(op, fifo)) {
		int r = try_inline(op);
		if (fifo && rd) {
			struct urdev *d = urdev_of(op->dev);
			d->rd_miss = r == -EAGAIN ? (uint8_t)(d->rd_miss + (d->rd_miss < 255)) : 0;
			d->rd_skips = 0;
		}
		if (r != -EAGAIN) {
			*res = r;
			return 1;
		}
	}
	if (fifo && !fifo[0]) {
		op->qnext = NULL;
		fifo[0] = fifo[1] = op; /* the side is op's until it finishes */
	}
	if (count) {
		(*count)++;
		op->bstate |= rd ? 1 : 2;
	}
	int r = to_ring(u, op);
	if (r < 0) {
		side_done(op);
		*res = r; /* a fifo head finishes with it: ur_finish starts the next */
		return 1;
	}
	return 0;
}

/* io lock: op finished; if it held its stream's side, the next one there starts. */
static void ur_finish(void *be, struct weft__op *op)
{
	if (op->bstate & BS_CANCEL)
		backlog_remove(be, op); /* its cancel must not meet the overlapped's next use */
	struct weft__op **fifo = fifo_of(op);
	if (!fifo || fifo[0] != op)
		return;
	struct weft__op *next = op->qnext;
	op->qnext = NULL;
	fifo[0] = next;
	if (!next) {
		fifo[1] = NULL;
		return;
	}
	next->bstate &= (uint8_t)~BS_FIFO;
	/* Straight to the ring: an inline try could complete it here, inside another
	 * operation's completion. A plain ring's failed submit leaves the SQE to the next. */
	(void)to_ring(be, next);
}

/* The eventfd is muted across the whole stage start: the inline try and the submit.
 * Any system call of this thread may run its pending io_uring task_work on the way out
 * (a poll-armed recv it submitted earlier, whose data just came: in a request/response
 * exchange, typically during the send of the next request), and what completes then,
 * like what completes inline during the submit, is drained by this thread: every caller
 * of arm drains next (op_submit, or the drain loop that re-armed a stage). Waking the
 * reaper for it would only cost an IPI and a context switch (measured: TCP round trip,
 * docs/port.md). Unmuted right after, so the reaper never sleeps through a later CQE. */
static int ur_arm(void *be, struct weft__op *op, int *res)
{
	struct ur *u = be;
	if (u->efd >= 0)
		io_uring_cq_eventfd_toggle(&u->ring, false);
	int r = arm_muted(u, op, res);
	if (u->efd >= 0)
		io_uring_cq_eventfd_toggle(&u->ring, true);
	/* On a DEFER_TASKRUN ring, task_work queued for the reaper while the eventfd was
	 * muted signalled nothing: a sleeping reaper would never run it. (asleep is set
	 * under the io lock, which this thread holds.) */
	if (u->single && u->asleep && (weft__load_acq(u->ring.sq.kflags) & IORING_SQ_TASKRUN)) {
		u->asleep = 0;
		kick(u);
	}
	return r;
}

static void cancel_submit(struct ur *u, struct weft__op *op)
{
	if (op->bstate & (BS_QUEUED | BS_CANCEL))
		return; /* not in the ring yet, or its cancel already waits for room */
	struct io_uring_sqe *sqe = u->bl_head ? NULL : sqe_get(u);
	if (!sqe) {
		if (u->by_reaper) {
			backlog_push(u, op, BS_CANCEL);
			hand_to_reaper(u);
		}
		return;
	}
	prep_cancel(sqe, op);
	if (u->by_reaper)
		hand_to_reaper(u);
	else
		io_uring_submit(&u->ring);
}

static bool ur_cancel(void *be, struct weft__op *op)
{
	struct ur *u = be;
	if (op->bstate & BS_FIFO) {
		/* waits behind its side's head: taken back, port.c completes it */
		struct weft__op **fifo = fifo_of(op), *prev = fifo[0];
		while (prev->qnext != op)
			prev = prev->qnext;
		prev->qnext = op->qnext;
		if (fifo[1] == op)
			fifo[1] = prev;
		op->qnext = NULL;
		op->bstate &= (uint8_t)~BS_FIFO;
		return true;
	}
	if (op->bstate & BS_QUEUED) {
		/* never reached the ring: taken back here, port.c completes it */
		backlog_remove(u, op);
		side_done(op);
		return true;
	}
	cancel_submit(u, op);
	return false;
}

/* One CQE of an operation, under the io lock: the stage's result, or for sendfile the
 * poll's, after which the reaper sends what the socket takes. */
static int ur_reap(void *be, struct weft__op *op, int res)
{
	(void)be;
	side_done(op);
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
	if (op->kind == WEFT__OP_READ && op->res > 0 && res != -ECANCELED) {
		/* the inline try's bytes come first; an error after them reports them */
		res = res >= 0 ? res + op->res : op->res;
		op->res = 0;
	}
	return res;
}

/* Reports every CQE there (io lock held: submitters, spinning waiters and the reaper
 * all drain). A stage re-armed from here may complete inline: the loop re-reads the
 * tail and takes it too. */
static unsigned drain_count(struct ur *u)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		if ((tag & 7u) == TAG_CANCEL) {
			struct weft__op *op = (struct weft__op *)(uintptr_t)(tag & ~(uint64_t)7u);
			/* Not found (-ENOENT), or running (-EALREADY), while op is still in
			 * flight: ask again, a bounded number of times. Seen on kernel 6.18: a
			 * poll-first recv whose poll had just fired was not found, and port
			 * close waited for it forever (docs/port.md). */
			if (cqe->res < 0 && weft__port_op_live(u->port, op) && op->cancel &&
			    op->cancel < CANCEL_TRIES) {
				op->cancel++;
				cancel_submit(u, op);
			}
		} else if (tag != TAG_WAKE) {
			weft__port_stage_done_locked(u->port, (struct weft__op *)(uintptr_t)tag, cqe->res);
		}
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	/* More completions than the CQ holds wait in the kernel's overflow list until an
	 * enter flushes them: do it now rather than leave them to the next submit. */
	if (io_uring_cq_has_overflow(&u->ring)) {
		if (!may_enter(u)) {
			hand_to_reaper(u); /* the reaper flushes them, on its next pass */
			return n;
		}
		io_uring_get_events(&u->ring);
		n += drain_count(u);
	}
	return n;
}

static void ur_drain(void *be)
{
	drain_count(be);
}

/* True when the CQ holds entries; atomic loads of the ring's indexes, which the drainer
 * (io lock holder) and the kernel write. */
static bool cq_nonempty(struct ur *u)
{
	/* acquire: pairs with the kernel's tail release / the drainer's head release. */
	return weft__load_acq(u->ring.cq.ktail) != weft__load_acq(u->ring.cq.khead);
}

/* True when the reaper has something to do: CQEs, SQEs to submit, or (kernel flags)
 * task_work of its requests or a CQ overflow to flush. */
static bool reaper_work(struct ur *u)
{
	/* acquire: pairs with the release in hand_to_reaper; the flags word is the
	 * kernel's (TASKRUN: task_work of this thread's requests waits for it) */
	return cq_nonempty(u) || weft__load_acq(&u->sq_pending) ||
	       (u->by_reaper &&
		(weft__load_acq(u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)));
}

/* The reaper's round, io lock held: submits what callers prepared, runs this thread's
 * task_work (its requests' completions), and reports every CQE. Returns the CQEs
 * reported; *submitted: whether it submitted. */
static unsigned reaper_round(struct ur *u, bool *submitted)
{
	*submitted = false;
	u->asleep = 0;
	if (u->by_reaper) {
		/* eventfd muted: this thread drains next */
		io_uring_cq_eventfd_toggle(&u->ring, false);
		if (weft__load_acq(&u->sq_pending)) {
			weft__store_rlx(&u->sq_pending, 0u); /* relaxed: io lock */
			io_uring_submit(&u->ring);
			if (u->bl_head) {
				backlog_flush(u);
				io_uring_submit(&u->ring);
			}
			*submitted = true;
		}
		if (weft__load_acq(u->ring.sq.kflags) & IORING_SQ_TASKRUN)
			io_uring_get_events(&u->ring);
		io_uring_cq_eventfd_toggle(&u->ring, true);
	} else if (u->bl_head) {
		backlog_flush(u); /* a plain ring: what a failed submit left */
		io_uring_submit(&u->ring);
	}
	return drain_count(u);
}

static void ur_poll(void *be)
{
	struct ur *u = be;
	bool submitted;
	if (t_reaper == u && u->by_reaper) {
		/* the solo thread, spinning in get: it is the reaper, so it does the round */
		if (reaper_work(u))
			reaper_round(u, &submitted);
	} else if (cq_nonempty(u)) {
		ur_drain(u);
	}
}

/* Solo mode, io lock held: the reaper runs the port's solo function from its loop. */
static int ur_solo(void *be)
{
	struct ur *u = be;
	if (u->efd < 0)
		return -ENOTSUP; /* a plain ring whose reaper sleeps in the ring: not this */
	weft__store_rel(&u->solo_req, 1u); /* release: the port's solo fields; pairs with ur_wait */
	u->asleep = 0;
	kick(u);
	return 0;
}

static int ur_kick_fd(void *be)
{
	return ((struct ur *)be)->efd;
}

/* Solo mode: the reaper inside weft_port_get (see backend.h). */
static int ur_sleep(void *be, const uint32_t *word, uint32_t sleeping, const struct timespec *dl)
{
	struct ur *u = be;
	bool submitted;
	weft__port_io_lock(u->port);
	if (reaper_work(u)) {
		reaper_round(u, &submitted);
		weft__port_io_unlock(u->port);
		return 0;
	}
	u->asleep = 1; /* a submitter that sees it kicks the eventfd */
	weft__port_io_unlock(u->port);
	int r = 0;
	/* acquire: pairs with the release exchange of the waker, which then writes efd */
	if (weft__load_acq(word) == sleeping) {
		int ms = weft__ms_left(dl);
		struct pollfd pf = {.fd = u->efd, .events = POLLIN};
		int n = ms == 0 ? 0 : poll(&pf, 1, ms);
		uint64_t v;
		if (n > 0 && read(u->efd, &v, sizeof v) < 0) {
			/* cannot block (poll said so, and only this thread reads it) */
		}
		if (n == 0)
			r = -ETIMEDOUT;
	}
	/* a round in any case: what woke this thread (or came while it timed out) */
	weft__port_io_lock(u->port);
	reaper_round(u, &submitted);
	weft__port_io_unlock(u->port);
	return r;
}

static void ur_wait(void *be)
{
	struct ur *u = be;
	uint64_t last = 0;
	uint32_t busy = 0, spins = 0;
	t_reaper = u;
	if (u->single) {
		/* The ring was created disabled: enabling it makes this thread its single
		 * issuer. Callers may have prepared SQEs meanwhile: submit them below. */
		weft__port_io_lock(u->port);
		if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
		    0)
			abort(); /* cannot fail on a ring created disabled by this process */
		weft__store_rel(&u->sq_pending, 1u);
		weft__port_io_unlock(u->port);
	}
	/* acquire: pairs with the release in ur_wake. */
	while (!weft__load_acq(&u->stop)) {
		/* acquire: pairs with the release in ur_solo */
		if (weft__load_acq(&u->solo_req)) {
			weft__store_rlx(&u->solo_req, 0u); /* relaxed: only this thread reads it */
			weft__port_run_solo(u->port);
			last = weft__now_ns();
			continue;
		}
		bool work = reaper_work(u);
		if (!work) {
			if (weft__now_ns() - last < WEFT__REAPER_SPIN_NS) {
				weft_cpu_relax();
				if ((++spins & 63) == 0)
					sched_yield(); /* a worker may be waiting for this CPU */
				continue;
			}
			/* Sleeps without the io lock until a CQE is there; a submitter may drain
			 * it first, the drain below then finds nothing and the loop sleeps again.
			 * The raw enter, not io_uring_wait_cqe: that one reads the CQ head with
			 * plain loads, and only the lock holder may write it. */
			if (u->efd >= 0) {
				weft__port_io_lock(u->port);
				u->asleep = 1;
				bool pending = weft__load_acq(&u->sq_pending) ||
					       (weft__load_acq(u->ring.sq.kflags) &
						(IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
				if (pending)
					u->asleep = 0;
				weft__port_io_unlock(u->port);
				uint64_t v;
				/* (a submitter that sees asleep kicks the eventfd; task_work of the
				 * reaper's requests interrupts the read and runs on its way out) */
				if (!pending && read(u->efd, &v, sizeof v) < 0)
					continue; /* EINTR */
			} else if (io_uring_enter((unsigned)u->ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS,
						  NULL) < 0) {
				continue; /* -EINTR */
			}
		}
		/* Most CQEs that show up while a submitter holds the io lock are its own inline
		 * completions, which it drains before unlocking: wait for the lock to be free
		 * rather than queue on it (which would cost both sides a futex call), then
		 * look again. */
		if (!weft__port_io_trylock(u->port)) {
			if (++busy < 1000) {
				weft_cpu_relax();
				continue;
			}
			weft__port_io_lock(u->port);
		}
		busy = 0;
		bool submitted;
		unsigned n = reaper_round(u, &submitted);
		weft__port_io_unlock(u->port);
		/* What was just submitted completes here (its task_work is this thread's):
		 * poll on for it rather than sleep and be woken for it. Without this the TCP
		 * round trip was bistable: once a peer took longer than the spin to answer,
		 * the reaper slept before every completion and each round trip paid two
		 * wake-ups (14 -> 26-29 us, in 7 of 9 runs; 2 of 9 with it, docs/port.md). */
		if (submitted)
			last = weft__now_ns();
		/* Poll on only after completions this thread reported. When a spinning
		 * waiter drained them first (the eventfd still woke this thread: a poll-armed
		 * recv completes as task_work in its submitter, which is often that waiter),
		 * go back to sleep at once: spinning here would take the CPU from the very
		 * thread that is to answer (measured: loaded 2-vCPU TCP ping-pong, see
		 * docs/port.md). */
		if (n)
			last = weft__now_ns();
	}
}

static void ur_wake(void *be)
{
	struct ur *u = be;
	weft__store_rel(&u->stop, 1u);
	if (u->efd >= 0) {
		uint64_t one = 1;
		if (write(u->efd, &one, sizeof one) < 0) {
			/* cannot overflow: one write per close */
		}
		return;
	}
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
    .try_fast = ur_try_fast,
    .arm = ur_arm,
    .cancel = ur_cancel,
    .finish = ur_finish,
    .reap = ur_reap,
    .drain = ur_drain,
    .poll = ur_poll,
    .wait = ur_wait,
    .solo = ur_solo,
    .sleep = ur_sleep,
    .kick_fd = ur_kick_fd,
    .wake = ur_wake,
};
