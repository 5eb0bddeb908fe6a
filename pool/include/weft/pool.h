/* weft/pool.h - the I/O completion port (and, beside it, the thread pool).
 *
 * A port is the Windows completion port, built from its five structures: the device
 * list (fd -> key, weft_port_associate), the I/O completion queue (weft_port_post and
 * every finished asynchronous operation), the waiting threads (woken last-in first-out:
 * the most recent waiter has the warmest cache), the released threads (returned from a
 * get and not yet back in one; held at or under the port's concurrency) and the paused
 * threads (released threads that blocked in a weft primitive: they stop counting until
 * they wake, when the port may briefly run over its limit, as on Windows).
 *
 * Asynchronous operations take a weft_overlapped that the caller embeds in its own
 * per-I/O context; weft_container_of(ov, type, member) recovers the context when the
 * completion comes out of weft_port_get. Backends: io_uring where the kernel allows it,
 * epoll otherwise; WEFT_BACKEND=uring|epoll in the environment forces one.
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <weft/sync.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_port weft_port;

/* One asynchronous operation in flight. Embed it in a per-I/O context; it must stay
 * alive and untouched from submission until it comes out of a get. offset is read for
 * file reads, writes and sendfile; status (0 or a negative errno) and bytes hold the
 * result once the completion is dequeued. The private area is the operation's state. */
typedef struct weft_overlapped {
	uint64_t _private[28];
	int32_t status;
	uint32_t bytes;
	uint64_t offset;
} weft_overlapped;
WEFT__STATIC_ASSERT(sizeof(weft_overlapped) == 240, "weft_overlapped ABI");

/* One dequeued packet, as GetQueuedCompletionStatusEx's OVERLAPPED_ENTRY. */
typedef struct weft_completion {
	uint32_t bytes;
	uintptr_t key;
	weft_overlapped *ov;
} weft_completion;

/* Creates a port whose released threads are held at or under concurrency (0: the
 * number of online CPUs). Picks the I/O backend (see weft_port_backend). NULL when out
 * of memory. */
WEFT_API weft_port *weft_port_create(uint32_t concurrency);

/* The backend serving the port's asynchronous operations: "uring" or "epoll". */
WEFT_API const char *weft_port_backend(const weft_port *p);
/* True when the named backend ("uring", "epoll") works on this machine. With
 * WEFT_BACKEND naming a backend that does not, weft_port_create returns NULL. */
WEFT_API bool weft_port_backend_available(const char *name);

/* Adds fd to the device list: completions of operations on fd carry key. A socket or
 * pipe is switched to non-blocking mode (a regular file is left alone). -EEXIST if fd
 * is already associated, -EBADF for a negative or closed fd, -ESHUTDOWN once the port
 * is closed. The first associate starts the port's backend and its reaper thread. */
WEFT_API int weft_port_associate(weft_port *p, int fd, uintptr_t key);

/* Removes fd from the device list: every operation still pending on fd completes with
 * -ECANCELED (exactly once) and the call returns once none is left in the kernel, so the
 * caller may then close(fd) and reuse the number. -ENOENT if fd is not associated.
 * Never close an associated fd behind the port's back: its operations could then only
 * complete when the port is closed. */
WEFT_API int weft_port_disassociate(weft_port *p, int fd);
/* weft_port_disassociate, then close(fd). */
WEFT_API int weft_port_close_fd(weft_port *p, int fd);

/* Queues a user packet (PostQueuedCompletionStatus); ov is returned as given, not
 * touched. Wakes the most recent waiter if the concurrency allows. -ESHUTDOWN once the
 * port is closed, -ENOMEM if the queue cannot grow. Never blocks. */
WEFT_API int weft_port_post(weft_port *p, uint32_t bytes, uintptr_t key, weft_overlapped *ov);

/* Dequeues one packet (GetQueuedCompletionStatus): 0 and the packet in the outputs,
 * -ETIMEDOUT once timeout_ms (WEFT_INFINITE: none; 0: poll) passes, -ESHUTDOWN once the
 * port is closed and drained. The calling thread becomes one of the port's threads: it
 * counts against the concurrency from the time it returns until it calls get again
 * (except while it blocks in a weft primitive). Spins briefly, then sleeps. */
