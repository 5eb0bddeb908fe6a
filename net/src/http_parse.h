/* http_parse.h - weft-server's HTTP/1.1 request-head parser and response-head formatter.
 *
 * Private to net/ (never installed). Pure functions over caller-owned bytes: no
 * allocation, no I/O, no global state, so each connection owns one
 * struct weft__http_request and threads never share one.
 *
 * Parsing is incremental and zero-copy. The caller keeps the bytes of the request that
 * have arrived so far in one buffer (starting at the first byte of the request) and calls
 * weft__http_parse() after each arrival with the whole buffer; the parser remembers how
 * far it has looked, so no byte is examined twice however the request is split. Results
 * are slices (offset, length) into that buffer, valid while the caller keeps the bytes,
 * and still valid if the caller moves the buffer (they are offsets, not pointers).
 *
 * Pipelining: once a head is complete, head_len says how many bytes it took; the body
 * (content_length bytes, if any) follows, and the next request starts after it.
 *
 * The one header for four sources: http_parse.c (request head, path decoding),
 * http_range.c (range resolution), http_chunked.c (chunked bodies) and http_response.c
 * (response and part heads, dates, ETag matching). */
#ifndef WEFT_NET_HTTP_PARSE_H
#define WEFT_NET_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Limits. The whole head (request line, headers, blank line) must fit in max_head bytes;
 * a request line that does not end within it is 414, headers that do not are 431, and so
 * is a head with more than max_headers header lines. */
#define WEFT_HTTP_MAX_HEAD_DEFAULT 8192u
#define WEFT_HTTP_MAX_HEADERS 64u          /* also the default */

struct weft__http_limits {
	uint32_t max_head;                  /* 0: default; at most 1 MiB */
	uint32_t max_headers;               /* 0: default; at most WEFT_HTTP_MAX_HEADERS */
};

/* What weft__http_parse() returns. Every error means "answer with the status
 * weft__http_result_status() gives, then close": after a syntax error the framing of the
 * stream is unknown. The method errors (405/501) are reported only once the head is
 * complete, so head_len and content_length are filled in for them. */
enum weft__http_result {
	WEFT_HTTP_OK = 0,                   /* head complete; head_len bytes consumed */
	WEFT_HTTP_INCOMPLETE,               /* need more bytes */
	WEFT_HTTP_BAD_REQUEST,              /* 400: malformed; also Transfer-Encoding with a
	                                     * Content-Length, twice, from HTTP/1.0, or
	                                     * without chunked as its final coding */
	WEFT_HTTP_URI_TOO_LONG,             /* 414: request line longer than max_head */
	WEFT_HTTP_HEADERS_TOO_LARGE,        /* 431: head over max_head or max_headers */
	WEFT_HTTP_METHOD_NOT_ALLOWED,       /* 405: a standard method weft-server refuses */
	WEFT_HTTP_NOT_IMPLEMENTED,          /* 501: unknown method, or other codings (or a
	                                     * parameter) with a final chunked */
	WEFT_HTTP_VERSION_NOT_SUPPORTED,    /* 505: HTTP/2 and above spoken as text */
	WEFT_HTTP_EXPECTATION_FAILED,       /* 417: an Expect other than 100-continue */
};

enum weft__http_method {
	WEFT_HTTP_METHOD_NONE = 0,
	WEFT_HTTP_GET,
	WEFT_HTTP_HEAD,
	WEFT_HTTP_PUT,
	WEFT_HTTP_METHOD_KNOWN_OTHER,       /* POST, DELETE, OPTIONS, PATCH, TRACE, CONNECT */
	WEFT_HTTP_METHOD_UNKNOWN,           /* a valid token weft does not know */
};

/* A byte range of the request buffer. */
struct weft__http_slice {
	uint32_t off, len;
};

struct weft__http_header {
	struct weft__http_slice name, value;   /* value without surrounding whitespace */
};

/* Range: bytes=FIRST-LAST | bytes=FIRST- | bytes=-SUFFIX, or a comma-separated list of up
 * to WEFT_HTTP_MAX_RANGES of them (RFC 9110 14.1.2). Another unit, a repeated Range
 * header, a malformed spec anywhere in the list or a list longer than that is ignored (the
 * whole entity is sent with 200), as RFC 9110 14.2 allows. */
