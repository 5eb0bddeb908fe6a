/* http_files.c - GET and HEAD of regular files beneath the root (see http_conn.h): opening
 * beneath the root, preconditions and If-Range, single and multipart ranges, streaming
 * the body, and the per-thread small-file cache (http_cache.h).
 *
 * File bodies go out in chunks through weft_conn_send as the queue drains, never a whole
 * file in memory (by default with weft_conn_sendfile instead: the port's sendfile, one
 * piece at a time, no copy through user space). Files are opened beneath the root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) (an O_NOFOLLOW walk where openat2 is
 * missing), after weft__http_path_decode has already refused every ".." and encoded
 * separator.
 *
 * Several ranges go out as multipart/byteranges: the part heads are queued with
 * weft_conn_send between the spans, which stream like any file body (next_part()). */
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
#include "http_conn.h"

#define SF_CHUNK (128u * 1024u)      /* file bytes per weft_conn_sendfile */

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
int weft__http_open_beneath(weft__http_server *h, const char *rel, int flags, mode_t mode)
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

int weft__http_errno_status(int e)
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

/* ---- streaming a file ---------------------------------------------------------------------- */

void weft__http_stream_end(struct hconn *hc)
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
 * weft__http_stream_end, so the head and the body leave in full segments. Measured on a 1 MiB
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
		weft__http_stream_end(hc);
		return false;
	}
	unsigned i = (unsigned)hc->mp_i + 1;
	char part[256];
	int n = format_part(hc, i, part, sizeof part);
	if (n < 0 || !weft__http_send_or_close(hc, c, part, (size_t)n) || i == hc->mp_n) {
		if (n < 0 && !hc->closed) {
			hc->closed = true;
			weft_conn_close(c);
		}
		weft__http_stream_end(hc);
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
		weft__http_stream_end(hc);
		hc->closed = true;
		weft_conn_close(c);
		return;
	}
	/* a short piece (the file shrank) closes the connection in the framework */
	hc->file_off += want;
}

/* Queues file chunks while the queue is under half full. Mutex held. */
void weft__http_pump(struct hconn *hc, weft_conn *c)
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
			weft__http_stream_end(hc);
			hc->closed = true;
			weft_conn_close(c);
			return;
		}
		if (!weft__http_send_or_close(hc, c, hc->chunk, (size_t)n)) {
			weft__http_stream_end(hc);
			return;
		}
		hc->file_off += (uint64_t)n;
	}
}

/* ---- answering GET and HEAD --------------------------------------------------------------- */

/* The preconditions of RFC 9110 13.2.2, steps 1 to 4, in its order, against the target
 * (exists: there is one, with etag and mtime). get: a GET or HEAD, else a PUT. Returns 0
 * (go on: If-Range comes next), 304 or 412.
 *   1. If-Match: "*" or a tag by the strong comparison; false (or no target): 412.
 *   2. without If-Match, If-Unmodified-Since: the target newer than the date: 412
 *      (ignored without a target or with a date weft cannot read, 13.1.4).
 *   3. If-None-Match: "*" or a tag by the weak comparison matches: 304 for GET and
 *      HEAD, 412 for PUT (so If-None-Match: * makes a PUT create-only).
 *   4. without If-None-Match, for GET and HEAD, If-Modified-Since: not newer: 304.
 * Every line of a repeated If-Match or If-None-Match counts (one list, RFC 9110 5.3); a
 * repeated date field is invalid and ignored like an unreadable date. */
int weft__http_preconditions(struct hconn *hc, bool get, bool exists, const char *etag, int64_t mtime)
{
	int64_t t;
	int m = weft__http_etag_match_lines(&hc->req, hc->in, "If-Match", etag, false);
	if (m >= 0) {
		if (!exists || m == 0)
			return 412;
	} else if (exists && weft__http_date_header(&hc->req, hc->in, "If-Unmodified-Since", &t) && mtime > t) {
		return 412;
	}
	m = weft__http_etag_match_lines(&hc->req, hc->in, "If-None-Match", etag, true);
	if (m >= 0) {
		if (exists && m == 1)
			return get ? 304 : 412;
	} else if (get && exists && weft__http_date_header(&hc->req, hc->in, "If-Modified-Since", &t) && mtime <= t) {
		return 304;
	}
	return 0;
}

/* If-Range (RFC 9110 13.1.5): the Range applies only while the validator still matches
 * (an entity tag by the strong comparison, or exactly the Last-Modified date). The field
 * holds one validator: repeated, it is invalid, and the Range is ignored (the whole
 * entity, the answer that is always safe). */
