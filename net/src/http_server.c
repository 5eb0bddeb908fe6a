/* http_server.c - weft-server's HTTP/1.1 file server (see http_server.h).
 *
 * One struct hconn per connection, guarded by its own mutex: on_data and on_write_done
 * of one connection may run at the same time on two port threads. Received bytes are
 * appended to the connection's input buffer and requests are answered strictly in order:
 * while a file body is being streamed, or the send queue is over half full, the next
 * request waits in the buffer and on_write_done resumes the work.
 *
 * File bodies go out in chunks through weft_conn_send as the queue drains, never a whole
 * file in memory (by default with weft_conn_sendfile instead: the port's sendfile, one
 * piece at a time, no copy through user space). Files are opened beneath the root with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) (an O_NOFOLLOW walk where openat2 is missing), after
 * weft__http_path_decode has already refused every ".." and encoded separator.
 *
 * Several ranges go out as multipart/byteranges: the part heads are queued with
 * weft_conn_send between the spans, which stream like any file body (next_part()).
 *
 * Uploads are written into an O_TMPFILE (or a hidden temporary name) in the target
 * directory and linked and renamed over the target only when the last byte is written
 * (for a chunked body: when the last chunk and its trailers are in); a connection that
 * closes first leaves nothing behind. Preconditions (If-Match, If-Unmodified-Since,
 * If-None-Match) are checked at the start of an upload and, where they can change, again
 * at the rename (RENAME_NOREPLACE for If-None-Match: *). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "http_cache.h"
#include "http_parse.h"
#include "http_server.h"

#define IN_CAP (256u * 1024u)        /* input buffered while earlier requests are answered */
#define CHUNK_MAX (64u * 1024u)      /* file bytes read per weft_conn_send */
#define SF_CHUNK (128u * 1024u)      /* file bytes per weft_conn_sendfile */

struct weft__http_server {
	weft_server *net;
	int rootfd;
	uint64_t max_upload;
	uint32_t sq_max;
	uint32_t chunk;
	bool access_log;
	bool copy;                       /* pread + weft_conn_send instead of sendfile */
	bool walk;                       /* always the O_NOFOLLOW walk (tests the fallback) */
	uint64_t head_ns;                /* the longest a head may take to arrive */
	bool stopping;                   /* atomic: answers say Connection: close */
	pthread_mutex_t list_mu;         /* the open connections, for a graceful stop; never
	                                  * taken while holding a connection's mutex */
	struct hconn *conns;
	uint64_t tmp_seq;                /* atomic: temporary names */
	struct weft__http_stats st;      /* atomic, relaxed */
	/* the small-file cache: one per port thread (http_cache.h), found through fkey */
	bool fcache;
	pthread_key_t fkey;
	uint64_t fc_valid_ns;            /* trust an entry this long after its last check */
	size_t fc_max;                   /* largest file cached */
	uint64_t fgen;                   /* atomic: bumped by each upload; caches flush on change */
};

struct hconn {
	pthread_mutex_t mu;
	weft__http_server *h;
	weft_conn *c;
	struct hconn *prev, *next;       /* h->conns, under h->list_mu */
	char *in;                        /* bytes received and not yet consumed */
	size_t in_len, in_cap;
	struct weft__http_request req;
	bool close_after;                /* close once the queue is empty; ignore input */
	bool closed;                     /* weft_conn_close called */
	/* streaming a file body */
	bool streaming;
	bool corked;                     /* TCP_CORK set for this response (stream_end clears) */
	int file_fd;
	uint64_t file_off, file_end;
	char *chunk;
	/* a multipart/byteranges body: mp_n spans (0: a single body), mp_i the one streaming */
	uint8_t mp_n, mp_i;
	struct weft__http_span mp[WEFT_HTTP_MAX_RANGES];
	uint64_t mp_total;               /* the file's size, for Content-Range */
	const char *mp_ctype;            /* static string */
	char mp_boundary[32];
	uint64_t head_start;             /* monotonic ns of a partial head's first byte; 0: none */
	/* discarding a request body we do not use: discard bytes, or a chunked one (ck) */
	uint64_t discard;
	bool ck_discard;
	/* the chunked body being received or discarded */
	struct weft__http_chunked ck;
	/* receiving an upload */
	bool uploading;
	bool up_chunked;                 /* the body is chunked (ck), else up_left bytes */
	bool up_done;                    /* the body's last byte arrived */
	bool up_noreplace;               /* If-None-Match: *: rename only if no target */
	bool up_guard;                   /* If-Match / If-Unmodified-Since held at the start:
	                                  * the target must still carry up_etag at the end */
	int up_fd, up_dirfd;
	uint64_t up_left;
	bool up_named;                   /* the temporary file has a name (no O_TMPFILE) */
	char up_tmp[64];
	char up_name[256];
	char up_etag[64];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The coarse clock (a few ms of resolution, cheaper to read): enough for the cache's
 * freshness interval of hundreds of ms. */
static uint64_t coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- opening beneath the root ---------------------------------------------------------- */

/* Walks rel one component at a time with O_NOFOLLOW: no symlink is followed at all. */
static int open_walk(int rootfd, const char *rel, int flags, mode_t mode)
{
	int dir = rootfd;
	const char *p = rel;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash) {
			int fd = openat(dir, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			int e = errno;
			if (dir != rootfd)
				close(dir);
			return fd < 0 ? -e : fd;
		}
		char comp[256];
		size_t n = (size_t)(slash - p);
		if (n == 0 || n >= sizeof comp) {
			if (dir != rootfd)
				close(dir);
			return n == 0 ? -ENOENT : -ENAMETOOLONG;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		int next = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dir != rootfd)
			close(dir);
		if (next < 0)
			return -e;
		dir = next;
		p = slash + 1;
	}
}

