/* http_conn.h - what the HTTP server's sources share: the server object, one struct hconn
 * per connection, and the functions one file calls in another. Private to net/.
 *
 * http_server.c: the connections, the request loop, the short answers, the server object.
 * http_files.c: GET and HEAD of files beneath the root. http_upload.c: PUT.
 * Every function below that takes a struct hconn runs with its mutex held. */
#ifndef WEFT_NET_HTTP_CONN_H
#define WEFT_NET_HTTP_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "http_parse.h"
#include "http_server.h"

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
	bool corked;                     /* TCP_CORK set for this response (cleared by
	                                  * weft__http_stream_end) */
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
static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* http_server.c: answers */
WEFT_INTERNAL void weft__http_count_status(weft__http_server *h, int status);
WEFT_INTERNAL bool weft__http_send_or_close(struct hconn *hc, weft_conn *c, const void *data, size_t len);
WEFT_INTERNAL void weft__http_log_request(struct hconn *hc, int status, uint64_t len);
WEFT_INTERNAL void weft__http_send_simple(struct hconn *hc, weft_conn *c, int status, bool keep,
                                          bool head_only);
WEFT_INTERNAL void weft__http_send_empty(struct hconn *hc, weft_conn *c, int status, bool keep);

/* http_files.c */
WEFT_INTERNAL int weft__http_open_beneath(weft__http_server *h, const char *rel, int flags, mode_t mode);
WEFT_INTERNAL int weft__http_errno_status(int e);
WEFT_INTERNAL int weft__http_preconditions(struct hconn *hc, bool get, bool exists, const char *etag,
                                           int64_t mtime);
WEFT_INTERNAL void weft__http_stream_end(struct hconn *hc);
WEFT_INTERNAL void weft__http_pump(struct hconn *hc, weft_conn *c);
WEFT_INTERNAL void weft__http_serve_file(struct hconn *hc, weft_conn *c, const char *path, bool head_only,
                                         bool keep);
WEFT_INTERNAL void weft__http_serve_cached(struct hconn *hc, weft_conn *c, const char *path, size_t pl,
                                           bool head_only, bool keep);

/* http_upload.c */
WEFT_INTERNAL void weft__http_upload_abort(struct hconn *hc);
WEFT_INTERNAL bool weft__http_upload_start(struct hconn *hc, weft_conn *c, const char *path, bool keep);
WEFT_INTERNAL ssize_t weft__http_upload_feed(struct hconn *hc, weft_conn *c, const char *p, size_t len);
WEFT_INTERNAL void weft__http_upload_finish(struct hconn *hc, weft_conn *c, bool keep);

#endif
