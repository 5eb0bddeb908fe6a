/* http_parse.c - the HTTP/1.1 request-head parser (RFC 9110, RFC 9112) and the
 * request-target path decoder behind weft-server --mode http. The chunked body decoder
 * is in http_chunked.c, range resolution in http_range.c and the response heads in
 * http_response.c. See http_parse.h. */
#include <errno.h>
#include <string.h>

#include "http_parse.h"
#include "http_chars.h"

/* Parser states. Lines are handled as soon as their LF arrives, so a malformed request
 * line is refused before the client has sent its headers. */
enum { ST_START, ST_HEADERS, ST_DONE };

/* The byte classes of http_chars.h (C_TCHAR 1, C_FIELD 2, C_VCHAR 4, C_DIGIT 8). */
const uint8_t weft__http_cls[256] = {
	['\t'] = C_FIELD, [' '] = C_FIELD,
	['!'] = 7, ['"'] = 6, ['#'] = 7, ['$'] = 7, ['%'] = 7, ['&'] = 7, ['\''] = 7, ['('] = 6,
	[')'] = 6, ['*'] = 7, ['+'] = 7, [','] = 6, ['-'] = 7, ['.'] = 7, ['/'] = 6,
	['0'] = 15, ['1'] = 15, ['2'] = 15, ['3'] = 15, ['4'] = 15, ['5'] = 15, ['6'] = 15,
	['7'] = 15, ['8'] = 15, ['9'] = 15,
	[':'] = 6, [';'] = 6, ['<'] = 6, ['='] = 6, ['>'] = 6, ['?'] = 6, ['@'] = 6,
	['A'] = 7, ['B'] = 7, ['C'] = 7, ['D'] = 7, ['E'] = 7, ['F'] = 7, ['G'] = 7, ['H'] = 7,
	['I'] = 7, ['J'] = 7, ['K'] = 7, ['L'] = 7, ['M'] = 7, ['N'] = 7, ['O'] = 7, ['P'] = 7,
	['Q'] = 7, ['R'] = 7, ['S'] = 7, ['T'] = 7, ['U'] = 7, ['V'] = 7, ['W'] = 7, ['X'] = 7,
	['Y'] = 7, ['Z'] = 7,
	['['] = 6, ['\\'] = 6, [']'] = 6, ['^'] = 7, ['_'] = 7, ['`'] = 7,
	['a'] = 7, ['b'] = 7, ['c'] = 7, ['d'] = 7, ['e'] = 7, ['f'] = 7, ['g'] = 7, ['h'] = 7,
	['i'] = 7, ['j'] = 7, ['k'] = 7, ['l'] = 7, ['m'] = 7, ['n'] = 7, ['o'] = 7, ['p'] = 7,
	['q'] = 7, ['r'] = 7, ['s'] = 7, ['t'] = 7, ['u'] = 7, ['v'] = 7, ['w'] = 7, ['x'] = 7,
	['y'] = 7, ['z'] = 7,
	['{'] = 6, ['|'] = 7, ['}'] = 6, ['~'] = 7, [0x7f] = 0,
	/* 0x80-0xFF, obs-text: allowed in field values only */
#define F16 C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, \
	    C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD, C_FIELD
	F16, F16, F16, F16, F16, F16, F16, F16,
#undef F16
};

/* Case-insensitive comparison of p[0, n) with the lower-case literal s. */
static bool eq_ci(const char *p, size_t n, const char *s)
{
	size_t i = 0;
	for (; i < n && s[i]; i++)
		if (lower(p[i]) != s[i])
			return false;
	return i == n && s[i] == '\0';
}

static struct weft__http_slice slice(const char *buf, const char *p, size_t n)
{
	return (struct weft__http_slice){ (uint32_t)(p - buf), (uint32_t)n };
}

/* What a Transfer-Encoding list makes of the body (RFC 9112 6.1, 6.3), empty elements
 * ignored (RFC 9110 5.6.1.2): TE_CHUNKED chunked alone; TE_OTHER chunked final after
 * other codings, or with a parameter (weft applies neither: 501); TE_UNFRAMED chunked
 * not final or no coding at all (the length cannot be known: 400 and close). */
enum { TE_UNFRAMED, TE_CHUNKED, TE_OTHER };