/* Opens rel (no leading '/'; "" is the root itself) beneath the root. fd or -errno. */
static int open_beneath(weft__http_server *h, const char *rel, int flags, mode_t mode)
{
	if (*rel == '\0')
		rel = ".";
	if (h->walk)
		return open_walk(h->rootfd, rel, flags, mode);
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	long fd = syscall(SYS_openat2, h->rootfd, rel, &how, sizeof how);
	if (fd >= 0)
		return (int)fd;
	int e = errno;
	if (e == ENOSYS || e == EPERM)   /* no openat2, or a seccomp filter refusing it */
		return open_walk(h->rootfd, rel, flags, mode);
	return -e;
}

static int errno_status(int e)
{
	switch (e) {
	case -ENOENT:
	case -ENOTDIR: return 404;
	case -EXDEV:
	case -ELOOP:
	case -EACCES:
	case -EPERM: return 403;
	case -ENAMETOOLONG: return 414;
	default: return 500;
	}
}

static const char *content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "html", "text/html; charset=utf-8" }, { "htm", "text/html; charset=utf-8" },
		{ "txt", "text/plain; charset=utf-8" }, { "css", "text/css" },
		{ "js", "text/javascript" }, { "json", "application/json" },
		{ "xml", "application/xml" }, { "png", "image/png" }, { "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" }, { "gif", "image/gif" }, { "svg", "image/svg+xml" },
		{ "ico", "image/x-icon" }, { "webp", "image/webp" }, { "pdf", "application/pdf" },
		{ "wasm", "application/wasm" }, { "gz", "application/gzip" },
		{ "tar", "application/x-tar" }, { "zip", "application/zip" },
		{ "mp4", "video/mp4" }, { "mp3", "audio/mpeg" },
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	if (dot && (!slash || dot > slash)) {
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
	}
	return "application/octet-stream";
}

/* ---- responses -------------------------------------------------------------------------- */

static void count_status(weft__http_server *h, int status)
{
	uint64_t *ctr = status < 300 ? &h->st.s2xx : status < 400 ? &h->st.s3xx : status < 500 ? &h->st.s4xx
	                                                                                   : &h->st.s5xx;
	weft__fadd_rlx(ctr, 1);
}

/* Queues data; on failure closes the connection (the peer sees a cut response). */
static bool send_or_close(struct hconn *hc, weft_conn *c, const void *data, size_t len)
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

static void log_request(struct hconn *hc, int status, uint64_t len)
{
	if (!hc->h->access_log)
		return;
	const struct weft__http_request *r = &hc->req;
	fprintf(stderr, "weft-server: %.*s %.*s %d %" PRIu64 "\n", (int)r->method_s.len,
		hc->in + r->method_s.off, (int)(r->target.len > 200 ? 200 : r->target.len),
		hc->in + r->target.off, status, len);
}

/* A response with a short text body (none for HEAD). keep=false closes after it. */
static void send_simple(struct hconn *hc, weft_conn *c, int status, bool keep, bool head_only)
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
	count_status(hc->h, status);
	if (!keep)
		hc->close_after = true;
	if (n < 0)
		return;
	if (!send_or_close(hc, c, head, (size_t)n))
		return;
	if (!head_only && status != 204)
		send_or_close(hc, c, body, (size_t)blen);
}

/* ---- streaming a file ---------------------------------------------------------------------- */

static void stream_end(struct hconn *hc)
{
	if (hc->corked) {
		/* the body is in the socket (or the connection is going): send the tail */
		weft_conn_set_cork(hc->c, false);
		hc->corked = false;
	}
	if (hc->file_fd >= 0)
		close(hc->file_fd);
	hc->file_fd = -1;
	hc->streaming = false;
	hc->mp_n = 0;
}

static int format_part(const struct hconn *hc, unsigned i, char *out, size_t cap);

/* Before the head of a response whose file body follows: hold partial segments until
 * stream_end, so the head and the body leave in full segments. Measured on a 1 MiB
 * file, wrk -t1 -c50 on 127.0.0.1: ~2,000 -> ~3,000 req/s; without it the client
 * spends its CPU pushing the server's queued segments out of its own ACK processing
 * (perf: tcp_write_xmit under the client's read, 28% of its samples). */
static void cork_body(struct hconn *hc, weft_conn *c)
{
	if (!hc->corked && weft_conn_set_cork(c, true) == 0)
		hc->corked = true;
}

