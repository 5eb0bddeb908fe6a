/* wait_many.c - weft_wait, weft_wait_many and their alertable forms.
 *
 * Wait-any: first an unlocked scan for the lowest object that looks signaled (any_fast);
 * if that guess holds under its lock, it is taken with nothing linked. Otherwise one
 * pass over the objects in index order, each under its own lock: if the
 * object can be acquired and our state is still 0, we claim ourselves (CAS 0 -> i + 1)
 * and consume it; otherwise we link a wait block and go on. A signaller that finds our
 * block later claims us the same way and consumes on our behalf. The pass stops as soon
 * as the state is non-zero, so at most one object is ever consumed, and the lowest index
 * that was signaled when we reached it wins. Then we sleep on the state word until it
 * holds a result (published by the claimer after its unlock), an APC alert or our own
 * timeout cancel, and unlink every block still linked, each under its object's lock.
 * See docs/waitable.md for the whole protocol.
 *
 * Wait-all: lock every object in address order, check all; if all can be acquired,
 * consume all and return with nothing ever having been taken partially. Otherwise link a
 * block on each (still holding all locks, so no signal is missed), reset a poke, unlock
 * and sleep until a signaller pokes us, then check again.
 */
#include <stdlib.h>

#include "apc.h"
#include "handle.h"

/* Wait blocks for up to 64 objects (Windows' whole range) live on the stack. */
#define WEFT__STACK_BLOCKS 64

/* Alert wakers, called by weft_thread_queue_apc with the target's APC lock held. */
static void wake_any(void *ctx)
{
	struct weft__waiter *w = ctx;
	uint32_t z = 0;
	/* release: pairs with the waiter's acquire load; only a waiting waiter is alerted. */
	if (weft__cas_rel(&w->state, &z, WEFT__W_ALERT))
		weft__futex_wake(&w->state, 1);
}

static void wake_all(void *ctx)
{
	struct weft__waiter *w = ctx;
	/* release: overrides a poke too; the wait-all waiter returns without consuming. */
	weft__xchg_rel(&w->state, WEFT__W_ALERT);
	weft__futex_wake(&w->state, 1);
}

/* Spin budget before sleeping: ~6 us of PAUSE on the EPYC dev machine. A signaller on
 * another CPU (a mutex hand-off, an event ping-pong) usually comes well within it, and
 * the waiter then skips the futex sleep and the 10-25 us wake-up; an idle waiter burns at
 * most this much CPU per wait. */
#define SLEEP_SPIN 256

/* Sleeps until *state != seen or the deadline; returns the state (0 on timeout). */
static uint32_t sleep_on(struct weft__waiter *w, uint32_t seen, const struct timespec *deadline)
{
	if (weft__smp()) {
		for (uint32_t i = 0; i < SLEEP_SPIN; i++) {
			/* acquire: pairs with the release CAS of the signaller or waker. */
			uint32_t st = weft__load_acq(&w->state);
			if (st != seen)
				return st;
			weft_cpu_relax();
		}
	}
	weft__block_begin();
	int r = weft__futex_wait(&w->state, seen, deadline);
	weft__block_end();
	(void)r;
	/* acquire: pairs with the release CAS of the signaller or waker. */
	return weft__load_acq(&w->state);
}

/* Wait-any fast path: the lowest index that looks signaled is acquired under its own
 * lock, with nothing linked (so nobody else can touch the waiter yet). Returns the wait
 * result, or -1 when nothing looked signaled or the guess was stale (the full pass then
 * decides). Saves 2n lock round trips when something is ready. */
static int any_fast(struct weft_handle *const *hs, uint32_t n, struct weft_handle *self)
{
	for (uint32_t i = 0; i < n; i++) {
		struct weft_handle *h = hs[i];
		if (!weft__signaled_hint(h, self))
			continue;
		weft__obj_lock(h);
		if (weft__signaled(h, self)) {
			bool ab = weft__consume(h, self);
			weft__obj_unlock(h);
			return (int)((ab ? (uint32_t)WEFT_WAIT_ABANDONED_0 : 0u) + i);
		}
		weft__obj_unlock(h);
		return -1;
	}
	return -1;
}

/* The whole wait-any (see the top of the file); one function because the pass, the
 * sleep and the unlink share the linked count and the state protocol. */
static int wait_any(struct weft_handle *const *hs, uint32_t n, struct weft__wait_block *wbs,
		    struct weft__waiter *w, const struct timespec *deadline, bool alertable)
{
	int fast = any_fast(hs, n, w->self);
	if (fast >= 0)
		return fast;

