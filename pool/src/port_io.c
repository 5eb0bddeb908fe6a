/* port_io.c - asynchronous operations on the port: the device list, the operations in
 * flight, their stages, cancellation, and the reaper thread.
 *
 * Everything here runs under the port's io lock (p->iolock): submitting (so a backend
 * may treat its submission side as single-threaded), each stage result, cancel,
 * disassociate and close. An operation is "live" from a successful submit until its
 * packet is queued; finishing it (op_finish) is the only place that clears live, and it
 * runs once per operation because every path to it holds the io lock and checks live
 * or owns the op's current stage. Multi-stage operations (send until every byte is out,
 * accept then the first bytes, sendfile in rounds) advance here, the same way on both
 * backends.
 *
 * The backend and its reaper thread start with the first associate: a port used only
 * for posted packets costs no ring, no epoll set and no thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "futex.h"
#include "port_impl.h"

/* ---- stages ---- */

/* Applies one stage result. Returns true when op needs another stage. */
static bool stage_result(struct weft__op *op, int res)
{
	weft_overlapped *ov = weft__ov_of(op);
	/* -EAGAIN from a backend: run the stage again (io_uring sendfile: the poll fired
	 * but the socket filled up again; an io_uring request cancelled by the kernel
	 * because the thread that submitted it exited). Bounded, in case a stage keeps
	 * saying it without progress. */
	if (res > 0)
		op->retries = 0;
	if (res == -EAGAIN && ++op->retries <= 64)
		return true;
	switch (op->kind) {
	case WEFT__OP_SEND:
	case WEFT__OP_SENDFILE:
		if (res > 0) {
			op->done += (uint32_t)res;
			if (op->done < op->len)
				return true;
		}
		ov->status = res < 0 ? res : 0;
		ov->bytes = op->done;
		return false;
	case WEFT__OP_ACCEPT:
		if (op->stage == 0 && res >= 0) {
			*op->accepted = res;
			if (op->len > 0) {
				op->stage = 1;
				op->fd = res;
				return true;
			}
			res = 0;
		} else if (op->stage == 1 && res < 0) {
			close(op->fd); /* the first bytes never came: drop the connection */
			*op->accepted = -1;
		}
		ov->status = res < 0 ? res : 0;
		ov->bytes = res > 0 && op->stage == 1 ? (uint32_t)res : 0;
		return false;
	case WEFT__OP_CONNECT:
		ov->status = res < 0 ? res : 0;
		ov->bytes = 0;
		return false;
	default:
		ov->status = res < 0 ? res : 0;
		ov->bytes = res > 0 ? (uint32_t)res : 0;
		return false;
	}
}

/* Unlinks op and queues its packet (io lock held). */
static void op_finish(weft_port *p, struct weft__op *op)
{
	if (p->be->finish)
		p->be->finish(p->bes, op);
	if (op->next)
		op->next->prev = op->prev;
	if (op->prev)
		op->prev->next = op->next;
	else
		p->ops = op->next;
	op->live = 0;
	struct weft__device *dev = op->dev;
	/* relaxed stores: the futex words are read by the sleepers in disassociate and
	 * close, which re-check under the io lock; the wake orders the rest. */
	weft__store_rlx(&dev->nops, dev->nops - 1);
	weft__store_rlx(&p->inflight, p->inflight - 1);
	weft__port_complete(p, op);
	if (!dev->active && dev->nops == 0)
		weft__futex_wake(&dev->nops, INT32_MAX);
	if (p->io_closed && p->inflight == 0)
		weft__futex_wake(&p->inflight, INT32_MAX);
}

/* Feeds a stage result and arms the next stages until one is pending (io lock held). */
static void op_advance(weft_port *p, struct weft__op *op, int res)
{
	for (;;) {
		if (op->cancel && res < 0)
			res = -ECANCELED; /* -EINTR, -EAGAIN...: what a cancelled stage says */
		bool more = stage_result(op, res);
		if (more && op->cancel) {
			more = stage_result(op, -ECANCELED);
		}
		if (!more) {
			op_finish(p, op);
			return;
		}
		if (p->be->arm(p->bes, op, &res) == 0)
			return;
	}
}

void weft__port_stage_done_locked(weft_port *p, struct weft__op *op, int res)
{
	if (p->be->reap)
		res = p->be->reap(p->bes, op, res);
	op_advance(p, op, res);
}

