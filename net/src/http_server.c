/* http_server.c - weft-server's HTTP/1.1 file server (see http_server.h): the connections,
 * the request loop, the short answers and the server object. GET and HEAD of files are
 * answered in http_files.c, PUT in http_upload.c; http_conn.h holds what they share.
 *
 * One struct hconn per connection, guarded by its own mutex: on_data and on_write_done
 * of one connection may run at the same time on two port threads. Received bytes are
 * appended to the connection's input buffer and requests are answered strictly in order:
 * while a file body is being streamed, or the send queue is over half full, the next
 * request waits in the buffer and on_write_done resumes the work. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "http_cache.h"
#include "http_conn.h"

#define IN_CAP (256u * 1024u)        /* input buffered while earlier requests are answered */
#define CHUNK_MAX (64u * 1024u)      /* file bytes read per weft_conn_send */

/* ---- responses -------------------------------------------------------------------------- */

void weft__http_count_status(weft__http_server *h, int status)
{
	uint64_t *ctr = status < 300 ? &h->st.s2xx : status < 400 ? &h->st.s3xx : status < 500 ? &h->st.s4xx
	                                                                                   : &h->st.s5xx;
	weft__fadd_rlx(ctr, 1);
}

/* Queues data; on failure closes the connection (the peer sees a cut response). */
bool weft__http_send_or_close(struct hconn *hc, weft_conn *c, const void *data, size_t len)
{
	if (hc->closed)
		return false;
	int rc = weft_conn_send(c, data, len);
	if (rc < 0) {
		hc->closed = true;
		weft_conn_close(c);
		return false;
	}
	return true;
}

void weft__http_log_request(struct hconn *hc, int status, uint64_t len)
{
	if (!hc->h->access_log)
		return;
	const struct weft__http_request *r = &hc->req;
	fprintf(stderr, "weft-server: %.*s %.*s %d %" PRIu64 "\n", (int)r->method_s.len,
		hc->in + r->method_s.off, (int)(r->target.len > 200 ? 200 : r->target.len),
		hc->in + r->target.off, status, len);
}

/* A response with a short text body (none for HEAD). keep=false closes after it. */
void weft__http_send_simple(struct hconn *hc, weft_conn *c, int status, bool keep, bool head_only)
{
	char body[96];
	int blen = snprintf(body, sizeof body, "%d %s\n", status, weft__http_reason(status));
	struct weft__http_response rs = { .status = status, .content_length = status == 204 ? -1 : blen,
		.last_modified = -1, .date = time(NULL), .content_type = "text/plain; charset=utf-8",
		.keep_alive = keep, .http10_client = hc->req.version_minor == 0,
		.allow = status == 405 };
	if (status == 204)
		rs.content_type = NULL;
	char head[512];
	int n = weft__http_format_response(head, sizeof head, &rs);
	weft__http_count_status(hc->h, status);
	if (!keep)
		hc->close_after = true;
	if (n < 0)
		return;
	if (!weft__http_send_or_close(hc, c, head, (size_t)n))
		return;
	if (!head_only && status != 204)
		weft__http_send_or_close(hc, c, body, (size_t)blen);
}

/* An answer without a body (412): Content-Length: 0. */
void weft__http_send_empty(struct hconn *hc, weft_conn *c, int status, bool keep)
{
	struct weft__http_response rs = { .status = status, .content_length = 0, .last_modified = -1,
		.date = time(NULL), .keep_alive = keep, .http10_client = hc->req.version_minor == 0 };
	char head[512];
	int n = weft__http_format_response(head, sizeof head, &rs);
	weft__http_count_status(hc->h, status);
	if (!keep)
		hc->close_after = true;
	if (n > 0)
		weft__http_send_or_close(hc, c, head, (size_t)n);
}

