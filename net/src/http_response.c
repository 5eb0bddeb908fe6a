/* http_response.c - response heads (the status line and headers, multipart/byteranges
 * part heads), HTTP dates both ways and the ETag validators of conditional requests
 * (RFC 9110). See http_parse.h. */
#include <errno.h>
#include <string.h>

#include "http_parse.h"

const char *weft__http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* Unix seconds to an IMF-fixdate (RFC 9110 5.6.7). The civil date comes from the day
 * count by the era arithmetic of proleptic Gregorian calendars, so no gmtime_r, no
 * time zone and no locale are involved. */
int weft__http_format_date(char *out, size_t cap, int64_t t)
{
	static const char wd[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mo[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	if (cap < 30)
		return -ENOSPC;
	/* year 0 .. 9999 */
	if (t < -62167219200ll || t > 253402300799ll)
		return -EINVAL;
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	int64_t y = yoe + era * 400 + (m <= 2);
	unsigned w = (unsigned)(((days + 4) % 7 + 7) % 7);   /* 1970-01-01 was a Thursday */
	memcpy(out, wd[w], 3);
	memcpy(out + 3, ", ", 2);
	put2(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, mo[m - 1], 3);
	out[11] = ' ';
	put2(out + 12, (unsigned)(y / 100));
	put2(out + 14, (unsigned)(y % 100));
	out[16] = ' ';
	put2(out + 17, (unsigned)(secs / 3600));
	out[19] = ':';
	put2(out + 20, (unsigned)(secs / 60 % 60));
	out[22] = ':';
	put2(out + 23, (unsigned)(secs % 60));
	memcpy(out + 25, " GMT", 5);   /* with the NUL */
	return 29;
}

/* Appending to a bounded buffer; the first overflow sticks in b->ok. */
struct out {
	char *p;
	size_t len, cap;
	bool ok;
};

static void put(struct out *b, const char *s, size_t n)
{
	if (!b->ok || n > b->cap - b->len) {
		b->ok = false;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void puts_(struct out *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putu(struct out *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, tmp + sizeof tmp - n, n);
}

static void put_date(struct out *b, const char *name, int64_t t)
{
	char d[30];
	if (weft__http_format_date(d, sizeof d, t) < 0)
		return;   /* out of range: the header is left out rather than lie */
	puts_(b, name);
	put(b, d, 29);
	put(b, "\r\n", 2);
}

int weft__http_format_response(char *out, size_t cap, const struct weft__http_response *r)
{
	if (r->status < 100 || r->status > 599)
		return -EINVAL;
	struct out b = { out, 0, cap, true };
	puts_(&b, "HTTP/1.1 ");
	putu(&b, (uint64_t)r->status);
	put(&b, " ", 1);
	puts_(&b, weft__http_reason(r->status));
	put(&b, "\r\n", 2);
	if (r->date >= 0)
		put_date(&b, "Date: ", r->date);
	puts_(&b, "Server: weft\r\n");
	if (r->last_modified >= 0)
		put_date(&b, "Last-Modified: ", r->last_modified);
	if (r->etag) {
		puts_(&b, "ETag: ");
		puts_(&b, r->etag);
		put(&b, "\r\n", 2);
	}
	if (r->boundary) {
		puts_(&b, "Content-Type: multipart/byteranges; boundary=");
		puts_(&b, r->boundary);
		put(&b, "\r\n", 2);
	} else if (r->content_type) {
		puts_(&b, "Content-Type: ");
		puts_(&b, r->content_type);
		put(&b, "\r\n", 2);
	}
	if (r->content_length >= 0) {
		puts_(&b, "Content-Length: ");
		putu(&b, (uint64_t)r->content_length);
		put(&b, "\r\n", 2);
	}
	if (r->content_range || r->range_unsatisfied) {
		puts_(&b, "Content-Range: bytes ");
		if (r->range_unsatisfied) {
			put(&b, "*", 1);
		} else {
			putu(&b, r->range_first);
			put(&b, "-", 1);
			putu(&b, r->range_last);
		}
		put(&b, "/", 1);
		putu(&b, r->range_total);
		put(&b, "\r\n", 2);
	}
	if (r->accept_ranges)
		puts_(&b, "Accept-Ranges: bytes\r\n");
	if (r->allow)
		puts_(&b, "Allow: GET, HEAD, PUT\r\n");
	if (!r->keep_alive)
		puts_(&b, "Connection: close\r\n");
	else if (r->http10_client)
		puts_(&b, "Connection: keep-alive\r\n");
	put(&b, "\r\n", 2);
	return b.ok ? (int)b.len : -ENOSPC;
}

int weft__http_format_part(char *out, size_t cap, const char *boundary, const char *ctype,
                           const struct weft__http_span *span, uint64_t total, bool first, bool final)
{
	struct out b = { out, 0, cap, true };
	if (!first)
		put(&b, "\r\n", 2);
	put(&b, "--", 2);
	puts_(&b, boundary);
	if (final) {
		put(&b, "--\r\n", 4);
		return b.ok ? (int)b.len : -ENOSPC;
	}
	put(&b, "\r\n", 2);
	if (ctype) {
		puts_(&b, "Content-Type: ");
		puts_(&b, ctype);
		put(&b, "\r\n", 2);
	}
	puts_(&b, "Content-Range: bytes ");
	putu(&b, span->first);
	put(&b, "-", 1);
	putu(&b, span->last);
	put(&b, "/", 1);
	putu(&b, total);
	put(&b, "\r\n\r\n", 4);
	return b.ok ? (int)b.len : -ENOSPC;
}

/* ---- validators ---------------------------------------------------------------------------- */

static bool digits(const char *p, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return true;
}

int weft__http_parse_date(const char *s, size_t len, int64_t *out)
{
	static const char mo[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	/* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, fixed positions */
	if (len != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
	    s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
		return -EINVAL;
	unsigned d, y, hh, mm, ss, m = 0;
	if (!digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) || !digits(s + 17, 2, &hh) ||
	    !digits(s + 20, 2, &mm) || !digits(s + 23, 2, &ss))
		return -EINVAL;
	while (m < 12 && memcmp(mo + 3 * m, s + 8, 3) != 0)
		m++;
	if (m == 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60)
		return -EINVAL;
	m++;
	/* days from 1970-01-01 (the inverse of weft__http_format_date's civil calendar) */
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = era * 146097 + doe - 719468;
	*out = days * 86400 + hh * 3600 + mm * 60 + ss;
	return 0;
}

bool weft__http_etag_match(const char *list, size_t len, const char *etag, bool weak)
{
	size_t el = strlen(etag);
	const char *e = etag;
	if (weak && el > 2 && e[0] == 'W' && e[1] == '/') {
		e += 2;
		el -= 2;
	}
	size_t i = 0;
	while (i < len) {
		while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
			i++;
		if (i >= len)
			break;
		if (list[i] == '*')
			return true;
		bool w = false;
		if (len - i > 2 && list[i] == 'W' && list[i + 1] == '/') {
			w = true;
			i += 2;
		}
		if (list[i] != '"')
			return false;   /* malformed: no match */
		size_t j = i + 1;
		while (j < len && list[j] != '"')
			j++;
		if (j >= len)
			return false;
		size_t tl = j + 1 - i;
		if ((weak || !w) && tl == el && memcmp(list + i, e, el) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

int weft__http_etag_match_lines(const struct weft__http_request *r, const char *buf, const char *name,
                                const char *etag, bool weak)
{
	uint32_t at = 0;
	size_t len;
	const char *v;
	int m = -1;
	while ((v = weft__http_header_next(r, buf, name, &at, &len))) {
		if (weft__http_etag_match(v, len, etag, weak))
			return 1;
		m = 0;
	}
	return m;
}

bool weft__http_date_header(const struct weft__http_request *r, const char *buf, const char *name, int64_t *t)
{
	uint32_t at = 0;
	size_t len, len2;
	const char *v = weft__http_header_next(r, buf, name, &at, &len);
	if (!v || weft__http_header_next(r, buf, name, &at, &len2))
		return false;   /* absent, or repeated: a single date twice is no valid date */
	return weft__http_parse_date(v, len, t) == 0;
}
