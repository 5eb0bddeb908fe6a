/* http_server.h - weft-server's HTTP/1.1 file server on the completion-port framework.
 *
 * Private to net/ (never installed); weft-server and the tests use it. GET and HEAD of
 * regular files beneath a root (Range, up to 16 ranges as multipart/byteranges,
 * conditional requests with 304 and 412, keep-alive, pipelining, /stats), PUT uploads
 * (Content-Length or chunked bodies) into a temporary file made visible only when
 * complete. See docs/net.md, "HTTP mode". */
#ifndef WEFT_NET_HTTP_SERVER_H
#define WEFT_NET_HTTP_SERVER_H

#include <stdint.h>

#include <weft/net.h>

#include "internal.h"

#define WEFT_HTTP_MAX_UPLOAD_DEFAULT (1ull << 30)
#define WEFT_HTTP_HEADER_TIMEOUT_DEFAULT 10000u
#define WEFT_HTTP_FILE_CACHE_MS_DEFAULT 1000u
#define WEFT_HTTP_FILE_CACHE_MAX_DEFAULT (32u * 1024u)

struct weft__http_server_config {
	weft_server_config net;      /* listen, threads, ...; cb, user and idle_timeout_ms are
	                              * set by weft__http_server_create */
	const char *root;            /* directory served (required) */
	uint64_t max_upload;         /* largest PUT body (0: 1 GiB) */
	uint32_t header_timeout_ms;  /* idle timeout of a connection, so a client that never
	                              * finishes its head is closed (0: 10000) */
	bool access_log;             /* one line per request on stderr */
	bool no_sendfile;            /* file bodies by pread + weft_conn_send, not sendfile */
	bool no_file_cache;          /* open, fstat and send every file on every request */
	uint32_t file_cache_ms;      /* a cached small file is checked against the disk at most
	                              * this long after its last check (0: 1000); uploads through
	                              * the server are seen at once */
	uint32_t file_cache_max;     /* largest file cached, bytes (0: 32 KiB; at most a
	                              * quarter of the send queue) */
	bool force_walk;             /* open by the O_NOFOLLOW walk even where openat2 works
	                              * (tests the fallback; symlinks are then never followed) */
};

struct weft__http_stats {
	uint64_t requests, s2xx, s3xx, s4xx, s5xx, uploads, upload_aborts;
};

typedef struct weft__http_server weft__http_server;

/* Opens the root, then creates the server. NULL with *err: -ENOTDIR/-ENOENT/... for the
 * root, else as weft_server_create. */
WEFT_INTERNAL weft__http_server *weft__http_server_create(const struct weft__http_server_config *cfg,
                                                         int *err);
/* Graceful stop: answers from now on close their connection, connections between
 * requests are closed once their last answer is out, then weft_server_stop (stop
 * accepting, let the rest finish for up to timeout_ms, close what remains). Returns what
 * weft_server_stop returns. Once, not from a callback. */
WEFT_INTERNAL int weft__http_server_stop(weft__http_server *h, uint32_t timeout_ms);
/* The underlying server: port, stats. */
WEFT_INTERNAL weft_server *weft__http_server_net(weft__http_server *h);
WEFT_INTERNAL void weft__http_server_get_stats(weft__http_server *h, struct weft__http_stats *out);
/* Stops (immediately, if weft_server_stop was not called) and frees. */
WEFT_INTERNAL void weft__http_server_destroy(weft__http_server *h);

#endif
