/* pool_wait.c - wait objects (CreateThreadpoolWait): a callback on a pool thread when a
 * weft_handle is signaled or a timeout passes.
 *
 * One wait thread per pool (started with the first arming) waits on every armed handle at
 * once with weft_wait_many (wait-any, no 64-object limit), plus a control event at index
 * 0 that arming and disarming set so the thread rebuilds its array. The array holds
 * duplicates of the handles and references on the waiters, so a user who closes either
 * while the thread waits on it frees nothing under it. A result is applied only if the
 * waiter is still armed with the same generation it had when the array was built.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool_internal.h"

static void disarm_locked(weft_pool *p, struct weft_pool_waiter *w)
{
	if (!w->h)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		p->armed = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
	p->narmed--;
	weft_handle_close(w->h);
	w->h = NULL;
	w->gen++;
}

static void fire_locked(weft_pool *p, struct weft_pool_waiter *w, int result)
{
	disarm_locked(p, w);
	/* release: the queued call reads the result after claiming it (acquire CAS). */
	weft__store_rel(&w->result, result);
	weft__tp_obj_submit(&w->obj, false);
}

static void run_waiter(struct weft__tp_obj *o)
{
	struct weft_pool_waiter *w = (struct weft_pool_waiter *)(void *)o;
	w->cb(o->arg, weft__load_acq(&w->result));
}

struct wait_arrays {
	weft_handle **hs;
	struct weft_pool_waiter **ws;
	uint32_t *gens;
	uint32_t cap;
};

static bool arrays_fit(struct wait_arrays *a, uint32_t n)
{
	if (n <= a->cap)
		return true;
	uint32_t cap = a->cap ? a->cap : 16;
	while (cap < n)
		cap *= 2;
	weft_handle **hs = realloc(a->hs, cap * sizeof *hs);
	if (hs)
		a->hs = hs;
	struct weft_pool_waiter **ws = realloc(a->ws, cap * sizeof *ws);
	if (ws)
		a->ws = ws;
	uint32_t *gens = realloc(a->gens, cap * sizeof *gens);
	if (gens)
		a->gens = gens;
	if (!hs || !ws || !gens)
		return false;
	a->cap = cap;
	return true;
}

/* Builds the array under the lock; returns its size (0: stop) and the earliest deadline. */
static uint32_t build(weft_pool *p, struct wait_arrays *a, uint64_t *deadline)
{
	uint32_t n = 0;
	*deadline = UINT64_MAX;
	pthread_mutex_lock(&p->wait_lock);
	if (!weft__load_acq(&p->wait_stop) && arrays_fit(a, p->narmed + 1)) {
		a->hs[n++] = p->wait_ctl;
		for (struct weft_pool_waiter *w = p->armed; w; w = w->next, n++) {
			a->hs[n] = weft_handle_dup(w->h);
			a->ws[n] = w;
			a->gens[n] = w->gen;
			weft__tp_obj_ref(&w->obj);
			if (w->deadline_ns < *deadline)
				*deadline = w->deadline_ns;
		}
	} else if (!weft__load_acq(&p->wait_stop)) {
		n = UINT32_MAX; /* out of memory: retry shortly */
	}
	pthread_mutex_unlock(&p->wait_lock);
	return n;
}

static void apply(weft_pool *p, struct wait_arrays *a, uint32_t n, int r)
{
	uint64_t now = weft__tp_now_ns();
	pthread_mutex_lock(&p->wait_lock);
	if (r >= WEFT_WAIT_OBJECT_0 + 1 && (uint32_t)r < n) {
		struct weft_pool_waiter *w = a->ws[r];
		if (w->h && w->gen == a->gens[r])
			fire_locked(p, w, WEFT_WAIT_OBJECT_0);
	} else if (r >= WEFT_WAIT_ABANDONED_0 + 1 && (uint32_t)(r - WEFT_WAIT_ABANDONED_0) < n) {
		struct weft_pool_waiter *w = a->ws[r - WEFT_WAIT_ABANDONED_0];
		if (w->h && w->gen == a->gens[r - WEFT_WAIT_ABANDONED_0])
			fire_locked(p, w, WEFT_WAIT_ABANDONED_0);
	}
	/* Deadlines: not after a wake by the control event, which was not a real wait on
	 * the objects (the rebuilt wait then polls them once, timeout 0, first). */
	for (struct weft_pool_waiter *w = p->armed, *next; r != WEFT_WAIT_OBJECT_0 && w; w = next) {
		next = w->next;
		if (w->deadline_ns <= now)
			fire_locked(p, w, WEFT_WAIT_TIMEOUT);
	}
	pthread_mutex_unlock(&p->wait_lock);
	for (uint32_t i = 1; i < n; i++) {
		weft_handle_close(a->hs[i]);
		weft__tp_obj_unref(&a->ws[i]->obj);
	}
}