/* Every byte of the current span is queued. A multipart body goes on with the next
 * part's head and span (true: stream file_off..file_end now), or ends with the closing
 * delimiter; a single body just ends. Mutex held. */
static bool next_part(struct hconn *hc, weft_conn *c)
{
	if (hc->mp_n == 0 || hc->closed) {
		stream_end(hc);
		return false;
	}
	unsigned i = (unsigned)hc->mp_i + 1;
	char part[256];
	int n = format_part(hc, i, part, sizeof part);
	if (n < 0 || !send_or_close(hc, c, part, (size_t)n) || i == hc->mp_n) {
		if (n < 0 && !hc->closed) {
			hc->closed = true;
			weft_conn_close(c);
		}
		stream_end(hc);
		return false;
	}
	hc->mp_i = (uint8_t)i;
	hc->file_off = hc->mp[i].first;
	hc->file_end = hc->mp[i].last + 1;
	return true;
}

/* Zero-copy: one weft_conn_sendfile at a time, each posted once everything before it
 * (the head, the previous piece) is out. Mutex held. */
static void pump_sendfile(struct hconn *hc, weft_conn *c)
{
	if (!hc->streaming || hc->closed || weft_conn_queued(c) != 0)
		return;   /* the completion of what is queued comes back through on_write_done */
	if (hc->file_off >= hc->file_end) {
		/* the last piece is sent: the descriptor is free, or the next part begins */
		if (!next_part(hc, c) || weft_conn_queued(c) != 0)
			return;   /* a part head still queued: on_write_done comes back */
	}
	uint64_t want = hc->file_end - hc->file_off;
	if (want > SF_CHUNK)
		want = SF_CHUNK;
	int rc = weft_conn_sendfile(c, hc->file_fd, hc->file_off, (uint32_t)want);
	if (rc == -EBUSY)
		return;
	if (rc < 0) {
		stream_end(hc);
		hc->closed = true;
		weft_conn_close(c);
		return;
	}
	/* a short piece (the file shrank) closes the connection in the framework */
	hc->file_off += want;
}

/* Queues file chunks while the queue is under half full. Mutex held. */
static void pump(struct hconn *hc, weft_conn *c)
{
	weft__http_server *h = hc->h;
	if (!h->copy) {
		pump_sendfile(hc, c);
		return;
	}
	while (hc->streaming && !hc->closed) {
		if (hc->file_off >= hc->file_end) {
			if (!next_part(hc, c))
				return;
			continue;
		}
		if (weft_conn_queued(c) + h->chunk > h->sq_max / 2)
			return;   /* on_write_done comes back */
		uint64_t want = hc->file_end - hc->file_off;
		if (want > h->chunk)
			want = h->chunk;
		ssize_t n = pread(hc->file_fd, hc->chunk, (size_t)want, (off_t)hc->file_off);
		if (n <= 0) {
			/* the file shrank or failed under us: the length promised cannot be kept */
			stream_end(hc);
			hc->closed = true;
			weft_conn_close(c);
			return;
		}
		if (!send_or_close(hc, c, hc->chunk, (size_t)n)) {
			stream_end(hc);
			return;
		}
		hc->file_off += (uint64_t)n;
	}
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
	count_status(h, 200);
	log_request(hc, 200, (uint64_t)blen);
	if (!keep)
		hc->close_after = true;
	if (n > 0 && send_or_close(hc, c, head, (size_t)n) && !head_only)
		send_or_close(hc, c, body, (size_t)blen);
}

/* The preconditions of RFC 9110 13.2.2, steps 1 to 4, in its order, against the target
 * (exists: there is one, with etag and mtime). get: a GET or HEAD, else a PUT. Returns 0
 * (go on: If-Range comes next), 304 or 412.
 *   1. If-Match: "*" or a tag by the strong comparison; false (or no target): 412.
 *   2. without If-Match, If-Unmodified-Since: the target newer than the date: 412
 *      (ignored without a target or with a date weft cannot read, 13.1.4).
 *   3. If-None-Match: "*" or a tag by the weak comparison matches: 304 for GET and
 *      HEAD, 412 for PUT (so If-None-Match: * makes a PUT create-only).
 *   4. without If-None-Match, for GET and HEAD, If-Modified-Since: not newer: 304. */
static int preconditions(struct hconn *hc, bool get, bool exists, const char *etag, int64_t mtime)
{
	size_t len;
	int64_t t;
	const char *v = weft__http_header_get(&hc->req, hc->in, "If-Match", &len);
	if (v) {
		if (!exists || !weft__http_etag_match(v, len, etag, false))
			return 412;
	} else if ((v = weft__http_header_get(&hc->req, hc->in, "If-Unmodified-Since", &len)) && exists &&
		   weft__http_parse_date(v, len, &t) == 0 && mtime > t) {
		return 412;
	}
	v = weft__http_header_get(&hc->req, hc->in, "If-None-Match", &len);
	if (v) {
		if (exists && weft__http_etag_match(v, len, etag, true))
			return get ? 304 : 412;
	} else if (get && exists && (v = weft__http_header_get(&hc->req, hc->in, "If-Modified-Since", &len)) &&
		   weft__http_parse_date(v, len, &t) == 0 && mtime <= t) {
		return 304;
	}
	return 0;
}