void weft__port_stage_done(weft_port *p, struct weft__op *op, int res)
{
	weft__plock(&p->iolock);
	weft__port_stage_done_locked(p, op, res);
	weft__punlock(&p->iolock);
}

bool weft__port_op_live(weft_port *p, struct weft__op *op)
{
	for (struct weft__op *o = p->ops; o; o = o->next)
		if (o == op)
			return true;
	return false;
}

void weft__port_io_lock(weft_port *p)
{
	weft__plock(&p->iolock);
}

bool weft__port_io_trylock(weft_port *p)
{
	return weft__ptrylock(&p->iolock);
}

void weft__port_io_unlock(weft_port *p)
{
	weft__punlock(&p->iolock);
}

int weft__sendfile_some(struct weft__op *op)
{
	weft_overlapped *ov = weft__ov_of(op);
	while (op->done < op->len) {
		off_t off = (off_t)(ov->offset + op->done);
		ssize_t n = sendfile(op->fd, op->file_fd, &off, op->len - op->done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (n == 0)
			return 0; /* end of file */
		op->done += (uint32_t)n;
	}
	return 0;
}

/* ---- the backend and its reaper ---- */

static void *reaper_main(void *arg)
{
	weft_port *p = arg;
	p->be->wait(p->bes);
	return NULL;
}

/* Starts the backend and the reaper (io lock held). The reaper blocks every signal:
 * user handlers run on the user's threads, never on the port's. */
static int io_start(weft_port *p)
{
	if (p->io_started)
		return 0;
	int r = p->be->init(p, &p->bes);
	if (r < 0)
		return r;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&p->reaper, NULL, reaper_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		p->be->fini(p->bes);
		return r;
	}
	weft__store_rel(&p->io_started, 1u); /* release: bes is set up (see weft__port_io_poll) */
	return 0;
}

/* ---- solo mode ----
 *
 * A port with one user thread can make that thread the reaper: the function that thread
 * would run (its get loop) runs on the reaper thread instead, and its gets reap the
 * backend themselves (weft__port_io_poll while they spin, the backend's sleep instead
 * of the futex). On io_uring that thread is then the ring's one issuer: a completion
 * costs no hand-off between two threads, and the process runs one thread where it ran
 * two (measured: docs/port.md, weft-server --threads 1). The price: I/O submitted by
 * other threads, and every completion, waits while the solo function is busy outside
 * get, so it suits a port whose one thread does all the work. On epoll the thread then
 * sleeps in epoll_wait itself: one thread instead of two there too. */
enum { SOLO_NONE, SOLO_ASKED, SOLO_RUNNING, SOLO_DONE };
static _Thread_local weft_port *t_solo; /* the port whose solo function this thread runs */

/* Internal API for the server framework (net/): declared there. Runs fn(arg) on p's
 * reaper thread (starting the backend if it is not yet), once. 0; -ENOTSUP when the
 * backend cannot, -EBUSY when a solo function was already given, -ESHUTDOWN
 * after close, or the backend's start failure. Wait for fn's end with
 * weft__port_solo_join before weft_port_close. */
WEFT_INTERNAL int weft__port_solo(weft_port *p, void (*fn)(void *), void *arg);
WEFT_INTERNAL void weft__port_solo_join(weft_port *p);

int weft__port_solo(weft_port *p, void (*fn)(void *), void *arg)
{
	if (!p || !fn)
		return -EINVAL;
	weft__plock(&p->iolock);
	int r = p->io_closed ? -ESHUTDOWN : io_start(p);
	/* relaxed: set once, under this lock; the reaper's later stores only move it on */
	if (r == 0 && weft__load_rlx(&p->solo_state) != SOLO_NONE)
		r = -EBUSY;
	if (r == 0 && !p->be->solo)
		r = -ENOTSUP;
	if (r == 0) {
		p->solo_fn = fn;
		p->solo_arg = arg;
		/* relaxed: the backend's flag publishes fn and arg to the reaper */
		weft__store_rlx(&p->solo_state, (uint32_t)SOLO_ASKED);
		r = p->be->solo(p->bes);
		if (r < 0)
			weft__store_rlx(&p->solo_state, (uint32_t)SOLO_NONE);
	}
	weft__punlock(&p->iolock);
	return r;
}

