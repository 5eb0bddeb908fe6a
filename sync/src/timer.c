/* timer.c - waitable timers (CreateWaitableTimer, SetWaitableTimer, CancelWaitableTimer).
 *
 * Each timer owns a CLOCK_MONOTONIC timerfd watched by the service thread (service.c),
 * which signals the object and queues the completion APC on each expiry; periodic
 * timers use the timerfd's own interval. The service callback reads the timerfd under
 * the object lock, and set/cancel re-arm and drain it under the same lock, so an expiry
 * from before a set or cancel is never reported after it.
 */
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "apc.h"
#include "handle.h"

/* With h locked: discard expirations already counted by the timerfd. */
static void drain(struct weft_handle *h)
{
	uint64_t ticks;
	while (read(h->u.tmr.fd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
		;
}

/* Service thread: the timerfd is readable. */
static bool timer_fired(void *ctx)
{
	struct weft_handle *h = ctx;
	uint64_t ticks;
	struct weft_handle *thr = NULL;
	void (*fn)(uintptr_t) = NULL;
	uintptr_t arg = 0;
	struct weft__wait_block *chain = NULL;
	weft__obj_lock(h);
	if (read(h->u.tmr.fd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks) {
		weft__store_rlx(&h->u.tmr.signaled, true);
		chain = weft__satisfy(h);
		if (h->u.tmr.apc && h->u.tmr.apc_thread) {
			fn = h->u.tmr.apc;
			arg = h->u.tmr.apc_arg;
			thr = h->u.tmr.apc_thread;
			weft__ref(thr);
		}
	}
	weft__obj_unlock_wake(h, chain);
	if (thr) {
		/* One APC per expiry seen (Windows queues at most one at a time, too). A thread
		 * that ended just refuses it (-ESRCH). */
		(void)weft__apc_queue(thr, fn, arg);
		weft__unref(thr);
	}
	return true;
}

weft_handle *weft_timer_create(bool manual_reset)
{
	struct weft_handle *h = weft__handle_alloc(WEFT__K_TIMER);
	if (!h)
		return NULL;
	h->u.tmr.manual = manual_reset;
	h->u.tmr.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->u.tmr.fd < 0) {
		free(h);
		return NULL;
	}
	int64_t id = weft__service_watch(h->u.tmr.fd, timer_fired, h);
	if (id < 0) {
		close(h->u.tmr.fd);
		free(h);
		return NULL;
	}
	h->u.tmr.watch = (uint64_t)id;
	return h;
}

void weft__timer_destroy(struct weft_handle *h)
{
	/* After unwatch the service thread no longer touches h. */
	weft__service_unwatch(h->u.tmr.watch, h->u.tmr.fd);
	close(h->u.tmr.fd);
	if (h->u.tmr.apc_thread)
		weft__unref(h->u.tmr.apc_thread);
}

static struct timespec ms_to_ts(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
	return ts;
}

int weft_timer_set(weft_handle *h, uint64_t due_ms, uint32_t period_ms, void (*apc)(uintptr_t), uintptr_t apc_arg)
{
	if (!weft__handle_ok(h, WEFT__K_TIMER))
		return -EINVAL;
	struct weft_handle *thr = NULL;
	if (apc) {
		thr = weft__self();
		if (!thr)
			return -ENOMEM;
		weft__ref(thr);
	}
	struct itimerspec its = { .it_value = ms_to_ts(due_ms), .it_interval = ms_to_ts(period_ms) };
	if (due_ms == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm: "due now" is 1 ns */
	weft__obj_lock(h);
	struct weft_handle *old = h->u.tmr.apc_thread;
	int err = 0;
	/* Re-arming resets the timerfd's expiration count (timerfd_setup); the drain before
	 * it is belt and braces. Draining after it could eat a "due now" expiry. */
	drain(h);
	if (timerfd_settime(h->u.tmr.fd, 0, &its, NULL) != 0) {
		err = -errno;
		old = thr; /* keep the previous setting; drop the new reference */
	} else {
		weft__store_rlx(&h->u.tmr.signaled, false);
		h->u.tmr.apc = apc;
		h->u.tmr.apc_arg = apc_arg;
		h->u.tmr.apc_thread = thr;
	}
	weft__obj_unlock(h);
	if (old)
		weft__unref(old);
	return err;
}

int weft_timer_cancel(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_TIMER))
		return -EINVAL;
	struct itimerspec its = { 0 };
	weft__obj_lock(h);
	timerfd_settime(h->u.tmr.fd, 0, &its, NULL); /* also resets the count */
	drain(h);
	weft__obj_unlock(h);
	return 0;
}