static uint8_t te_kind(const char *v, size_t vn)
{
	const char *last = NULL;
	size_t last_n = 0, n = 0;
	for (size_t i = 0; i <= vn;) {
		size_t e = i;
		while (e < vn && v[e] != ',')
			e++;
		size_t a = i, z = e;
		while (a < z && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (z > a && (v[z - 1] == ' ' || v[z - 1] == '\t'))
			z--;
		if (z > a) {
			last = v + a;
			last_n = z - a;
			n++;
		}
		i = e + 1;
	}
	if (!last)
		return TE_UNFRAMED;
	if (eq_ci(last, last_n, "chunked"))
		return n == 1 ? TE_CHUNKED : TE_OTHER;
	/* the coding's name ends at a parameter's ';' (OWS allowed before it) */
	size_t k = 0;
	while (k < last_n && last[k] != ';' && last[k] != ' ' && last[k] != '\t')
		k++;
	size_t q = k;
	while (q < last_n && (last[q] == ' ' || last[q] == '\t'))
		q++;
	return q < last_n && last[q] == ';' && eq_ci(last, k, "chunked") ? TE_OTHER : TE_UNFRAMED;
}

/* Decimal without sign, at most 2^63 - 1. */
static bool parse_u63(const char *p, size_t n, uint64_t *out)
{
	if (n == 0 || n > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is((unsigned char)p[i], C_DIGIT))
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX)
		return false;
	*out = v;
	return true;
}

void weft__http_request_init(struct weft__http_request *r, const struct weft__http_limits *limits)
{
	memset(r, 0, offsetof(struct weft__http_request, headers));
	r->max_head_ = WEFT_HTTP_MAX_HEAD_DEFAULT;
	r->max_headers_ = WEFT_HTTP_MAX_HEADERS;
	if (limits && limits->max_head)
		r->max_head_ = limits->max_head < (1u << 20) ? limits->max_head : (1u << 20);
	if (limits && limits->max_headers && limits->max_headers < WEFT_HTTP_MAX_HEADERS)
		r->max_headers_ = limits->max_headers;
	r->content_length = -1;
	r->result_ = WEFT_HTTP_INCOMPLETE;
}

static int classify_method(const char *m, size_t n)
{
	static const char *const others[] = { "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT" };
	if (n == 3 && !memcmp(m, "GET", 3))
		return WEFT_HTTP_GET;
	if (n == 4 && !memcmp(m, "HEAD", 4))
		return WEFT_HTTP_HEAD;
	if (n == 3 && !memcmp(m, "PUT", 3))
		return WEFT_HTTP_PUT;
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
		if (strlen(others[i]) == n && !memcmp(m, others[i], n))
			return WEFT_HTTP_METHOD_KNOWN_OTHER;
	return WEFT_HTTP_METHOD_UNKNOWN;
}

/* origin-form "/path?query", or absolute-form "http://authority/path?query" (RFC 9112
 * 3.2.2: a server must accept it) reduced to its path. A fragment is not part of a
 * request target. */
static int parse_target(struct weft__http_request *r, const char *buf, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is((unsigned char)t[i], C_VCHAR) || t[i] == '#')
			return WEFT_HTTP_BAD_REQUEST;
	r->target = slice(buf, t, n);
	const char *p = t, *end = t + n;
	if (n >= 7 && (eq_ci(t, 7, "http://") || (n >= 8 && eq_ci(t, 8, "https://")))) {
		p = memchr(t + 7, '/', n - 7);
		if (!p)
			p = end;   /* "http://host" asks for "/"; the path slice is then empty */
	} else if (n == 0 || t[0] != '/') {
		/* asterisk-form and authority-form belong to OPTIONS and CONNECT (405 anyway) */
		if (r->method == WEFT_HTTP_METHOD_KNOWN_OTHER)
			return WEFT_HTTP_OK;
		return WEFT_HTTP_BAD_REQUEST;
	}
	const char *q = memchr(p, '?', (size_t)(end - p));
	r->path = slice(buf, p, (size_t)((q ? q : end) - p));
	if (q)
		r->query = slice(buf, q + 1, (size_t)(end - q - 1));
	return WEFT_HTTP_OK;
}

