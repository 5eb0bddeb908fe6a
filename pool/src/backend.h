/* backend.h - what port.c asks of an I/O backend, and the state an operation carries.
 *
 * port.c owns everything backend-neutral: the completion queue, the waiting threads, the
 * concurrency accounting, the device list, the list of operations in flight, the
 * multi-stage operations (send until every byte is out, accept then first bytes,
 * sendfile in chunks) and cancellation bookkeeping. A backend only starts one stage of an
 * operation (arm), asks the kernel to stop one (cancel), and reports each finished stage
 * to weft__port_stage_done() from the port's reaper thread (wait).
 */
#ifndef WEFT_BACKEND_H
#define WEFT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <weft/pool.h>

#include "atomic.h"
#include "internal.h"

enum weft__op_kind {
	WEFT__OP_READ,
	WEFT__OP_WRITE,
	WEFT__OP_ACCEPT,
	WEFT__OP_CONNECT,
	WEFT__OP_RECV,
	WEFT__OP_SEND,
	WEFT__OP_RECVFROM,
	WEFT__OP_SENDTO,
	WEFT__OP_SENDFILE,
};

struct weft__device;

/* The private view of weft_overlapped._private: one operation. The submitter fills it
 * before arm; afterwards it is touched under the port's io lock (links, stages, cancel)
 * or by the backend that holds the current stage (its queues, under its own locks). */
struct weft__op {
	struct weft__op *next, *prev; /* the port's in-flight list (io lock) */
	struct weft__op *qnext;	      /* a backend's own queue (epoll: per-fd FIFO) */
	struct weft__op *bnext;	      /* a backend's second queue (uring: the SQ backlog) */
	struct weft__device *dev;
	void *buf;
	int *accepted;	       /* accept: where the new socket goes */
	struct sockaddr *addr; /* recvfrom: the sender; sendto/connect: the destination */
	socklen_t *fromlen;    /* recvfrom */
	socklen_t alen;	       /* sendto/connect: address length */
	int fd;		       /* the fd the current stage works on (accept: then the new socket) */
	int file_fd;	       /* sendfile: source */
	uint32_t len, done;    /* done: bytes finished by earlier stages */
	int32_t res;	       /* a stage result parked by a backend */
	uint8_t kind;	       /* enum weft__op_kind */
	uint8_t stage;	       /* accept: 0 accepting, 1 reading the first bytes */
	uint8_t bstate;	       /* backend-private (epoll connect: 1 in progress) */
	uint8_t live;	       /* submitted and not yet completed (io lock) */
	uint8_t cancel;	       /* cancel requested (io lock); uring: requests sent, 1.. */
	uint8_t retries;       /* stages retried in a row without progress (-EAGAIN) */
	uint8_t tried;	       /* the fast path already tried this stage inline (-EAGAIN) */
	struct msghdr msg;     /* io_uring recvmsg/sendmsg: must live until the CQE */
	struct iovec iov;
	uint64_t addr_copy[4]; /* sendto: the address, when it fits */
};
_Static_assert(sizeof(struct weft__op) <= sizeof(((weft_overlapped *)0)->_private), "op fits in overlapped");

static inline struct weft__op *weft__op_of(weft_overlapped *ov)
{
	return (struct weft__op *)(void *)ov->_private;
}
static inline weft_overlapped *weft__ov_of(struct weft__op *op)
{
	return weft_container_of((uint64_t *)(void *)op, weft_overlapped, _private);
}

/* One entry of the device list. Never freed before the port, so a backend may keep its
 * address in the kernel (epoll data) and meet it in a late event after disassociate. */
struct weft__device {
	int fd;
	uint32_t active;  /* 1 while associated (written under the io lock, atomically: the
			   * fast path reads it without the lock) */
	uint32_t nops;	  /* operations in flight on fd (io lock; futex for disassociate) */
	uint32_t fast;	  /* atomic: fast-path submitters working on fd without the io lock
			   * (futex for disassociate and close; see op_submit_fast) */
	uint8_t is_file;  /* a regular file (epoll cannot poll it) */
	uint8_t seekable; /* reads and writes use ov->offset */
	uintptr_t key;
	uint64_t be_area[6]; /* the backend's per-fd state */
};

