/* bufpool.c - the net module's buffer pool. See bufpool.h. */
#include <errno.h>
#include <stdlib.h>

#include "atomic.h"
#include "bufpool.h"

static struct weft__buf *buf_alloc(struct weft__bufpool *p)
{
	struct weft__buf *b = malloc(sizeof *b + p->size);
	if (b) {
		/* relaxed: a statistic; nothing is published through it */
		weft__fadd_rlx(&p->allocs, 1);
		b->next = NULL;
		b->len = 0;
	}
	return b;
}

int weft__bufpool_init(struct weft__bufpool *p, uint32_t size, uint32_t prealloc, uint32_t max_free)
{
	weft_spin_init(&p->lock);
	p->free = NULL;
	p->nfree = 0;
	p->size = size;
	p->max_free = max_free > prealloc ? max_free : prealloc;
	p->allocs = 0;
	p->out = 0;
	for (uint32_t i = 0; i < prealloc; i++) {
		struct weft__buf *b = buf_alloc(p);
		if (!b) {
			weft__bufpool_fini(p);
			return -ENOMEM;
		}
		b->next = p->free;
		p->free = b;
		p->nfree++;
	}
	return 0;
}

struct weft__buf *weft__bufpool_get(struct weft__bufpool *p)
{
	weft_spin_lock(&p->lock);
	struct weft__buf *b = p->free;
	if (b) {
		p->free = b->next;
		weft__store_rlx(&p->nfree, p->nfree - 1);
	}
	weft_spin_unlock(&p->lock);
	if (!b)
		b = buf_alloc(p);
	if (!b)
		return NULL;
	/* relaxed: a statistic */
	weft__fadd_rlx(&p->out, 1);
	b->next = NULL;
	b->len = 0;
	return b;
}

void weft__bufpool_put(struct weft__bufpool *p, struct weft__buf *b)
{
	if (!b)
		return;
	weft__fsub_rel(&p->out, 1);   /* a statistic; release is the weakest sub atomic.h offers */
	weft_spin_lock(&p->lock);
	if (p->nfree < p->max_free) {
		b->next = p->free;
		p->free = b;
		/* relaxed store: stats read nfree without the lock */
		weft__store_rlx(&p->nfree, p->nfree + 1);
		b = NULL;
	}
	weft_spin_unlock(&p->lock);
	free(b);
}

void weft__bufpool_fini(struct weft__bufpool *p)
{
	struct weft__buf *b = p->free;
	while (b) {
		struct weft__buf *next = b->next;
		free(b);
		b = next;
	}
	p->free = NULL;
	p->nfree = 0;
}
