/* server.c - the completion-port TCP server framework of <weft/net.h>.
 *
 * Every asynchronous operation carries a per-I/O context (struct net_io) that embeds its
 * weft_overlapped; a port thread recovers the context with weft_container_of and
 * dispatches on its kind. A connection has at most one receive and one send in flight,
 * each with its own context inside the connection, plus one close request.
 *
 * Lifetime of a connection: refs counts one "open" reference (dropped once, when the
 * connection starts closing) plus one per operation in flight or packet queued, plus one
 * held by accept_conn while it sets the connection up. The thread that drops the last
 * reference calls on_close and frees the connection; that is always a port thread,
 * because every path that can hold the last reference runs on one. A thread touches c
 * (even only to leave c->lock) only while it holds a reference or the server's list lock
 * (conn_final unlinks under it before freeing).
 *
 * Closing: `closing` is set under the connection's lock, and every operation is posted
 * under that lock after checking it, so once it is set no operation can be posted on the
 * fd; weft_port_close_fd then cancels those in flight and closes the fd. The fd number
 * may be reused at once by a new accept, which is why nothing may touch c->fd after. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/net.h>

#include "atomic.h"
#include "bufpool.h"
#include "internal.h"
#include "net_internal.h"

enum io_kind { IO_ACCEPT = 1, IO_RECV, IO_SEND, IO_CLOSE };

/* A per-I/O context: one operation in flight (or one close request queued). */
struct net_io {
	weft_overlapped ov;
	uint8_t kind;
	int accepted;               /* IO_ACCEPT: the new socket */
	struct weft_conn *c;        /* IO_RECV, IO_SEND, IO_CLOSE */
	weft_server *s;
};

struct weft_conn {
	weft_cs lock;               /* guards the fields marked (L) */
	weft_server *s;
	int fd;                     /* not to be used once closing is set */
	uint32_t refs;              /* atomic; see the top of the file */
	struct net_io rio, sio, cio;
	struct weft__buf *rbuf;     /* the receive buffer, owned for the connection's life */
	struct weft__buf *sq_head, *sq_tail;   /* (L) the send queue, oldest first */
	struct weft__buf *inflight; /* (L) sq_head while a send of it is in flight */
	bool sf_inflight;           /* (L) a weft_conn_sendfile is in flight (then no buffer is) */
	uint32_t sf_len;            /* (L) its length, counted in sq_bytes */
	uint64_t sq_bytes;          /* (L) bytes queued; read relaxed by weft_conn_queued */
	bool paused;                /* (L) receive not reposted: queue over the high mark */
	bool closing;               /* (L) */
	bool close_queued;          /* (L) a close request sits in the port */
	int reason;                 /* (L) for on_close; written before closing is set */
	void *user;
	uint64_t last_active;         /* atomic, relaxed: monotonic ns of the last completed I/O */
	struct weft_conn *prev, *next;   /* the server's list, under s->list_lock */
};

