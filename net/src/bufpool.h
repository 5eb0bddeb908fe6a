/* bufpool.h - fixed-size buffers for the net module, recycled through a free list so that
 * a warm server allocates nothing per request. Private to net/. */
#ifndef WEFT_NET_BUFPOOL_H
#define WEFT_NET_BUFPOOL_H

#include <stdint.h>

#include <weft/sync.h>

#include "internal.h"

struct weft__buf {
	struct weft__buf *next;     /* free list, or a connection's send queue */
	uint32_t len;               /* bytes used in data */
	char data[];
};

/* The free list is a stack under a spinlock: push and pop are a few instructions, so the
 * lock is held for nanoseconds and never across a system call. */
struct weft__bufpool {
	weft_spinlock lock;
	struct weft__buf *free;     /* guarded by lock */
	uint32_t nfree;             /* guarded by lock; read relaxed for stats */
	uint32_t max_free;          /* buffers kept beyond this are returned to the system */
	uint32_t size;              /* capacity of data[] */
	uint64_t allocs;            /* malloc calls, atomic */
	uint64_t out;               /* buffers handed out and not put back, atomic */
};

/* Prepares the pool and allocates prealloc buffers up front. -ENOMEM if they cannot be. */
WEFT_INTERNAL int weft__bufpool_init(struct weft__bufpool *p, uint32_t size, uint32_t prealloc,
                                     uint32_t max_free);
/* A buffer with len 0, from the free list or (counted in allocs) from malloc; NULL when
 * out of memory. Thread-safe. */
WEFT_INTERNAL struct weft__buf *weft__bufpool_get(struct weft__bufpool *p);
/* Returns b (may be NULL) to the pool. Thread-safe. */
WEFT_INTERNAL void weft__bufpool_put(struct weft__bufpool *p, struct weft__buf *b);
/* Frees every pooled buffer; buffers still out must have been put back. */
WEFT_INTERNAL void weft__bufpool_fini(struct weft__bufpool *p);

#endif