/* request-line = method SP request-target SP HTTP-version, single spaces (RFC 9112 3). */
static int parse_request_line(struct weft__http_request *r, const char *buf, const char *p, size_t n)
{
	const char *end = p + n;
	const char *sp1 = memchr(p, ' ', n);
	if (!sp1 || sp1 == p)
		return WEFT_HTTP_BAD_REQUEST;
	for (const char *c = p; c < sp1; c++)
		if (!is((unsigned char)*c, C_TCHAR))
			return WEFT_HTTP_BAD_REQUEST;
	r->method_s = slice(buf, p, (size_t)(sp1 - p));
	r->method = (uint8_t)classify_method(p, (size_t)(sp1 - p));
	const char *t = sp1 + 1;
	const char *sp2 = memchr(t, ' ', (size_t)(end - t));
	if (!sp2 || sp2 == t)
		return WEFT_HTTP_BAD_REQUEST;
	const char *v = sp2 + 1;
	size_t vn = (size_t)(end - v);
	/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive */
	if (vn != 8 || memcmp(v, "HTTP/", 5) || !is((unsigned char)v[5], C_DIGIT) || v[6] != '.' ||
	    !is((unsigned char)v[7], C_DIGIT))
		return WEFT_HTTP_BAD_REQUEST;
	if (v[5] != '1')
		return v[5] >= '2' ? WEFT_HTTP_VERSION_NOT_SUPPORTED : WEFT_HTTP_BAD_REQUEST;
	/* RFC 9110 6.2: a 1.x message with a higher minor is handled as the highest 1.x we
	 * speak. */
	r->version_minor = v[7] == '0' ? 0 : 1;
	return parse_target(r, buf, t, (size_t)(sp2 - t));
}

/* Connection: a comma-separated token list. close wins over keep-alive. */
static void parse_connection(struct weft__http_request *r, const char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (eq_ci(v + s, i - s, "close"))
			r->conn_close_ = 1;
		else if (eq_ci(v + s, i - s, "keep-alive"))
			r->conn_ka_ = 1;
	}
}

/* One range-spec: a-b | a- | -n (RFC 9110 14.1.2). False when malformed. */
static bool parse_range_spec(struct weft__http_range *rg, const char *v, size_t n)
{
	const char *dash = memchr(v, '-', n);
	if (!dash)
		return false;
	size_t a = (size_t)(dash - v), b = n - a - 1;
	uint64_t first = 0, last = 0;
	if (a == 0) {
		if (!parse_u63(dash + 1, b, &last))
			return false;
		rg->kind = WEFT_HTTP_RANGE_SUFFIX;
	} else if (b == 0) {
		if (!parse_u63(v, a, &first))
			return false;
		rg->kind = WEFT_HTTP_RANGE_FROM;
	} else {
		if (!parse_u63(v, a, &first) || !parse_u63(dash + 1, b, &last) || last < first)
			return false;
		rg->kind = WEFT_HTTP_RANGE_FROM_TO;
	}
	rg->first = first;
	rg->last = last;
	return true;
}

/* Range: "bytes=" range-set, a list (1#range-spec: OWS around the commas, empty elements
 * allowed, none before the first). One spec: r->range; several: MULTI with the specs in
 * r->ranges. A malformed spec anywhere, another unit or more than WEFT_HTTP_MAX_RANGES
 * specs: IGNORED. */
static void parse_range(struct weft__http_request *r, const char *v, size_t n)
{
	struct weft__http_range *rg = &r->range;
	rg->kind = WEFT_HTTP_RANGE_IGNORED;
	rg->first = rg->last = 0;
	if (n < 6 || !eq_ci(v, 6, "bytes="))
		return;
	const char *p = v + 6, *end = v + n;
	unsigned k = 0;
	bool after_comma = false;
	while (p <= end) {
		if (after_comma)
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > p) {
			if (k == WEFT_HTTP_MAX_RANGES || !parse_range_spec(&r->ranges[k], p, (size_t)(e - p)))
				return;
			k++;
		} else if (!after_comma && comma == NULL) {
			return;   /* "bytes=" */
		}
		if (!comma)
			break;
		p = comma + 1;
		after_comma = true;
	}
	if (k == 1)
		*rg = r->ranges[0];
	else if (k > 1) {
		rg->kind = WEFT_HTTP_RANGE_MULTI;
		r->nranges = (uint8_t)k;
	}
}