struct weft_server {
	weft_port *port;
	int lfd, port_no;
	weft_server_callbacks cb;
	void *user;
	uint32_t threads, naccepts, max_conns, buf_size, send_queue_max;
	uint64_t high, low;         /* pause receiving at high queued bytes, resume at low */
	pthread_t *workers;
	uint32_t nworkers;
	struct net_io *accept_ios;
	weft_cs listen_lock;        /* orders accept reposts against the listener's close */
	bool stopping;              /* set under listen_lock; read relaxed as a hint */
	bool stopped;               /* only the stopping thread touches it */
	uint32_t accepts_live;      /* atomic: accept contexts posted or being handled */
	weft_cs list_lock;
	struct weft_conn *conns;    /* under list_lock */
	struct weft__bufpool bufs;
	/* the idle sweeper: wakes every idle_ms / 4, or when stop signals sweep_cond */
	uint64_t idle_ns;
	pthread_t sweeper;
	bool sweeper_started;
	bool sweep_stop;            /* under sweep_mutex */
	pthread_mutex_t sweep_mutex;
	pthread_cond_t sweep_cond;
	/* statistics, atomic, relaxed: counters publish nothing */
	uint64_t accepted, refused, closed, active, bytes_in, bytes_out, errors, queued, recv_pauses;
	uint64_t timeouts;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void count(uint64_t *c, int64_t d)
{
	/* relaxed: a statistic, or (active) polled with its own acquire in wait_zero */
	weft__fadd_rlx(c, (uint64_t)d);
}

static void conn_final(struct weft_conn *c);

/* Inline sends. While a port thread runs on_data or on_write_done of a connection,
 * weft_conn_send on that same connection, with nothing queued or in flight, first tries
 * the socket directly (non-blocking): a short answer then costs one send(2) and no trip
 * through the port (no operation, no completion packet, no thread hand-off). What that
 * send took is reported by on_write_done right after the callback returns, on the same
 * thread. Thread-local, so two port threads in callbacks of one connection (on_data and
 * on_write_done may overlap) never share the count; the bytes stay in order because each
 * send happens under c->lock with the queue empty. */
static __thread struct weft_conn *tls_cb_conn;
static __thread size_t tls_inline_done;

/* Reports to on_write_done what inline sends took during the callback that just
 * returned, and again for what those reports sent in turn. */
static void report_inline(struct weft_conn *c)
{
	size_t done = tls_inline_done;
	while (done && c->s->cb.on_write_done) {
		tls_inline_done = 0;
		tls_cb_conn = c;
		c->s->cb.on_write_done(c, done);
		tls_cb_conn = NULL;
		done = tls_inline_done;
	}
	tls_inline_done = 0;
}

static inline void conn_ref(struct weft_conn *c)
{
	/* relaxed: the caller already holds a reference, so c stays alive */
	weft__fadd_rlx(&c->refs, 1);
}

static inline void conn_unref(struct weft_conn *c)
{
	/* acq_rel: the release publishes this thread's writes to c; the acquire of the
	 * thread that drops the last reference pairs with it before conn_final reads them */
	if (weft__fsub_acqrel(&c->refs, 1) == 1)
		conn_final(c);
}

/* ---- closing ------------------------------------------------------------------------ */

/* Starts closing c (idempotent): no operation is posted after this, those in flight are
 * cancelled and complete (-ECANCELED) on port threads, and the fd is closed. */
static void conn_shutdown(struct weft_conn *c, int reason)
{
	weft_cs_enter(&c->lock);
	if (c->closing) {
		weft_cs_leave(&c->lock);
		return;
	}
	c->reason = reason;
	c->closing = true;
	weft_cs_leave(&c->lock);
	if (reason < 0 && reason != -ECONNABORTED && reason != -ESHUTDOWN && reason != -ECONNRESET &&
	    reason != -EPIPE && reason != -ETIMEDOUT)
		count(&c->s->errors, 1);
	weft_port_close_fd(c->s->port, c->fd);
	conn_unref(c);   /* the open reference */
}

/* Queues a close request on the port so that on_close runs on a port thread. False when
 * c was already closing or asked to. */
static bool conn_close_async(struct weft_conn *c, int reason)
{
	weft_cs_enter(&c->lock);
	bool post = !c->closing && !c->close_queued;
	if (post) {
		c->close_queued = true;
		c->reason = reason;
		conn_ref(c);
	}
	weft_cs_leave(&c->lock);
	if (post && weft_port_post(c->s->port, 0, (uintptr_t)c, &c->cio.ov) < 0) {
		/* the port is closing: no thread will see the packet */
		conn_shutdown(c, reason);
		conn_unref(c);
	}
	return post;
}

/* The last reference is gone: nothing is in flight, nothing can be posted. */
static void conn_final(struct weft_conn *c)
{
	weft_server *s = c->s;
	if (s->cb.on_close)
		s->cb.on_close(c, c->reason);
	weft__bufpool_put(&s->bufs, c->rbuf);
	if (c->sq_bytes)
		count(&s->queued, -(int64_t)c->sq_bytes);
	for (struct weft__buf *b = c->sq_head, *n; b; b = n) {
		n = b->next;
		weft__bufpool_put(&s->bufs, b);
	}
	weft_cs_enter(&s->list_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	weft_cs_leave(&s->list_lock);
	weft_cs_destroy(&c->lock);
	free(c);
	count(&s->closed, 1);
	/* release: pairs with the acquire load in wait_zero(); everything this thread did
	 * for the connection happened before the stopping thread sees the count drop */
	weft__fsub_rel(&s->active, 1);
}

/* ---- receiving ---------------------------------------------------------------------- */

/* Posts the receive. Lock held, not closing. Returns 0 or the port's error. */
static int post_recv_locked(struct weft_conn *c)
{
	conn_ref(c);
	int rc = weft_port_recv(c->s->port, c->fd, c->rbuf->data, c->s->buf_size, &c->rio.ov);
	if (rc < 0)
		weft__fsub_rel(&c->refs, 1);   /* not the last: the open reference is held */
	return rc;
}

static void on_recv(struct weft_conn *c, int status, uint32_t bytes)
{
	weft_server *s = c->s;
	if (status < 0 || bytes == 0) {
		conn_shutdown(c, status == -ECANCELED ? -ECONNABORTED : status);
		conn_unref(c);
		return;
	}
	count(&s->bytes_in, bytes);
	if (s->idle_ns)
		weft__store_rlx(&c->last_active, now_ns());   /* relaxed: a hint for the sweeper */
	if (s->cb.on_data) {
		tls_cb_conn = c;
		tls_inline_done = 0;
		s->cb.on_data(c, c->rbuf->data, bytes);
		tls_cb_conn = NULL;
		report_inline(c);
	}
	int rc = 0;
	weft_cs_enter(&c->lock);
	if (!c->closing) {
		/* Backpressure: a peer that sends faster than it reads stops being read. */
		if (c->sq_bytes >= s->high) {
			c->paused = true;
			count(&s->recv_pauses, 1);
		} else {
			rc = post_recv_locked(c);
		}
	}
	weft_cs_leave(&c->lock);
	if (rc < 0)
		conn_shutdown(c, rc);
	conn_unref(c);
}

/* ---- sending ------------------------------------------------------------------------ */

/* Sends the oldest queued buffer. Lock held, not closing, no send in flight. */
static int start_send_locked(struct weft_conn *c)
{
	struct weft__buf *b = c->sq_head;
	c->inflight = b;
	conn_ref(c);
	int rc = weft_port_send(c->s->port, c->fd, b->data, b->len, &c->sio.ov);
	if (rc < 0) {
		c->inflight = NULL;
		weft__fsub_rel(&c->refs, 1);   /* not the last: the open reference is held */
	}
	return rc;
}

static void on_send(struct weft_conn *c, int status, uint32_t bytes)
{
	weft_server *s = c->s;
	weft_cs_enter(&c->lock);
	struct weft__buf *b = NULL;
	uint32_t len;
	if (c->sf_inflight) {
		c->sf_inflight = false;
		len = c->sf_len;
	} else {
		b = c->inflight;
		c->inflight = NULL;
		len = b->len;
	}
	/* short: the peer went away, or (sendfile) the file ended early; either way the
	 * stream cannot carry what was promised. sq_bytes keeps the bytes; conn_final
	 * uncounts them. */
	if (status < 0 || bytes < len) {
		weft_cs_leave(&c->lock);
		conn_shutdown(c, status < 0 ? (status == -ECANCELED ? -ECONNABORTED : status) : -EPIPE);
		conn_unref(c);
		return;
	}
	if (b) {
		c->sq_head = b->next;
		if (!c->sq_head)
			c->sq_tail = NULL;
	}
	/* relaxed store: weft_conn_queued reads it without the lock */
	weft__store_rlx(&c->sq_bytes, c->sq_bytes - len);
	if (s->idle_ns)
		weft__store_rlx(&c->last_active, now_ns());   /* a peer that reads is not idle */
	int rc = 0;
	if (!c->closing) {
		if (c->sq_head)
			rc = start_send_locked(c);
		if (rc == 0 && c->paused && c->sq_bytes <= s->low) {
			c->paused = false;
			rc = post_recv_locked(c);
		}
	}
	weft_cs_leave(&c->lock);
	count(&s->queued, -(int64_t)bytes);
	count(&s->bytes_out, bytes);
	if (b)
		weft__bufpool_put(&s->bufs, b);
	if (rc < 0)
		conn_shutdown(c, rc);
	if (s->cb.on_write_done) {
		tls_cb_conn = c;
		tls_inline_done = 0;
		s->cb.on_write_done(c, bytes);
		tls_cb_conn = NULL;
		report_inline(c);
	}
	conn_unref(c);
}

int weft_conn_send(weft_conn *c, const void *data, size_t len)
{
	weft_server *s = c->s;
	if (len == 0)
		return 0;
	weft_cs_enter(&c->lock);
	if (c->closing || c->close_queued) {
		weft_cs_leave(&c->lock);
		return -ENOTCONN;
	}
	if (len > s->send_queue_max || c->sq_bytes + len > s->send_queue_max) {
		weft_cs_leave(&c->lock);
		return -ENOBUFS;
	}
	const char *p = data;
	if (c == tls_cb_conn && !c->sq_head && !c->sf_inflight) {
		/* See tls_cb_conn: nothing is queued, so these bytes go first. */
		ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			tls_inline_done += (size_t)n;
			count(&s->bytes_out, n);
			/* last_active: set by the completion whose callback runs this */
			if ((size_t)n == len) {
				weft_cs_leave(&c->lock);
				return 0;
			}
			p += n;
			len -= (size_t)n;
		}
		/* -EAGAIN or a short send: the rest through the port; an error is found
		 * again by the port's send and closes the connection as usual */
	}
	/* Fill the tail (unless the kernel is reading it), then fresh buffers. The fresh
	 * ones are gathered first so that running out of memory queues nothing. */
	struct weft__buf *t = c->sq_tail;
	size_t room = (t && t != c->inflight) ? s->buf_size - t->len : 0;
	struct weft__buf *fresh = NULL, **link = &fresh;
	for (size_t need = len > room ? len - room : 0; need > 0; need -= need < s->buf_size ? need : s->buf_size) {
		struct weft__buf *b = weft__bufpool_get(&s->bufs);
		if (!b) {
			weft_cs_leave(&c->lock);
			while (fresh) {
				b = fresh->next;
				weft__bufpool_put(&s->bufs, fresh);
				fresh = b;
			}
			return -ENOMEM;
		}
		*link = b;
		link = &b->next;
	}
	size_t left = len;
	if (room) {
		size_t n = left < room ? left : room;
		memcpy(t->data + t->len, p, n);
		t->len += (uint32_t)n;
		p += n;
		left -= n;
	}
	for (struct weft__buf *b = fresh; b; b = b->next) {
		size_t n = left < s->buf_size ? left : s->buf_size;
		memcpy(b->data, p, n);
		b->len = (uint32_t)n;
		p += n;
		left -= n;
		if (c->sq_tail)
			c->sq_tail->next = b;
		else
			c->sq_head = b;
		c->sq_tail = b;
	}
	weft__store_rlx(&c->sq_bytes, c->sq_bytes + len);
	count(&s->queued, (int64_t)len);
	int rc = c->inflight || c->sf_inflight ? 0 : start_send_locked(c);
	weft_cs_leave(&c->lock);
	if (rc < 0)
		conn_close_async(c, rc);
	return rc;
}

int weft_conn_sendfile(weft_conn *c, int file_fd, uint64_t offset, uint32_t len)
{
	weft_server *s = c->s;
	if (len == 0)
		return 0;
	if (file_fd < 0)
		return -EINVAL;
	weft_cs_enter(&c->lock);
	if (c->closing || c->close_queued) {
		weft_cs_leave(&c->lock);
		return -ENOTCONN;
	}
	if (c->sq_head || c->inflight || c->sf_inflight) {
		weft_cs_leave(&c->lock);
		return -EBUSY;
	}
	if (c == tls_cb_conn) {
		/* Inline, as in weft_conn_send: as much as the socket takes now; a caller that
		 * sends the next piece from on_write_done keeps going until the socket is
		 * full (report_inline loops), and only then does a piece go through the port. */
		off_t off = (off_t)offset;
		ssize_t n = sendfile(c->fd, file_fd, &off, len);
		if (n > 0) {
			tls_inline_done += (size_t)n;
			count(&s->bytes_out, n);
			/* last_active: set by the completion whose callback runs this */
			if ((size_t)n == len) {
				weft_cs_leave(&c->lock);
				return 0;
			}
			offset += (uint64_t)n;
			len -= (uint32_t)n;
		}
		/* 0 (the file ended early): the port's sendfile sees it too and closes */
	}
	c->sf_inflight = true;
	c->sf_len = len;
	c->sio.ov.offset = offset;
	weft__store_rlx(&c->sq_bytes, c->sq_bytes + len);
	count(&s->queued, (int64_t)len);
	conn_ref(c);
	int rc = weft_port_sendfile(s->port, c->fd, file_fd, len, &c->sio.ov);
	if (rc < 0) {
		c->sf_inflight = false;
		weft__store_rlx(&c->sq_bytes, c->sq_bytes - len);
		count(&s->queued, -(int64_t)len);
		weft__fsub_rel(&c->refs, 1);   /* not the last: the open reference is held */
	}
	weft_cs_leave(&c->lock);
	return rc;
}

int weft_conn_set_cork(weft_conn *c, bool on)
{
	int v = on ? 1 : 0;
	weft_cs_enter(&c->lock);
	/* the fd stays open until on_close; closing only says no more I/O is wanted */
	int rc = c->closing || c->close_queued ? -ENOTCONN : 0;
	if (rc == 0 && setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &v, sizeof v) != 0)
		rc = -errno;
	weft_cs_leave(&c->lock);
	return rc;
}

