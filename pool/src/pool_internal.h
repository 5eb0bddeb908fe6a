/* pool_internal.h - what the thread pool's sources share (pool.c, item.c, work.c, timer.c,
 * pool_wait.c, group.c).
 *
 * Work reaches workers two ways. Normally through the pool's own queue (a bounded
 * lock-free ring of (fn, arg) cells, fn NULL meaning "one call of the object arg"), which
 * workers drain before they go back to the port; a submit posts one WAKE packet to the
 * port only when no worker is awake and looking. When the ring is full or closed
 * (destroy), through port packets as before. A packet's key says what it is:
 *   WEFT__TP_KEY_ITEM  ov is a struct weft__tp_item (fn, arg) from the item freelist;
 *   WEFT__TP_KEY_OBJ   ov is a struct weft__tp_obj (work, timer or wait object), cast:
 *                      one call of the object's callback;
 *   WEFT__TP_KEY_EXIT  the worker that takes it exits (weft_pool_destroy);
 *   WEFT__TP_KEY_WAKE  the worker that takes it searches the ring (it holds the pool's
 *                      "searching" slot the poster reserved for it);
 *   anything else      an I/O completion; the key is the I/O object.
 * weft_port_post never touches ov, so an item is posted as a cast pointer and needs no
 * embedded overlapped.
 */
#ifndef WEFT_POOL_INTERNAL_H
#define WEFT_POOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/pool.h>
#include <weft/threadpool.h>
#include <weft/waitable.h>

#include "atomic.h"
#include "internal.h"

enum {
	WEFT__TP_KEY_ITEM = 1,
	WEFT__TP_KEY_OBJ = 2,
	WEFT__TP_KEY_EXIT = 3,
	WEFT__TP_KEY_WAKE = 4,
};

/* ---- the pool's queue, pool.c ---- */
#define WEFT__TP_RING 8192u /* cells; a power of two */
#define WEFT__TP_RING_CLOSED (1ull << 63)
/* One cell of the ring (Vyukov's bounded MPMC queue): seq == position means free for
 * the producer of that position, position + 1 means published for its consumer. fn NULL:
 * arg is a struct weft__tp_obj, one call of it. */
struct weft__tp_cell {
	uint64_t seq;
	void (*fn)(void *arg);
	void *arg;
};
/* idle word: the low 16 bits count workers searching (awake, looking at the ring, not
 * running anything), the high 16 bits workers parked in weft_port_get. */
#define WEFT__TP_SEARCH 1u
#define WEFT__TP_PARKED 0x10000u

/* ---- items (weft_pool_submit), item.c ---- */
struct weft__tp_item {
	struct weft__tp_item *next; /* freelist link; free items only */
	void (*fn)(void *arg);
	void *arg;
	void *batch_next; /* depot: the next batch (first item of a batch only) */
};
/* Never returns NULL unless out of memory. Allocation-free once the calling thread's
 * magazine is warm; any thread may free an item any thread allocated. */
WEFT_INTERNAL struct weft__tp_item *weft__tp_item_alloc(void);
WEFT_INTERNAL void weft__tp_item_free(struct weft__tp_item *it);

/* ---- worker threads, pool.c ---- */
enum weft__tp_wstate {
	WEFT__TP_IDLE = 0,    /* in weft_port_get, or spinning on the ring */
	WEFT__TP_BUSY = 1,    /* running a callback */
	WEFT__TP_BLOCKED = 2, /* running a callback, blocked in a weft primitive */
	WEFT__TP_LONG = 3,    /* running a callback marked may-run-long */
};

struct weft__tp_worker {
	weft_pool *pool;
	pthread_t thread;
	uint32_t index;
	/* state: enum weft__tp_wstate, stored by the owner only (relaxed: the manager's scan
	 * is a heuristic that it repeats; nothing is published through it). */
	uint32_t state;
	/* taken: packets dequeued, completed: packets fully handled. Written by the owner
	 * only (relaxed store of load+1, no RMW); read by the manager and destroy (acquire,
	 * pairs with the release store after the callback ran). */
	uint64_t taken, completed;
	uint32_t block_depth; /* owner only: nesting of the blocking hook */
	bool long_paused;     /* owner only: the port was told this thread paused (may run long) */
	/* The hook the port installed on this thread (chained from ours). Owner only. */
	struct weft__block_tls inner;
	struct weft__tp_worker *next; /* pool->workers or pool->zombies (pool lock) */
};

/* ---- objects: work, timer, wait (one header), work.c ---- */
enum weft__tp_kind { WEFT__TP_WORK = 1, WEFT__TP_TIMER = 2, WEFT__TP_WAITER = 3, WEFT__TP_IO = 4 };

/* The object's one packet is the object itself: posted as (weft_overlapped *)obj, which
 * the port never dereferences, at most once at a time. */
