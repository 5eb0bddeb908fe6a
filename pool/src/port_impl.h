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

/* One slot of the lock-free ring (port.c): seq says whose turn it is (a producer of
 * position pos waits for seq == pos, a consumer of pos for seq == pos + 1). */
struct weft__slot {
	uint32_t seq; /* atomic */
	uint32_t bytes;
	uintptr_t key;
	weft_overlapped *ov;
	uint64_t pad; /* 32 bytes: two slots per cache line */
};

struct weft_port {
	/* read-mostly */
	uint32_t concurrency;
	const struct weft__backend_ops *be;
	struct weft__slot *ring; /* WEFT__RING_CAP slots */

	/* Producers: low 32 bits the next ring position to fill, bit 32 set once the port
	 * is closed (a post claims a position only while it is clear). */
	WEFT_CACHE_ALIGNED uint64_t enq;
	/* Consumers: low 32 bits the next ring position to take, high 32 bits the released
	 * count, so a take checks the concurrency limit and moves the position in one CAS.
	 * released changes only under the lock (or with a take, by CAS). */
	WEFT_CACHE_ALIGNED uint64_t deq;
	/* Read by every post, written under the lock: wake != 0 when a packet posted now
	 * may have to go to a waiter (a thread waits and released < concurrency); ovf: the
	 * overflow queue's length (posts go there, behind it, while it is not empty). */
	WEFT_CACHE_ALIGNED uint32_t wake;
	uint32_t ovf;

	/* The overflow completion queue, waiting threads, paused count: all under lock. */
	WEFT_CACHE_ALIGNED uint32_t lock;
	uint32_t closed; /* atomic: set once under the lock */
	uint32_t refs;	 /* atomic: creator + each thread associated with the port + reaper */
	struct weft__pkt *q;
	uint32_t qcap, qhead, qlen;
	struct weft__waiter *waiters; /* top of the LIFO stack */
	uint32_t nwaiters;
	uint32_t paused;
	uint32_t reserved; /* atomic: overflow slots promised to operations in flight */

	/* The device list and operations in flight: under iolock (port_io.c). */
	WEFT_CACHE_ALIGNED uint32_t iolock;
	uint32_t io_closed;
	uint32_t inflight;    /* futex word: close sleeps until it reaches 0 */
	struct weft__op *ops; /* in-flight list */
	/* The device list by fd: replaced (never changed in place beyond its free slots)
	 * when it grows; the fast path reads it without the io lock, so the old tables stay
	 * until the port is freed (chained through their "old" link). */
	struct weft__devtab *devtab;
	uint32_t io_started; /* backend state and reaper exist (io lock; atomic for hints) */
	void *bes;	     /* the backend's state */
	pthread_t reaper;
	/* Solo mode (weft__port_solo): the function the reaper runs as the port's one user
	 * thread, and its state (futex word: SOLO_* in port_io.c). */
	void (*solo_fn)(void *);
	void *solo_arg;
	uint32_t solo_state;
};

/* The lock-free ring's size (port.c): power of two. */
#define WEFT__RING_CAP 2048u

/* Queues a finished operation's packet into the ring or a slot reserved by
 * weft__port_reserve (bypasses the closed check). */
WEFT_INTERNAL void weft__port_complete(weft_port *p, struct weft__op *op);
/* Reserves one queue slot for an operation about to be submitted: 0 or -ENOMEM. */
WEFT_INTERNAL int weft__port_reserve(weft_port *p);
WEFT_INTERNAL void weft__port_unref(weft_port *p);
/* The calling thread leaves the port it last waited on, as if it exited. */
WEFT_INTERNAL void weft__port_leave_thread(void);
/* The number of threads waiting (tests). */
WEFT_INTERNAL uint32_t weft__port_waiters(weft_port *p);

/* port_io.c: closes the I/O side (cancel all, wait, stop the reaper) and frees it. */
WEFT_INTERNAL void weft__port_io_close(weft_port *p);
WEFT_INTERNAL void weft__port_io_free(weft_port *p);
/* A spinning waiter's look at the backend: reaps what is ready, if the io lock is free. */
WEFT_INTERNAL void weft__port_io_poll(weft_port *p);
/* Solo mode: the fd that wakes this thread's sleep on p when it is p's solo thread (the
 * reaper running the solo function), else -1; and that sleep (backend ops->sleep). */
WEFT_INTERNAL int weft__port_io_solo_fd(weft_port *p);
WEFT_INTERNAL int weft__port_io_solo_sleep(weft_port *p, const uint32_t *word, uint32_t sleeping,
					   const struct timespec *dl);

#endif
