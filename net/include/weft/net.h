/* weft/net.h - TCP servers on the completion port.
 *
 * The completion-port server of the Windows books, as a small framework: a listener that
 * keeps N accepts posted at all times (the AcceptEx pattern), one receive posted per
 * connection, per-I/O contexts recovered from the completed weft_overlapped, a buffer
 * pool that allocates nothing once warm, and a bounded send queue per connection: once a
 * connection has send_queue_max/2 bytes waiting to go out, the server stops reading from
 * it until the queue drains, so a peer that sends without reading cannot make the server
 * buffer without limit.
 *
 * Callbacks run on the server's port threads. For one connection, on_accept comes first
 * and on_close last; on_data calls never overlap each other (the next receive is posted
 * only when on_data returns); on_write_done may run on another thread at the same time as
 * on_data. A callback may call weft_conn_send and weft_conn_close on any connection it
 * holds; it must not call weft_server_stop or weft_server_destroy.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <weft/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_server weft_server;
typedef struct weft_conn weft_conn;

typedef struct weft_server_callbacks {
	/* A connection was accepted. Return 0 to keep it, a negative errno to refuse it (it
	 * is closed at once; on_close is still called). May be NULL. */
	int (*on_accept)(weft_conn *c);
	/* len > 0 bytes arrived; data is valid during the call only. May be NULL (bytes are
	 * then discarded). */
	void (*on_data)(weft_conn *c, const void *data, size_t len);
	/* bytes more were sent (one weft_conn_send may be reported in several calls, several
	 * in one). Bytes a callback sent inline (see weft_conn_send) are reported on the same
	 * thread right after that callback returns. May be NULL. */
	void (*on_write_done)(weft_conn *c, size_t bytes);
	/* The connection is gone: reason 0 when the peer closed, -ECONNABORTED after
	 * weft_conn_close, -ESHUTDOWN when the server stopped, -ETIMEDOUT when it was idle
	 * past idle_timeout_ms, else the I/O error. The last
	 * callback for c: its memory is freed when on_close returns. May be NULL. */
	void (*on_close)(weft_conn *c, int reason);
} weft_server_callbacks;

typedef struct weft_server_config {
	const char *listen;         /* "ADDR:PORT", IPv4 (NULL: "127.0.0.1:0", any free port) */
	uint32_t threads;           /* port threads (0: the number of CPUs) */
	uint32_t accepts;           /* accepts kept posted (0: 16) */
	uint32_t max_conns;         /* connections at once; more are closed at accept (0: 10000) */
	uint32_t buf_size;          /* receive size and send-buffer chunk (0: 16 KiB) */
	uint32_t send_queue_max;    /* bytes queued per connection (0: 256 KiB; at least 2 buffers) */
	uint32_t idle_timeout_ms;   /* close a connection with no receive or send completed for
	                             * this long (on_close reason -ETIMEDOUT; checked every
	                             * quarter of it, so it fires within 1.25x; 0: never) */
	const weft_server_callbacks *cb;
	void *user;                 /* weft_server_user() */
} weft_server_config;

/* Counters, read without a lock (each is exact, a snapshot may be a moment apart).
 * buf_allocs counts buffer-pool allocations from the system: flat once the pool is warm;
 * buf_free: buffers idle in the pool; buf_in_use: buffers held by connections. */
typedef struct weft_server_stats {
	uint64_t accepted, refused, closed, active;
	uint64_t bytes_in, bytes_out, errors;
	uint64_t queued_bytes, recv_pauses, timeouts;
	uint64_t buf_allocs, buf_free, buf_in_use;
} weft_server_stats;

/* Creates a server: binds and listens, starts the port threads and posts the accepts.
 * Returns NULL with the reason in *err (may be NULL): -EINVAL for a bad config or
 * address, -EADDRINUSE, -ENOMEM, or the port's failure (-ENODEV when the backend forced by
 * WEFT_BACKEND is not available). */
WEFT_API weft_server *weft_server_create(const weft_server_config *cfg, int *err);

/* The TCP port the server listens on (useful after "ADDR:0"). */
WEFT_API int weft_server_port(const weft_server *s);
/* The backend of the server's port: "uring" or "epoll". */
WEFT_API const char *weft_server_backend(const weft_server *s);
WEFT_API void *weft_server_user(const weft_server *s);
WEFT_API void weft_server_get_stats(const weft_server *s, weft_server_stats *out);

/* Graceful stop: closes the listener (no accept after the call returns), lets open
 * connections finish for up to timeout_ms, then closes the rest (on_close reason
 * -ESHUTDOWN) and waits until every on_close has returned. Returns how many connections
 * had to be closed at the deadline. Blocks; call it once, not from a callback. */
WEFT_API int weft_server_stop(weft_server *s, uint32_t timeout_ms);

/* Stops (immediately, if weft_server_stop was not called), joins the port threads and
 * frees everything. */
WEFT_API void weft_server_destroy(weft_server *s);

/* Queues a copy of data[0, len) to be sent after everything queued before. Returns 0,
 * -ENOBUFS if the connection's queue would exceed send_queue_max (nothing is queued),
 * -ENOTCONN once the connection is closing, -ENOMEM. Thread-safe; never blocks on the
 * network. Called from c's own on_data or on_write_done with nothing queued, it first
 * sends directly on the socket (non-blocking, one send(2), no port operation) and
 * queues only what the socket did not take. */
