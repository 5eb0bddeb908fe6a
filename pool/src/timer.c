/* timer.c - timers on the pool: one binary min-heap per pool, served by the manager.
 *
 * Every armed timer sits in the heap keyed by latest_ns (due + window): the manager
 * sleeps until the top's latest time, and when it wakes it fires every timer whose latest
 * time passed, then keeps firing from the top while the top is already due (inside its
 * window), which is how nearby timers coalesce into one wake-up. 100,000 timers cost one
 * thread, one futex deadline and O(log n) per arm or fire. A periodic timer's next due time
 * is its previous due time plus the period (never the firing time), so latency does not
 * accumulate into drift; if the process stalled past whole periods, those are skipped.
 */
#include <errno.h>
#include <stdlib.h>

#include "pool_internal.h"

#define NONE UINT32_MAX

static bool before(const struct weft_pool_timer *a, const struct weft_pool_timer *b)
{
	return a->latest_ns < b->latest_ns || (a->latest_ns == b->latest_ns && a->due_ns < b->due_ns);
}

static void place(struct weft__tp_timer_heap *h, uint32_t i, struct weft_pool_timer *t)
{
	h->a[i] = t;
	t->heap_idx = i;
}

static void sift_up(struct weft__tp_timer_heap *h, uint32_t i)
{
	struct weft_pool_timer *t = h->a[i];
	while (i > 0) {
		uint32_t up = (i - 1) / 2;
		if (!before(t, h->a[up]))
			break;
		place(h, i, h->a[up]);
		i = up;
	}
	place(h, i, t);
}

static void sift_down(struct weft__tp_timer_heap *h, uint32_t i)
{
	struct weft_pool_timer *t = h->a[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h->a[c + 1], h->a[c]))
			c++;
		if (!before(h->a[c], t))
			break;
		place(h, i, h->a[c]);
		i = c;
	}
	place(h, i, t);
}

static int heap_push(struct weft__tp_timer_heap *h, struct weft_pool_timer *t)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct weft_pool_timer **a = realloc(h->a, cap * sizeof *a);
		if (!a)
			return -ENOMEM;
		h->a = a;
		h->cap = cap;
	}
	place(h, h->n++, t);
	sift_up(h, h->n - 1);
	return 0;
}

static void heap_remove(struct weft__tp_timer_heap *h, struct weft_pool_timer *t)
{
	uint32_t i = t->heap_idx;
	t->heap_idx = NONE;
	h->n--;
	if (i == h->n)
		return;
	struct weft_pool_timer *m = h->a[h->n];
	place(h, i, m);
	if (i > 0 && before(m, h->a[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

static void timer_member_close(struct weft__tp_obj *o, bool cancel_pending)
{
	weft_pool_timer *t = (weft_pool_timer *)(void *)o;
	weft_pool_timer_wait(t, cancel_pending);
	weft_pool_timer_close(t);
}

weft_pool_timer *weft_pool_timer_create(weft_pool *p, void (*fn)(void *arg), void *arg)
{
	if (!p || !fn)
		return NULL;
	weft_pool_timer *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	weft__tp_obj_init(&t->obj, p, WEFT__TP_TIMER, fn, arg);
	t->obj.member_close = timer_member_close;
	t->heap_idx = NONE;
	return t;
}

void weft_pool_timer_set(weft_pool_timer *t, uint32_t due_ms, uint32_t period_ms, uint32_t window_ms)
{
	weft_pool *p = t->obj.pool;
	bool kick = false;
	pthread_mutex_lock(&p->timer_lock);
	if (t->heap_idx != NONE)
		heap_remove(&p->heap, t);
	if (due_ms != WEFT_INFINITE) {
		t->due_ns = weft__tp_now_ns() + (uint64_t)due_ms * 1000000ull;
		t->period_ns = (uint64_t)period_ms * 1000000ull;
		t->window_ns = (uint64_t)window_ms * 1000000ull;
		t->latest_ns = t->due_ns + t->window_ns;
		if (heap_push(&p->heap, t) == 0)
			kick = t->heap_idx == 0;
	}
	pthread_mutex_unlock(&p->timer_lock);
	if (kick)
		weft__tp_kick(p);
}

bool weft_pool_timer_is_set(weft_pool_timer *t)
{
	weft_pool *p = t->obj.pool;
	pthread_mutex_lock(&p->timer_lock);
	bool set = t->heap_idx != NONE;
	pthread_mutex_unlock(&p->timer_lock);
	return set;
}

uint64_t weft_pool_timer_fired(weft_pool_timer *t)
{
	return weft__load_acq(&t->fired);
}

void weft_pool_timer_wait(weft_pool_timer *t, bool cancel_pending)
{
	if (cancel_pending)
		weft_pool_timer_set(t, WEFT_INFINITE, 0, 0);
	weft__tp_obj_wait(&t->obj, cancel_pending);
}

void weft_pool_timer_close(weft_pool_timer *t)
{
	if (!t)
		return;
	weft_pool_timer_set(t, WEFT_INFINITE, 0, 0);
	weft__tp_obj_close(&t->obj);
}

uint64_t weft__tp_timers_run(weft_pool *p, uint64_t now, bool fire)
{
	struct weft__tp_timer_heap *h = &p->heap;
	if (!fire)
		return UINT64_MAX;
	pthread_mutex_lock(&p->timer_lock);
	while (h->n > 0) {
		struct weft_pool_timer *t = h->a[0];
		if (t->latest_ns > now && t->due_ns > now)
			break;
		heap_remove(h, t);
		/* release: a reader of fired sees the arming that led here. */
		weft__fadd_rel(&t->fired, 1u);
		weft__tp_obj_submit(&t->obj, true);
		if (t->period_ns) {
			t->due_ns += t->period_ns;
			if (t->due_ns <= now)
				t->due_ns += ((now - t->due_ns) / t->period_ns + 1) * t->period_ns;
			t->latest_ns = t->due_ns + t->window_ns;
			heap_push(h, t); /* cannot fail: the slot was just freed */
		}
	}
	uint64_t next = h->n ? h->a[0]->latest_ns : UINT64_MAX;
	pthread_mutex_unlock(&p->timer_lock);
	return next;
}

void weft__tp_timers_fini(weft_pool *p)
{
	free(p->heap.a);
	p->heap.a = NULL;
	p->heap.n = p->heap.cap = 0;
}
