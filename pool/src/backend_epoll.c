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
 * threads sleeping in epoll_wait themselves) keeps the waiting threads on their own
 * futexes, where LIFO order and the released/paused accounting are exact; it costs one
 * wake-up per completion that had to wait for readiness. A waiting thread that is still
 * spinning looks itself now and then (ep_poll, a non-blocking epoll_wait under the io
 * lock), so an edge that comes meanwhile completes on it with no hop through the reaper,
 * as io_uring's spinning waiters drain the CQ: weft-server's small file with wrk -t1 went
 * from 112k to 150k req/s (5 alternating runs; docs/port.md).
 *
 * Why the per-fd lock closes the edge-triggered race: arm tries and queues under it,
 * and the reaper retries the queue under it after every edge, so an edge that arrives
 * between a failed try and the queueing finds the op queued. A receive skips the try
 * when the last one showed the socket empty (try_side): the next edge is then sure to
 * come, and finds it queued.
 *
 * In the port's solo mode (port_io.c) the reaper runs the port's one user thread's
 * function itself: its gets look at epoll on every spin (ep_poll, unthrottled) and
 * sleep in epoll_wait (ep_sleep), so one thread does everything.
 *
 * Regular files cannot be polled, and a read of a page that is not in the page cache
 * blocks whichever thread makes it: for a port, that would be the submitting thread,
 * perhaps a pool worker the port counts as running. So a file read or write is first
 * tried with preadv2 / pwritev2(RWF_NOWAIT) (raw system calls; without the io lock, on
 * port_io.c's fast path): what the page cache has completes at once in the submitting
 * thread, as before. A try that would block (-EAGAIN: a page not cached; a short answer
 * is followed up, so a read that met an uncached page midway is not taken for the end
 * of the file) is queued, FIFO per port and linked through op->qnext (no allocation),
 * to the port's file helpers: up to FILE_HELPERS (2) threads, started on the first
 * miss, sleeping on a futex when idle, joined when the port closes. A helper makes the
 * blocking pread / pwrite for the bytes still missing and reports the result as the
 * reaper does (weft__port_stage_done). Cancel takes back an op still queued (it
 * completes -ECANCELED); one a helper runs completes with its result (a blocking file
 * read cannot be interrupted). Disassociate and close wait for helper ops like any
 * other op in flight (nops, inflight). This is libuv's file I/O (a thread pool), with
 * the page cache served inline first.
 * What it costs: preadv2 takes the kernel's vectored path, ~50 ns more than pread per
 * cached read (the price of never blocking); a cold read pays two thread hand-offs on
 * top of the disk (to a helper, then to the waiting thread); a port has at most two
 * disk reads in flight (io_uring's io-wq runs more). Where RWF_NOWAIT is refused
 * (EOPNOTSUPP, remembered per file: buffered writes on ext4 with kernel 6.18; reads on
 * kernels before 4.13, ENOSYS before 4.6) the call runs synchronously, as before the
 * helpers: a buffered write lands in the page cache without waiting for the disk (but
 * a write to part of an uncached page reads that page first, and dirty-page throttling
 * can stall it); a read on such a kernel blocks on a cold disk.
 *
 * The bytes-after-accept stage works on a socket that is not a device: it is registered
 * one-shot with the op itself as epoll data (tagged with bit 0).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "futex.h"

struct epdev {
	uint32_t lock;
	uint8_t no_nowait_rd;	       /* atomic: preadv2(RWF_NOWAIT) said EOPNOTSUPP here */
	uint8_t no_nowait_wr;	       /* atomic: pwritev2(RWF_NOWAIT) said EOPNOTSUPP here */
	uint8_t rd_drained;	       /* (lock) see try_side */
	uint8_t rd_hup;		       /* (lock) an edge showed the peer's end, urgent data or an error */
	uint8_t tcp;		       /* (lock) a TCP socket: its short reads can mark rd_drained */
	struct weft__op *rq, *rq_tail; /* receive side: accept, recv, recvfrom, read */
	struct weft__op *wq, *wq_tail; /* send side: send, sendto, sendfile, write, connect */
};
_Static_assert(sizeof(struct epdev) <= sizeof(((struct weft__device *)0)->be_area), "epdev fits");

/* At most this many file helpers per port (see the top of the file). */
#define FILE_HELPERS 2u

struct ep {
	weft_port *port;
	int epfd, evfd;
	uint32_t stop;		 /* atomic: set by wake */
	uint32_t solo_req;	 /* atomic: the reaper is to run the port's solo function */
	uint32_t slock;		 /* guards staged */
	struct weft__op *staged; /* accept ops waiting for their first bytes */
	/* The file helpers. flock guards fq..fstop. fidle counts helpers between "queue
	 * empty, going to sleep" and "awake again, looking"; fwake the wakes promised to
	 * them and not yet taken (fwake <= fidle). A submitter wakes one only when
	 * fidle > fwake: every queued op is then either seen by a helper that is still
	 * running (it looks at the queue before it sleeps) or covered by a promised wake
	 * (a woken helper empties the queue before it sleeps again). */
	uint32_t flock;
	uint32_t fseq;		       /* futex word of the sleeping helpers: bumped per wake */
	struct weft__op *fq, *fq_tail; /* FIFO of file ops for the helpers (linked by qnext) */
	uint32_t fidle, fwake;
	uint32_t fstop;	   /* set by fini */
	uint32_t nhelpers; /* started (io lock; fini reads it after the last op) */
	pthread_t helper[FILE_HELPERS];
};

/* The reaper thread while it runs the port's solo function (it does all the reaping
 * then: its looks are not throttled). */
static _Thread_local const struct ep *t_solo_ep;

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

static void files_fini(struct ep *e);

static void ep_fini(void *be)
{
	struct ep *e = be;
	files_fini(e);
	close(e->epfd);
	close(e->evfd);
	free(e);
}

static int ep_attach(void *be, struct weft__device *dev)
{
	struct ep *e = be;
	/* the per-fd queues are empty (zero from calloc, or again since disassociate); the
	 * RWF_NOWAIT flags belong to the previous file (relaxed: no fast path runs on an
	 * inactive device) */
	weft__store_rlx(&epdev_of(dev)->no_nowait_rd, (uint8_t)0);
	weft__store_rlx(&epdev_of(dev)->no_nowait_wr, (uint8_t)0);
	int proto = 0;
	socklen_t plen = sizeof proto;
	bool tcp = !dev->is_file && getsockopt(dev->fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) == 0 &&
		   proto == IPPROTO_TCP;
	/* unknown: the first receive tries (under the fd lock: a late edge of the fd that
	 * had this number before may be in dev_event) */
	weft__plock(&epdev_of(dev)->lock);
	epdev_of(dev)->rd_drained = epdev_of(dev)->rd_hup = 0;
	epdev_of(dev)->tcp = tcp;
	weft__punlock(&epdev_of(dev)->lock);
	/* EPOLLPRI: urgent data stops a TCP read short of the bytes behind it (try_side) */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = dev};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, dev->fd, &ev) < 0) {
		if (errno == EPERM)
			return 0; /* a regular file (cannot be polled): see file_try */
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

/* ---- regular files: a non-blocking try, then the file helpers ---- */

/* Ops run by a file helper, since the process started (tests). */
static uint64_t files_offloaded; /* atomic */

WEFT_INTERNAL uint64_t weft__epoll_files_offloaded(void);
uint64_t weft__epoll_files_offloaded(void)
{
	return weft__load_rlx(&files_offloaded); /* relaxed: a statistic */
}

static bool file_op(const struct weft__op *op)
{
	/* relaxed: written under the io lock before the device became active, and fixed
	 * while an op is linked to it */
	return (op->kind == WEFT__OP_READ || op->kind == WEFT__OP_WRITE) && weft__load_rlx(&op->dev->is_file);
}

/* preadv2 / pwritev2 as raw system calls: the libc wrappers are cancellation points
 * (two calls around each system call, ~25 ns); a port's I/O is no cancellation point.
 * 64-bit ABIs take the offset whole in pos_l and ignore pos_h. */
static ssize_t rw2(long nr, int fd, void *buf, uint32_t len, off_t off, int flags)
{
	struct iovec iv = {buf, len};
	return syscall(nr, fd, &iv, 1, (unsigned long)off, (unsigned long)((uint64_t)off >> 32), flags);
}

/* The blocking call, for the bytes after op->res (those the non-blocking try already
 * moved): the whole length unless end of file or an error (then the bytes done so far,
 * if any, as pread would say). pread64/pwrite64: ~50 ns cheaper than the vectored path. */
static int file_rest(struct weft__op *op)
{
	off_t off = (off_t)weft__ov_of(op)->offset;
	long nr = op->kind == WEFT__OP_READ ? SYS_pread64 : SYS_pwrite64;
	uint32_t done = (uint32_t)op->res;
	while (done < op->len) {
		ssize_t n = syscall(nr, op->fd, (char *)op->buf + done, (size_t)(op->len - done), off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (int)done : -errno;
		if (n == 0)
			break; /* end of file */
		done += (uint32_t)n;
	}
	return (int)done;
}

/* One non-blocking pass (RWF_NOWAIT) over op: the result, -EAGAIN when a page is not
 * in the cache (or a write would wait) with op->res = the bytes moved so far, or
 * -EOPNOTSUPP / -ENOSYS when this file or kernel has no RWF_NOWAIT. A short answer is
 * followed up, so a read that met an uncached page midway goes to the helper for the
 * rest instead of completing short (which a caller would take for the end of the file). */
static int file_nowait(struct weft__op *op, long nr)
{
	off_t off = (off_t)weft__ov_of(op)->offset;
	for (;;) {
		uint32_t done = (uint32_t)op->res;
		if (done == op->len)
			return (int)done;
		ssize_t n = rw2(nr, op->fd, (char *)op->buf + done, op->len - done, off + done, RWF_NOWAIT);
		if (n > 0) {
			op->res = (int32_t)(done + (uint32_t)n);
			continue;
		}
		if (n == 0)
			return (int)done; /* end of file */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return done ? (int)done : -errno;
	}
}

/* The try, without the io lock (fast path) or under it (arm): at once from the page
 * cache, else -EAGAIN for the helpers. A file or kernel without RWF_NOWAIT (EOPNOTSUPP;
 * ext4 for buffered writes on kernel 6.18; kernels before 4.13 for reads) gets the
 * blocking call here, remembered per file: a buffered write lands in the page cache
 * without waiting for the disk, a read on such a kernel blocks as it did before. */
static int file_try(struct weft__op *op)
{
	struct epdev *d = epdev_of(op->dev);
	bool rd = op->kind == WEFT__OP_READ;
	uint8_t *no = rd ? &d->no_nowait_rd : &d->no_nowait_wr;
	op->res = 0;
	/* relaxed: a per-file hint; at worst one more EOPNOTSUPP */
	if (!weft__load_rlx(no)) {
		int r = file_nowait(op, rd ? SYS_preadv2 : SYS_pwritev2);
		if (r != -EOPNOTSUPP && r != -ENOSYS)
			return r;
		weft__store_rlx(no, (uint8_t)1);
	}
	return file_rest(op);
}

/* The fast path (no io lock): only ever called for regular files. */
static int ep_try_fast(struct weft__op *op)
{
	return file_try(op);
}

/* A file helper: runs the queued ops in order, each with the blocking call, and reports
 * them as the reaper does. The op is the helper's from the moment it leaves the queue
 * (cancel no longer finds it there) until weft__port_stage_done; e outlives every
 * helper (fini joins them). */
static void *helper_main(void *arg)
{
	struct ep *e = arg;
	weft__plock(&e->flock);
	for (;;) {
		struct weft__op *op = e->fq;
		if (op) {
			e->fq = op->qnext;
			if (!e->fq)
				e->fq_tail = NULL;
			weft__punlock(&e->flock);
			int r = file_rest(op);
			/* relaxed: the report below orders it before the packet */
			weft__fadd_rlx(&files_offloaded, 1u);
			weft__port_stage_done(e->port, op, r);
			weft__plock(&e->flock);
			continue;
		}
		if (e->fstop)
			break;
		e->fidle++;
		/* relaxed: fseq only changes under flock, held here */
		uint32_t seq = weft__load_rlx(&e->fseq);
		weft__punlock(&e->flock);
		weft__futex_wait(&e->fseq, seq, NULL); /* a bump since the unlock: no sleep */
		weft__plock(&e->flock);
		e->fidle--;
		if (e->fwake)
			e->fwake--;
	}
	weft__punlock(&e->flock);
	return NULL;
}

/* Io lock held. Every signal blocked, as on the reaper: user handlers run on the
 * user's threads. */
static int helper_start(struct ep *e)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&e->helper[e->nhelpers], NULL, helper_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		e->nhelpers++;
	return -r;
}

/* Io lock held: op (a file read or write that would block) goes to the helpers; a
 * sleeping one is woken, else one more is started while there are fewer than
 * FILE_HELPERS. Returns 0, or 1 with *res when no helper could be started at all (the
 * call then runs here, blocking, as it did before the helpers). */
static int file_queue(struct ep *e, struct weft__op *op, int *res)
{
	weft__plock(&e->flock);
	op->qnext = NULL;
	if (e->fq)
		e->fq_tail->qnext = op;
	else
		e->fq = op;
	e->fq_tail = op;
	bool wake = e->fidle > e->fwake;
	if (wake) {
		e->fwake++;
		weft__fadd_rlx(&e->fseq, 1u); /* relaxed: the futex and flock order it */
	}
	weft__punlock(&e->flock);
	if (wake) {
		weft__futex_wake(&e->fseq, 1);
		return 0;
	}
	if (e->nhelpers < FILE_HELPERS && helper_start(e) == 0)
		return 0;
	if (e->nhelpers > 0)
		return 0; /* a busy helper looks at the queue before it sleeps */
	weft__plock(&e->flock);
	unqueue(&e->fq, &e->fq_tail, op); /* no helper ever ran: the queue holds only op */
	weft__punlock(&e->flock);
	*res = file_rest(op);
	return 1;
}

/* Io lock held: a stage of a file read or write (the fast path's try already failed
 * when op->tried; a re-armed stage tries again). */
static int arm_file(struct ep *e, struct weft__op *op, int *res)
{
	bool tried = op->tried;
	op->tried = 0;
	if (!tried) {
		int r = file_try(op);
		if (r != -EAGAIN) {
			*res = r;
			return 1;
		}
	}
	return file_queue(e, op, res);
}

/* Fini: the queue is empty (close waited for every op); wakes and joins the helpers. */
static void files_fini(struct ep *e)
{
	weft__plock(&e->flock);
	e->fstop = 1;
	weft__fadd_rlx(&e->fseq, 1u); /* relaxed: as in file_queue */
	weft__punlock(&e->flock);
	weft__futex_wake(&e->fseq, INT32_MAX);
	for (uint32_t i = 0; i < e->nhelpers; i++)
		pthread_join(e->helper[i], NULL);
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

/* try_op for an op of a device's queues, fd lock held. A receive that found the socket
 * empty (EAGAIN), or a TCP receive that read less than it asked for, marks the read side
 * drained: the socket is edge-triggered, so any byte (or the peer's end) that comes
 * later brings an input edge (which clears the mark in dev_event), and until then the
 * next receive skips its try and queues at once. A request/response peer sends only
 * after the answer: without this every receive cost a recv that said EAGAIN (as on
 * io_uring, skip_inline). A short TCP read means the receive queue was empty, except
 * where the read stops at the peer's end (FIN) or at urgent data with bytes behind it,
 * whose edge may already be spent: once an edge showed either (rd_hup: RDHUP, PRI, HUP,
 * ERR) only EAGAIN marks the side. Other sockets may stop short for other reasons
 * (AF_UNIX: credentials of another writer, out-of-band data): only EAGAIN there. An
 * end of stream (0) or an error never marks it: they stay readable without a new edge. */
static int try_side(struct epdev *d, struct weft__op *op)
{
	int r = try_op(op);
	if (op->kind == WEFT__OP_RECV)
		d->rd_drained = r == -EAGAIN || (r > 0 && (uint32_t)r < op->len && d->tcp && !d->rd_hup);
	return r;
}

static int ep_arm(void *be, struct weft__op *op, int *res)
{
	struct ep *e = be;
	if (op->kind == WEFT__OP_ACCEPT && op->stage == 1)
		return arm_staged(e, op, res);
	if (file_op(op))
		return arm_file(e, op, res);
	struct epdev *d = epdev_of(op->dev);
	bool rd = recv_side(op);
	struct weft__op **head = rd ? &d->rq : &d->wq, **tail = rd ? &d->rq_tail : &d->wq_tail;
	weft__plock(&d->lock);
	/* Try at once unless others wait ahead on this side (FIFO), or a receive finds the
	 * side drained (try_side); a connect always tries now, since its address is only
	 * valid during the call. */
	if ((!*head && !(op->kind == WEFT__OP_RECV && d->rd_drained)) || op->kind == WEFT__OP_CONNECT) {
		int r = try_side(d, op);
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
	if (file_op(op)) {
		/* queued: taken back; running on a helper: reported with its result */
		weft__plock(&e->flock);
		took = unqueue(&e->fq, &e->fq_tail, op);
		weft__punlock(&e->flock);
		return took;
	}
	struct epdev *d = epdev_of(op->dev);
	weft__plock(&d->lock);
	took = unqueue(&d->rq, &d->rq_tail, op) || unqueue(&d->wq, &d->wq_tail, op);
	weft__punlock(&d->lock);
	return took;
}

/* Runs dev's queued operations after an edge (events: its epoll mask); reports outside
 * the fd lock. locked: the caller holds the io lock (a waiting thread polling,
 * ep_poll), so results are reported with the _locked call. */
static void dev_event(struct ep *e, struct weft__device *dev, uint32_t events, bool locked)
{
	struct epdev *d = epdev_of(dev);
	struct weft__op *done = NULL, **dt = &done;
	weft__plock(&d->lock);
	if (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		d->rd_drained = 0; /* input came: the next receive tries at once */
	if (events & (EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR))
		d->rd_hup = 1;
	for (int side = 0; side < 2; side++) {
		struct weft__op **head = side ? &d->wq : &d->rq, **tail = side ? &d->wq_tail : &d->rq_tail;
		while (*head) {
			struct weft__op *op = *head;
			int r = try_side(d, op);
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
		if (locked)
			weft__port_stage_done_locked(e->port, done, done->res);
		else
			weft__port_stage_done(e->port, done, done->res);
		done = next;
	}
}

/* The first bytes arrived (or the peer left) on an accepted socket. The pointer comes
 * from the kernel and may be stale (the op was cancelled and reused): it is only
 * compared against the staged list, never followed, until found there. */
static void staged_event(struct ep *e, struct weft__op *op, bool locked)
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
	if (locked)
		weft__port_stage_done_locked(e->port, op, r);
	else
		weft__port_stage_done(e->port, op, r);
}

/* Handles what one epoll_wait returned, without the io lock. */
static void events(struct ep *e, const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)ev[i].data.ptr;
		if (v == 0) {
			uint64_t x;
			if (read(e->evfd, &x, sizeof x) < 0) {
				/* EAGAIN: already drained */
			}
		} else if (v & 1u) {
			staged_event(e, (struct weft__op *)(v & ~(uintptr_t)1u), false);
		} else {
			dev_event(e, (struct weft__device *)ev[i].data.ptr, ev[i].events, false);
		}
	}
}

static void ep_wait(void *be)
{
	struct ep *e = be;
	struct epoll_event ev[64];
	uint64_t last = 0;
	uint32_t spins = 0;
	/* acquire: pairs with the release in ep_wake. */
	while (!weft__load_acq(&e->stop)) {
		/* acquire: pairs with the release in ep_solo */
		if (weft__load_acq(&e->solo_req)) {
			weft__store_rlx(&e->solo_req, 0u); /* relaxed: only this thread reads it */
			t_solo_ep = e;
			weft__port_run_solo(e->port);
			t_solo_ep = NULL;
			last = weft__now_ns();
			continue;
		}
		bool spin = weft__now_ns() - last < WEFT__REAPER_SPIN_NS;
		int n = epoll_wait(e->epfd, ev, 64, spin ? 0 : -1);
		if (n > 0)
			last = weft__now_ns();
		else if (spin && (++spins & 7) == 0)
			sched_yield(); /* a worker may be waiting for this CPU */
		events(e, ev, n);
	}
}

/* Solo mode (backend.h), io lock held: the reaper runs the port's solo function. */
static int ep_solo(void *be)
{
	struct ep *e = be;
	weft__store_rel(&e->solo_req, 1u); /* release: the port's solo fields; pairs with ep_wait */
	uint64_t one = 1;
	if (write(e->evfd, &one, sizeof one) < 0) {
		/* cannot overflow: the reaper reads it down */
	}
	return 0;
}

static int ep_kick_fd(void *be)
{
	return ((struct ep *)be)->evfd;
}

/* Solo mode: the reaper inside weft_port_get sleeps in epoll_wait itself; the wake-up
 * eventfd (level-triggered, in the set) ends it. */
static int ep_sleep(void *be, const uint32_t *word, uint32_t sleeping, const struct timespec *dl)
{
	struct ep *e = be;
	struct epoll_event ev[64];
	int ms = weft__ms_left(dl);
	/* acquire: pairs with the release exchange of the waker, which then writes evfd */
	if (weft__load_acq(word) != sleeping)
		ms = 0;
	int n = epoll_wait(e->epfd, ev, 64, ms);
	events(e, ev, n);
	return n == 0 && weft__load_acq(word) == sleeping ? -ETIMEDOUT : 0;
}

/* A waiting thread's look while it spins (io lock held): the edges ready now, handled
 * here, so a completion that lands meanwhile goes to that thread without a hop through
 * the reaper (as io_uring's spinning waiters drain the CQ). epoll_wait hands each edge
 * to one caller, reaper or waiter, and the per-fd locks make either safe. The wake-up
 * eventfd is the reaper's: level-triggered, so left unread here it stays ready for it. */
/* A waiter calls poll every 16 PAUSEs of its spin; an epoll_wait (a system call, under
 * the io lock) on each of those slowed the TCP round trip 13.7 -> 24.6 us (the reaper
 * waiting for the lock), so only one call in 16 looks (measured, 5 alternating runs:
 * 13.9 vs 14.1 us; one in 4: 15.8). */
#ifndef EP_POLL_EVERY
#define EP_POLL_EVERY 15u
#endif
static void ep_poll(void *be)
{
	struct ep *e = be;
	static __thread uint32_t skip;
	if (t_solo_ep != e && (++skip & EP_POLL_EVERY) != 0)
		return;
	struct epoll_event ev[16];
	int n = epoll_wait(e->epfd, ev, 16, 0);
	for (int i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)ev[i].data.ptr;
		if (v == 0) {
			/* the reaper's (level-triggered: it still sees it) */
		} else if (v & 1u) {
			staged_event(e, (struct weft__op *)(v & ~(uintptr_t)1u), true);
		} else {
			dev_event(e, (struct weft__device *)ev[i].data.ptr, ev[i].events, true);
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
    .poll = ep_poll,
    .wait = ep_wait,
    .solo = ep_solo,
    .sleep = ep_sleep,
    .kick_fd = ep_kick_fd,
    .wake = ep_wake,
};
