/* http_cache.h - weft-server's cache of small files and their response heads.
 *
 * Private to net/. The HTTP server's hot path for a small file is one lookup here and one
 * send: the entry holds the file's bytes and its whole 200 response head, built once, so a
 * hit costs no open, fstat, read, close or formatting (the Date is patched in place).
 *
 * One cache per port thread (no lock, no sharing: each thread fills its own). Freshness:
 * an entry is trusted for `valid_ns` after it was last checked; then the next hit opens
 * the file again beneath the root and compares device, inode, size, mtime and ctime, and
 * refills the entry when any differs. So a file changed behind the server's back is served
 * at most valid_ns late (nginx's open_file_cache_valid); an upload through the server
 * bumps a generation that every cache checks on each lookup, so it is seen at once. */
#ifndef WEFT_NET_HTTP_CACHE_H
#define WEFT_NET_HTTP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

struct weft__fcache_entry {
	struct weft__fcache_entry *next;     /* bucket chain */
	uint32_t hash;
	uint32_t path_len;
	uint64_t checked_ns;                 /* monotonic ns of the last check against the file */
	dev_t dev;
	ino_t ino;
	int64_t size, mtime;
	int64_t mtim_ns, ctim_ns;
	const char *ctype;                   /* static string */
	char *resp;                          /* head (keep-alive, HTTP/1.1, Date at date_off) + body */
	uint32_t head_len, body_len;
	char path[];                         /* NUL-terminated */
};

#define WEFT__FCACHE_BUCKETS 256u

struct weft__fcache {
	struct weft__fcache_entry *b[WEFT__FCACHE_BUCKETS];
	uint32_t entries;
	uint64_t bytes;
	uint64_t gen;                        /* the server's generation these entries belong to */
	char *out;                           /* the response being assembled (out_cap bytes) */
	size_t out_cap;
	int64_t date_sec;                    /* the second date_str shows */
	char date_str[32];
};

/* The limits of one thread's cache. */
#define WEFT__FCACHE_MAX_ENTRIES 4096u
#define WEFT__FCACHE_MAX_BYTES (32ull << 20)

/* Offset of the Date value in every cached head: "HTTP/1.1 200 OK\r\nDate: ". */
#define WEFT__FCACHE_DATE_OFF 23u

WEFT_INTERNAL struct weft__fcache *weft__fcache_create(size_t max_file);
WEFT_INTERNAL void weft__fcache_destroy(struct weft__fcache *fc);
/* Drops every entry. */
WEFT_INTERNAL void weft__fcache_flush(struct weft__fcache *fc);
WEFT_INTERNAL uint32_t weft__fcache_hash(const char *path, size_t len);
WEFT_INTERNAL struct weft__fcache_entry *weft__fcache_find(struct weft__fcache *fc, const char *path, size_t len,
                                                           uint32_t hash);
/* Removes and frees e. */
WEFT_INTERNAL void weft__fcache_remove(struct weft__fcache *fc, struct weft__fcache_entry *e);
/* Adds an entry for path over the open regular file fd (already fstat-ed into the
 * fields), reading its size bytes. NULL when over a limit or the read came up short
 * (the file changed while being read). */
WEFT_INTERNAL struct weft__fcache_entry *weft__fcache_add(struct weft__fcache *fc, const char *path, size_t len,
                                                          uint32_t hash, int fd, const void *stat_buf,
                                                          const char *ctype, uint64_t now_ns);
/* True when the entry still describes the file fd was opened on (stat_buf: its fstat). */
WEFT_INTERNAL bool weft__fcache_same(const struct weft__fcache_entry *e, const void *stat_buf);
/* The entity tag of a file: "inode-size-mtime_ns" in hex, quoted (at least 64 bytes). */
WEFT_INTERNAL void weft__http_etag(char *out, size_t cap, const void *stat_buf);
/* The current second's IMF-fixdate (29 characters), refreshed when the second changes. */
WEFT_INTERNAL const char *weft__fcache_date(struct weft__fcache *fc, int64_t now_sec);

#endif