static void *wait_main(void *v)
{
	weft_pool *p = v;
	char name[32];
	snprintf(name, sizeof name, "%s-wait", p->name);
	name[15] = 0;
	pthread_setname_np(pthread_self(), name);
	struct wait_arrays a = {0};
	for (;;) {
		uint64_t deadline;
		uint32_t n = build(p, &a, &deadline);
		if (n == 0)
			break;
		if (n == UINT32_MAX) {
			weft_sleep_ex(1, false);
			continue;
		}
		uint32_t timeout = WEFT_INFINITE;
		if (deadline != UINT64_MAX) {
			uint64_t now = weft__tp_now_ns();
			uint64_t ms = deadline > now ? (deadline - now + 999999) / 1000000 : 0;
			timeout = ms >= WEFT_INFINITE ? WEFT_INFINITE - 1 : (uint32_t)ms;
		}
		int r = weft_wait_many(a.hs, n, false, timeout);
		if (r < 0)
			weft_sleep_ex(1, false); /* -ENOMEM: try again */
		apply(p, &a, n, r);
	}
	free(a.hs);
	free(a.ws);
	free(a.gens);
	return NULL;
}

void weft__tp_waits_stop(weft_pool *p)
{
	pthread_mutex_lock(&p->wait_lock);
	weft__store_rel(&p->wait_stop, 1u);
	bool started = p->wait_started;
	pthread_mutex_unlock(&p->wait_lock);
	if (started) {
		weft_event_set(p->wait_ctl);
		pthread_join(p->wait_thread, NULL);
	}
	pthread_mutex_lock(&p->wait_lock);
	while (p->armed)
		disarm_locked(p, p->armed);
	pthread_mutex_unlock(&p->wait_lock);
	if (p->wait_ctl)
		weft_handle_close(p->wait_ctl);
	p->wait_ctl = NULL;
}

static void waiter_member_close(struct weft__tp_obj *o, bool cancel_pending)
{
	weft_pool_waiter *w = (weft_pool_waiter *)(void *)o;
	weft_pool_waiter_wait(w, cancel_pending);
	weft_pool_waiter_close(w);
}

weft_pool_waiter *weft_pool_waiter_create(weft_pool *p, void (*fn)(void *arg, int result), void *arg)
{
	if (!p || !fn)
		return NULL;
	weft_pool_waiter *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	weft__tp_obj_init(&w->obj, p, WEFT__TP_WAITER, NULL, arg);
	w->obj.run = run_waiter;
	w->obj.member_close = waiter_member_close;
	w->cb = fn;
	return w;
}

int weft_pool_waiter_set(weft_pool_waiter *w, weft_handle *h, uint32_t timeout_ms)
{
	if (!w)
		return -EINVAL;
	weft_pool *p = w->obj.pool;
	int r = 0;
	pthread_mutex_lock(&p->wait_lock);
	disarm_locked(p, w);
	if (h && weft__load_acq(&p->wait_stop)) {
		r = -ESHUTDOWN;
	} else if (h) {
		if (!p->wait_ctl && !(p->wait_ctl = weft_event_create(false, false))) {
			r = -ENOMEM;
		} else if (!p->wait_started) {
			if (pthread_create(&p->wait_thread, NULL, wait_main, p) == 0)
				p->wait_started = true;
			else
				r = -ENOMEM;
		}
		if (r == 0 && !(w->h = weft_handle_dup(h)))
			r = -EINVAL;
		if (r == 0) {
			w->deadline_ns = timeout_ms == WEFT_INFINITE
						 ? UINT64_MAX
						 : weft__tp_now_ns() + (uint64_t)timeout_ms * 1000000ull;
			w->gen++;
			w->prev = NULL;
			w->next = p->armed;
			if (p->armed)
				p->armed->prev = w;
			p->armed = w;
			p->narmed++;
		}
	}
	weft_handle *ctl = p->wait_started ? p->wait_ctl : NULL;
	pthread_mutex_unlock(&p->wait_lock);
	/* The control event lives until the wait thread was joined (destroy), and a set
	 * cannot race destroy (objects are closed before it), so ctl is alive here. */
	if (ctl)
		weft_event_set(ctl);
	return r;
}

void weft_pool_waiter_wait(weft_pool_waiter *w, bool cancel_pending)
{
	if (cancel_pending)
		weft_pool_waiter_set(w, NULL, 0);
	weft__tp_obj_wait(&w->obj, cancel_pending);
}

void weft_pool_waiter_close(weft_pool_waiter *w)
{
	if (!w)
		return;
	weft_pool_waiter_set(w, NULL, 0);
	weft__tp_obj_close(&w->obj);
}
