/* http_upload.c - PUT: receiving a body into a file beneath the root (see http_conn.h).
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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "http_cache.h"
#include "http_conn.h"

void weft__http_upload_abort(struct hconn *hc)
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
 * Remembers what weft__http_upload_finish must check again. */
static int upload_preconditions(struct hconn *hc, int dirfd, const char *name)
{
	char etag[64] = "";
	int64_t mtime = 0;
	bool exists = upload_target(dirfd, name, etag, &mtime);
	if (weft__http_preconditions(hc, false, exists, etag, mtime))
		return 412;
	size_t len;
	const char *v;
	uint32_t at = 0;
	hc->up_noreplace = false;   /* If-None-Match: * on any of its lines */
	while ((v = weft__http_header_next(&hc->req, hc->in, "If-None-Match", &at, &len)))
		if (len == 1 && v[0] == '*')
			hc->up_noreplace = true;
	/* what held must still hold at the rename: an If-Match, or an If-Unmodified-Since
	 * that counted (a single readable date; an invalid one was ignored above) */
	int64_t t;
	hc->up_guard = exists && (weft__http_header_get(&hc->req, hc->in, "If-Match", &len) ||
				  weft__http_date_header(&hc->req, hc->in, "If-Unmodified-Since", &t));
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
	weft__http_log_request(hc, 412, 0);
	weft__http_send_empty(hc, c, 412, keep);
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
bool weft__http_upload_start(struct hconn *hc, weft_conn *c, const char *path, bool keep)
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
		dirfd = weft__http_open_beneath(h, dl ? dir + 1 : "", O_PATH | O_DIRECTORY, 0);
		if (dirfd < 0)
			status = weft__http_errno_status(dirfd);
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
		weft__http_log_request(hc, status, 0);
		weft__http_send_simple(hc, c, status, false, false);
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
		weft__http_send_or_close(hc, c, cont, sizeof cont - 1);
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
			weft__http_upload_abort(hc);
			weft__http_send_simple(hc, c, 500, false, false);
			return false;
		}
		done += (size_t)n;
	}
	return true;
}

/* Takes body bytes of the upload from p[0, len): returns how many were taken (up_done
 * once the body is complete), or -1 after answering an error (500; for a chunked body
 * 400 for bad framing, 413 past --max-upload), which closes. */
ssize_t weft__http_upload_feed(struct hconn *hc, weft_conn *c, const char *p, size_t len)
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
		weft__http_upload_abort(hc);
		if (hc->h->access_log)
			fprintf(stderr, "weft-server: PUT %s %d (chunked body)\n", hc->up_name, st);
		weft__http_send_simple(hc, c, st, false, false);
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
void weft__http_upload_finish(struct hconn *hc, weft_conn *c, bool keep)
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
		weft__http_upload_abort(hc);
		if (h->access_log)
			fprintf(stderr, "weft-server: PUT %s %d\n", hc->up_name, status);
		if (status == 412)
			/* the body was read whole: the framing holds */
			weft__http_send_empty(hc, c, 412, keep);
		else
			weft__http_send_simple(hc, c, status, false, false);
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
	weft__http_send_simple(hc, c, st, keep, false);
}
