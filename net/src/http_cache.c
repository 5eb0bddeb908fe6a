/* http_cache.c - the per-thread cache of small files (see http_cache.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_cache.h"
#include "http_parse.h"

/* Room for a head: the longest content type in the table, every header, a close or
 * keep-alive line; heads are far shorter, and formatting checks the bound anyway. */
#define HEAD_MAX 512u

struct weft__fcache *weft__fcache_create(size_t max_file)
{
	struct weft__fcache *fc = calloc(1, sizeof *fc);
	if (!fc)
		return NULL;
	fc->out_cap = max_file + HEAD_MAX + 64;
	fc->out = malloc(fc->out_cap);
	if (!fc->out) {
		free(fc);
		return NULL;
	}
	fc->date_sec = -1;
	return fc;
}

static void entry_free(struct weft__fcache_entry *e)
{
	free(e->resp);
	free(e);
}

void weft__fcache_flush(struct weft__fcache *fc)
{
	for (uint32_t i = 0; i < WEFT__FCACHE_BUCKETS; i++) {
		for (struct weft__fcache_entry *e = fc->b[i], *n; e; e = n) {
			n = e->next;
			entry_free(e);
		}
		fc->b[i] = NULL;
	}
	fc->entries = 0;
	fc->bytes = 0;
}

void weft__fcache_destroy(struct weft__fcache *fc)
{
	if (!fc)
		return;
	weft__fcache_flush(fc);
	free(fc->out);
	free(fc);
}

uint32_t weft__fcache_hash(const char *path, size_t len)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)path[i]) * 16777619u;
	return h;
}

struct weft__fcache_entry *weft__fcache_find(struct weft__fcache *fc, const char *path, size_t len, uint32_t hash)
{
	for (struct weft__fcache_entry *e = fc->b[hash % WEFT__FCACHE_BUCKETS]; e; e = e->next)
		if (e->hash == hash && e->path_len == len && memcmp(e->path, path, len) == 0)
			return e;
	return NULL;
}

void weft__fcache_remove(struct weft__fcache *fc, struct weft__fcache_entry *e)
{
	struct weft__fcache_entry **pp = &fc->b[e->hash % WEFT__FCACHE_BUCKETS];
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	fc->entries--;
	fc->bytes -= e->head_len + e->body_len + e->path_len;
	entry_free(e);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

bool weft__fcache_same(const struct weft__fcache_entry *e, const void *stat_buf)
{
	const struct stat *sb = stat_buf;
	return S_ISREG(sb->st_mode) && sb->st_dev == e->dev && sb->st_ino == e->ino && sb->st_size == e->size &&
	       ts_ns(&sb->st_mtim) == e->mtim_ns && ts_ns(&sb->st_ctim) == e->ctim_ns;
}

struct weft__fcache_entry *weft__fcache_add(struct weft__fcache *fc, const char *path, size_t len, uint32_t hash,
                                            int fd, const void *stat_buf, const char *ctype, uint64_t now_ns)
{
	const struct stat *sb = stat_buf;
	size_t size = (size_t)sb->st_size;
	if (!S_ISREG(sb->st_mode) || size + HEAD_MAX + 64 > fc->out_cap || fc->entries >= WEFT__FCACHE_MAX_ENTRIES ||
	    fc->bytes + size + HEAD_MAX + len > WEFT__FCACHE_MAX_BYTES)
		return NULL;
	struct weft__fcache_entry *e = calloc(1, sizeof *e + len + 1);
	if (!e)
		return NULL;
	char head[HEAD_MAX], etag[64];
	weft__http_etag(etag, sizeof etag, sb);
	struct weft__http_response rs = { .status = 200, .content_length = (int64_t)size,
		.last_modified = sb->st_mtime, .date = time(NULL), .content_type = ctype, .keep_alive = true,
		.accept_ranges = true, .etag = etag };
	int hl = weft__http_format_response(head, sizeof head, &rs);
	e->resp = hl > 0 ? malloc((size_t)hl + size + 1) : NULL;
	if (!e->resp) {
		free(e);
		return NULL;
	}
	memcpy(e->resp, head, (size_t)hl);
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, e->resp + hl + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	char extra;
	if (got != size || pread(fd, &extra, 1, (off_t)size) != 0) {
		entry_free(e);   /* changed while being read: serve it the slow way */
		return NULL;
	}
	memcpy(e->path, path, len);
	e->path[len] = '\0';
	e->path_len = (uint32_t)len;
	e->hash = hash;
	e->checked_ns = now_ns;
	e->dev = sb->st_dev;
	e->ino = sb->st_ino;
	e->size = sb->st_size;
	e->mtime = sb->st_mtime;
	e->mtim_ns = ts_ns(&sb->st_mtim);
	e->ctim_ns = ts_ns(&sb->st_ctim);
	e->ctype = ctype;
	e->head_len = (uint32_t)hl;
	e->body_len = (uint32_t)size;
	uint32_t bi = hash % WEFT__FCACHE_BUCKETS;
	e->next = fc->b[bi];
	fc->b[bi] = e;
	fc->entries++;
	fc->bytes += e->head_len + e->body_len + e->path_len;
	return e;
}

void weft__http_etag(char *out, size_t cap, const void *stat_buf)
{
	const struct stat *sb = stat_buf;
	snprintf(out, cap, "\"%llx-%llx-%llx\"", (unsigned long long)sb->st_ino, (unsigned long long)sb->st_size,
		 (unsigned long long)ts_ns(&sb->st_mtim));
}

const char *weft__fcache_date(struct weft__fcache *fc, int64_t now_sec)
{
	if (now_sec != fc->date_sec) {
		weft__http_format_date(fc->date_str, sizeof fc->date_str, now_sec);
		fc->date_sec = now_sec;
	}
	return fc->date_str;
}