void weft__port_run_solo(weft_port *p)
{
	weft__store_rlx(&p->solo_state, (uint32_t)SOLO_RUNNING); /* relaxed: only join reads it */
	t_solo = p;
	p->solo_fn(p->solo_arg);
	t_solo = NULL;
	/* The thread leaves the port (its association, counted as released, would only end
	 * with the thread), so the reaper goes on as before. */
	weft__port_leave_thread();
	/* release: what fn did; pairs with the acquire in weft__port_solo_join */
	weft__store_rel(&p->solo_state, (uint32_t)SOLO_DONE);
	weft__futex_wake(&p->solo_state, 1);
}

void weft__port_solo_join(weft_port *p)
{
	uint32_t v;
	/* acquire: pairs with the release in weft__port_run_solo */
	while ((v = weft__load_acq(&p->solo_state)) != SOLO_DONE && v != SOLO_NONE)
		weft__futex_wait(&p->solo_state, v, NULL);
}

int weft__port_io_solo_fd(weft_port *p)
{
	return t_solo == p ? p->be->kick_fd(p->bes) : -1;
}

int weft__port_io_solo_sleep(weft_port *p, const uint32_t *word, uint32_t sleeping, const struct timespec *dl)
{
	return p->be->sleep(p->bes, word, sleeping, dl);
}

/* ---- the device list ---- */

/* The fd -> device table. Entries go from NULL to a device once (under the io lock,
 * release) and a device is never freed before the port, so a reader without the lock
 * (the fast path) sees either NULL (then takes the locked path) or a device whose active
 * flag tells whether it may be used. */
struct weft__devtab {
	struct weft__devtab *old; /* the table this one replaced (freed with the port) */
	uint32_t n;
	struct weft__device *d[];
};

/* Any thread: the device slot of fd, or NULL. acquire: pairs with the release stores
 * in devs_grow and associate_locked. */
static struct weft__device *dev_peek(weft_port *p, int fd)
{
	struct weft__devtab *t = weft__load_acq(&p->devtab);
	if (!t || fd < 0 || (uint32_t)fd >= t->n)
		return NULL;
	return weft__load_acq(&t->d[fd]);
}

/* Io lock held: the associated device of fd, or NULL. */
static struct weft__device *dev_get(weft_port *p, int fd)
{
	struct weft__device *dev = dev_peek(p, fd);
	return dev && dev->active ? dev : NULL;
}

static int devs_grow(weft_port *p, int fd)
{
	struct weft__devtab *t = p->devtab;
	uint32_t have = t ? t->n : 0;
	if ((uint32_t)fd < have)
		return 0;
	uint32_t n = have ? have : 64;
	while (n <= (uint32_t)fd)
		n *= 2;
	struct weft__devtab *nt = calloc(1, sizeof *nt + sizeof nt->d[0] * n);
	if (!nt)
		return -ENOMEM;
	nt->n = n;
	nt->old = t;
	for (uint32_t i = 0; i < have; i++)
		nt->d[i] = t->d[i];
	/* release: publishes the copied entries to dev_peek. */
	weft__store_rel(&p->devtab, nt);
	return 0;
}