	uint32_t linked = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct weft_handle *h = hs[i];
		weft__obj_lock(h);
		/* relaxed: a signaller's CAS on our state happens under the lock of an object
		 * we already linked; whichever value we read, the CAS below decides. */
		if (weft__load_rlx(&w->state) != 0) {
			weft__obj_unlock(h);
			break;
		}
		if (weft__signaled(h, w->self)) {
			uint32_t z = 0;
			bool ab = h->kind == WEFT__K_MUTEX && h->u.mtx.abandoned;
			uint32_t res = (ab ? (uint32_t)WEFT_WAIT_ABANDONED_0 : 0u) + i;
			if (weft__cas_acqrel(&w->state, &z, res + 1))
				weft__consume(h, w->self);
			weft__obj_unlock(h);
			break;
		}
		wbs[i].w = w;
		wbs[i].obj = h;
		wbs[i].index = i;
		/* Our own reference while linked: another thread may close its handle while
		 * we sleep. Taken under the lock, from the caller's still-valid reference. */
		weft__ref(h);
		weft__wb_link(h, &wbs[i]);
		linked = i + 1;
		weft__obj_unlock(h);
	}

	/* acquire: pairs with the claimer's release exchange in weft__wake_claimed (or our
	 * own CAS above). A claim may still be in flight (WEFT__W_CLAIMED): wait it out. */
	uint32_t st = weft__load_acq(&w->state);
	bool armed = st == 0 && alertable;
	if (armed && weft__apc_arm(wake_any, w))
		wake_any(w);
	while ((st = weft__load_acq(&w->state)) == 0 || st == WEFT__W_CLAIMED) {
		if (st == WEFT__W_CLAIMED) {
			/* the claimer publishes the result right after its unlock */
			sleep_on(w, WEFT__W_CLAIMED, NULL);
			continue;
		}
		if (deadline && weft__deadline_passed(deadline)) {
			uint32_t z = 0;
			/* acq_rel: on failure we acquire the claim that beat us; loop for it */
			if (weft__cas_acqrel(&w->state, &z, WEFT__W_CANCEL)) {
				st = WEFT__W_CANCEL;
				break;
			}
			continue;
		}
		sleep_on(w, 0, deadline);
	}
	if (armed)
		weft__apc_disarm();
	/* Unlink what is still linked, each under its object's lock; after this no
	 * signaller can still be touching w. Reading `linked` unlocked is safe: only we and
	 * the one signaller that claimed us write it, and that signaller's write is ordered
	 * before the result we acquired above. */
	for (uint32_t i = 0; i < linked; i++) {
		if (!wbs[i].linked)
			continue;
		weft__obj_lock(wbs[i].obj);
		weft__wb_unlink(wbs[i].obj, &wbs[i]);
		weft__obj_unlock(wbs[i].obj);
	}
	for (uint32_t i = 0; i < linked; i++)
		weft__unref(wbs[i].obj);
	if (st == WEFT__W_CANCEL)
		return WEFT_WAIT_TIMEOUT;
	if (st == WEFT__W_ALERT) {
		weft__apc_run();
		return WEFT_WAIT_IO_COMPLETION;
	}
	return (int)(st - 1);
}

static int cmp_addr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)(*(struct weft__wait_block *const *)a)->obj;
	uintptr_t y = (uintptr_t)(*(struct weft__wait_block *const *)b)->obj;
	return x < y ? -1 : x > y;
}

static void lock_all(struct weft__wait_block **ord, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		weft__obj_lock(ord[i]->obj);
}

static void unlock_all(struct weft__wait_block **ord, uint32_t n)
{
	for (uint32_t i = n; i-- > 0;)
		weft__obj_unlock(ord[i]->obj);
}

/* With all locked: consume every object if all can be acquired. Returns the wait result,
 * or -1 when not all are signaled. */
static int try_all(struct weft__wait_block *wbs, uint32_t n, struct weft_handle *self)
{
	for (uint32_t i = 0; i < n; i++)
		if (!weft__signaled(wbs[i].obj, self))
			return -1;
	int res = WEFT_WAIT_OBJECT_0;
	for (uint32_t i = n; i-- > 0;)
		if (weft__consume(wbs[i].obj, self))
			res = WEFT_WAIT_ABANDONED_0 + (int)i;
	return res;
}

