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

#include <weft/pool.h>

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

/* The private view of weft_overlapped._private: one operation. All fields are written
 * by the submitting thread before arm and then only by the reaper (stage results) or
 * under the port's io lock (links, cancel), so no field needs atomics except cancel,
 * which the reaper reads while a canceller may set it. */
struct weft__op {
	struct weft__op *next, *prev; /* the port's in-flight list (io lock) */
	struct weft__op *qnext;	      /* a backend's own queue (epoll: per-fd FIFO) */
	struct weft__device *dev;
	int fd;			/* the fd the current stage works on (accept: then the new socket) */
	uint8_t kind;		/* enum weft__op_kind */
	uint8_t stage;		/* accept: 0 accepting, 1 reading the first bytes */
	uint8_t addrlen;	/* sendto: bytes of addr used; connect: the same */
	uint8_t pad0;
	uint32_t cancel;	/* 1 once cancelled (atomic) */
	uint32_t file_fd;	/* sendfile: source */
	void *buf;
	uint32_t len, done;	/* done: bytes finished by earlier stages */
	int *accepted;		/* accept: where the new socket goes */
	struct sockaddr *from;	/* recvfrom */
	socklen_t *fromlen;
	struct msghdr msg;	/* io_uring recvmsg/sendmsg: must live until the CQE */
	struct iovec iov;
	uint64_t addr[4];	/* sendto/connect: a copy of the address (up to 32 bytes) */
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
	uint32_t active; /* 1 while associated (io lock) */
	uintptr_t key;
	uint64_t be_area[12]; /* the backend's per-fd state */
};

struct weft__backend_ops {
	const char *name;
	/* Creates the backend's state for port; 0 or a negative errno (the probe). */
	int (*init)(weft_port *port, void **be);
	void (*fini)(void *be);
	/* fd joins / leaves the device list (epoll: register / deregister). */
	int (*attach)(void *be, struct weft__device *dev);
	void (*detach)(void *be, struct weft__device *dev);
	/* Starts the current stage of op. Returns 0 when the stage will be reported through
	 * weft__port_stage_done, or a negative errno when it could not start (port.c then
	 * completes the op with that error). */
	int (*arm)(void *be, struct weft__op *op);
	/* Asks the kernel to stop op (already marked cancelled); the stage still reports,
	 * exactly once, possibly with its normal result. */
	void (*cancel)(void *be, struct weft__op *op);
	/* The reaper: waits for finished stages and reports them, until wake + stopping. */
	void (*wait)(void *be);
	/* Makes wait return (the port is closing). */
	void (*wake)(void *be);
};

extern const struct weft__backend_ops weft__backend_epoll;
extern const struct weft__backend_ops weft__backend_uring; /* absent if WEFT_IO_URING=OFF */

/* Called by the reaper for each finished stage (res: bytes / fd, or a negative errno).
 * Returns true when op needs another stage: the backend must then arm it again (the
 * epoll backend simply retries it at once). */
WEFT_INTERNAL bool weft__port_stage_done(weft_port *port, struct weft__op *op, int res);

/* True once the reaper should leave wait (the port is closing and nothing is in flight). */
WEFT_INTERNAL bool weft__port_reaper_stop(weft_port *port);

#endif
