/* http_range.c - resolving a parsed Range header against an entity size: one range for
 * a plain 206, or the span list of multipart/byteranges in the order asked, overlapping
 * or adjacent specs coalesced (RFC 9110 14). The header itself is parsed with the
 * request head in http_parse.c. */
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
	/* in the order asked (RFC 9110 14.6): a spec that overlaps or touches parts already
	 * kept joins them, the whole in the place of the earliest one. The kept parts never
	 * touch each other, so their union with the new span touches no other part. */
	unsigned n = 0;
	for (unsigned i = 0; i < r->nranges && i < WEFT_HTTP_MAX_RANGES; i++) {
		struct weft__http_span sp;
		if (!span_of(&r->ranges[i], size, &sp))
			continue;
		unsigned at = n, m = 0;
		for (unsigned j = 0; j < n; j++) {
			struct weft__http_span o = out[j];
			if (o.first <= sp.last + 1 && sp.first <= o.last + 1) {
				if (o.first < sp.first)
					sp.first = o.first;
				if (o.last > sp.last)
					sp.last = o.last;
				if (at == n)
					at = m;   /* the earliest: its place is kept for the union */
				else
					continue;   /* absorbed: dropped from the list */
			}
			out[m++] = o;
		}
		if (at == n)
			at = m++;
		out[at] = sp;
		n = m;
	}
	return n == 0 ? -ERANGE : (int)n;
}
