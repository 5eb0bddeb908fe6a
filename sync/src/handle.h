/* handle.h - the waitable object header shared by every kind (event, semaphore, mutex,
 * timer, thread, process), its reference count, its lock and its waiter list.
 *
 * Model (the NT dispatcher, with a lock per object instead of one global lock):
 *  - every object has a small futex lock guarding its signal state and its waiter list;
 *  - a waiting thread puts one wait block per object on the objects' lists, all pointing
 *    at one waiter record on its stack whose 32-bit state word is also its futex word;
 *  - a signaller, holding the object lock, walks the list in FIFO order. A wait-any
 *    waiter is satisfied on the spot: the signaller claims it with one CAS of its state
 *    (0 -> WEFT__W_CLAIMED), consumes the object on its behalf and unlinks its block, so
 *    the object is handed over, never stolen and never lost. Only after dropping the
 *    object lock does it publish the result (CLAIMED -> result + 1) and wake the waiter,
 *    which therefore never finds the lock still held by its waker, and need not take it
 *    at all when this was its only object. A wait-all waiter is only poked (state
 *    0 -> 1) and re-checks all its objects itself while holding all their locks, in
 *    address order, so it consumes either every object or none.
 */
#ifndef WEFT_HANDLE_H
#define WEFT_HANDLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define WEFT__MAGIC_LIVE 0x74666577u /* "weft" */
#define WEFT__MAGIC_DEAD 0x64616564u /* "dead" */

enum weft__kind {
	WEFT__K_ANY = 0,
	WEFT__K_EVENT,
	WEFT__K_SEMA,
	WEFT__K_MUTEX,
	WEFT__K_TIMER,
	WEFT__K_THREAD,
	WEFT__K_PROCESS,
};

/* Waiter state word (futex). Wait-any: 0 waiting; WEFT__W_CLAIMED: a signaller won it
 * and will publish the result soon; r + 1 satisfied with wait result r (by the waiter
 * itself in one step, or by the claiming signaller); WEFT__W_CANCEL: the waiter gave up
 * (timeout); WEFT__W_ALERT: an APC arrived. Only one party ever moves the word off 0.
 * Wait-all: 0 waiting; 1 poked (re-check); WEFT__W_ALERT. */
#define WEFT__W_POKE 1u
#define WEFT__W_CLAIMED 0xfffffffdu
#define WEFT__W_ALERT 0xfffffffeu
#define WEFT__W_CANCEL 0xffffffffu

struct weft__waiter {
	uint32_t state;
	bool wait_all;
	struct weft_handle *self; /* the waiting thread's object: mutexes are handed to it */
};

struct weft__wait_block {
	struct weft__wait_block *next, *prev;
	struct weft__waiter *w;
	struct weft_handle *obj;
	uint32_t index;
	uint32_t result; /* set by a claiming signaller */
	bool linked;
};

struct weft__apc;

/* Thread objects. Lifetime: one reference is the creator's, one the thread's own (held by
 * its per-thread block and dropped last when the thread ends). */
struct weft__thread_obj {
	pthread_t pt;
	uint32_t tid;       /* futex word: 0 until the thread published its id */
	uint32_t suspend;   /* futex word: suspend count; the start routine waits for 0 */
	uint32_t done;      /* 1 once ended (acquire: exit_code is valid) */
	uint32_t exit_code; /* WEFT_STILL_ACTIVE until done */
	weft_thread_fn fn;
	void *arg;
	char name[16];
	/* APC queue, guarded by apc_lock (a spin lock: held only for a few stores). */
	uint32_t apc_lock;
	bool apc_closed; /* the thread ended: no more APCs accepted */
	struct weft__apc *apc_head, *apc_tail;
	uint32_t apc_count;            /* atomic: queued and not yet run */
	void (*apc_wake)(void *ctx);   /* armed alertable wait, or NULL */
	void *apc_wake_ctx;
	/* Mutexes owned by this thread (for abandonment). Touched only by the thread itself
	 * or by a signaller consuming a mutex on its behalf during its wait; the two exclude
	 * each other through the waiter state CAS and the mutex lock. */
	struct weft_handle *owned;
};

struct weft_handle {
	uint32_t magic; /* atomic (relaxed): WEFT__MAGIC_LIVE while alive */
	uint32_t kind;
	uint32_t refs;  /* atomic */
	uint32_t lock;  /* 0 free, 1 held, 2 held with sleepers */
	struct weft__wait_block *head, *tail;
	union {
		struct {
			bool manual;
			bool signaled;
		} ev;
		struct {
			int32_t count, max;
		} sem;
		struct {
			struct weft_handle *owner; /* thread object, or NULL */
			uint32_t recursion;
			bool abandoned;
			struct weft_handle *next, *prev; /* in owner->u.th.owned */
		} mtx;
		struct {
			bool manual;
			bool signaled;
			int fd;        /* timerfd */
			uint64_t watch; /* service watch id */
			void (*apc)(uintptr_t);
			uintptr_t apc_arg;
			struct weft_handle *apc_thread; /* reference, or NULL */
		} tmr;
		struct weft__thread_obj th;
		struct {
			int pidfd;
			pid_t pid;
			uint32_t done;      /* atomic */
			uint32_t exit_code; /* atomic */
			uint64_t watch;
		} proc;
		struct weft_handle *dead_next; /* dead: the quarantine link (handle.c) */
	} u;
};