WEFT_API int weft_conn_send(weft_conn *c, const void *data, size_t len);

/* Sends len bytes of file_fd from offset, without copying them through user space
 * (TransmitFile; the port's sendfile). From c's own on_data or on_write_done, what the
 * socket takes at once is sent inline (as weft_conn_send) and only the rest goes through
 * the port. Only when nothing is queued: -EBUSY while bytes
 * from weft_conn_send or another sendfile are still going out (wait for on_write_done
 * with weft_conn_queued() == 0). The len bytes count in weft_conn_queued until sent, and
 * data sent after it follows them. file_fd must stay open until on_write_done reports
 * the bytes or on_close runs; a file shorter than promised closes the connection. The
 * piece counts toward send_queue_max too: while it is in flight, a weft_conn_send that
 * would pass the bound fails with -ENOBUFS (send pieces of at most send_queue_max / 2 to
 * leave room, or send nothing until on_write_done).
 * sendfile(2) has no MSG_NOSIGNAL: a peer that resets raises SIGPIPE, so a process
 * using this must ignore SIGPIPE. Returns 0, -EBUSY, -ENOTCONN once closing, -EINVAL. */
WEFT_API int weft_conn_sendfile(weft_conn *c, int file_fd, uint64_t offset, uint32_t len);

/* Holds partial TCP segments while on (TCP_CORK): a response head and the body sent after
 * it (weft_conn_send, then weft_conn_sendfile) leave in full segments instead of a small
 * segment for the head. Turning it off sends what is held at once; the kernel also sends
 * held data by itself after 200 ms, so a forgotten cork delays, never loses. Measured with
 * weft-server on a 1 MiB file (wrk -t1 -c50, 127.0.0.1): ~2,000 -> ~3,000 req/s, the
 * client no longer pushing the server's queued segments from its own ACKs. Returns 0,
 * -ENOTCONN once closing, or the setsockopt error. */
WEFT_API int weft_conn_set_cork(weft_conn *c, bool on);

/* Closes the connection: pending I/O is cancelled, queued bytes are dropped, on_close
 * follows (reason -ECONNABORTED) once nothing is in flight. Idempotent, thread-safe. */
WEFT_API void weft_conn_close(weft_conn *c);

/* Bytes queued to send and not yet sent. */
WEFT_API size_t weft_conn_queued(const weft_conn *c);
WEFT_API void weft_conn_set_user(weft_conn *c, void *user);
WEFT_API void *weft_conn_user(const weft_conn *c);
WEFT_API weft_server *weft_conn_server(const weft_conn *c);

/* ---------------------------------------------------------------------------------------
 * UDP on the port: one bound socket, `recvs` receives kept posted (each with its own
 * buffer and per-I/O context), sends from a fixed set of send contexts. on_datagram runs
 * on the port threads, possibly on several at once.
 * ------------------------------------------------------------------------------------- */
typedef struct weft_udp weft_udp;

typedef struct weft_udp_config {
	const char *bind;           /* "ADDR:PORT", IPv4 (NULL: "127.0.0.1:0") */
	uint32_t threads;           /* port threads (0: the number of CPUs) */
	uint32_t recvs;             /* receives kept posted (0: 8) */
	uint32_t max_datagram;      /* receive buffer; longer datagrams are cut (0: 65536) */
	uint32_t max_sends;         /* sends in flight at once; more fail -ENOBUFS (0: 64) */
	/* A datagram of len bytes (0 is a valid datagram) from `from`. data and from are
	 * valid during the call only. */
	void (*on_datagram)(weft_udp *u, const void *data, size_t len, const struct sockaddr *from,
			    socklen_t fromlen);
	void *user;                 /* weft_udp_user() */
} weft_udp_config;

/* dropped: sends refused with -ENOBUFS (every send context busy). */
typedef struct weft_udp_stats {
	uint64_t datagrams_in, datagrams_out, bytes_in, bytes_out, dropped, errors;
} weft_udp_stats;

/* Binds, starts the port threads and posts the receives. NULL with *err (may be NULL) as
 * for weft_server_create. */
WEFT_API weft_udp *weft_udp_create(const weft_udp_config *cfg, int *err);
WEFT_API int weft_udp_port(const weft_udp *u);
WEFT_API const char *weft_udp_backend(const weft_udp *u);
WEFT_API void *weft_udp_user(const weft_udp *u);
/* Sends a copy of data[0, len) to `to` (len <= max_datagram). Returns 0 once queued,
 * -ENOBUFS when max_sends are in flight (the datagram is dropped, as a full socket
 * buffer would), -EMSGSIZE, -EINVAL, -ESHUTDOWN once destroy began. Thread-safe. */
WEFT_API int weft_udp_sendto(weft_udp *u, const void *data, size_t len, const struct sockaddr *to,
			     socklen_t tolen);
WEFT_API void weft_udp_get_stats(const weft_udp *u, weft_udp_stats *out);
/* Cancels the receives, waits for the sends in flight, joins the threads and frees.
 * Not from a callback. */
WEFT_API void weft_udp_destroy(weft_udp *u);

#ifdef __cplusplus
}
#endif
#endif