static int wait_all(struct weft__wait_block *wbs, struct weft__wait_block **ord, uint32_t n,
		    struct weft__waiter *w, const struct timespec *deadline, bool alertable)
{
	qsort(ord, n, sizeof *ord, cmp_addr);
	for (uint32_t i = 1; i < n; i++)
		if (ord[i]->obj == ord[i - 1]->obj)
			return -EINVAL; /* the same object twice (ERROR_INVALID_PARAMETER) */
	if (alertable && weft__apc_arm(wake_all, w))
		wake_all(w);
	bool linked = false;
	int res;
	for (;;) {
		lock_all(ord, n);
		/* Objects first (as wait-any): if all can be acquired, pending APCs wait. */
		res = try_all(wbs, n, w->self);
		if (res >= 0)
			break;
		/* acquire: pairs with the waker's release. */
		if (weft__load_acq(&w->state) == WEFT__W_ALERT) {
			res = WEFT_WAIT_IO_COMPLETION;
			break;
		}
		if (deadline && weft__deadline_passed(deadline)) {
			res = WEFT_WAIT_TIMEOUT;
			break;
		}
		if (!linked) {
			/* our own references while linked, as in wait_any */
			for (uint32_t i = 0; i < n; i++) {
				weft__ref(wbs[i].obj);
				weft__wb_link(wbs[i].obj, &wbs[i]);
			}
			linked = true;
		}
		/* Under all locks no signaller can poke us now, so a poke seen later is new. */
		uint32_t p = WEFT__W_POKE;
		weft__cas_rlx(&w->state, &p, 0);
		unlock_all(ord, n);
		sleep_on(w, 0, deadline);
	}
	if (linked)
		for (uint32_t i = 0; i < n; i++)
			weft__wb_unlink(wbs[i].obj, &wbs[i]);
	unlock_all(ord, n);
	if (linked)
		for (uint32_t i = 0; i < n; i++)
			weft__unref(wbs[i].obj);
	if (alertable)
		weft__apc_disarm();
	if (res == WEFT_WAIT_IO_COMPLETION)
		weft__apc_run();
	return res;
}

int weft_wait_many_ex(weft_handle *const *hs, size_t n, bool wait_all_, uint32_t timeout_ms, bool alertable)
{
	struct timespec ts;
	const struct timespec *deadline = weft__deadline(&ts, timeout_ms);
	if (!hs || n == 0 || n > WEFT_WAIT_MAX_OBJECTS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!weft__handle_ok(hs[i], WEFT__K_ANY))
			return -EINVAL;
	struct weft_handle *self = weft__self();
	if (!self)
		return -ENOMEM;

	struct weft__wait_block sbuf[WEFT__STACK_BLOCKS], *wbs = sbuf;
	struct weft__wait_block *sord[WEFT__STACK_BLOCKS], **ord = sord;
	if (n > WEFT__STACK_BLOCKS) {
		wbs = malloc(n * sizeof *wbs);
		ord = wait_all_ ? malloc(n * sizeof *ord) : NULL;
		if (!wbs || (wait_all_ && !ord)) {
			free(wbs);
			free(ord);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		wbs[i].w = NULL;
		wbs[i].obj = hs[i];
		wbs[i].index = (uint32_t)i;
		wbs[i].linked = false;
	}
	struct weft__waiter w = { .state = 0, .wait_all = wait_all_ && n > 1, .self = self };
	int res;
	if (w.wait_all) {
		for (size_t i = 0; i < n; i++) {
			wbs[i].w = &w;
			ord[i] = &wbs[i];
		}
		res = wait_all(wbs, ord, (uint32_t)n, &w, deadline, alertable);
	} else {
		res = wait_any(hs, (uint32_t)n, wbs, &w, deadline, alertable);
	}
	if (wbs != sbuf) {
		free(wbs);
		if (ord != sord)
			free(ord);
	}
	return res;
}

int weft_wait_many(weft_handle *const *hs, size_t n, bool wait_all_, uint32_t timeout_ms)
{
	return weft_wait_many_ex(hs, n, wait_all_, timeout_ms, false);
}

int weft_wait_ex(weft_handle *h, uint32_t timeout_ms, bool alertable)
{
	return weft_wait_many_ex(&h, 1, false, timeout_ms, alertable);
}

int weft_wait(weft_handle *h, uint32_t timeout_ms)
{
	return weft_wait_many_ex(&h, 1, false, timeout_ms, false);
}
