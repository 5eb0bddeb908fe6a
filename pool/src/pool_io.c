/* pool_io.c - I/O objects (CreateThreadpoolIo): completions of asynchronous operations on
 * one fd, dispatched to a callback on a pool thread.
 *
 * The fd is associated with the pool's port under the I/O object's address as key, so a
 * worker recognises an I/O completion by a key that is none of the pool's packet tags.
 * Like StartThreadpoolIo, every operation is announced first (weft_pool_io_start, done by
 * the helpers below): it counts as outstanding and holds a reference on the object until
 * its callback returned, so a close with operations in flight frees nothing under them,
 * and wait knows what to wait for. An operation that failed to start is withdrawn
 * (weft_pool_io_abandon) instead.
 */
#include <errno.h>
#include <stdlib.h>

#include "pool_internal.h"

static void io_member_close(struct weft__tp_obj *o, bool cancel_pending)
{
	weft_pool_io *io = (weft_pool_io *)(void *)o;
	weft_pool_io_wait(io, cancel_pending);
	weft_pool_io_close(io);
}

weft_pool_io *weft_pool_io_create(weft_pool *p, int fd, weft_pool_io_fn fn, void *arg)
{
	if (!p || !fn || fd < 0)
		return NULL;
	weft_pool_io *io = calloc(1, sizeof *io);
	if (!io)
		return NULL;
	weft__tp_obj_init(&io->obj, p, WEFT__TP_IO, NULL, arg);
	io->obj.member_close = io_member_close;
	io->fd = fd;
	io->cb = fn;
	if (weft_port_associate(p->port, fd, (uintptr_t)io) < 0) {
		free(io);
		return NULL;
	}
	return io;
}

weft_port *weft_pool_port(weft_pool *p)
{
	return p ? p->port : NULL;
}

int weft_pool_io_fd(weft_pool_io *io)
{
	return io->fd;
}

void weft_pool_io_start(weft_pool_io *io)
{
	weft__fadd_acqrel(&io->obj.outstanding, 1);
	weft__tp_obj_ref(&io->obj);
}

void weft_pool_io_abandon(weft_pool_io *io)
{
	weft__tp_obj_done(&io->obj, 1);
	weft__tp_obj_unref(&io->obj);
}

void weft__tp_io_completion(weft_pool_io *io, weft_overlapped *ov, uint32_t bytes)
{
	io->cb(io->obj.arg, ov, ov ? ov->status : 0, bytes);
	weft__tp_obj_done(&io->obj, 1);
	weft__tp_obj_unref(&io->obj);
}

void weft_pool_io_wait(weft_pool_io *io, bool cancel_pending)
{
	if (cancel_pending)
		weft_port_cancel(io->obj.pool->port, io->fd, NULL);
	weft__tp_obj_wait(&io->obj, false);
}

void weft_pool_io_close(weft_pool_io *io)
{
	if (!io)
		return;
	/* Every operation still pending completes with -ECANCELED (its callback runs); the fd
	 * stays open and is the caller's to close. */
	weft_port_disassociate(io->obj.pool->port, io->fd);
	weft__tp_obj_close(&io->obj);
}

/* Start + operation + abandon on failure, for each asynchronous operation. */
#define IO_OP(call)                                    \
	do {                                           \
		weft_pool_io_start(io);                \
		int r_ = (call);                       \
		if (r_ < 0)                            \
			weft_pool_io_abandon(io);      \
		return r_;                             \
	} while (0)

int weft_pool_io_read(weft_pool_io *io, void *buf, uint32_t len, weft_overlapped *ov)
{
	IO_OP(weft_port_read(io->obj.pool->port, io->fd, buf, len, ov));
}

int weft_pool_io_write(weft_pool_io *io, const void *buf, uint32_t len, weft_overlapped *ov)
{
	IO_OP(weft_port_write(io->obj.pool->port, io->fd, buf, len, ov));
}

int weft_pool_io_recv(weft_pool_io *io, void *buf, uint32_t len, weft_overlapped *ov)
{
	IO_OP(weft_port_recv(io->obj.pool->port, io->fd, buf, len, ov));
}

int weft_pool_io_send(weft_pool_io *io, const void *buf, uint32_t len, weft_overlapped *ov)
{
	IO_OP(weft_port_send(io->obj.pool->port, io->fd, buf, len, ov));
}

int weft_pool_io_accept(weft_pool_io *io, int *accepted, void *buf, uint32_t len, weft_overlapped *ov)
{
	IO_OP(weft_port_accept(io->obj.pool->port, io->fd, accepted, buf, len, ov));
}

int weft_pool_io_connect(weft_pool_io *io, const struct sockaddr *addr, socklen_t addrlen, weft_overlapped *ov)
{
	IO_OP(weft_port_connect(io->obj.pool->port, io->fd, addr, addrlen, ov));
}
