/* apc.c - user APCs (QueueUserAPC) and alertable sleeps (SleepEx).
 *
 * Each thread object holds a FIFO of APCs under a small futex lock, plus at most one
 * armed alertable wait: a wake callback and its context. The queuer appends and, still
 * under the lock, calls the armed wake; the waiter arms under the same lock and learns
 * whether APCs are already pending. So either the queuer sees the armed wait or the
 * waiter sees the APC: no lost wake-up. Disarming takes the lock too, so once
 * weft__apc_disarm returns no queuer can still be calling wake with the waiter's
 * (stack-allocated) context.
 */
#include <limits.h>
#include <sched.h>
#include <stdlib.h>

#include "apc.h"
#include "handle.h"

struct weft__apc {
	struct weft__apc *next;
	void (*fn)(uintptr_t);
	uintptr_t arg;
};

static void apc_lock(struct weft__thread_obj *th)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in apc_unlock. */
	if (weft__cas_acq(&th->apc_lock, &z, 1))
		return;
	while (weft__xchg_acq(&th->apc_lock, 2) != 0) {
		weft__block_begin();
		weft__futex_wait(&th->apc_lock, 2, NULL);
		weft__block_end();
	}
}

static void apc_unlock(struct weft__thread_obj *th)
{
	/* release: publishes the queue changes to the next holder. */
	if (weft__xchg_rel(&th->apc_lock, 0) == 2)
		weft__futex_wake(&th->apc_lock, 1);
}

int weft__apc_queue(struct weft_handle *t, void (*fn)(uintptr_t), uintptr_t arg)
{
	struct weft__thread_obj *th = &t->u.th;
	struct weft__apc *a = malloc(sizeof *a);
	if (!a)
		return -ENOMEM;
	a->next = NULL;
	a->fn = fn;
	a->arg = arg;
	apc_lock(th);
	if (th->apc_closed) {
		apc_unlock(th);
		free(a);
		return -ESRCH;
	}
	if (th->apc_tail)
		th->apc_tail->next = a;
	else
		th->apc_head = a;
	th->apc_tail = a;
	if (th->apc_wake)
		th->apc_wake(th->apc_wake_ctx);
	apc_unlock(th);
	return 0;
}

int weft_thread_queue_apc(weft_handle *h, void (*fn)(uintptr_t), uintptr_t arg)
{
	if (!weft__handle_ok(h, WEFT__K_THREAD) || !fn)
		return -EINVAL;
	return weft__apc_queue(h, fn, arg);
}

int weft__apc_run(void)
{
	struct weft_handle *t = weft__self();
	if (!t)
		return 0;
	struct weft__thread_obj *th = &t->u.th;
	int n = 0;
	/* Take the whole list at a time and run it in order; APCs queued meanwhile (also by
	 * the APCs themselves) run in the next round, still in FIFO order. */
	for (;;) {
		apc_lock(th);
		struct weft__apc *a = th->apc_head;
		th->apc_head = th->apc_tail = NULL;
		apc_unlock(th);
		if (!a)
			return n;
		while (a) {
			struct weft__apc *next = a->next;
			a->fn(a->arg);
			free(a);
			n++;
			a = next;
		}
	}
}

bool weft__apc_arm(void (*wake)(void *ctx), void *ctx)
{
	struct weft_handle *t = weft__self();
	if (!t)
		return false; /* no block, so no handle either: nobody can queue to us */
	struct weft__thread_obj *th = &t->u.th;
	apc_lock(th);
	th->apc_wake = wake;
	th->apc_wake_ctx = ctx;
	bool pending = th->apc_head != NULL;
	apc_unlock(th);
	return pending;
}

void weft__apc_disarm(void)
{
	struct weft_handle *t = weft__self();
	if (!t)
		return;
	struct weft__thread_obj *th = &t->u.th;
	apc_lock(th);
	th->apc_wake = NULL;
	th->apc_wake_ctx = NULL;
	apc_unlock(th);
}

void weft__apc_close(struct weft_handle *t)
{
	struct weft__thread_obj *th = &t->u.th;
	apc_lock(th);
	th->apc_closed = true;
	struct weft__apc *a = th->apc_head;
	th->apc_head = th->apc_tail = NULL;
	apc_unlock(th);
	while (a) {
		struct weft__apc *next = a->next;
		free(a);
		a = next;
	}
}

static void wake_word(void *ctx)
{
	uint32_t *word = ctx;
	/* release: pairs with the sleeper's acquire load. */
	weft__store_rel(word, 1);
	weft__futex_wake(word, 1);
}

int weft_sleep_ex(uint32_t ms, bool alertable)
{
	struct timespec ts;
	const struct timespec *deadline = weft__deadline(&ts, ms);
	uint32_t word = 0;
	if (alertable) {
		if (!weft__self())
			return -ENOMEM;
		if (weft__apc_arm(wake_word, &word))
			weft__store_rlx(&word, 1);
	} else if (ms == 0) {
		sched_yield(); /* Sleep(0): give up the rest of the time slice */
		return 0;
	}
	/* acquire: pairs with the release store in wake_word. */
	while (weft__load_acq(&word) == 0) {
		if (deadline && weft__deadline_passed(deadline))
			break;
		weft__block_begin();
		weft__futex_wait(&word, 0, deadline);
		weft__block_end();
	}
	if (!alertable)
		return 0;
	weft__apc_disarm();
	return weft__apc_run() > 0 ? WEFT_WAIT_IO_COMPLETION : 0;
}
