/* http_chars.h - the byte classes and character helpers that the request-head parser
 * (http_parse.c) and the chunked body decoder (http_chunked.c) share. Private to net/. */
#ifndef WEFT_NET_HTTP_CHARS_H
#define WEFT_NET_HTTP_CHARS_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Character classes (RFC 9110 5.6.2 tchar; 5.5 field-vchar plus SP/HT; request-target
 * bytes are VCHAR). One table, one load per byte. */
enum { C_TCHAR = 1, C_FIELD = 2, C_VCHAR = 4, C_DIGIT = 8 };

/* The class of each byte; defined in http_parse.c. */
WEFT_INTERNAL extern const uint8_t weft__http_cls[256];

static inline bool is(unsigned char c, uint8_t mask)
{
	return (weft__http_cls[c] & mask) != 0;
}

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static inline int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

#endif