/* An answer without a body (412): Content-Length: 0. */
static void send_empty(struct hconn *hc, weft_conn *c, int status, bool keep)
{
	struct weft__http_response rs = { .status = status, .content_length = 0, .last_modified = -1,
		.date = time(NULL), .keep_alive = keep, .http10_client = hc->req.version_minor == 0 };
	char head[512];
	int n = weft__http_format_response(head, sizeof head, &rs);
	count_status(hc->h, status);
	if (!keep)
		hc->close_after = true;
	if (n > 0)
		send_or_close(hc, c, head, (size_t)n);
}

/* If-Range (RFC 9110 13.1.5): the Range applies only while the validator still matches
 * (an entity tag by the strong comparison, or exactly the Last-Modified date). */
static bool range_applies(struct hconn *hc, const char *etag, int64_t mtime)
{
	size_t len;
	const char *v = weft__http_header_get(&hc->req, hc->in, "If-Range", &len);
	if (!v)
		return true;
	if (len && (v[0] == '"' || v[0] == 'W'))
		return weft__http_etag_match(v, len, etag, false);
	int64_t t;
	return weft__http_parse_date(v, len, &t) == 0 && t == mtime;
}

static void send_not_modified(struct hconn *hc, weft_conn *c, const char *etag, int64_t mtime, bool keep)
{
	struct weft__http_response rs = { .status = 304, .content_length = -1, .last_modified = mtime,
		.date = time(NULL), .etag = etag, .keep_alive = keep, .http10_client = hc->req.version_minor == 0 };
	char head[512];
	int n = weft__http_format_response(head, sizeof head, &rs);
	count_status(hc->h, 304);
	if (!keep)
		hc->close_after = true;
	if (n > 0)
		send_or_close(hc, c, head, (size_t)n);
}

/* Streams fd[first, end) after the head already queued; takes fd. Mutex held. */
static void stream_start(struct hconn *hc, weft_conn *c, int fd, uint64_t first, uint64_t end)
{
	weft__http_server *h = hc->h;
	if (h->copy && !hc->chunk) {
		hc->chunk = malloc(h->chunk);
		if (!hc->chunk) {
			close(fd);
			hc->mp_n = 0;
			hc->closed = true;
			weft_conn_close(c);
			return;
		}
	}
	hc->streaming = true;
	hc->file_fd = fd;
	hc->file_off = first;
	hc->file_end = end;
	pump(hc, c);
}

/* The head of part i of the multipart body being sent (or, for i == mp_n, its closing
 * delimiter) into out. */
static int format_part(const struct hconn *hc, unsigned i, char *out, size_t cap)
{
	bool final = i == hc->mp_n;
	return weft__http_format_part(out, cap, hc->mp_boundary, hc->mp_ctype, final ? NULL : &hc->mp[i],
				      hc->mp_total, i == 0, final);
}

/* 206 multipart/byteranges (RFC 9110 14.6) for n >= 2 ascending, disjoint spans: the
 * exact Content-Length is summed up front from the part heads, then each part's head
 * goes out with weft_conn_send and its bytes like any file body (sendfile or copy);
 * next_part() moves from one span to the next. Takes fd. */
static void serve_multipart(struct hconn *hc, weft_conn *c, const char *path, int fd, const struct stat *sb,
			    const char *etag, const struct weft__http_span *spans, unsigned n, bool head_only,
			    bool keep)
{
	weft__http_server *h = hc->h;
	/* a boundary no two answers share; splitmix64 of a counter and the clock */
	uint64_t x = weft__fadd_rlx(&h->tmp_seq, 1) * 0x9e3779b97f4a7c15ull ^ mono_ns();
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	snprintf(hc->mp_boundary, sizeof hc->mp_boundary, "weft-%016" PRIx64, x ^ (x >> 31));
	hc->mp_ctype = content_type(path);
	hc->mp_total = (uint64_t)sb->st_size;
	hc->mp_n = (uint8_t)n;
	hc->mp_i = 0;
	memcpy(hc->mp, spans, n * sizeof spans[0]);
	uint64_t len = 0;
	char part[256];
	for (unsigned i = 0; i <= n; i++) {
		int pn = format_part(hc, i, part, sizeof part);
		if (pn < 0) {   /* cannot happen: a boundary, a short type and numbers */
			close(fd);
			hc->mp_n = 0;
			send_simple(hc, c, 500, false, head_only);
			return;
		}
		len += (uint64_t)pn + (i < n ? spans[i].last - spans[i].first + 1 : 0);
	}
	struct weft__http_response rs = { .status = 206, .content_length = (int64_t)len,
		.last_modified = sb->st_mtime, .date = time(NULL), .boundary = hc->mp_boundary, .keep_alive = keep,
		.http10_client = hc->req.version_minor == 0, .accept_ranges = true, .etag = etag };
	char head[768];
	int hn = weft__http_format_response(head, sizeof head, &rs);
	count_status(h, 206);
	log_request(hc, 206, head_only ? 0 : len);
	if (!keep)
		hc->close_after = true;
	int pn = format_part(hc, 0, part, sizeof part);
	if (hn >= 0 && !head_only)
		cork_body(hc, c);
	if (hn < 0 || !send_or_close(hc, c, head, (size_t)hn) || head_only ||
	    !send_or_close(hc, c, part, (size_t)pn)) {
		close(fd);
		hc->mp_n = 0;
		stream_end(hc);   /* uncorks */
		return;
	}
	stream_start(hc, c, fd, spans[0].first, spans[0].last + 1);
}