static int associate_locked(weft_port *p, int fd, uintptr_t key)
{
	if (p->io_closed)
		return -ESHUTDOWN;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	int r = io_start(p);
	if (r == 0)
		r = devs_grow(p, fd);
	if (r < 0)
		return r;
	struct weft__device *dev = p->devtab->d[fd];
	if (dev && dev->active)
		return -EEXIST;
	if (!dev) {
		dev = calloc(1, sizeof *dev);
		if (!dev)
			return -ENOMEM;
		/* release: the zeroed device, to dev_peek */
		weft__store_rel(&p->devtab->d[fd], dev);
	}
	struct stat st;
	bool is_file = fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
	/* Field by field: a reused entry keeps its backend area, which a late event from
	 * the previous fd with this number may be looking at (under the backend's lock;
	 * its queues are empty since disassociate). */
	dev->fd = fd;
	dev->key = key;
	weft__store_rlx(&dev->is_file, (uint8_t)is_file); /* the fast path's hint reads it */
	dev->seekable = is_file || lseek(fd, 0, SEEK_CUR) >= 0;
	/* Sockets and pipes become non-blocking (the epoll backend's tries must not
	 * block; io_uring polls them either way). Regular files stay as they are: io_uring
	 * would answer -EAGAIN for an uncached read on an O_NONBLOCK file instead of
	 * running it in its worker pool. */
	if (!is_file && !(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	r = p->be->attach(p->bes, dev);
	if (r < 0)
		return r;
	/* release: publishes fd, key, is_file, seekable to the fast path (its acquire
	 * load of active in op_submit_fast). */
	weft__store_rel(&dev->active, 1u);
	return 0;
}

int weft_port_associate(weft_port *p, int fd, uintptr_t key)
{
	if (fd < 0)
		return -EBADF;
	weft__plock(&p->iolock);
	int r = associate_locked(p, fd, key);
	weft__punlock(&p->iolock);
	return r;
}

/* ---- the fast path: file reads and writes without the io lock ----
 *
 * A read or write at an offset on a regular file needs no FIFO and, when the page cache
 * has what it needs, no kernel queue either: the submitting thread makes the one non-
 * blocking system call (try_fast) and queues the packet itself. Doing that under the io
 * lock would serialize every submitter of the port on a ~0.5 us system call (measured:
 * 2 threads reading through one port got less done than 1), so it runs without it.
 *
 * Pinning: the submitter raises dev->fast, then checks that the device is still active
 * and the port still open; disassociate and close clear those, then wait for fast to
 * drop to 0 (fast_drain). Sequentially consistent accesses on both sides (Dekker: write
 * one word, read the other) make sure that at least one of the two sees the other: the
 * submitter backs off, or the closer waits for it. So an fd
 * is never touched by the port after disassociate returned, and every fast operation
 * has queued its packet before close goes on. An operation that completes here is never
 * on the in-flight list: weft_port_cancel on it returns -ENOENT. One that would block
 * (-EAGAIN) takes the locked path with op->tried set, still pinned (the device cannot
 * go away in between), and unpins once it is linked there. */

/* dev->fast: bits 0-30 count the pinning submitters; FAST_WAIT is set by a drainer
 * about to sleep on the word. */
#define FAST_WAIT 0x80000000u

/* The decrement is the submitter's last access to dev and the port: once the count is
 * 0, close may free both. The wake after it may then hit freed memory: a futex wake
 * only uses the address, and every weft futex waiter re-checks its word. */
static void fast_unpin(struct weft__device *dev)
{
	/* release: the submitter's work on dev and its fd happened before; pairs with the
	 * acquire loads in fast_drain. */
	if (weft__fsub_rel(&dev->fast, 1u) == (FAST_WAIT | 1u))
		weft__futex_wake(&dev->fast, INT32_MAX);
}

/* Waits until no fast-path submitter works on dev (its active flag cleared or the
 * port's io_closed set by the caller). Io lock held; dropped while sleeping, since a
 * submitter whose try would block goes on to take it while still pinned (it then sees
 * the device gone and completes its op with -ECANCELED). */
static void fast_drain(weft_port *p, struct weft__device *dev)
{
	for (;;) {
		/* seq_cst: the Dekker pair with op_submit_fast (see above); acquire for the
		 * release in fast_unpin. */
		uint32_t n = __atomic_load_n(&dev->fast, __ATOMIC_SEQ_CST);
		if ((n & ~FAST_WAIT) == 0)
			break;
		if (!(n & FAST_WAIT)) {
			/* same-word RMWs: either this lands first and the last unpin wakes,
			 * or it fails and the loop looks again */
			weft__cas_acq(&dev->fast, &n, n | FAST_WAIT);
			continue;
		}
		weft__punlock(&p->iolock);
		weft__futex_wait(&dev->fast, n, NULL);
		weft__plock(&p->iolock);
	}
	weft__fand_acqrel(&dev->fast, ~FAST_WAIT); /* a later drain starts clean */
}

/* The state every submission starts from, on either path: op's first stage on dev, not
 * cancelled, nothing done, and the overlapped in progress. (op->res, the bytes a
 * backend parked, is set by op_init and kept across a fast try that falls back.) */
static inline void op_start(struct weft__op *op, struct weft__device *dev, int fd, weft_overlapped *ov)
{
	op->dev = dev;
	op->fd = fd;
	op->cancel = 0;
	op->stage = 0;
	op->bstate = 0;
	op->done = 0;
	op->retries = 0;
	ov->status = -EINPROGRESS;
	ov->bytes = 0;
}

/* Io lock not held. Returns 0 when the op completed (packet queued), 1 when it must be
 * submitted on the locked path (*pinned: dev still pinned, op->tried set), or a
 * negative errno (nothing submitted). */
static int op_submit_fast(weft_port *p, struct weft__device *dev, weft_overlapped *ov,
			  struct weft__op *op)
{
	/* seq_cst, the raise and both loads: the Dekker pair with fast_drain's callers
	 * (their seq_cst store, then fast_drain's seq_cst load); also acquire for the
	 * release store of active in associate_locked. Not fences: TSan has none. */
	__atomic_fetch_add(&dev->fast, 1u, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&dev->active, __ATOMIC_SEQ_CST) || __atomic_load_n(&p->io_closed, __ATOMIC_SEQ_CST) ||
	    !dev->is_file) {
		fast_unpin(dev);
		return 2; /* the locked path decides (-EBADF, -ESHUTDOWN, or a socket) */
	}
	int r = weft__port_reserve(p);
	if (r < 0) {
		fast_unpin(dev);
		return r;
	}
	op_start(op, dev, dev->fd, ov);
	op->tried = 0;
	int res = p->be->try_fast(op);
	if (res == -EAGAIN) {
		op->tried = 1;
		return 1;
	}
	stage_result(op, res); /* a file read or write is one stage */
	op->live = 0;
	weft__port_complete(p, op); /* op is the user's from here on */
	fast_unpin(dev);
	return 0;
}

/* Cancels op (io lock held): at once if the backend took it back, else when its stage
 * reports. */
static void op_cancel(weft_port *p, struct weft__op *op)
{
	if (op->cancel)
		return;
	op->cancel = 1;
	if (p->be->cancel(p->bes, op))
		op_advance(p, op, -ECANCELED);
}

static int cancel_fd_locked(weft_port *p, struct weft__device *dev)
{
	int found = 0;
	struct weft__op *op = p->ops;
	while (op) {
		/* op_cancel may finish op and unlink it: step first */
		struct weft__op *next = op->next;
		if (op->dev == dev) {
			op_cancel(p, op);
			found = 1;
		}
		op = next;
	}
	return found;
}

int weft_port_disassociate(weft_port *p, int fd)
{
	weft__plock(&p->iolock);
	struct weft__device *dev = dev_get(p, fd);
	if (!dev) {
		weft__punlock(&p->iolock);
		return -ENOENT;
	}
	__atomic_store_n(&dev->active, 0u, __ATOMIC_SEQ_CST); /* seq_cst: see fast_drain */
	cancel_fd_locked(p, dev);
	p->be->detach(p->bes, dev);
	uint32_t n;
	/* relaxed: re-read under the io lock before trusting it (see op_finish) */
	while ((n = weft__load_rlx(&dev->nops)) != 0) {
		weft__punlock(&p->iolock);
		/* The solo thread is the reaper: the cancelled operations finish only by its
		 * own rounds, so it reaps until the count moves instead of sleeping on it
		 * (looking again every millisecond: an operation a file helper finishes
		 * wakes the futex, not the backend). */
		if (t_solo == p) {
			struct timespec ms;
			weft__port_io_solo_sleep(p, &dev->nops, n, weft__deadline(&ms, 1));
		} else {
			weft__futex_wait(&dev->nops, n, NULL);
		}
		weft__plock(&p->iolock);
	}
	/* After this, no submitter can link an op to dev: the fast path sees it inactive
	 * (and a pinned one cancels its op), the locked path does not find it. */
	fast_drain(p, dev);
	weft__punlock(&p->iolock);
	return 0;
}

int weft_port_close_fd(weft_port *p, int fd)
{
	int r = weft_port_disassociate(p, fd);
	if (r == 0 && close(fd) < 0)
		r = -errno;
	return r;
}

/* ---- submission ---- */

/* Submits op on fd: the fields for its kind are already set. */
static int op_submit(weft_port *p, int fd, weft_overlapped *ov, struct weft__op *op)
{
	if (!ov)
		return -EINVAL;
	struct weft__device *pinned = NULL;
	if (p->be->try_fast && (op->kind == WEFT__OP_READ || op->kind == WEFT__OP_WRITE)) {
		struct weft__device *dev = dev_peek(p, fd);
		/* relaxed: a hint, checked again once pinned */
		if (dev && weft__load_rlx(&dev->is_file)) {
			int f = op_submit_fast(p, dev, ov, op);
			if (f <= 0)
				return f;
			if (f == 1)
				pinned = dev; /* would block: a slot is reserved, op is set up */
		}
	}
	if (!pinned)
		op->tried = 0;
	weft__plock(&p->iolock);
	struct weft__device *dev = pinned;
	if (!pinned) {
		dev = dev_get(p, fd);
		int r = p->io_closed ? -ESHUTDOWN : !dev ? -EBADF : weft__port_reserve(p);
		if (r < 0) {
			weft__punlock(&p->iolock);
			return r;
		}
	}
	op_start(op, dev, fd, ov);
	op->live = 1;
	op->prev = NULL;
	op->next = p->ops;
	if (p->ops)
		p->ops->prev = op;
	p->ops = op;
	dev->nops++;
	p->inflight++;
	int res;
	if (pinned) {
		/* linked: disassociate and close now see it in nops and the in-flight list */
		fast_unpin(pinned);
		if (!dev->active || p->io_closed) {
			/* they ran between the try and the lock, and wait for the pin: this op
			 * is what they would have cancelled */
			op->cancel = 1;
			op_advance(p, op, -ECANCELED);
			weft__punlock(&p->iolock);
			return 0;
		}
	}
	if (p->be->arm(p->bes, op, &res) == 1)
		op_advance(p, op, res);
	if (p->be->drain)
		p->be->drain(p->bes);
	weft__punlock(&p->iolock);
	return 0;
}

static struct weft__op *op_init(weft_overlapped *ov, enum weft__op_kind kind, void *buf, uint32_t len)
{
	struct weft__op *op = weft__op_of(ov);
	op->kind = (uint8_t)kind;
	op->buf = buf;
	op->len = len;
	op->accepted = NULL;
	op->addr = NULL;
	op->fromlen = NULL;
	op->alen = 0;
	op->file_fd = -1;
	op->res = 0;
	return op;
}

int weft_port_read(weft_port *p, int fd, void *buf, uint32_t len, weft_overlapped *ov)
{
	if (!ov || (!buf && len))
		return -EINVAL;
	return op_submit(p, fd, ov, op_init(ov, WEFT__OP_READ, buf, len));
}

int weft_port_write(weft_port *p, int fd, const void *buf, uint32_t len, weft_overlapped *ov)
{
	if (!ov || (!buf && len))
		return -EINVAL;
	return op_submit(p, fd, ov, op_init(ov, WEFT__OP_WRITE, (void *)buf, len));
}

int weft_port_accept(weft_port *p, int fd, int *accepted, void *buf, uint32_t len, weft_overlapped *ov)
{
	if (!ov || !accepted || (!buf && len))
		return -EINVAL;
	struct weft__op *op = op_init(ov, WEFT__OP_ACCEPT, buf, len);
	op->accepted = accepted;
	*accepted = -1;
	return op_submit(p, fd, ov, op);
}

int weft_port_connect(weft_port *p, int fd, const struct sockaddr *addr, socklen_t addrlen,
		      weft_overlapped *ov)
{
	if (!ov || !addr)
		return -EINVAL;
	struct weft__op *op = op_init(ov, WEFT__OP_CONNECT, NULL, 0);
	/* used only during this call: both backends hand it to the kernel in arm */
	op->addr = (struct sockaddr *)(uintptr_t)addr;
	op->alen = addrlen;
	return op_submit(p, fd, ov, op);
}

int weft_port_recv(weft_port *p, int fd, void *buf, uint32_t len, weft_overlapped *ov)
{
	if (!ov || (!buf && len))
		return -EINVAL;
	return op_submit(p, fd, ov, op_init(ov, WEFT__OP_RECV, buf, len));
}

int weft_port_send(weft_port *p, int fd, const void *buf, uint32_t len, weft_overlapped *ov)
{
	if (!ov || (!buf && len))
		return -EINVAL;
	return op_submit(p, fd, ov, op_init(ov, WEFT__OP_SEND, (void *)buf, len));
}

int weft_port_recvfrom(weft_port *p, int fd, void *buf, uint32_t len, struct sockaddr *from,
		       socklen_t *fromlen, weft_overlapped *ov)
{
	if (!ov || (!buf && len) || (from && !fromlen))
		return -EINVAL;
	struct weft__op *op = op_init(ov, WEFT__OP_RECVFROM, buf, len);
	op->addr = from;
	op->fromlen = fromlen;
	return op_submit(p, fd, ov, op);
}

int weft_port_sendto(weft_port *p, int fd, const void *buf, uint32_t len, const struct sockaddr *to,
		     socklen_t tolen, weft_overlapped *ov)
{
	if (!ov || (!buf && len) || !to)
		return -EINVAL;
	struct weft__op *op = op_init(ov, WEFT__OP_SENDTO, (void *)buf, len);
	/* Copied when it fits (IPv4, IPv6), so the caller's may go away; a longer one
	 * (AF_UNIX paths) must stay valid until the completion. */
	if (tolen <= sizeof op->addr_copy) {
		memcpy(op->addr_copy, to, tolen);
		op->addr = (struct sockaddr *)(void *)op->addr_copy;
	} else {
		op->addr = (struct sockaddr *)(uintptr_t)to;
	}
	op->alen = tolen;
	return op_submit(p, fd, ov, op);
}

int weft_port_sendfile(weft_port *p, int fd, int file_fd, uint32_t len, weft_overlapped *ov)
{
	if (!ov || file_fd < 0)
		return -EINVAL;
	struct weft__op *op = op_init(ov, WEFT__OP_SENDFILE, NULL, len);
	op->file_fd = file_fd;
	return op_submit(p, fd, ov, op);
}

int weft_port_cancel(weft_port *p, int fd, weft_overlapped *ov)
{
	weft__plock(&p->iolock);
	int r = -ENOENT;
	if (ov) {
		struct weft__op *op = weft__op_of(ov);
		/* live, and on fd: only then is the op ours to look at (see op_finish) */
		bool mine = false;
		for (struct weft__op *o = p->ops; o; o = o->next)
			if (o == op) {
				mine = o->dev->fd == fd;
				break;
			}
		if (mine) {
			op_cancel(p, op);
			r = 0;
		}
	} else {
		struct weft__device *dev = dev_get(p, fd);
		if (dev && cancel_fd_locked(p, dev))
			r = 0;
	}
	weft__punlock(&p->iolock);
	return r;
}

/* ---- close ---- */

void weft__port_io_close(weft_port *p)
{
	weft__plock(&p->iolock);
	__atomic_store_n(&p->io_closed, 1u, __ATOMIC_SEQ_CST); /* seq_cst: see fast_drain */
	for (struct weft__op *op = p->ops; op;) {
		struct weft__op *next = op->next;
		op_cancel(p, op);
		op = next;
	}
	uint32_t n;
	/* relaxed: re-read under the io lock (see op_finish) */
	while ((n = weft__load_rlx(&p->inflight)) != 0) {
		weft__punlock(&p->iolock);
		weft__futex_wait(&p->inflight, n, NULL);
		weft__plock(&p->iolock);
	}
	/* The table cannot grow meanwhile: associate fails once io_closed is set. */
	struct weft__devtab *tab = p->devtab;
	for (uint32_t fd = 0; tab && fd < tab->n; fd++)
		if (tab->d[fd])
			fast_drain(p, tab->d[fd]);
	bool started = p->io_started;
	if (started)
		p->be->wake(p->bes);
	weft__store_rlx(&p->io_started, 0u); /* pollers re-check it under the io lock */
	weft__punlock(&p->iolock);
	if (started) {
		pthread_join(p->reaper, NULL);
		struct weft__devtab *t = p->devtab;
		for (uint32_t fd = 0; t && fd < t->n; fd++)
			if (t->d[fd] && t->d[fd]->active)
				p->be->detach(p->bes, t->d[fd]);
		p->be->fini(p->bes);
	}
}

void weft__port_io_poll(weft_port *p)
{
	/* relaxed: a hint; whether the backend still exists is decided under the lock,
	 * which close holds while it clears io_started, before it frees anything. */
	if (!p->be->poll || !weft__load_rlx(&p->io_started) || !weft__ptrylock(&p->iolock))
		return;
	if (p->io_started)
		p->be->poll(p->bes);
	weft__punlock(&p->iolock);
}

void weft__port_io_free(weft_port *p)
{
	struct weft__devtab *t = p->devtab;
	for (uint32_t fd = 0; t && fd < t->n; fd++)
		free(t->d[fd]);
	while (t) {
		struct weft__devtab *old = t->old;
		free(t);
		t = old;
	}
}