#define WEFT_HTTP_MAX_RANGES 16u

enum weft__http_range_kind {
	WEFT_HTTP_RANGE_NONE = 0,           /* no Range header */
	WEFT_HTTP_RANGE_FROM_TO,            /* first-last, first <= last */
	WEFT_HTTP_RANGE_FROM,               /* first- */
	WEFT_HTTP_RANGE_SUFFIX,             /* -suffix: the last `last` bytes */
	WEFT_HTTP_RANGE_IGNORED,            /* present but not served as a range */
	WEFT_HTTP_RANGE_MULTI,              /* 2..WEFT_HTTP_MAX_RANGES specs in ranges[] */
};

struct weft__http_range {
	uint8_t kind;                       /* enum weft__http_range_kind */
	uint64_t first, last;               /* SUFFIX keeps its length in last */
};

/* A resolved byte range: first..last inclusive, within the entity. */
struct weft__http_span {
	uint64_t first, last;
};

struct weft__http_request {
	/* parser state: private */
	uint32_t scan_;                     /* bytes examined */
	uint32_t line_;                     /* start of the line being assembled */
	uint8_t state_;
	uint8_t result_;                    /* sticky once terminal */
	uint8_t hosts_, te_, te_chunked_, expect_bad_, conn_close_, conn_ka_;
	uint32_t max_head_, max_headers_;

	/* results: valid once weft__http_parse() returned WEFT_HTTP_OK (or 405/501) */
	uint32_t head_len;                  /* bytes of the head, blank line included */
	uint8_t method;                     /* enum weft__http_method */
	uint8_t version_minor;              /* 0 or 1 (HTTP/1.x above 1 counts as 1) */
	bool keep_alive;                    /* after Connection and the version default */
	bool expect_continue;               /* Expect: 100-continue */
	bool conditional;                   /* If-Match, If-None-Match, If-Modified-Since,
	                                     * If-Unmodified-Since or If-Range seen */
	bool chunked;                       /* Transfer-Encoding: chunked (the body framing;
	                                     * content_length is then -1) */
	int64_t content_length;             /* -1: no Content-Length */
	struct weft__http_slice method_s;   /* the method token as sent */
	struct weft__http_slice target;     /* the request target as sent */
	struct weft__http_slice path;       /* its path part, still percent-encoded; empty
	                                     * for "http://host" (meaning "/") */
	struct weft__http_slice query;      /* after '?', without it; len 0 if none */
	struct weft__http_slice host;
	struct weft__http_range range;      /* kind MULTI: the specs are in ranges[] */
	uint8_t nranges;                    /* specs in ranges[] when range.kind is MULTI */
	uint32_t nheaders;
	struct weft__http_header headers[WEFT_HTTP_MAX_HEADERS];
	/* after headers[]: not cleared per request, only nranges says what is valid */
	struct weft__http_range ranges[WEFT_HTTP_MAX_RANGES];
};

/* Prepares r for a new request (also between pipelined requests). limits may be NULL. */
WEFT_INTERNAL void weft__http_request_init(struct weft__http_request *r,
                                           const struct weft__http_limits *limits);

/* Parses as much of the head as buf[0, len) holds. buf must start at the request's first
 * byte and hold every byte given in earlier calls, unchanged. Returns an enum
 * weft__http_result; once it returned anything but INCOMPLETE it returns that again. */
WEFT_INTERNAL int weft__http_parse(struct weft__http_request *r, const char *buf, size_t len);

/* The HTTP status code a parse result maps to (200 for OK, 0 for INCOMPLETE). */
WEFT_INTERNAL int weft__http_result_status(int result);

/* The value of the first header named `name` (case-insensitive), or NULL; *len receives
 * its length. */
WEFT_INTERNAL const char *weft__http_header_get(const struct weft__http_request *r, const char *buf,
                                                const char *name, size_t *len);

/* The next header named `name` from line *at on (start with *at = 0), or NULL when no
 * more; *at is moved past it. Walks every line of a repeated field (RFC 9110 5.3). */
WEFT_INTERNAL const char *weft__http_header_next(const struct weft__http_request *r, const char *buf,
                                                 const char *name, uint32_t *at, size_t *len);

static inline const char *weft__http_str(const char *buf, struct weft__http_slice s)
{
	return buf + s.off;
}