/* Answers with the open regular file fd (sb: its fstat); takes fd. */
static void serve_fd(struct hconn *hc, weft_conn *c, const char *path, int fd, const struct stat *sbp,
		     bool head_only, bool keep)
{
	weft__http_server *h = hc->h;
	struct stat sb = *sbp;
	char etag[64];
	weft__http_etag(etag, sizeof etag, &sb);
	struct weft__http_range range = hc->req.range;
	if (hc->req.conditional) {
		int pc = preconditions(hc, true, true, etag, sb.st_mtime);
		if (pc) {
			close(fd);
			log_request(hc, pc, 0);
			if (pc == 304)
				send_not_modified(hc, c, etag, sb.st_mtime, keep);
			else
				send_empty(hc, c, pc, keep);
			return;
		}
		if (range.kind != WEFT_HTTP_RANGE_NONE && !range_applies(hc, etag, sb.st_mtime))
			range.kind = WEFT_HTTP_RANGE_NONE;   /* changed since: the whole file, 200 */
	}
	uint64_t size = (uint64_t)sb.st_size, first = 0, last = 0;
	struct weft__http_span spans[WEFT_HTTP_MAX_RANGES];
	int rr = range.kind == WEFT_HTTP_RANGE_NONE ? 0 : weft__http_ranges_resolve(&hc->req, size, spans);
	if (rr > 1) {
		serve_multipart(hc, c, path, fd, &sb, etag, spans, (unsigned)rr, head_only, keep);
		return;
	}
	if (rr == 1) {
		first = spans[0].first;
		last = spans[0].last;
	}
	struct weft__http_response rs = { .status = 200, .last_modified = sb.st_mtime, .date = time(NULL),
		.content_type = content_type(path), .keep_alive = keep,
		.http10_client = hc->req.version_minor == 0, .accept_ranges = true, .etag = etag };
	uint64_t len = size;
	if (rr == -ERANGE) {
		close(fd);
		rs.status = 416;
		rs.content_length = 0;
		rs.range_unsatisfied = true;
		rs.range_total = size;
		rs.content_type = NULL;
		len = 0;
	} else if (rr == 1) {
		rs.status = 206;
		rs.content_range = true;
		rs.range_first = first;
		rs.range_last = last;
		rs.range_total = size;
		len = last - first + 1;
		rs.content_length = (int64_t)len;
	} else {
		rs.content_length = (int64_t)size;
	}
	char head[768];
	int n = weft__http_format_response(head, sizeof head, &rs);
	count_status(h, rs.status);
	log_request(hc, rs.status, head_only ? 0 : len);
	if (!keep)
		hc->close_after = true;
	if (n >= 0 && rr != -ERANGE && !head_only && len > 0)
		cork_body(hc, c);
	if (n < 0 || !send_or_close(hc, c, head, (size_t)n)) {
		if (rr != -ERANGE)
			close(fd);
		stream_end(hc);   /* uncorks */
		return;
	}
	if (rr == -ERANGE)
		return;
	if (head_only || len == 0) {
		close(fd);
		return;
	}
	stream_start(hc, c, fd, first, first + len);
}

/* Opens path beneath the root. A regular file: true, with the descriptor in *fdp and its
 * fstat in *sb, nothing answered yet. Anything else: the error is answered, false. */
static bool open_or_answer(struct hconn *hc, weft_conn *c, const char *path, bool head_only, bool keep, int *fdp,
			   struct stat *sb)
{
	int fd = open_beneath(hc->h, path + 1, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd < 0) {
		int st = errno_status(fd);
		log_request(hc, st, 0);
		send_simple(hc, c, st, keep, head_only);
		return false;
	}
	if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
		close(fd);
		log_request(hc, 404, 0);
		send_simple(hc, c, 404, keep, head_only);
		return false;
	}
	*fdp = fd;
	return true;
}

static void serve_file(struct hconn *hc, weft_conn *c, const char *path, bool head_only, bool keep)
{
	int fd;
	struct stat sb;
	if (open_or_answer(hc, c, path, head_only, keep, &fd, &sb))
		serve_fd(hc, c, path, fd, &sb, head_only, keep);
}

/* ---- the small-file cache ------------------------------------------------------------------ */

static void fcache_free(void *fc)
{
	weft__fcache_destroy(fc);
}

static struct weft__fcache *thread_cache(weft__http_server *h)
{
	struct weft__fcache *fc = pthread_getspecific(h->fkey);
	if (!fc) {
		fc = weft__fcache_create(h->fc_max);
		if (fc && pthread_setspecific(h->fkey, fc) != 0) {
			weft__fcache_destroy(fc);
			fc = NULL;
		}
	}
	return fc;
}