void weft_conn_close(weft_conn *c)
{
	(void)conn_close_async(c, -ECONNABORTED);
}

size_t weft_conn_queued(const weft_conn *c)
{
	return (size_t)weft__load_rlx(&c->sq_bytes);
}

void weft_conn_set_user(weft_conn *c, void *user)
{
	c->user = user;
}

void *weft_conn_user(const weft_conn *c)
{
	return c->user;
}

weft_server *weft_conn_server(const weft_conn *c)
{
	return c->s;
}

/* ---- accepting ---------------------------------------------------------------------- */

static struct weft_conn *conn_new(weft_server *s, int fd)
{
	struct weft_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->rbuf = weft__bufpool_get(&s->bufs);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	weft_cs_init(&c->lock, 200);
	c->s = s;
	c->fd = fd;
	c->refs = 1;
	c->rio = (struct net_io){ .kind = IO_RECV, .c = c, .s = s };
	c->sio = (struct net_io){ .kind = IO_SEND, .c = c, .s = s };
	c->cio = (struct net_io){ .kind = IO_CLOSE, .c = c, .s = s };
	c->last_active = s->idle_ns ? now_ns() : 0;
	return c;
}

static void accept_conn(weft_server *s, int fd)
{
	/* Reserve a slot first, so two threads accepting at once cannot both take the last.
	 * relaxed: a count, nothing is published through it (stop's waits pair with the
	 * release in conn_final). */
	uint64_t n = weft__load_rlx(&s->active);
	do {
		if (n >= s->max_conns) {
			count(&s->refused, 1);   /* before the peer can see the close */
			close(fd);
			return;
		}
	} while (!weft__cas_rlx(&s->active, &n, n + 1));
	struct weft_conn *c = conn_new(s, fd);
	if (!c) {
		close(fd);
		count(&s->errors, 1);
		weft__fsub_rel(&s->active, 1);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = weft_port_associate(s->port, fd, (uintptr_t)c);
	if (rc < 0) {
		close(fd);
		weft__bufpool_put(&s->bufs, c->rbuf);
		weft_cs_destroy(&c->lock);
		free(c);
		count(&s->errors, 1);
		weft__fsub_rel(&s->active, 1);
		return;
	}
	count(&s->accepted, 1);
	/* Our own reference until the end: once c is listed (the sweeper, a stop) or its
	 * receive is posted, another thread may close it and drop the open reference while
	 * this thread still runs on_accept or leaves c->lock. */
	c->refs = 2;
	weft_cs_enter(&s->list_lock);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	weft_cs_leave(&s->list_lock);
	if (s->cb.on_accept && (rc = s->cb.on_accept(c)) < 0) {
		conn_shutdown(c, rc);
		conn_unref(c);
		return;
	}
	weft_cs_enter(&c->lock);
	if (!c->closing)
		rc = post_recv_locked(c);
	weft_cs_leave(&c->lock);
	if (rc < 0)
		conn_shutdown(c, rc);
	conn_unref(c);
}

static void on_accept(struct net_io *io, int status)
{
	weft_server *s = io->s;
	if (status == 0) {
		if (weft__load_rlx(&s->stopping))
			close(io->accepted);   /* accepted just before the listener closed */
		else
			accept_conn(s, io->accepted);
	} else if (status != -ECANCELED && status != -ESHUTDOWN) {
		count(&s->errors, 1);
	}
	int rc = -ESHUTDOWN;
	weft_cs_enter(&s->listen_lock);
	if (!s->stopping && status != -ECANCELED && status != -ESHUTDOWN)
		rc = weft_port_accept(s->port, s->lfd, &io->accepted, NULL, 0, &io->ov);
	weft_cs_leave(&s->listen_lock);
	if (rc < 0) {
		if (rc != -ESHUTDOWN)
			count(&s->errors, 1);
		/* release: pairs with the acquire in weft_server_stop; this context is done */
		weft__fsub_rel(&s->accepts_live, 1);
	}
}

/* ---- port threads ------------------------------------------------------------------- */

static void dispatch(weft_overlapped *ov)
{
	struct net_io *io = weft_container_of(ov, struct net_io, ov);
	switch (io->kind) {
	case IO_ACCEPT:
		on_accept(io, ov->status);
		break;
	case IO_RECV:
		on_recv(io->c, ov->status, ov->bytes);
		break;
	case IO_SEND:
		on_send(io->c, ov->status, ov->bytes);
		break;
	case IO_CLOSE: {
		/* under the lock: a concurrent conn_shutdown (peer EOF) may be writing it */
		weft_cs_enter(&io->c->lock);
		int reason = io->c->reason;
		weft_cs_leave(&io->c->lock);
		conn_shutdown(io->c, reason);
		conn_unref(io->c);
		break;
	}
	default:
		weft__die("weft_server: unknown completion kind %d", io->kind);
	}
}

/* A user packet without an overlapped telling one port thread to leave. */
#define QUIT_KEY ((uintptr_t)-1)

/* A port thread. It leaves on a quit packet, not on the port's close: a thread whose
 * first get came after weft_port_close returned would touch a freed port (only threads
 * that already took part may call get late), and a thread slow to start can be that
 * late. So the server posts one quit per thread, joins them all, then closes the port. */
static void *worker_main(void *arg)
{
	weft_server *s = arg;
	weft_completion ev[32];
	for (;;) {
		uint32_t n = 0, quits = 0;
		int rc = weft_port_get_many(s->port, ev, 32, &n, WEFT_INFINITE, false);
		if (rc == -ESHUTDOWN)
			break;
		for (uint32_t i = 0; i < n; i++) {
			if (ev[i].ov)
				dispatch(ev[i].ov);
			else if (ev[i].key == QUIT_KEY)
				quits++;
		}
		if (quits) {
			/* One quit each: hand back the ones this batch took for other threads. */
			while (--quits)
				if (weft_port_post(s->port, 0, QUIT_KEY, NULL) < 0)
					break;
			break;
		}
	}
	return NULL;
}

/* ---- idle connections ---------------------------------------------------------------- */

/* Closes the connections that received nothing for idle_ns. A walk of the list every
 * quarter of the timeout costs O(connections) four times per timeout and nothing per
 * request beyond one clock read, where a timer per connection would cost a heap update
 * on every receive. */
static void sweep(weft_server *s)
{
	uint64_t now = now_ns();
	weft_cs_enter(&s->list_lock);
	/* c stays alive while listed: conn_final unlinks under list_lock before freeing */
	for (struct weft_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		/* last_active may be a moment after now: a completion raced this sweep */
		uint64_t last = weft__load_rlx(&c->last_active);
		if (last < now && now - last > s->idle_ns && conn_close_async(c, -ETIMEDOUT))
			count(&s->timeouts, 1);
	}
	weft_cs_leave(&s->list_lock);
}

static void *sweeper_main(void *arg)
{
	weft_server *s = arg;
	uint64_t period = s->idle_ns / 4;
	pthread_mutex_lock(&s->sweep_mutex);
	while (!s->sweep_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t t = (uint64_t)ts.tv_nsec + period;
		ts.tv_sec += (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		if (pthread_cond_timedwait(&s->sweep_cond, &s->sweep_mutex, &ts) == 0 || s->sweep_stop)
			continue;
		pthread_mutex_unlock(&s->sweep_mutex);
		sweep(s);
		pthread_mutex_lock(&s->sweep_mutex);
	}
	pthread_mutex_unlock(&s->sweep_mutex);
	return NULL;
}

static int sweeper_start(weft_server *s)
{
	if (!s->idle_ns)
		return 0;
	if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0)
		return -EAGAIN;
	s->sweeper_started = true;
	return 0;
}

static void sweeper_stop(weft_server *s)
{
	if (!s->sweeper_started)
		return;
	pthread_mutex_lock(&s->sweep_mutex);
	s->sweep_stop = true;
	pthread_cond_signal(&s->sweep_cond);
	pthread_mutex_unlock(&s->sweep_mutex);
	pthread_join(s->sweeper, NULL);
	s->sweeper_started = false;
}

/* ---- the server --------------------------------------------------------------------- */

int weft__net_parse_addr(const char *spec, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof host)
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port > 65535)
		return -EINVAL;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static int open_listener(weft_server *s, const char *spec)
{
	struct sockaddr_in a;
	int rc = weft__net_parse_addr(spec ? spec : "127.0.0.1:0", &a);
	if (rc < 0)
		return rc;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	s->lfd = fd;
	s->port_no = ntohs(a.sin_port);
	return 0;
}