static void serve_stats(struct hconn *hc, weft_conn *c, bool head_only, bool keep)
{
	weft__http_server *h = hc->h;
	weft_server_stats s;
	weft_server_get_stats(weft_conn_server(c), &s);   /* not h->net: written after the start */
	struct weft__http_stats hs;
	weft__http_server_get_stats(h, &hs);
	char body[1024];
	int blen = snprintf(body, sizeof body,
		"{\"backend\":\"%s\",\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"closed\":%" PRIu64
		",\"active\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"errors\":%" PRIu64
		",\"timeouts\":%" PRIu64 ",\"queued_bytes\":%" PRIu64 ",\"recv_pauses\":%" PRIu64
		",\"buf_allocs\":%" PRIu64 ",\"buf_in_use\":%" PRIu64 ",\"requests\":%" PRIu64
		",\"responses_2xx\":%" PRIu64 ",\"responses_3xx\":%" PRIu64 ",\"responses_4xx\":%" PRIu64
		",\"responses_5xx\":%" PRIu64 ",\"uploads\":%" PRIu64 ",\"upload_aborts\":%" PRIu64 "}\n",
		weft_server_backend(weft_conn_server(c)), s.accepted, s.refused, s.closed, s.active, s.bytes_in, s.bytes_out,
		s.errors, s.timeouts, s.queued_bytes, s.recv_pauses, s.buf_allocs, s.buf_in_use, hs.requests,
		hs.s2xx, hs.s3xx, hs.s4xx, hs.s5xx, hs.uploads, hs.upload_aborts);
	struct weft__http_response rs = { .status = 200, .content_length = blen, .last_modified = -1,
		.date = time(NULL), .content_type = "application/json", .keep_alive = keep,
		.http10_client = hc->req.version_minor == 0 };
	char head[512];
	int n = weft__http_format_response(head, sizeof head, &rs);
	weft__http_count_status(h, 200);
	weft__http_log_request(hc, 200, (uint64_t)blen);
	if (!keep)
		hc->close_after = true;
	if (n > 0 && weft__http_send_or_close(hc, c, head, (size_t)n) && !head_only)
		weft__http_send_or_close(hc, c, body, (size_t)blen);
}

/* ---- the request loop ------------------------------------------------------------------------ */

static void consume(struct hconn *hc, size_t n)
{
	memmove(hc->in, hc->in + n, hc->in_len - n);
	hc->in_len -= n;
}

/* Drops the buffered bytes of a chunked body nobody uses (a GET's, or a PUT's refused
 * by a precondition). True once its end is consumed; false while more must come, or
 * after bad framing (the answer is out: the connection closes). */
static bool discard_chunked(struct hconn *hc)
{
	size_t off = 0, used, data;
	int rc;
	while ((rc = weft__http_chunked_next(&hc->ck, hc->in + off, hc->in_len - off, &used, &data)) ==
	       WEFT_HTTP_CHUNK_DATA)
		off += used + data;
	off += used;
	if (rc != WEFT_HTTP_CHUNK_NEED && rc != WEFT_HTTP_CHUNK_END) {
		hc->close_after = true;
		return false;
	}
	consume(hc, off);
	if (rc == WEFT_HTTP_CHUNK_NEED)
		return false;
	hc->ck_discard = false;
	return true;
}

/* Answers every complete request in the buffer, in order, as far as the queue allows.
 * Mutex held. */
static void process(struct hconn *hc, weft_conn *c)
{
	weft__http_server *h = hc->h;
	while (!hc->close_after && !hc->closed && !hc->streaming) {
		if (hc->discard) {
			size_t n = hc->in_len < hc->discard ? hc->in_len : (size_t)hc->discard;
			consume(hc, n);
			hc->discard -= n;
			if (hc->discard)
				return;
		}
		if (hc->ck_discard && !discard_chunked(hc))
			return;
		if (hc->uploading) {
			if (!hc->up_done) {
				ssize_t n = weft__http_upload_feed(hc, c, hc->in, hc->in_len);
				if (n < 0)
					return;
				consume(hc, (size_t)n);
				if (!hc->up_done)
					return;
			}
			weft__http_upload_finish(hc, c, hc->req.keep_alive && !weft__load_acq(&h->stopping));
			weft__http_request_init(&hc->req, NULL);
			continue;
		}
		if (hc->in_len == 0 || weft_conn_queued(c) > h->sq_max / 2)
			return;   /* on_data or on_write_done comes back */
		int r = weft__http_parse(&hc->req, hc->in, hc->in_len);
		if (r == WEFT_HTTP_INCOMPLETE) {
			/* a head trickling in a byte at a time keeps the idle timeout away, so it
			 * gets a deadline of its own, checked as its bytes arrive: 408 */
			uint64_t now = mono_ns();
			if (!hc->head_start)
				hc->head_start = now;
			else if (now - hc->head_start > h->head_ns) {
				weft__fadd_rlx(&h->st.requests, 1);
				weft__http_send_simple(hc, c, 408, false, false);
			}
			return;
		}
		hc->head_start = 0;
		weft__fadd_rlx(&h->st.requests, 1);
		if (r != WEFT_HTTP_OK) {
			int st = weft__http_result_status(r);
			if (st == 0 || st == 200)
				st = 400;
			weft__http_send_simple(hc, c, st, false, false);
			return;
		}
		struct weft__http_request *q = &hc->req;
		bool keep = q->keep_alive && !weft__load_acq(&h->stopping);
		bool head_only = q->method == WEFT_HTTP_HEAD;
		char path[4096];
		int pl = weft__http_path_decode(hc->in + q->path.off, q->path.len, path, sizeof path);
		if (pl < 0) {
			int st = pl == -EACCES ? 403 : pl == -ENAMETOOLONG ? 414 : 400;
			weft__http_log_request(hc, st, 0);
			weft__http_send_simple(hc, c, st, false, head_only);
			return;
		}
		if (q->method == WEFT_HTTP_PUT) {
			bool go_on = weft__http_upload_start(hc, c, path, keep);
			consume(hc, q->head_len);
			if (!go_on)
				return;   /* refused: closing */
			if (!hc->uploading)
				weft__http_request_init(&hc->req, NULL);   /* 412: its body is dropped */
			continue;
		}
		if (strcmp(path, "/stats") == 0)
			serve_stats(hc, c, head_only, keep);
		else if (h->fcache && !q->conditional &&
			 (q->range.kind == WEFT_HTTP_RANGE_NONE || q->range.kind == WEFT_HTTP_RANGE_IGNORED))
			weft__http_serve_cached(hc, c, path, (size_t)pl, head_only, keep);
		else
			weft__http_serve_file(hc, c, path, head_only, keep);
		hc->discard = q->content_length > 0 ? (uint64_t)q->content_length : 0;
		if (q->chunked) {
			weft__http_chunked_init(&hc->ck, 0);
			hc->ck_discard = true;
		}
		consume(hc, q->head_len);
		weft__http_request_init(&hc->req, NULL);
	}
}