struct weft__backend_ops {
	const char *name;
	/* Creates the backend's state for port (NULL: a probe); 0 or a negative errno. */
	int (*init)(weft_port *port, void **be);
	void (*fini)(void *be);
	/* fd joins / leaves the device list (epoll: register / deregister). */
	int (*attach)(void *be, struct weft__device *dev);
	void (*detach)(void *be, struct weft__device *dev);
	/* Starts the current stage of op, under the port's io lock. Returns 1 when the
	 * stage finished at once (result in *res), 0 when it will be reported later
	 * through weft__port_stage_done (never from inside arm). */
	int (*arm)(void *be, struct weft__op *op, int *res);
	/* Optional: the fast path, without the io lock, for a read or write on a regular
	 * file (offsets make their order irrelevant, so no FIFO is needed): one attempt
	 * that never blocks. Returns the stage's result (bytes or a negative errno), or
	 * -EAGAIN when it would block: the op then takes the locked path (op->tried set).
	 * Touches nothing but op, its device's fixed fields and the fd. */
	int (*try_fast)(struct weft__op *op);
	/* Stops op (marked cancelled), under the io lock. Returns true when it took the
	 * op back before its stage finished (port.c completes it with -ECANCELED); false
	 * when the stage will still be reported, exactly once, perhaps with -ECANCELED. */
	bool (*cancel)(void *be, struct weft__op *op);
	/* Optional: turns a reported result into the stage's result, under the io lock
	 * (the reaper reads the op only there: the kernel's completion is no ordering a
	 * race detector knows of, the io lock is). */
	int (*reap)(void *be, struct weft__op *op, int res);
	/* Optional: reports, through weft__port_stage_done_locked, every stage that has
	 * already finished; called with the io lock held right after a submission, so an
	 * operation the kernel completed during the submit (a read from the page cache, a
	 * recv of buffered data) reaches the queue without a hop through the reaper. */
	void (*drain)(void *be);
	/* Optional: drains what is ready without blocking, io lock held; called by a
	 * waiting thread while it spins, so a completion that lands meanwhile goes to it
	 * without waiting for the reaper to be scheduled. */
	void (*poll)(void *be);
	/* Optional: op is done for good (its last stage reported, or taken back by
	 * cancel), io lock held, right before its packet is queued: a backend that runs one
	 * operation per side of an fd at a time starts the next here. Must not report. */
	void (*finish)(void *be, struct weft__op *op);
	/* The reaper loop: waits for finished stages and reports them, until stopped. */
	void (*wait)(void *be);
	/* Optional, the solo mode (weft__port_solo): asks the reaper to call
	 * weft__port_run_solo from its loop, so the port's one user thread is the reaper
	 * itself; 0, or -ENOTSUP when this backend's reaper cannot. Under the io lock. */
	int (*solo)(void *be);
	/* Solo mode, on the reaper thread inside weft_port_get: one round of reaping,
	 * sleeping first (until a completion, a write to kick_fd, or the deadline, NULL:
	 * none) only when nothing is left to submit or reap and *word is still `sleeping`.
	 * 0, or -ETIMEDOUT when the deadline passed with *word unchanged. */
	int (*sleep)(void *be, const uint32_t *word, uint32_t sleeping, const struct timespec *dl);
	/* Solo mode: the fd a waker writes 8 bytes to, to end sleep. */
	int (*kick_fd)(void *be);
	/* Stops wait (the port is closing, nothing is in flight); under the io lock. */
	void (*wake)(void *be);
};

extern const struct weft__backend_ops weft__backend_epoll;
extern const struct weft__backend_ops weft__backend_uring; /* absent if WEFT_IO_URING=OFF */

/* Called by a reaper (no backend lock held) for each stage that finished later than
 * arm: res is bytes / a new fd / 0, or a negative errno. */
WEFT_INTERNAL void weft__port_stage_done(weft_port *port, struct weft__op *op, int res);
/* The same, with the port's io lock already held (drain). */
WEFT_INTERNAL void weft__port_stage_done_locked(weft_port *port, struct weft__op *op, int res);
/* True when op is still in flight (io lock held), found by address in the in-flight
 * list, so any pointer may be asked about: one that finished may already be reused,
 * and only a live op's fields may be read. */
WEFT_INTERNAL bool weft__port_op_live(weft_port *port, struct weft__op *op);
/* Called by a reaper asked for it (ops->solo), from its loop: runs the solo function
 * (the port's one user thread, weft__port_solo) on the reaper thread, then returns. */
WEFT_INTERNAL void weft__port_run_solo(weft_port *port);
/* The port's io lock, for a reaper that drains under it. */
WEFT_INTERNAL void weft__port_io_lock(weft_port *port);
WEFT_INTERNAL bool weft__port_io_trylock(weft_port *port);
WEFT_INTERNAL void weft__port_io_unlock(weft_port *port);

/* sendfile(2) from op->file_fd at ov->offset + op->done to op->fd, until all is sent
 * (0), end of file (0), the socket is full (-EAGAIN) or an error; advances op->done.
 * Shared by both backends. */
WEFT_INTERNAL int weft__sendfile_some(struct weft__op *op);

/* After its last completion a reaper keeps polling (without sleeping) this long: a
 * request/response exchange then never waits for a sleeping reaper to be scheduled
 * (~10-40 us on a busy VM), and an idle port costs at most this much CPU. */
#define WEFT__REAPER_SPIN_NS 30000u

/* Milliseconds left until the CLOCK_MONOTONIC deadline dl, rounded up so a sleep never
 * ends before it (0: passed; -1: no deadline), for poll and epoll_wait. */
static inline int weft__ms_left(const struct timespec *dl)
{
	if (!dl)
		return -1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t left = (int64_t)(dl->tv_sec - now.tv_sec) * 1000000000 + (dl->tv_nsec - now.tv_nsec);
	if (left <= 0)
		return 0;
	return left >= (int64_t)INT32_MAX * 1000000 ? INT32_MAX : (int)((left + 999999) / 1000000);
}

static inline uint64_t weft__now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A small futex mutex (0 free, 1 held, 2 held with sleepers) that never calls the
 * blocking hook: the hook itself takes the port's, and each is only held for a few
 * loads, stores and non-blocking system calls. */
WEFT_INTERNAL void weft__plock_slow(uint32_t *l);
WEFT_INTERNAL void weft__punlock_slow(uint32_t *l);
static inline void weft__plock(uint32_t *l)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in weft__punlock. */
	if (!weft__cas_acq(l, &z, 1u))
		weft__plock_slow(l);
}
static inline bool weft__ptrylock(uint32_t *l)
{
	uint32_t z = 0;
	/* acquire: as in weft__plock. */
	return weft__load_rlx(l) == 0 && weft__cas_acq(l, &z, 1u);
}
static inline void weft__punlock(uint32_t *l)
{
	/* release: publishes the critical section to the next weft__plock. */
	if (weft__xchg_rel(l, 0u) == 2)
		weft__punlock_slow(l);
}

#endif