struct weft__tp_obj {
	uint32_t kind;
	/* refs: the user's reference, one for the packet while it is posted, one per call
	 * running. The object is freed when it drops to 0. */
	uint32_t refs;
	/* state: bit0 the packet is posted; bits 1.. calls queued and not started (step 2).
	 * A submit adds 2 and posts the packet if bit0 was clear (setting it in the same
	 * CAS); the worker taking the packet claims one call and keeps bit0 (reposting) while
	 * more are queued, else clears bit0 - one word, so a submit can never post the packet
	 * twice. */
	uint32_t state;
	/* outstanding: calls queued or running (the futex word of wait); waiters: threads in
	 * wait. A finisher dropping outstanding to 0 wakes if waiters != 0. Both sides write
	 * and then read the other's word with sequentially consistent read-modify-writes (the
	 * Interlocked family: ThreadSanitizer models those, not fences), so one of them always
	 * sees the other. */
	int32_t outstanding;
	int32_t waiters;
	uint32_t closed; /* 1 once the user closed it (atomic) */
	weft_pool *pool;
	void (*fn)(void *arg);
	void *arg;
	void (*run)(struct weft__tp_obj *o); /* the kind's call (NULL: fn(arg)) */
	/* wait (or cancel) then close: what a cleanup group does to a member. */
	void (*member_close)(struct weft__tp_obj *o, bool cancel_pending);
	struct weft_cleanup_group *group;    /* group lock */
	struct weft__tp_obj *gnext, *gprev;
};

WEFT_INTERNAL void weft__tp_obj_init(struct weft__tp_obj *o, weft_pool *p, uint32_t kind, void (*fn)(void *),
				     void *arg);
/* Queues one call; coalesce: only if none is queued. false if coalesced away. */
WEFT_INTERNAL bool weft__tp_obj_submit(struct weft__tp_obj *o, bool coalesce);
/* The worker side of a WEFT__TP_KEY_OBJ packet. */
WEFT_INTERNAL void weft__tp_obj_packet(struct weft__tp_obj *o);
/* n calls finished (or were withdrawn): drops outstanding, waking waiters at 0. */
WEFT_INTERNAL void weft__tp_obj_done(struct weft__tp_obj *o, uint32_t n);
/* Cancels the calls not yet started; returns how many. */
WEFT_INTERNAL uint32_t weft__tp_obj_cancel(struct weft__tp_obj *o);
WEFT_INTERNAL void weft__tp_obj_wait(struct weft__tp_obj *o, bool cancel_pending);
WEFT_INTERNAL void weft__tp_obj_ref(struct weft__tp_obj *o);
/* Drops a reference; frees (through the kind's destructor) at 0. */
WEFT_INTERNAL void weft__tp_obj_unref(struct weft__tp_obj *o);
WEFT_INTERNAL void weft__tp_obj_close(struct weft__tp_obj *o);

/* ---- the pool, pool.c ---- */
struct weft__tp_timer_heap {
	struct weft_pool_timer **a;
	uint32_t n, cap;
};

struct weft_pool {
	/* Read-mostly. */
	weft_port *port;
	uint32_t concurrency;
	char name[12];

	/* The ring: rtail (producers; bit 63 WEFT__TP_RING_CLOSED once destroy began, so
	 * every later push fails and goes the port way), rhead (consumers), the cells. A
	 * push counts in rtail as a port packet counts in submitted. */
	WEFT_CACHE_ALIGNED uint64_t rtail;
	WEFT_CACHE_ALIGNED uint64_t rhead;
	/* idle: WEFT__TP_SEARCH / WEFT__TP_PARKED counts (see above). Read by every submit,
	 * written when workers go idle, park or wake. */
	WEFT_CACHE_ALIGNED uint32_t idle;
	/* Worker side, written on idle/busy transitions: the spin window (ns) an idle
	 * worker searches the ring before it parks, adapted to the recent idle gaps. */
	WEFT_CACHE_ALIGNED uint64_t spin_ns;
	uint64_t spin_off_until; /* no spinning before this time (a searcher was descheduled) */
	uint64_t spin_max_ns;    /* read-only after create */
	struct weft__tp_cell *cells;

	/* submitted: 4 per packet posted (items, object calls, reposts); bit0 closing (no more
	 * weft_pool_submit), bit1 final (threads are told to exit: nothing may be posted).
	 * Submitters add 4 and look at the flags in the same RMW, so a submit either counts
	 * (and destroy waits for it) or sees the flag and backs out. */
	WEFT_CACHE_ALIGNED uint64_t submitted;

	/* blocked: workers in BLOCKED or LONG state (RMW on those transitions only).
	 * threads: live workers (pool lock to change; read without it). */
	WEFT_CACHE_ALIGNED uint32_t blocked;
	uint32_t threads;

	/* The manager thread: timers, injection, retirement joins. mgr_seq is its futex word;
	 * a kick adds 1 and wakes it. */
	WEFT_CACHE_ALIGNED uint32_t mgr_seq;
	uint32_t mgr_kicked; /* 1 while a kick is pending (rate-limits hook kicks) */
	uint32_t mgr_stop;
	/* 1 while the manager sleeps without a deadline (the pool was idle for a while):
	 * the next submit wakes it (one plain load on the hot path otherwise). */
	uint32_t mgr_asleep;
	uint32_t timers_off; /* 1 once the manager saw closing: it fires no more timers */