WEFT_API int weft_port_get(weft_port *p, uint32_t *bytes, uintptr_t *key, weft_overlapped **ov,
			   uint32_t timeout_ms);

/* Dequeues up to max packets at once (GetQueuedCompletionStatusEx) into out, their
 * number in *count. Returns as weft_port_get; alertable: the calling thread's queued APCs
 * run while it waits and the call then returns WEFT_WAIT_IO_COMPLETION with *count 0. */
WEFT_API int weft_port_get_many(weft_port *p, weft_completion *out, uint32_t max, uint32_t *count,
				uint32_t timeout_ms, bool alertable);

/* Closes the port: later posts and operations fail with -ESHUTDOWN, every operation in
 * flight is cancelled and completes (with -ECANCELED, or its result if it finished
 * first) into the queue before close returns, and every waiter wakes. Gets after close
 * never wait: they return what is still queued, then -ESHUTDOWN. The memory is freed
 * when the last thread that used the port lets go of it (it calls get on another port
 * or exits), so a late get from a port thread is safe; other threads must not use p once
 * close returned. */
WEFT_API void weft_port_close(weft_port *p);

/* ---------------------------------------------------------------------------------------
 * Asynchronous operations. Each returns 0 when the operation was submitted: it will then
 * complete onto the port exactly once (result in ov->status and ov->bytes, key of fd),
 * whatever happens (error, cancel, disassociate, port close). A negative return means
 * nothing was submitted: -EBADF (fd not associated), -EINVAL, -ESHUTDOWN. Buffers must
 * stay valid until the completion is dequeued.
 * ------------------------------------------------------------------------------------- */

/* pread / pwrite at ov->offset (for pipes and sockets the offset is ignored). */
WEFT_API int weft_port_read(weft_port *p, int fd, void *buf, uint32_t len, weft_overlapped *ov);
WEFT_API int weft_port_write(weft_port *p, int fd, const void *buf, uint32_t len, weft_overlapped *ov);

/* Accepts a connection on listening socket fd (AcceptEx, pre-posted: post several to
 * take a burst). The new socket (close-on-exec, blocking mode untouched) goes to
 * *accepted before the completion is queued. With len > 0 the operation also waits for
 * the first bytes and completes once up to len of them landed in buf (bytes: how many;
 * 0 if the peer closed first). */
WEFT_API int weft_port_accept(weft_port *p, int fd, int *accepted, void *buf, uint32_t len,
			      weft_overlapped *ov);

/* Connects socket fd (ConnectEx); addr is copied during the call. */
WEFT_API int weft_port_connect(weft_port *p, int fd, const struct sockaddr *addr, socklen_t addrlen,
			       weft_overlapped *ov);

/* Receives up to len bytes (0 bytes: the peer closed). */
WEFT_API int weft_port_recv(weft_port *p, int fd, void *buf, uint32_t len, weft_overlapped *ov);
/* Sends all len bytes: completes once every byte is sent, or on error (bytes then says
 * how many went out). */
WEFT_API int weft_port_send(weft_port *p, int fd, const void *buf, uint32_t len, weft_overlapped *ov);

/* Datagrams: from/fromlen (may be NULL) receive the sender; to is copied during the call. */
WEFT_API int weft_port_recvfrom(weft_port *p, int fd, void *buf, uint32_t len, struct sockaddr *from,
				socklen_t *fromlen, weft_overlapped *ov);
WEFT_API int weft_port_sendto(weft_port *p, int fd, const void *buf, uint32_t len, const struct sockaddr *to,
			      socklen_t tolen, weft_overlapped *ov);

/* Sends len bytes of file_fd from ov->offset to socket fd (TransmitFile): completes once
 * all are sent, at end of file (bytes: how many), or on error. */
WEFT_API int weft_port_sendfile(weft_port *p, int fd, int file_fd, uint32_t len, weft_overlapped *ov);

/* CancelIoEx: cancels ov (NULL: every operation pending on fd). Each cancelled operation
 * completes with -ECANCELED exactly once (one that finished first keeps its result).
 * Returns 0 if at least one operation was pending, -ENOENT otherwise. Does not wait. */
WEFT_API int weft_port_cancel(weft_port *p, int fd, weft_overlapped *ov);

#include <weft/threadpool.h>
#ifdef __cplusplus
}
#endif
#endif