/* The headers whose meaning the parser needs; every header is also kept in headers[]. */
static int note_header(struct weft__http_request *r, const char *n, size_t nn, const char *v, size_t vn,
                       const char *buf)
{
	switch (lower(n[0])) {
	case 'c':
		if (eq_ci(n, nn, "content-length")) {
			uint64_t cl;
			if (!parse_u63(v, vn, &cl))
				return WEFT_HTTP_BAD_REQUEST;
			/* Two different lengths make the framing ambiguous (RFC 9112 6.3). */
			if (r->content_length >= 0 && (uint64_t)r->content_length != cl)
				return WEFT_HTTP_BAD_REQUEST;
			r->content_length = (int64_t)cl;
		} else if (eq_ci(n, nn, "connection")) {
			parse_connection(r, v, vn);
		}
		break;
	case 'h':
		if (eq_ci(n, nn, "host")) {
			r->host = slice(buf, v, vn);
			if (r->hosts_ < 2)
				r->hosts_++;
		}
		break;
	case 'r':
		if (eq_ci(n, nn, "range")) {
			if (r->range.kind != WEFT_HTTP_RANGE_NONE) {
				r->range.kind = WEFT_HTTP_RANGE_IGNORED;   /* repeated: ignore both */
				r->nranges = 0;
			} else {
				parse_range(r, v, vn);
			}
		}
		break;
	case 'i':
		if (eq_ci(n, nn, "if-none-match") || eq_ci(n, nn, "if-modified-since") || eq_ci(n, nn, "if-range") ||
		    eq_ci(n, nn, "if-match") || eq_ci(n, nn, "if-unmodified-since"))
			r->conditional = true;
		break;
	case 't':
		if (eq_ci(n, nn, "transfer-encoding")) {
			if (r->te_ < 2)
				r->te_++;
			r->te_chunked_ = te_kind(v, vn);
		}
		break;
	case 'e':
		if (eq_ci(n, nn, "expect")) {
			if (eq_ci(v, vn, "100-continue"))
				r->expect_continue = true;
			else
				r->expect_bad_ = 1;
		}
		break;
	default:
		break;
	}
	return WEFT_HTTP_OK;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5). No whitespace before the
 * colon (5.1: must be rejected) and no obs-fold (5.2: may be rejected). */
static int parse_header_line(struct weft__http_request *r, const char *buf, const char *p, size_t n)
{
	if (r->nheaders >= r->max_headers_)
		return WEFT_HTTP_HEADERS_TOO_LARGE;
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return WEFT_HTTP_BAD_REQUEST;
	for (const char *c = p; c < colon; c++)
		if (!is((unsigned char)*c, C_TCHAR))
			return WEFT_HTTP_BAD_REQUEST;
	const char *v = colon + 1, *end = p + n;
	for (const char *c = v; c < end; c++)
		if (!is((unsigned char)*c, C_FIELD | C_VCHAR))
			return WEFT_HTTP_BAD_REQUEST;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	struct weft__http_header *h = &r->headers[r->nheaders++];
	h->name = slice(buf, p, (size_t)(colon - p));
	h->value = slice(buf, v, (size_t)(end - v));
	return note_header(r, p, (size_t)(colon - p), v, (size_t)(end - v), buf);
}

/* The blank line arrived: checks that need the whole head, in the order that picks the
 * most useful answer. */
static int finish_head(struct weft__http_request *r)
{
	/* RFC 9112 3.2: a 1.1 request without exactly one Host is answered 400. */
	if (r->hosts_ > 1 || (r->version_minor == 1 && r->hosts_ == 0))
		return WEFT_HTTP_BAD_REQUEST;
	if (r->te_) {
		/* Both framings at once is the request-smuggling shape (RFC 9112 6.1), and so
		 * are two Transfer-Encoding lines (which coding applies last?) and one from an
		 * HTTP/1.0 client (6.1: its framing is faulty). Chunked not the final coding
		 * leaves the length unknown: 400 and close (6.3). Of the codings only chunked is
		 * understood, alone: other codings before it are 501, as nginx answers. */
		if (r->content_length >= 0 || r->te_ > 1 || r->version_minor == 0 || r->te_chunked_ == TE_UNFRAMED)
			return WEFT_HTTP_BAD_REQUEST;
		if (r->te_chunked_ == TE_OTHER)
			return WEFT_HTTP_NOT_IMPLEMENTED;
		r->chunked = true;
	}
	r->keep_alive = !r->conn_close_ && (r->version_minor == 1 || r->conn_ka_);
	if (r->method == WEFT_HTTP_METHOD_KNOWN_OTHER)
		return WEFT_HTTP_METHOD_NOT_ALLOWED;
	if (r->method == WEFT_HTTP_METHOD_UNKNOWN)
		return WEFT_HTTP_NOT_IMPLEMENTED;
	if (r->expect_bad_)
		return WEFT_HTTP_EXPECTATION_FAILED;
	return WEFT_HTTP_OK;
}

static int stop(struct weft__http_request *r, int result)
{
	r->state_ = ST_DONE;
	r->result_ = (uint8_t)result;
	return result;
}

/* Scans from scan_ for line ends and handles each complete line once; everything learnt
 * from earlier lines lives in r, so a head split anywhere gives the same answer as one in
 * a single piece. */
