/* conn.c - one connection of the server framework (<weft/net.h>): its receive and
 * backpressure, the bounded send queue with inline sends, sendfile, the cork, and
 * closing. The connection's lifetime and locking rules are at the top of server.c; the
 * state is in server_impl.h. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_impl.h"

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

/* Counts n > 0 bytes an inline send or sendfile took: on_write_done reports them after
 * the callback (report_inline). last_active is left to the completion whose callback
 * runs this. */
static void inline_took(weft_server *s, ssize_t n)
{
	tls_inline_done += (size_t)n;
	count(&s->bytes_out, n);
}

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

/* ---- closing ------------------------------------------------------------------------ */

/* Starts closing c (idempotent): no operation is posted after this, those in flight are
 * cancelled and complete (-ECANCELED) on port threads, and the fd is closed. */
void weft__conn_shutdown(struct weft_conn *c, int reason)
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
bool weft__conn_close_async(struct weft_conn *c, int reason)
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
		weft__conn_shutdown(c, reason);
		conn_unref(c);
	}
	return post;
}

/* The last reference is gone: nothing is in flight, nothing can be posted. */
void weft__conn_final(struct weft_conn *c)
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
int weft__conn_post_recv_locked(struct weft_conn *c)
{
	conn_ref(c);
	int rc = weft_port_recv(c->s->port, c->fd, c->rbuf->data, c->s->buf_size, &c->rio.ov);
	if (rc < 0)
		weft__fsub_rel(&c->refs, 1);   /* not the last: the open reference is held */
	return rc;
}

void weft__conn_on_recv(struct weft_conn *c, int status, uint32_t bytes)
{
	weft_server *s = c->s;
	if (status < 0 || bytes == 0) {
		weft__conn_shutdown(c, status == -ECANCELED ? -ECONNABORTED : status);
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
			rc = weft__conn_post_recv_locked(c);
		}
	}
	weft_cs_leave(&c->lock);
	if (rc < 0)
		weft__conn_shutdown(c, rc);
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

void weft__conn_on_send(struct weft_conn *c, int status, uint32_t bytes)
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
	 * stream cannot carry what was promised. sq_bytes keeps the bytes; weft__conn_final
	 * uncounts them. */
	if (status < 0 || bytes < len) {
		weft_cs_leave(&c->lock);
		weft__conn_shutdown(c, status < 0 ? (status == -ECANCELED ? -ECONNABORTED : status) : -EPIPE);
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
			rc = weft__conn_post_recv_locked(c);
		}
	}
	weft_cs_leave(&c->lock);
	count(&s->queued, -(int64_t)bytes);
	count(&s->bytes_out, bytes);
	if (b)
		weft__bufpool_put(&s->bufs, b);
	if (rc < 0)
		weft__conn_shutdown(c, rc);
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
			inline_took(s, n);
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
		weft__conn_close_async(c, rc);
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
			inline_took(s, n);
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
	(void)weft__conn_close_async(c, -ECONNABORTED);
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