/* Resolves a parsed range against an entity of `size` bytes. Returns
 *   1        answer 206 with the inclusive byte range *first..*last;
 *   0        answer 200 with the whole entity (no Range, or an ignored one);
 *            *first = 0 and *last = size - 1 (both 0 for an empty entity);
 *   -ERANGE  answer 416: no byte of the entity is in the range (first >= size, a zero
 *            suffix, or any range of an empty entity).
 * A MULTI range gives 0 here: use weft__http_ranges_resolve. */
WEFT_INTERNAL int weft__http_range_resolve(const struct weft__http_range *rg, uint64_t size,
                                           uint64_t *first, uint64_t *last);

/* Resolves the range set of r (any kind) against an entity of `size` bytes into out
 * (WEFT_HTTP_MAX_RANGES spans). Unsatisfiable specs are dropped; the rest keep the order
 * they were asked in (RFC 9110 14.6), overlapping or adjacent ones coalesced into one span
 * in the place of the earliest, so the spans are disjoint and never hold more bytes than
 * the entity. Returns
 *   n >= 1   answer 206 with those n spans (one: a plain 206 with Content-Range; more:
 *            multipart/byteranges);
 *   0        answer 200 with the whole entity (no Range, or an ignored one);
 *   -ERANGE  answer 416: no spec selects a byte of the entity. */
WEFT_INTERNAL int weft__http_ranges_resolve(const struct weft__http_request *r, uint64_t size,
                                            struct weft__http_span *out);

/* A chunked request body (RFC 9112 7.1) decoded as it arrives, without copying:
 * chunk-size [ chunk-ext ] CRLF, data CRLF, ..., "0" [ chunk-ext ] CRLF, trailer
 * field lines, CRLF. Extensions and trailers are checked and skipped. Lines must end
 * in CRLF (no bare LF: framing is where request smuggling lives). A size or extension
 * line is at most 4 KiB and the trailer section at most 8 KiB. */
enum weft__http_chunk_result {
	WEFT_HTTP_CHUNK_NEED = 0,           /* every byte given was consumed; send more */
	WEFT_HTTP_CHUNK_DATA,               /* body bytes at p + *used, *data of them */
	WEFT_HTTP_CHUNK_END,                /* the body ended at p + *used */
	WEFT_HTTP_CHUNK_BAD,                /* malformed framing (400) */
	WEFT_HTTP_CHUNK_TOO_LARGE,          /* the chunk sizes passed max_total (413) */
};

struct weft__http_chunked {
	uint8_t state_;
	uint8_t result_;                    /* sticky once BAD or TOO_LARGE */
	uint32_t line_;                     /* bytes of the current size or extension line */
	uint32_t trailer_;                  /* bytes of the trailer section */
	uint64_t size_;                     /* the chunk size being read */
	uint64_t left;                      /* data bytes still to come in the current chunk */
	uint64_t total;                     /* the sum of the chunk sizes announced so far */
	uint64_t max_total;                 /* larger is TOO_LARGE (0: 2^63 - 1) */
};

WEFT_INTERNAL void weft__http_chunked_init(struct weft__http_chunked *d, uint64_t max_total);

/* Decodes from p[0, len) (the bytes after those of earlier calls). Framing bytes are
 * consumed into d; at the first body bytes it returns DATA with *used framing bytes
 * before them and *data body bytes at p + *used (already counted as taken: the caller
 * writes them and calls again with p + *used + *data). NEED: all len bytes consumed
 * (*used = len). END: the last chunk and the trailers ended after *used bytes; what
 * follows is the next request. BAD and TOO_LARGE are sticky. */
WEFT_INTERNAL int weft__http_chunked_next(struct weft__http_chunked *d, const char *p, size_t len, size_t *used,
                                          size_t *data);

/* Percent-decodes the path of a request target and normalizes it into out (cap bytes,
 * NUL-terminated); an empty path is "/". The result starts with '/', has no empty, "." or ".." segments and no
 * NUL, so it can be used relative to a root after skipping the leading '/'. Returns its
 * length, or:
 *   -EINVAL        malformed: not starting with '/', a bad %-escape, an encoded NUL (400)
 *   -EACCES        an encoded '/' or '\' (%2F, %5C) or any ".." segment, encoded or not
 *                  (403): real clients remove dot segments before sending (RFC 3986
 *                  5.2.4), so a ".." arriving here is a probe, refused even when it would
 *                  stay beneath the root
 *   -ENAMETOOLONG  the result does not fit in cap (414)
 * out may not alias path. */