/* Closes the connection once everything queued is sent, if the last answer said so. */
static void maybe_close(struct hconn *hc, weft_conn *c)
{
	if (hc->close_after && !hc->closed && !hc->streaming && weft_conn_queued(c) == 0) {
		hc->closed = true;
		weft_conn_close(c);
	}
}

/* ---- callbacks --------------------------------------------------------------------------------- */

static int h_accept(weft_conn *c)
{
	weft__http_server *h = weft_server_user(weft_conn_server(c));
	struct hconn *hc = calloc(1, sizeof *hc);
	if (!hc)
		return -ENOMEM;
	pthread_mutex_init(&hc->mu, NULL);
	hc->h = h;
	hc->file_fd = hc->up_fd = hc->up_dirfd = -1;
	weft__http_request_init(&hc->req, NULL);
	hc->c = c;
	weft_conn_set_user(c, hc);
	pthread_mutex_lock(&h->list_mu);
	hc->next = h->conns;
	if (h->conns)
		h->conns->prev = hc;
	h->conns = hc;
	pthread_mutex_unlock(&h->list_mu);
	return 0;
}

static void h_data(weft_conn *c, const void *data, size_t len)
{
	struct hconn *hc = weft_conn_user(c);
	if (!hc)
		return;
	const char *p = data;
	pthread_mutex_lock(&hc->mu);
	if (hc->close_after || hc->closed)
		goto out;
	if (hc->uploading && hc->in_len == 0 && !hc->up_done && !hc->streaming) {
		/* body bytes straight to the file, without a copy into the buffer */
		ssize_t n = weft__http_upload_feed(hc, c, p, len);
		if (n < 0)
			goto out;
		p += n;
		len -= (size_t)n;
	}
	if (len) {
		if (hc->in_len + len > IN_CAP) {
			hc->closed = true;
			weft_conn_close(c);
			goto out;
		}
		if (hc->in_len + len > hc->in_cap) {
			size_t cap = hc->in_cap ? hc->in_cap : 4096;
			while (cap < hc->in_len + len)
				cap *= 2;
			char *nb = realloc(hc->in, cap);
			if (!nb) {
				hc->closed = true;
				weft_conn_close(c);
				goto out;
			}
			hc->in = nb;
			hc->in_cap = cap;
		}
		memcpy(hc->in + hc->in_len, p, len);
		hc->in_len += len;
	}
	process(hc, c);
	maybe_close(hc, c);
out:
	pthread_mutex_unlock(&hc->mu);
}

static void h_write_done(weft_conn *c, size_t bytes)
{
	(void)bytes;
	struct hconn *hc = weft_conn_user(c);
	if (!hc)
		return;
	pthread_mutex_lock(&hc->mu);
	if (hc->streaming)
		weft__http_pump(hc, c);
	if (!hc->streaming)
		process(hc, c);
	maybe_close(hc, c);
	pthread_mutex_unlock(&hc->mu);
}

static void h_close(weft_conn *c, int reason)
{
	(void)reason;
	struct hconn *hc = weft_conn_user(c);
	if (!hc)
		return;
	weft__http_server *h = hc->h;
	pthread_mutex_lock(&h->list_mu);
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		h->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	pthread_mutex_unlock(&h->list_mu);
	/* the last callback: no other can run now, but take the mutex for the sanitizers'
	 * sake (it orders the frees after the last on_data / on_write_done) */
	pthread_mutex_lock(&hc->mu);
	weft__http_stream_end(hc);
	weft__http_upload_abort(hc);
	pthread_mutex_unlock(&hc->mu);
	pthread_mutex_destroy(&hc->mu);
	free(hc->in);
	free(hc->chunk);
	free(hc);
	weft_conn_set_user(c, NULL);
}