static void server_free(weft_server *s)
{
	sweeper_stop(s);
	pthread_mutex_destroy(&s->sweep_mutex);
	pthread_cond_destroy(&s->sweep_cond);
	/* See worker_main: quit packets first, the port's close only once every thread left
	 * (a failed post falls back on the close, which ends every get with -ESHUTDOWN). */
	bool posted = true;
	for (uint32_t i = 0; i < s->nworkers && posted; i++)
		posted = weft_port_post(s->port, 0, QUIT_KEY, NULL) == 0;
	if (!posted)
		weft_port_close(s->port);
	for (uint32_t i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->port && posted)
		weft_port_close(s->port);
	if (s->lfd >= 0 && !s->stopping)
		close(s->lfd);
	weft__bufpool_fini(&s->bufs);
	weft_cs_destroy(&s->listen_lock);
	weft_cs_destroy(&s->list_lock);
	free(s->workers);
	free(s->accept_ios);
	free(s);
}

static int server_start(weft_server *s, const weft_server_config *cfg)
{
	int rc = open_listener(s, cfg->listen);
	if (rc < 0)
		return rc;
	s->port = weft_port_create(s->threads);
	if (!s->port)
		return -ENODEV;
	rc = weft_port_associate(s->port, s->lfd, 0);
	if (rc < 0)
		return rc;
	s->workers = calloc(s->threads, sizeof *s->workers);
	s->accept_ios = calloc(s->naccepts, sizeof *s->accept_ios);
	if (!s->workers || !s->accept_ios)
		return -ENOMEM;
	for (; s->nworkers < s->threads; s->nworkers++)
		if (pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) != 0)
			return -EAGAIN;
	if ((rc = sweeper_start(s)) < 0)
		return rc;
	for (uint32_t i = 0; i < s->naccepts; i++) {
		struct net_io *io = &s->accept_ios[i];
		*io = (struct net_io){ .kind = IO_ACCEPT, .s = s, .accepted = -1 };
		weft__fadd_rlx(&s->accepts_live, 1);
		weft_cs_enter(&s->listen_lock);
		rc = weft_port_accept(s->port, s->lfd, &io->accepted, NULL, 0, &io->ov);
		weft_cs_leave(&s->listen_lock);
		if (rc < 0) {
			weft__fsub_rel(&s->accepts_live, 1);
			return rc;
		}
	}
	return 0;
}