int weft__http_parse(struct weft__http_request *r, const char *buf, size_t len)
{
	if (r->state_ == ST_DONE)
		return r->result_;
	size_t limit = len < r->max_head_ ? len : r->max_head_;
	while (r->scan_ < limit) {
		const char *lf = memchr(buf + r->scan_, '\n', limit - r->scan_);
		if (!lf) {
			r->scan_ = (uint32_t)limit;
			break;
		}
		size_t eol = (size_t)(lf - buf);
		size_t end = eol > r->line_ && buf[eol - 1] == '\r' ? eol - 1 : eol;
		const char *p = buf + r->line_;
		size_t n = end - r->line_;
		r->scan_ = (uint32_t)(eol + 1);
		r->line_ = r->scan_;
		int res;
		if (r->state_ == ST_START) {
			/* RFC 9112 2.2: ignore empty lines before the request line. */
			if (n == 0)
				continue;
			res = parse_request_line(r, buf, p, n);
			r->state_ = ST_HEADERS;
		} else if (n == 0) {
			r->head_len = (uint32_t)(eol + 1);
			return stop(r, finish_head(r));
		} else if (p[0] == ' ' || p[0] == '\t') {
			res = WEFT_HTTP_BAD_REQUEST;   /* obs-fold */
		} else {
			res = parse_header_line(r, buf, p, n);
		}
		if (res != WEFT_HTTP_OK)
			return stop(r, res);
	}
	if (len >= r->max_head_)
		return stop(r, r->state_ == ST_START ? WEFT_HTTP_URI_TOO_LONG : WEFT_HTTP_HEADERS_TOO_LARGE);
	return WEFT_HTTP_INCOMPLETE;
}

int weft__http_result_status(int result)
{
	switch (result) {
	case WEFT_HTTP_OK: return 200;
	case WEFT_HTTP_BAD_REQUEST: return 400;
	case WEFT_HTTP_URI_TOO_LONG: return 414;
	case WEFT_HTTP_HEADERS_TOO_LARGE: return 431;
	case WEFT_HTTP_METHOD_NOT_ALLOWED: return 405;
	case WEFT_HTTP_NOT_IMPLEMENTED: return 501;
	case WEFT_HTTP_VERSION_NOT_SUPPORTED: return 505;
	case WEFT_HTTP_EXPECTATION_FAILED: return 417;
	default: return 0;
	}
}

const char *weft__http_header_next(const struct weft__http_request *r, const char *buf, const char *name,
                                   uint32_t *at, size_t *len)
{
	size_t nn = strlen(name);
	for (uint32_t i = *at; i < r->nheaders; i++) {
		const struct weft__http_header *h = &r->headers[i];
		if (h->name.len != nn)
			continue;
		const char *hn = buf + h->name.off;
		size_t k = 0;
		while (k < nn && lower(hn[k]) == lower(name[k]))
			k++;
		if (k == nn) {
			*at = i + 1;
			*len = h->value.len;
			return buf + h->value.off;
		}
	}
	*at = r->nheaders;
	return NULL;
}

const char *weft__http_header_get(const struct weft__http_request *r, const char *buf, const char *name,
                                  size_t *len)
{
	uint32_t at = 0;
	return weft__http_header_next(r, buf, name, &at, len);
}

/* Ends the segment out[seg, *o) that a '/' (or the end) closes. Dot segments are judged
 * after decoding, so "%2e%2e" is the same ".." as "..". */
static int close_segment(char *out, size_t seg, size_t *o)
{
	size_t n = *o - seg;
	if (n == 1 && out[seg] == '.')
		*o = seg;                           /* "/./" -> "/" */
	else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.')
		return -EACCES;
	return 0;
}

int weft__http_path_decode(const char *path, size_t len, char *out, size_t cap)
{
	if (cap < 2)
		return -ENAMETOOLONG;
	if (len > 0 && path[0] != '/')
		return -EINVAL;
	out[0] = '/';
	size_t o = 1, seg = 1;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '/') {
			int rc = close_segment(out, seg, &o);
			if (rc < 0)
				return rc;
			if (o == seg)
				continue;                   /* empty or "." segment: no new '/' */
			c = '/';
		} else if (c == '%') {
			int hi = i + 2 < len ? hexval(path[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(path[i + 2]) : -1;
			if (lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			/* An encoded separator would let a name hide a path step from the
			 * segment checks above. */
			if (c == '/' || c == '\\')
				return -EACCES;
			if (c == 0)
				return -EINVAL;
		}
		if (c == '\\')
			return -EACCES;
		if (c < 0x20 || c == 0x7f)
			return -EINVAL;                 /* control bytes have no place in a name */
		if (o + 1 >= cap)
			return -ENAMETOOLONG;
		out[o++] = (char)c;
		if (c == '/')
			seg = o;
	}
	int rc = close_segment(out, seg, &o);
	if (rc < 0)
		return rc;
	out[o] = '\0';
	return (int)o;
}