/* A whole-file GET or HEAD (no range): from this thread's cache when the file is small,
 * in one send of head and body. Answers every case (a miss falls through to serve_fd
 * with the descriptor already open). */
static void serve_cached(struct hconn *hc, weft_conn *c, const char *path, size_t pl, bool head_only, bool keep)
{
	weft__http_server *h = hc->h;
	struct weft__fcache *fc = thread_cache(h);
	if (!fc) {
		serve_file(hc, c, path, head_only, keep);
		return;
	}
	/* acquire: pairs with the release bump in upload_finish, so an upload answered
	 * before this request arrived is never hidden by an older entry */
	uint64_t gen = weft__load_acq(&h->fgen);
	if (fc->gen != gen) {
		weft__fcache_flush(fc);
		fc->gen = gen;
	}
	uint32_t hash = weft__fcache_hash(path, pl);
	struct weft__fcache_entry *e = weft__fcache_find(fc, path, pl, hash);
	uint64_t now = coarse_ns();
	if (!e || now - e->checked_ns > h->fc_valid_ns) {
		int fd;
		struct stat sb;
		if (!open_or_answer(hc, c, path, head_only, keep, &fd, &sb)) {
			if (e)
				weft__fcache_remove(fc, e);
			return;
		}
		if (e && weft__fcache_same(e, &sb)) {
			e->checked_ns = now;
		} else {
			if (e)
				weft__fcache_remove(fc, e);
			e = weft__fcache_add(fc, path, pl, hash, fd, &sb, content_type(path), now);
		}
		if (!e) {
			serve_fd(hc, c, path, fd, &sb, head_only, keep);
			return;
		}
		close(fd);
	}
	/* the cached head says keep-alive to an HTTP/1.1 client; other answers append their
	 * Connection line before the blank line */
	char *o = fc->out;
	size_t n;
	bool http10 = hc->req.version_minor == 0;
	if (keep && !http10) {
		n = e->head_len;
		memcpy(o, e->resp, n);
	} else {
		static const char cl[] = "Connection: close\r\n\r\n", ka[] = "Connection: keep-alive\r\n\r\n";
		n = e->head_len - 2;
		memcpy(o, e->resp, n);
		const char *line = keep ? ka : cl;
		size_t ll = keep ? sizeof ka - 1 : sizeof cl - 1;
		memcpy(o + n, line, ll);
		n += ll;
	}
	memcpy(o + WEFT__FCACHE_DATE_OFF, weft__fcache_date(fc, (int64_t)time(NULL)), 29);
	if (!head_only) {
		memcpy(o + n, e->resp + e->head_len, e->body_len);
		n += e->body_len;
	}
	count_status(h, 200);
	log_request(hc, 200, head_only ? 0 : e->body_len);
	if (!keep)
		hc->close_after = true;
	send_or_close(hc, c, o, n);
}

/* ---- uploads ----------------------------------------------------------------------------------- */

static void upload_abort(struct hconn *hc)
{
	if (!hc->uploading)
		return;
	if (hc->up_fd >= 0)
		close(hc->up_fd);
	if (hc->up_named)
		unlinkat(hc->up_dirfd, hc->up_tmp, 0);
	if (hc->up_dirfd >= 0)
		close(hc->up_dirfd);
	hc->up_fd = hc->up_dirfd = -1;
	hc->uploading = false;
	weft__fadd_rlx(&hc->h->st.upload_aborts, 1);
}

/* The target of an upload as PUT sees it: the name itself in its directory (a symlink
 * is not followed: the rename replaces the name). Its entity tag into etag (64 bytes). */
static bool upload_target(int dirfd, const char *name, char *etag, int64_t *mtime)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	weft__http_etag(etag, 64, &sb);
	*mtime = sb.st_mtime;
	return true;
}

/* The PUT preconditions (RFC 9110 13.2.2) against the target as it is now: 0 or 412.
 * Remembers what upload_finish must check again. */
static int upload_preconditions(struct hconn *hc, int dirfd, const char *name)
{
	char etag[64] = "";
	int64_t mtime = 0;
	bool exists = upload_target(dirfd, name, etag, &mtime);
	if (preconditions(hc, false, exists, etag, mtime))
		return 412;
	size_t len;
	const char *v = weft__http_header_get(&hc->req, hc->in, "If-None-Match", &len);
	hc->up_noreplace = v && len == 1 && v[0] == '*';
	hc->up_guard = exists && (weft__http_header_get(&hc->req, hc->in, "If-Match", &len) ||
				  weft__http_header_get(&hc->req, hc->in, "If-Unmodified-Since", &len));
	memcpy(hc->up_etag, etag, sizeof etag);
	return 0;
}

/* A PUT refused by a precondition: 412. Its body, if one follows, is read and dropped
 * so the connection stays usable, unless the client waits for 100-continue (it may
 * never send the body: then close, RFC 9110 10.1.1). True: go on with the next request. */