static const weft_server_callbacks http_callbacks = {
	.on_accept = h_accept, .on_data = h_data, .on_write_done = h_write_done, .on_close = h_close,
};

/* ---- the server -------------------------------------------------------------------------------- */

static void fcache_free(void *fc)
{
	weft__fcache_destroy(fc);
}

weft__http_server *weft__http_server_create(const struct weft__http_server_config *cfg, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	*err = 0;
	if (!cfg || !cfg->root) {
		*err = -EINVAL;
		return NULL;
	}
	weft__http_server *h = calloc(1, sizeof *h);
	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	h->rootfd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (h->rootfd < 0) {
		*err = -errno;
		free(h);
		return NULL;
	}
	h->max_upload = cfg->max_upload ? cfg->max_upload : WEFT_HTTP_MAX_UPLOAD_DEFAULT;
	pthread_mutex_init(&h->list_mu, NULL);
	h->access_log = cfg->access_log;
	h->copy = cfg->no_sendfile;
	h->walk = cfg->force_walk;
	weft_server_config nc = cfg->net;
	nc.cb = &http_callbacks;
	nc.user = h;
	nc.idle_timeout_ms = cfg->header_timeout_ms ? cfg->header_timeout_ms : WEFT_HTTP_HEADER_TIMEOUT_DEFAULT;
	h->head_ns = (uint64_t)nc.idle_timeout_ms * 1000000ull;
	h->sq_max = nc.send_queue_max ? nc.send_queue_max : 256u * 1024u;
	uint32_t bs = nc.buf_size ? nc.buf_size : 16384u;
	if (h->sq_max < 2 * bs)
		h->sq_max = 2 * bs;   /* as the framework rounds it */
	h->chunk = h->sq_max / 4 < CHUNK_MAX ? h->sq_max / 4 : CHUNK_MAX;
	if (h->chunk == 0)
		h->chunk = 1;
	if (!cfg->no_file_cache) {
		h->fc_valid_ns = (uint64_t)(cfg->file_cache_ms ? cfg->file_cache_ms : WEFT_HTTP_FILE_CACHE_MS_DEFAULT) *
				 1000000ull;
		h->fc_max = cfg->file_cache_max ? cfg->file_cache_max : WEFT_HTTP_FILE_CACHE_MAX_DEFAULT;
		if (h->fc_max > h->sq_max / 4)
			h->fc_max = h->sq_max / 4;   /* one answer always fits the send queue */
		h->fcache = pthread_key_create(&h->fkey, fcache_free) == 0;
	}
	h->net = weft_server_create(&nc, err);
	if (!h->net) {
		if (h->fcache)
			pthread_key_delete(h->fkey);
		pthread_mutex_destroy(&h->list_mu);
		close(h->rootfd);
		free(h);
		return NULL;
	}
	return h;
}

int weft__http_server_stop(weft__http_server *h, uint32_t timeout_ms)
{
	/* seq_cst store: a request parsed after this says Connection: close; one answered
	 * just before is caught by the walk below, which takes each connection's mutex */
	__atomic_store_n(&h->stopping, true, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&h->list_mu);
	for (struct hconn *hc = h->conns; hc; hc = hc->next) {
		pthread_mutex_lock(&hc->mu);
		/* between requests (nothing buffered, no upload): close once the last answer
		 * is out; a request under way is answered first, with Connection: close */
		if (!hc->uploading && hc->in_len == 0 && !hc->closed) {
			hc->close_after = true;
			maybe_close(hc, hc->c);
		}
		pthread_mutex_unlock(&hc->mu);
	}
	pthread_mutex_unlock(&h->list_mu);
	return weft_server_stop(h->net, timeout_ms);
}

weft_server *weft__http_server_net(weft__http_server *h)
{
	return h->net;
}

void weft__http_server_get_stats(weft__http_server *h, struct weft__http_stats *out)
{
	out->requests = weft__load_rlx(&h->st.requests);
	out->s2xx = weft__load_rlx(&h->st.s2xx);
	out->s3xx = weft__load_rlx(&h->st.s3xx);
	out->s4xx = weft__load_rlx(&h->st.s4xx);
	out->s5xx = weft__load_rlx(&h->st.s5xx);
	out->uploads = weft__load_rlx(&h->st.uploads);
	out->upload_aborts = weft__load_rlx(&h->st.upload_aborts);
}

void weft__http_server_destroy(weft__http_server *h)
{
	if (!h)
		return;
	weft_server_destroy(h->net);   /* joins the port threads: their caches are freed */
	if (h->fcache)
		pthread_key_delete(h->fkey);
	pthread_mutex_destroy(&h->list_mu);
	close(h->rootfd);
	free(h);
}