static bool range_applies(struct hconn *hc, const char *etag, int64_t mtime)
{
	size_t len, len2;
	uint32_t at = 0;
	const char *v = weft__http_header_next(&hc->req, hc->in, "If-Range", &at, &len);
	if (!v)
		return true;
	if (weft__http_header_next(&hc->req, hc->in, "If-Range", &at, &len2))
		return false;
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
	weft__http_count_status(hc->h, 304);
	if (!keep)
		hc->close_after = true;
	if (n > 0)
		weft__http_send_or_close(hc, c, head, (size_t)n);
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
	weft__http_pump(hc, c);
}

/* The head of part i of the multipart body being sent (or, for i == mp_n, its closing
 * delimiter) into out. */
static int format_part(const struct hconn *hc, unsigned i, char *out, size_t cap)
{
	bool final = i == hc->mp_n;
	return weft__http_format_part(out, cap, hc->mp_boundary, hc->mp_ctype, final ? NULL : &hc->mp[i],
				      hc->mp_total, i == 0, final);
}

/* 206 multipart/byteranges (RFC 9110 14.6) for n >= 2 disjoint spans in the order asked: the
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
			weft__http_send_simple(hc, c, 500, false, head_only);
			return;
		}
		len += (uint64_t)pn + (i < n ? spans[i].last - spans[i].first + 1 : 0);
	}
	struct weft__http_response rs = { .status = 206, .content_length = (int64_t)len,
		.last_modified = sb->st_mtime, .date = time(NULL), .boundary = hc->mp_boundary, .keep_alive = keep,
		.http10_client = hc->req.version_minor == 0, .accept_ranges = true, .etag = etag };
	char head[768];
	int hn = weft__http_format_response(head, sizeof head, &rs);
	weft__http_count_status(h, 206);
	weft__http_log_request(hc, 206, head_only ? 0 : len);
	if (!keep)
		hc->close_after = true;
	int pn = format_part(hc, 0, part, sizeof part);
	if (hn >= 0 && !head_only)
		cork_body(hc, c);
	if (hn < 0 || !weft__http_send_or_close(hc, c, head, (size_t)hn) || head_only ||
	    !weft__http_send_or_close(hc, c, part, (size_t)pn)) {
		close(fd);
		hc->mp_n = 0;
		weft__http_stream_end(hc);   /* uncorks */
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
		int pc = weft__http_preconditions(hc, true, true, etag, sb.st_mtime);
		if (pc) {
			close(fd);
			weft__http_log_request(hc, pc, 0);
			if (pc == 304)
				send_not_modified(hc, c, etag, sb.st_mtime, keep);
			else
				weft__http_send_empty(hc, c, pc, keep);
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
	weft__http_count_status(h, rs.status);
	weft__http_log_request(hc, rs.status, head_only ? 0 : len);
	if (!keep)
		hc->close_after = true;
	if (n >= 0 && rr != -ERANGE && !head_only && len > 0)
		cork_body(hc, c);
	if (n < 0 || !weft__http_send_or_close(hc, c, head, (size_t)n)) {
		if (rr != -ERANGE)
			close(fd);
		weft__http_stream_end(hc);   /* uncorks */
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
	int fd = weft__http_open_beneath(hc->h, path + 1, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd < 0) {
		int st = weft__http_errno_status(fd);
		weft__http_log_request(hc, st, 0);
		weft__http_send_simple(hc, c, st, keep, head_only);
		return false;
	}
	if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
		close(fd);
		weft__http_log_request(hc, 404, 0);
		weft__http_send_simple(hc, c, 404, keep, head_only);
		return false;
	}
	*fdp = fd;
	return true;
}

void weft__http_serve_file(struct hconn *hc, weft_conn *c, const char *path, bool head_only, bool keep)
{
	int fd;
	struct stat sb;
	if (open_or_answer(hc, c, path, head_only, keep, &fd, &sb))
		serve_fd(hc, c, path, fd, &sb, head_only, keep);
}

/* ---- the small-file cache ------------------------------------------------------------------ */

/* The coarse clock (a few ms of resolution, cheaper to read): enough for the cache's
 * freshness interval of hundreds of ms. */
static uint64_t coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
void weft__http_serve_cached(struct hconn *hc, weft_conn *c, const char *path, size_t pl, bool head_only,
			     bool keep)
{
	weft__http_server *h = hc->h;
	struct weft__fcache *fc = thread_cache(h);
	if (!fc) {
		weft__http_serve_file(hc, c, path, head_only, keep);
		return;
	}
	/* acquire: pairs with the release bump in weft__http_upload_finish, so an upload answered
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
	weft__http_count_status(h, 200);
	weft__http_log_request(hc, 200, head_only ? 0 : e->body_len);
	if (!keep)
		hc->close_after = true;
	weft__http_send_or_close(hc, c, o, n);
}