static bool upload_refuse_412(struct hconn *hc, weft_conn *c, bool keep)
{
	const struct weft__http_request *r = &hc->req;
	bool body = r->chunked || r->content_length > 0;
	if (body && r->expect_continue)
		keep = false;
	log_request(hc, 412, 0);
	send_empty(hc, c, 412, keep);
	if (!keep)
		return false;
	if (r->chunked) {
		weft__http_chunked_init(&hc->ck, 0);
		hc->ck_discard = true;
	} else {
		hc->discard = r->content_length > 0 ? (uint64_t)r->content_length : 0;
	}
	return true;
}

/* Starts a PUT. Refusals answer and close (the body that follows is not read), but a
 * failed precondition keeps the connection where it can. True: go on with the input
 * (the upload started, or a 412 that keeps the connection). */
static bool upload_start(struct hconn *hc, weft_conn *c, const char *path, bool keep)
{
	weft__http_server *h = hc->h;
	const struct weft__http_request *r = &hc->req;
	int status = 0;
	if (r->content_length < 0 && !r->chunked)
		status = 411;
	else if (r->content_length > 0 && (uint64_t)r->content_length > h->max_upload)
		status = 413;
	const char *slash = strrchr(path, '/');
	const char *name = slash + 1;
	if (!status && (*name == '\0' || strlen(name) >= sizeof hc->up_name || strcmp(path, "/stats") == 0))
		status = 403;
	int dirfd = -1;
	if (!status) {
		char dir[4096];
		size_t dl = (size_t)(slash - path);
		memcpy(dir, path, dl);
		dir[dl] = '\0';
		dirfd = open_beneath(h, dl ? dir + 1 : "", O_PATH | O_DIRECTORY, 0);
		if (dirfd < 0)
			status = errno_status(dirfd);
	}
	hc->up_noreplace = hc->up_guard = false;
	if (!status && r->conditional && upload_preconditions(hc, dirfd, name) == 412) {
		close(dirfd);
		return upload_refuse_412(hc, c, keep);
	}
	int fd = -1;
	bool named = false;
	if (!status) {
		fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EACCES && errno != EROFS && errno != ENOSPC && errno != EDQUOT) {
			/* no O_TMPFILE on this file system: a hidden name, removed on failure */
			uint64_t seq = weft__fadd_rlx(&h->tmp_seq, 1);
			snprintf(hc->up_tmp, sizeof hc->up_tmp, ".weft-upload-%d-%" PRIu64, (int)getpid(), seq);
			fd = openat(dirfd, hc->up_tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
			named = fd >= 0;
		}
		if (fd < 0)
			status = errno == EACCES || errno == EROFS ? 403 : 500;
	}
	if (status) {
		if (dirfd >= 0)
			close(dirfd);
		log_request(hc, status, 0);
		send_simple(hc, c, status, false, false);
		return false;
	}
	snprintf(hc->up_name, sizeof hc->up_name, "%s", name);
	hc->uploading = true;
	hc->up_fd = fd;
	hc->up_dirfd = dirfd;
	hc->up_named = named;
	hc->up_chunked = r->chunked;
	hc->up_left = r->chunked ? 0 : (uint64_t)r->content_length;
	hc->up_done = !r->chunked && hc->up_left == 0;
	if (r->chunked)
		weft__http_chunked_init(&hc->ck, h->max_upload);
	if (r->expect_continue && !hc->up_done) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		send_or_close(hc, c, cont, sizeof cont - 1);
	}
	return true;
}

/* Writes p[0, len) to the upload; false after answering 500. */
static bool upload_write_all(struct hconn *hc, weft_conn *c, const char *p, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(hc->up_fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			upload_abort(hc);
			send_simple(hc, c, 500, false, false);
			return false;
		}
		done += (size_t)n;
	}
	return true;
}

/* Takes body bytes of the upload from p[0, len): returns how many were taken (up_done
 * once the body is complete), or -1 after answering an error (500; for a chunked body
 * 400 for bad framing, 413 past --max-upload), which closes. */
static ssize_t upload_feed(struct hconn *hc, weft_conn *c, const char *p, size_t len)
{
	if (!hc->up_chunked) {
		size_t take = len < hc->up_left ? len : (size_t)hc->up_left;
		if (!upload_write_all(hc, c, p, take))
			return -1;
		hc->up_left -= take;
		hc->up_done = hc->up_left == 0;
		return (ssize_t)take;
	}
	size_t off = 0;
	for (;;) {
		size_t used, data;
		int rc = weft__http_chunked_next(&hc->ck, p + off, len - off, &used, &data);
		off += used;
		if (rc == WEFT_HTTP_CHUNK_DATA) {
			if (!upload_write_all(hc, c, p + off, data))
				return -1;
			off += data;
			continue;
		}
		if (rc == WEFT_HTTP_CHUNK_END)
			hc->up_done = true;
		if (rc == WEFT_HTTP_CHUNK_NEED || rc == WEFT_HTTP_CHUNK_END)
			return (ssize_t)off;
		int st = rc == WEFT_HTTP_CHUNK_TOO_LARGE ? 413 : 400;
		upload_abort(hc);
		if (hc->h->access_log)
			fprintf(stderr, "weft-server: PUT %s %d (chunked body)\n", hc->up_name, st);
		send_simple(hc, c, st, false, false);
		return -1;
	}
}