	pthread_mutex_t lock; /* workers list, zombies, threads, limits, counters below */
	struct weft__tp_worker *workers, *zombies;
	uint32_t min_threads, max_threads, idle_timeout_ms;
	uint32_t next_index;
	uint64_t retired_taken, retired_completed; /* folded counters of gone workers */
	uint64_t starvations, injected, retired;   /* atomics (read by stats without lock) */
	bool starving;                             /* manager only: in a blocked episode */
	bool stalled;                              /* manager only: in a no-progress episode */
	uint64_t last_completed, stall_ns;         /* manager only: since when no progress */
	uint32_t idle_looks;                       /* manager only: looks in a row all idle */
	pthread_t mgr;

	pthread_mutex_t timer_lock;
	struct weft__tp_timer_heap heap;

	pthread_mutex_t group_lock;

	/* Wait objects (pool_wait.c): the armed list and the wait thread, under wait_lock. */
	pthread_mutex_t wait_lock;
	struct weft_pool_waiter *armed;
	uint32_t narmed;
	bool wait_started;
	uint32_t wait_stop; /* atomic */
	weft_handle *wait_ctl; /* auto-reset event: the armed set changed */
	pthread_t wait_thread;
};

WEFT_INTERNAL uint64_t weft__tp_now_ns(void);
/* Queues one call of an object (the ring, or a packet counted in p->submitted). Aborts
 * on a pool already told to exit (a bug in the caller). */
WEFT_INTERNAL void weft__tp_post_obj(weft_pool *p, struct weft__tp_obj *o);
/* Wakes the manager (timers changed, a worker blocked). */
WEFT_INTERNAL void weft__tp_kick(weft_pool *p);
/* The calling thread's worker, or NULL. */
WEFT_INTERNAL struct weft__tp_worker *weft__tp_self(void);
/* Blocks the caller on a futex word as a weft primitive does (the blocking hook runs). */
WEFT_INTERNAL int weft__tp_futex_wait(uint32_t *word, uint32_t val, const struct timespec *deadline);

/* ---- wait objects, pool_wait.c ---- */
struct weft_pool_waiter {
	struct weft__tp_obj obj;
	void (*cb)(void *arg, int result);
	int32_t result; /* atomic: the result the queued call reports */
	/* Under p->wait_lock: */
	weft_handle *h; /* our duplicate while armed, else NULL */
	uint64_t deadline_ns;
	uint32_t gen; /* bumped on every arm and disarm */
	struct weft_pool_waiter *next, *prev;
};
/* Stops the wait thread (destroy, before draining): no wait fires after it returns. */
WEFT_INTERNAL void weft__tp_waits_stop(weft_pool *p);

/* ---- I/O objects, pool_io.c ---- */
struct weft_pool_io {
	struct weft__tp_obj obj; /* outstanding: operations announced and not called back */
	int fd;
	weft_pool_io_fn cb;
};
/* A worker took a completion whose key is io. */
WEFT_INTERNAL void weft__tp_io_completion(weft_pool_io *io, weft_overlapped *ov, uint32_t bytes);

/* ---- timers, timer.c ---- */
struct weft_pool_timer {
	struct weft__tp_obj obj;
	/* Under p->timer_lock: */
	uint64_t due_ns, latest_ns; /* next due time; latest allowed firing (due + window) */
	uint64_t period_ns, window_ns;
	uint32_t heap_idx; /* UINT32_MAX when not armed */
	uint64_t fired;    /* atomic: expirations that queued (or merged into) a call */
};
/* Fires every due timer; returns the next wake-up (latest_ns of the heap top), or
 * UINT64_MAX. Manager only. */
/* pool.c, for the manager: */
/* Wakes one parked worker if nobody searches (a WAKE packet). */
WEFT_INTERNAL void weft__tp_try_wake(weft_pool *p);
/* Creates one worker; pool lock held. false at max_threads, when final, or on failure. */
WEFT_INTERNAL bool weft__tp_spawn_locked(weft_pool *p);
/* One line on stderr when WEFT_POOL_LOG is set. */
WEFT_INTERNAL void weft__tp_log_starvation(weft_pool *p, const char *why);

/* pool_manager.c: */
/* What the workers are doing, summed under the pool lock. */
struct weft__tp_scan {
	uint32_t idle, busy, blocked;
	uint64_t taken, completed;
};
/* Calls counted so far: ring pushes and port packets. */
WEFT_INTERNAL uint64_t weft__tp_submitted_count(weft_pool *p);
WEFT_INTERNAL void weft__tp_scan_locked(weft_pool *p, struct weft__tp_scan *s);
/* The manager thread's body (started by weft_pool_create). */
WEFT_INTERNAL void *weft__tp_manager_main(void *v);

WEFT_INTERNAL uint64_t weft__tp_timers_run(weft_pool *p, uint64_t now, bool fire);
WEFT_INTERNAL void weft__tp_timers_fini(weft_pool *p);

#endif