WEFT_INTERNAL int weft__http_path_decode(const char *path, size_t len, char *out, size_t cap);

/* A response head. */
enum weft__http_conn { WEFT_HTTP_CONN_KEEP, WEFT_HTTP_CONN_CLOSE };

struct weft__http_response {
	int status;                         /* 100..599 */
	int64_t content_length;             /* -1: omitted */
	int64_t last_modified;              /* Unix seconds; -1: omitted */
	int64_t date;                       /* Unix seconds; -1: omitted */
	const char *content_type;           /* NULL: omitted */
	const char *etag;                   /* the quoted entity tag; NULL: omitted */
	bool keep_alive;                    /* false: Connection: close */
	bool http10_client;                 /* keep-alive with a 1.0 client is said explicitly */
	bool accept_ranges;                 /* Accept-Ranges: bytes */
	bool allow;                         /* Allow: GET, HEAD, PUT (for 405) */
	bool content_range;                 /* Content-Range: bytes first-last/total */
	bool range_unsatisfied;             /* Content-Range: bytes, a star, /total (416) */
	const char *boundary;               /* Content-Type: multipart/byteranges; boundary=
	                                     * (overrides content_type); NULL: none */
	uint64_t range_first, range_last, range_total;
};

/* Formats the status line and headers, blank line included, into out. Returns the length
 * (no NUL is written past it), or -ENOSPC if cap is too small, or -EINVAL for a status
 * outside 100..599. */
WEFT_INTERNAL int weft__http_format_response(char *out, size_t cap, const struct weft__http_response *r);

/* The reason phrase for a status ("Not Found"); "Unknown" for unlisted codes. */
WEFT_INTERNAL const char *weft__http_reason(int status);

/* Formats t (Unix seconds) as an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", into out
 * (at least 30 bytes; 29 characters and a NUL). Returns 29, or -EINVAL if t is out of the
 * years 0..9999. */
WEFT_INTERNAL int weft__http_format_date(char *out, size_t cap, int64_t t);

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes) into Unix
 * seconds. The obsolete RFC 850 and asctime forms are not accepted (-EINVAL): a
 * conditional header with a date weft cannot read is ignored, as RFC 9110 13.1.3 allows. */
WEFT_INTERNAL int weft__http_parse_date(const char *s, size_t len, int64_t *out);

/* Formats the head of one part of a multipart/byteranges body (RFC 9110 14.6): CRLF
 * (unless first), "--" boundary CRLF, Content-Type (if ctype), Content-Range, CRLF. With
 * final, the closing delimiter CRLF "--" boundary "--" CRLF instead (span and ctype
 * unused). Returns the length, or -ENOSPC. */
WEFT_INTERNAL int weft__http_format_part(char *out, size_t cap, const char *boundary, const char *ctype,
                                         const struct weft__http_span *span, uint64_t total, bool first,
                                         bool final);

/* True when the If-None-Match / If-Range style list (entity tags separated by commas, or
 * "*") holds etag. weak: the weak comparison (W/ prefixes ignored, for If-None-Match);
 * else the strong one (a weak tag never matches, for If-Range). A malformed list matches
 * nothing. */
WEFT_INTERNAL bool weft__http_etag_match(const char *list, size_t len, const char *etag, bool weak);

/* weft__http_etag_match over every line of the field `name` of r (RFC 9110 5.3: repeated
 * lines make one list): 1 when a tag (or "*") of any line matches, 0 when none does, -1
 * when the field is absent. */
WEFT_INTERNAL int weft__http_etag_match_lines(const struct weft__http_request *r, const char *buf,
                                              const char *name, const char *etag, bool weak);

/* The date of the single-valued field `name` of r into *t: false when it is absent,
 * unreadable, or repeated (an invalid field, which RFC 9110 13.1.3/13.1.4 says to ignore). */
WEFT_INTERNAL bool weft__http_date_header(const struct weft__http_request *r, const char *buf, const char *name,
                                          int64_t *t);

#endif