/* renameat, or with If-None-Match: * one that fails (EEXIST) when the target exists at
 * the moment of the rename: of two create-only uploads racing, one wins. */
static int upload_rename(struct hconn *hc)
{
	if (!hc->up_noreplace)
		return renameat(hc->up_dirfd, hc->up_tmp, hc->up_dirfd, hc->up_name);
	if (renameat2(hc->up_dirfd, hc->up_tmp, hc->up_dirfd, hc->up_name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* a file system without RENAME_NOREPLACE: link(2) never replaces either */
	if (linkat(hc->up_dirfd, hc->up_tmp, hc->up_dirfd, hc->up_name, 0) != 0)
		return -1;
	unlinkat(hc->up_dirfd, hc->up_tmp, 0);
	return 0;
}

/* The last byte arrived: link the file in under its name and answer. */
static void upload_finish(struct hconn *hc, weft_conn *c, bool keep)
{
	weft__http_server *h = hc->h;
	int status = 0;
	if (!hc->up_named) {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", hc->up_fd);
		uint64_t seq = weft__fadd_rlx(&h->tmp_seq, 1);
		snprintf(hc->up_tmp, sizeof hc->up_tmp, ".weft-upload-%d-%" PRIu64, (int)getpid(), seq);
		/* /proc/self/fd needs /proc; AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH */
		if (linkat(AT_FDCWD, proc, hc->up_dirfd, hc->up_tmp, AT_SYMLINK_FOLLOW) != 0 &&
		    linkat(hc->up_fd, "", hc->up_dirfd, hc->up_tmp, AT_EMPTY_PATH) != 0)
			status = 500;
		else
			hc->up_named = true;
	}
	/* If-Match / If-Unmodified-Since held when the upload began; if the target changed
	 * while the body arrived (another upload), they may not hold now: 412, nothing
	 * replaced. (A change between this check and the rename is not caught; If-None-Match:
	 * * is exact, by the rename itself.) */
	char etag[64];
	int64_t mtime;
	if (!status && hc->up_guard &&
	    (!upload_target(hc->up_dirfd, hc->up_name, etag, &mtime) || strcmp(etag, hc->up_etag) != 0))
		status = 412;
	struct stat sb;
	bool existed = fstatat(hc->up_dirfd, hc->up_name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	if (!status && upload_rename(hc) != 0)
		status = hc->up_noreplace && errno == EEXIST ? 412
			 : errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST ? 409 : 500;
	if (status) {
		upload_abort(hc);
		if (h->access_log)
			fprintf(stderr, "weft-server: PUT %s %d\n", hc->up_name, status);
		if (status == 412)
			send_empty(hc, c, 412, keep);   /* the body was read whole: the framing holds */
		else
			send_simple(hc, c, status, false, false);
		return;
	}
	close(hc->up_fd);
	close(hc->up_dirfd);
	hc->up_fd = hc->up_dirfd = -1;
	hc->up_named = false;
	hc->uploading = false;
	weft__fadd_rlx(&h->st.uploads, 1);
	/* release: the rename above happens before any cache sees the new generation */
	weft__fadd_rel(&h->fgen, 1);
	int st = existed ? 204 : 201;
	if (h->access_log)
		fprintf(stderr, "weft-server: PUT %s %d\n", hc->up_name, st);
	send_simple(hc, c, st, keep, false);
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
				ssize_t n = upload_feed(hc, c, hc->in, hc->in_len);
				if (n < 0)
					return;
				consume(hc, (size_t)n);
				if (!hc->up_done)
					return;
			}
			upload_finish(hc, c, hc->req.keep_alive && !weft__load_acq(&h->stopping));
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
				send_simple(hc, c, 408, false, false);
			}
			return;
		}
		hc->head_start = 0;
		weft__fadd_rlx(&h->st.requests, 1);
		if (r != WEFT_HTTP_OK) {
			int st = weft__http_result_status(r);
			if (st == 0 || st == 200)
				st = 400;
			send_simple(hc, c, st, false, false);
			return;
		}
		struct weft__http_request *q = &hc->req;
		bool keep = q->keep_alive && !weft__load_acq(&h->stopping);
		bool head_only = q->method == WEFT_HTTP_HEAD;
		char path[4096];
		int pl = weft__http_path_decode(hc->in + q->path.off, q->path.len, path, sizeof path);
		if (pl < 0) {
			int st = pl == -EACCES ? 403 : pl == -ENAMETOOLONG ? 414 : 400;
			log_request(hc, st, 0);
			send_simple(hc, c, st, false, head_only);
			return;
		}
		if (q->method == WEFT_HTTP_PUT) {
			bool go_on = upload_start(hc, c, path, keep);
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
			serve_cached(hc, c, path, (size_t)pl, head_only, keep);
		else
			serve_file(hc, c, path, head_only, keep);
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
		ssize_t n = upload_feed(hc, c, p, len);
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
		pump(hc, c);
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
	stream_end(hc);
	upload_abort(hc);
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