weft_server *weft_server_create(const weft_server_config *cfg, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	weft_server *s = cfg ? calloc(1, sizeof *s) : NULL;
	if (!s) {
		*err = cfg ? -ENOMEM : -EINVAL;
		return NULL;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s->lfd = -1;
	s->threads = cfg->threads ? cfg->threads : (uint32_t)(ncpu > 0 ? ncpu : 1);
	s->naccepts = cfg->accepts ? cfg->accepts : 16;
	s->max_conns = cfg->max_conns ? cfg->max_conns : 10000;
	s->buf_size = cfg->buf_size ? cfg->buf_size : 16384;
	s->send_queue_max = cfg->send_queue_max ? cfg->send_queue_max : 256 * 1024;
	if (s->send_queue_max < 2 * s->buf_size)
		s->send_queue_max = 2 * s->buf_size;
	/* An echo of one receive (<= buf_size) while under high always fits the bound. */
	s->high = s->send_queue_max / 2;
	s->low = s->high / 2;
	s->idle_ns = (uint64_t)cfg->idle_timeout_ms * 1000000ull;
	if (cfg->cb)
		s->cb = *cfg->cb;
	s->user = cfg->user;
	weft_cs_init(&s->listen_lock, 200);
	weft_cs_init(&s->list_lock, 200);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sweep_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->sweep_mutex, NULL);
	int rc = -EINVAL;
	if (s->threads > 1024 || s->naccepts > 65536 || s->buf_size > (64u << 20) ||
	    (rc = weft__bufpool_init(&s->bufs, s->buf_size, s->naccepts + 4 * s->threads,
	                             s->max_conns < 1024 ? 2 * s->max_conns + 64 : 2048)) < 0) {
		weft_cs_destroy(&s->listen_lock);
		weft_cs_destroy(&s->list_lock);
		pthread_mutex_destroy(&s->sweep_mutex);
		pthread_cond_destroy(&s->sweep_cond);
		free(s);
		*err = rc;
		return NULL;
	}
	rc = server_start(s, cfg);
	if (rc < 0) {
		weft_server_stop(s, 0);
		server_free(s);
		*err = rc;
		return NULL;
	}
	*err = 0;
	return s;
}

