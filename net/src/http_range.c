/* http_range.c - resolving a parsed Range header against an entity size: one range for
 * a plain 206, or the sorted and merged span list of multipart/byteranges (RFC 9110
 * 14). The header itself is parsed with the request head in http_parse.c. */
#include <errno.h>

#include "http_parse.h"

int weft__http_range_resolve(const struct weft__http_range *rg, uint64_t size, uint64_t *first,
                             uint64_t *last)
{
	*first = 0;
	*last = size ? size - 1 : 0;
	switch (rg->kind) {
	case WEFT_HTTP_RANGE_FROM_TO:
	case WEFT_HTTP_RANGE_FROM:
		if (rg->first >= size)
			return -ERANGE;
		*first = rg->first;
		if (rg->kind == WEFT_HTTP_RANGE_FROM_TO && rg->last < size - 1)
			*last = rg->last;
		return 1;
	case WEFT_HTTP_RANGE_SUFFIX:
		if (rg->last == 0 || size == 0)
			return -ERANGE;
		*first = rg->last >= size ? 0 : size - rg->last;
		return 1;
	default:
		return 0;
	}
}

/* One spec against size: false when it selects no byte. */
static bool span_of(const struct weft__http_range *rg, uint64_t size, struct weft__http_span *sp)
{
	uint64_t f, l;
	if (weft__http_range_resolve(rg, size, &f, &l) != 1)
		return false;
	sp->first = f;
	sp->last = l;
	return true;
}

int weft__http_ranges_resolve(const struct weft__http_request *r, uint64_t size, struct weft__http_span *out)
{
	if (r->range.kind != WEFT_HTTP_RANGE_MULTI) {
		uint64_t f, l;
		int rc = weft__http_range_resolve(&r->range, size, &f, &l);
		if (rc == 1) {
			out[0].first = f;
			out[0].last = l;
		}
		return rc;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < r->nranges && i < WEFT_HTTP_MAX_RANGES; i++) {
		struct weft__http_span sp;
		if (!span_of(&r->ranges[i], size, &sp))
			continue;
		/* insertion sort by first: at most 16 */
		unsigned j = n++;
		while (j > 0 && out[j - 1].first > sp.first) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = sp;
	}
	if (n == 0)
		return -ERANGE;
	/* merge what overlaps or touches: the parts never repeat a byte */
	unsigned m = 0;
	for (unsigned i = 1; i < n; i++) {
		if (out[i].first <= out[m].last + 1) {
			if (out[i].last > out[m].last)
				out[m].last = out[i].last;
		} else {
			out[++m] = out[i];
		}
	}
	return (int)m + 1;
}
