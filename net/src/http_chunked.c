/* http_chunked.c - the chunked request-body decoder (RFC 9112 7.1): a byte-at-a-time
 * state machine over the framing that hands the body bytes back without copying. */
#include <string.h>

#include "http_parse.h"
#include "http_chars.h"

enum {
	CK_SIZE0,        /* the first hex digit of a chunk size */
	CK_SIZE,         /* more hex digits */
	CK_BWS,          /* whitespace after the size: only more of it or ';' */
	CK_EXT,          /* chunk extensions, up to CR */
	CK_SIZE_LF,      /* the LF of the size line */
	CK_DATA,         /* left data bytes */
	CK_DATA_CR,      /* the CRLF after the data */
	CK_DATA_LF,
	CK_TR_START,     /* a trailer line, or the CR of the blank line */
	CK_TR_NAME,
	CK_TR_VALUE,
	CK_TR_LF,
	CK_END_LF,       /* the LF of the blank line */
	CK_DONE,
};

#define CK_LINE_MAX 4096u
#define CK_TRAILER_MAX 8192u

void weft__http_chunked_init(struct weft__http_chunked *d, uint64_t max_total)
{
	memset(d, 0, sizeof *d);
	d->max_total = max_total ? max_total : (uint64_t)INT64_MAX;
	d->state_ = CK_SIZE0;
}

static int ck_fail(struct weft__http_chunked *d, int result)
{
	d->result_ = (uint8_t)result;
	return result;
}

/* One framing byte. Returns NEED to go on, else a terminal result. One switch over every
 * state (longer than 80 lines): the chunked grammar reads top to bottom in one place. */
static int ck_byte(struct weft__http_chunked *d, unsigned char c)
{
	switch (d->state_) {
	case CK_SIZE0:
	case CK_SIZE: {
		int v = hexval((char)c);
		if (v >= 0) {
			if (d->size_ >> 59)
				return ck_fail(d, WEFT_HTTP_CHUNK_BAD);   /* past 2^63 */
			d->size_ = d->size_ << 4 | (uint64_t)v;
			d->state_ = CK_SIZE;
			break;
		}
		if (d->state_ == CK_SIZE0)
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		if (c == '\r')
			d->state_ = CK_SIZE_LF;
		else if (c == ';')
			d->state_ = CK_EXT;
		else if (c == ' ' || c == '\t')
			d->state_ = CK_BWS;
		else
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	}
	case CK_BWS:
		if (c == ';')
			d->state_ = CK_EXT;
		else if (c != ' ' && c != '\t')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	case CK_EXT:
		if (c == '\r')
			d->state_ = CK_SIZE_LF;
		else if (!is(c, C_FIELD | C_VCHAR))
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	case CK_SIZE_LF:
		if (c != '\n')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		d->line_ = 0;
		if (d->size_ == 0) {
			d->state_ = CK_TR_START;
			break;
		}
		if (d->size_ > d->max_total - d->total)
			return ck_fail(d, WEFT_HTTP_CHUNK_TOO_LARGE);
		d->total += d->size_;
		d->left = d->size_;
		d->size_ = 0;
		d->state_ = CK_DATA;
		break;
	case CK_DATA_CR:
		if (c != '\r')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		d->state_ = CK_DATA_LF;
		break;
	case CK_DATA_LF:
		if (c != '\n')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		d->state_ = CK_SIZE0;
		break;
	case CK_TR_START:
		if (c == '\r')
			d->state_ = CK_END_LF;
		else if (is(c, C_TCHAR))
			d->state_ = CK_TR_NAME;
		else
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	case CK_TR_NAME:
		if (c == ':')
			d->state_ = CK_TR_VALUE;
		else if (!is(c, C_TCHAR))
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	case CK_TR_VALUE:
		if (c == '\r')
			d->state_ = CK_TR_LF;
		else if (!is(c, C_FIELD | C_VCHAR))
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		break;
	case CK_TR_LF:
		if (c != '\n')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		d->state_ = CK_TR_START;
		break;
	case CK_END_LF:
		if (c != '\n')
			return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
		d->state_ = CK_DONE;
		return WEFT_HTTP_CHUNK_END;
	default:
		return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
	}
	/* bounds: a size line with endless extensions, or endless trailers, is refused */
	if (d->state_ <= CK_SIZE_LF && ++d->line_ > CK_LINE_MAX)
		return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
	if (d->state_ >= CK_TR_START && d->state_ <= CK_END_LF && ++d->trailer_ > CK_TRAILER_MAX)
		return ck_fail(d, WEFT_HTTP_CHUNK_BAD);
	return WEFT_HTTP_CHUNK_NEED;
}

int weft__http_chunked_next(struct weft__http_chunked *d, const char *p, size_t len, size_t *used, size_t *data)
{
	*used = 0;
	*data = 0;
	if (d->result_)
		return d->result_;
	if (d->state_ == CK_DONE)
		return WEFT_HTTP_CHUNK_END;
	size_t i = 0;
	for (;;) {
		if (d->state_ == CK_DATA) {
			if (d->left == 0) {
				d->state_ = CK_DATA_CR;
				continue;
			}
			if (i == len)
				break;
			size_t n = len - i < d->left ? len - i : (size_t)d->left;
			d->left -= n;
			*used = i;
			*data = n;
			return WEFT_HTTP_CHUNK_DATA;
		}
		if (i == len)
			break;
		int rc = ck_byte(d, (unsigned char)p[i++]);
		if (rc != WEFT_HTTP_CHUNK_NEED) {
			*used = i;
			return rc;
		}
	}
	*used = len;
	return WEFT_HTTP_CHUNK_NEED;
}