int weft_server_port(const weft_server *s)
{
	return s->port_no;
}

const char *weft_server_backend(const weft_server *s)
{
	return weft_port_backend(s->port);
}

void *weft_server_user(const weft_server *s)
{
	return s->user;
}

void weft_server_get_stats(const weft_server *s, weft_server_stats *o)
{
	o->accepted = weft__load_rlx(&s->accepted);
	o->refused = weft__load_rlx(&s->refused);
	o->closed = weft__load_rlx(&s->closed);
	o->active = weft__load_rlx(&s->active);
	o->bytes_in = weft__load_rlx(&s->bytes_in);
	o->bytes_out = weft__load_rlx(&s->bytes_out);
	o->errors = weft__load_rlx(&s->errors);
	o->queued_bytes = weft__load_rlx(&s->queued);
	o->recv_pauses = weft__load_rlx(&s->recv_pauses);
	o->timeouts = weft__load_rlx(&s->timeouts);
	o->buf_allocs = weft__load_rlx(&s->bufs.allocs);
	o->buf_free = weft__load_rlx(&s->bufs.nfree);
	o->buf_in_use = weft__load_rlx(&s->bufs.out);
}

/* Waits (polling: stop is rare and slow by nature) until *counter is 0 or the deadline
 * (NULL: none) passes. True when it reached 0. */
