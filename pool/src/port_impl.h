/* port_impl.h - the port object, shared by port.c (queue, waiters, concurrency) and
 * port_io.c (device list, operations in flight, the reaper). */
#ifndef WEFT_PORT_IMPL_H
#define WEFT_PORT_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/pool.h>

#include "atomic.h"
#include "backend.h"
#include "internal.h"

/* One queued completion packet. */
struct weft__pkt {
	uint32_t bytes;
	uintptr_t key;
	weft_overlapped *ov;
};

/* A small futex mutex (0 free, 1 held, 2 held with sleepers) that never calls the
 * blocking hook: the hook itself takes it, and it is only ever held for a few loads and
 * stores, never across a call that blocks. */
WEFT_INTERNAL void weft__plock_slow(uint32_t *l);
WEFT_INTERNAL void weft__punlock_slow(uint32_t *l);

struct weft_port {
	/* read-mostly */
	uint32_t concurrency;
	uint32_t refs; /* atomic: creator + each thread associated with the port + reaper */
	const struct weft__backend_ops *be;
	void *bes;

	/* The I/O completion queue, waiting threads, released and paused counts: all under
	 * lock. qlen is also read relaxed outside the lock as a hint (see get_more). */
	WEFT_CACHE_ALIGNED uint32_t lock;
	uint32_t closed;
	struct weft__pkt *q;
	uint32_t qcap, qhead, qlen;
	struct weft__waiter *waiters; /* top of the LIFO stack */
	uint32_t nwaiters;
	uint32_t released, paused;

	/* The device list and operations in flight: under iolock (port_io.c). */
	WEFT_CACHE_ALIGNED uint32_t iolock;
	uint32_t io_closed;
	uint32_t inflight; /* futex word: close sleeps until it reaches 0 */
	struct weft__op *ops; /* in-flight list */
	struct weft__device **devs;
	uint32_t ndevs;
	bool reaper_started;
	pthread_t reaper;
};

/* Queues a finished operation's packet (reaper side; bypasses the closed check). */
WEFT_INTERNAL void weft__port_complete(weft_port *p, struct weft__op *op);
WEFT_INTERNAL void weft__port_unref(weft_port *p);
/* The number of threads waiting (tests). */
WEFT_INTERNAL uint32_t weft__port_waiters(weft_port *p);
/* Makes room in the queue for n more packets (an operation's completion must never
 * fail for lack of memory): 0 or -ENOMEM. */
WEFT_INTERNAL int weft__port_reserve(weft_port *p, uint32_t n);
/* port_io.c: closes the I/O side (cancel all, wait, stop the reaper) and frees it. */
WEFT_INTERNAL void weft__port_io_close(weft_port *p);
WEFT_INTERNAL void weft__port_io_free(weft_port *p);

static inline void weft__plock(uint32_t *l)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in weft__punlock. */
	if (!weft__cas_acq(l, &z, 1u))
		weft__plock_slow(l);
}
static inline void weft__punlock(uint32_t *l)
{
	/* release: publishes the critical section to the next weft__plock. */
	if (weft__xchg_rel(l, 0u) == 2)
		weft__punlock_slow(l);
}

#endif