/* ---- lifetime ---- */
WEFT_INTERNAL struct weft_handle *weft__handle_alloc(enum weft__kind kind);
/* True when h looks like a live handle of that kind (WEFT__K_ANY: any kind). */
static inline bool weft__handle_ok(const struct weft_handle *h, enum weft__kind kind)
{
	/* relaxed: a cheap sanity check for obviously bad pointers and double closes; a
	 * racing close is the caller's bug. */
	return h && weft__load_rlx(&h->magic) == WEFT__MAGIC_LIVE && (kind == WEFT__K_ANY || h->kind == (uint32_t)kind);
}
static inline void weft__ref(struct weft_handle *h)
{
	/* relaxed: the caller already holds a reference, which keeps h alive. */
	weft__fadd_rlx(&h->refs, 1);
}
WEFT_INTERNAL void weft__unref(struct weft_handle *h);

/* ---- the object lock ---- */
WEFT_INTERNAL void weft__obj_lock_slow(struct weft_handle *h);
static inline void weft__obj_lock(struct weft_handle *h)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in weft__obj_unlock. */
	if (!weft__cas_acq(&h->lock, &z, 1))
		weft__obj_lock_slow(h);
}
static inline void weft__obj_unlock(struct weft_handle *h)
{
	/* release: publishes the state changed under the lock to the next holder. */
	if (weft__xchg_rel(&h->lock, 0) == 2)
		weft__futex_wake(&h->lock, 1);
}

/* ---- signal state, all with the object locked ---- */
/* Could `self` (a thread object, may be NULL for kinds other than mutex) acquire h now? */
WEFT_INTERNAL bool weft__signaled(const struct weft_handle *h, const struct weft_handle *self);
/* Unlocked, possibly stale guess at weft__signaled (relaxed loads; every writer stores
 * the signal state with relaxed atomics under the lock). Only ever a hint: the caller
 * re-checks under the lock. */
static inline bool weft__signaled_hint(const struct weft_handle *h, const struct weft_handle *self)
{
	switch (h->kind) {
	case WEFT__K_EVENT:
		return weft__load_rlx(&h->u.ev.signaled);
	case WEFT__K_SEMA:
		return weft__load_rlx(&h->u.sem.count) > 0;
	case WEFT__K_MUTEX: {
		const struct weft_handle *o = weft__load_rlx(&h->u.mtx.owner);
		return o == NULL || o == self;
	}
	case WEFT__K_TIMER:
		return weft__load_rlx(&h->u.tmr.signaled);
	case WEFT__K_THREAD:
		return weft__load_rlx(&h->u.th.done) != 0;
	case WEFT__K_PROCESS:
		return weft__load_rlx(&h->u.proc.done) != 0;
	default:
		return false;
	}
}
/* Acquires h for `self` (auto-reset, count, ownership). Returns true when h was an
 * abandoned mutex (the result is then WEFT_WAIT_ABANDONED_0 + i). */
WEFT_INTERNAL bool weft__consume(struct weft_handle *h, struct weft_handle *self);
/* Hands h to its waiters after it became signaled. Returns the chain of wait-any
 * waiters it claimed (linked through wb->next); pass it to weft__wake_claimed after
 * unlocking h. */
WEFT_INTERNAL struct weft__wait_block *weft__satisfy(struct weft_handle *h);
/* Publishes the results of claimed waiters and wakes them. Call without object locks. */
WEFT_INTERNAL void weft__wake_claimed(struct weft__wait_block *chain);
static inline void weft__obj_unlock_wake(struct weft_handle *h, struct weft__wait_block *chain)
{
	weft__obj_unlock(h);
	if (chain)
		weft__wake_claimed(chain);
}
WEFT_INTERNAL void weft__wb_link(struct weft_handle *h, struct weft__wait_block *wb);
WEFT_INTERNAL void weft__wb_unlink(struct weft_handle *h, struct weft__wait_block *wb);

/* ---- kinds ---- */
WEFT_INTERNAL void weft__mutex_own(struct weft_handle *m, struct weft_handle *self);
/* Abandons every mutex the ending thread `self` owns. */
WEFT_INTERNAL void weft__mutex_abandon_all(struct weft_handle *self);
WEFT_INTERNAL void weft__timer_destroy(struct weft_handle *h);
WEFT_INTERNAL void weft__process_destroy(struct weft_handle *h);
WEFT_INTERNAL void weft__thread_destroy(struct weft_handle *h);

/* The calling thread's object (created lazily for threads weft did not create); a
 * borrowed pointer valid until the thread ends. NULL only when out of memory. */
WEFT_INTERNAL struct weft_handle *weft__self(void);
/* How many per-thread blocks exist now (tests prove they are all freed). */
WEFT_INTERNAL uint32_t weft__thread_blocks_live(void);

/* ---- the service thread (service.c): epoll over timerfds and pidfds ---- */
/* Calls cb(ctx) on the service thread whenever fd is readable, until cb returns false
 * or weft__service_unwatch. Returns a watch id (> 0) or a negative errno. */
WEFT_INTERNAL int64_t weft__service_watch(int fd, bool (*cb)(void *ctx), void *ctx);
/* Removes the watch; on return cb is not running and will not run again. */
WEFT_INTERNAL void weft__service_unwatch(uint64_t id, int fd);

#endif