static bool wait_zero(uint64_t *counter, const struct timespec *deadline)
{
	/* acquire: pairs with the release decrements in conn_final / on_accept, so what
	 * those threads did is visible once the count reads 0 */
	while (weft__load_acq(counter) != 0) {
		if (deadline && weft__deadline_passed(deadline))
			return false;
		usleep(1000);
	}
	return true;
}

int weft_server_stop(weft_server *s, uint32_t timeout_ms)
{
	if (s->stopped)
		return 0;
	s->stopped = true;
	weft_cs_enter(&s->listen_lock);
	weft__store_rlx(&s->stopping, true);
	weft_cs_leave(&s->listen_lock);
	/* accepts complete with -ECANCELED; -ENOENT: never associated, close it here */
	if (s->lfd >= 0 && (!s->port || weft_port_close_fd(s->port, s->lfd) == -ENOENT))
		close(s->lfd);
	/* Every accept context handled: no connection can be created after this. */
	while (weft__load_acq(&s->accepts_live) != 0)
		usleep(1000);
	/* Idle connections still time out while the others finish. */
	struct timespec ts;
	bool drained = wait_zero(&s->active, weft__deadline(&ts, timeout_ms));
	sweeper_stop(s);
	if (drained)
		return 0;
	int forced = 0;
	weft_cs_enter(&s->list_lock);
	/* c stays alive while listed: conn_final unlinks under list_lock before freeing */
	for (struct weft_conn *c = s->conns, *next; c; c = next) {
		next = c->next;   /* read first: a failed post may finish c at once */
		(void)conn_close_async(c, -ESHUTDOWN);
		forced++;
	}
	weft_cs_leave(&s->list_lock);
	wait_zero(&s->active, NULL);
	return forced;
}

void weft_server_destroy(weft_server *s)
{
	if (!s)
		return;
	weft_server_stop(s, 0);
	server_free(s);
}
