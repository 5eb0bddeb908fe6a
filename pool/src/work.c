/* work.c - callback objects (work, and the shared core of timers and wait objects).
 *
 * An object owns one embedded packet and posts it at most once at a time: a submit adds
 * one queued call, and posts the packet only if it was not posted already; the worker
 * that takes the packet claims one call and reposts the packet before running it when
 * more calls are queued, so N queued calls still run on up to N threads at once. Waiters
 * sleep on the count of calls queued or running. Nothing here allocates per call.
 */
#include <errno.h>
#include <stdlib.h>

#include "futex.h"
#include "pool_internal.h"

/* How long a wait watches calls running elsewhere before it sleeps. */
#define WEFT__TP_WAIT_SPIN_NS 20000ull

struct weft_work {
	struct weft__tp_obj obj;
};

void weft__tp_obj_init(struct weft__tp_obj *o, weft_pool *p, uint32_t kind, void (*fn)(void *), void *arg)
{
	o->kind = kind;
	o->refs = 1;
	o->pool = p;
	o->fn = fn;
	o->arg = arg;
}

void weft__tp_obj_ref(struct weft__tp_obj *o)
{
	/* relaxed: the caller already holds a reference, nothing to publish. */
	weft__fadd_rlx(&o->refs, 1u);
}

void weft__tp_obj_unref(struct weft__tp_obj *o)
{
	/* acq_rel: every use of the object by other holders happens before the free. */
	if (weft__fsub_acqrel(&o->refs, 1u) == 1)
		free(o);
}

void weft__tp_obj_done(struct weft__tp_obj *o, uint32_t n)
{
	if (n == 0)
		return;
	/* The caller holds a reference, so o stays alive through the wake below. seq_cst:
	 * pairs with weft__tp_obj_wait (waiters, then outstanding): either the waiter sees 0
	 * or we see the waiter. */
	if (weft_interlocked_exchange_add(&o->outstanding, -(int32_t)n) == (int32_t)n &&
	    weft_interlocked_or(&o->waiters, 0) != 0)
		weft__futex_wake((uint32_t *)&o->outstanding, INT32_MAX);
}

bool weft__tp_obj_submit(struct weft__tp_obj *o, bool coalesce)
{
	/* Count the call as outstanding before it can be claimed (and finished). */
	weft__fadd_acqrel(&o->outstanding, 1);
	uint32_t s = weft__load_rlx(&o->state);
	for (;;) {
		if (coalesce && (s >> 1) != 0) {
			weft__tp_obj_done(o, 1);
			return false;
		}
		/* acq_rel: a claimer's acquire CAS sees the outstanding count above. */
		if (weft__cas_acqrel(&o->state, &s, (s + 2u) | 1u))
			break;
	}
	if (!(s & 1u)) {
		weft__tp_obj_ref(o); /* the packet's reference */
		weft__tp_post_obj(o->pool, o);
	}
	return true;
}

/* Claims one queued call: true if one was claimed. With packet set, the caller holds the
 * posted packet: it keeps bit0 when calls remain (*repost) and clears it otherwise. */
static bool claim(struct weft__tp_obj *o, bool packet, bool *repost)
{
	uint32_t s = weft__load_rlx(&o->state);
	for (;;) {
		uint32_t ns;
		bool got = (s >> 1) != 0;
		if (packet) {
			ns = got ? s - 2u : s;
			if ((ns >> 1) == 0)
				ns &= ~1u;
		} else {
			if (!got)
				return false;
			ns = s - 2u;
		}
		if (weft__cas_acqrel(&o->state, &s, ns)) {
			if (repost)
				*repost = (ns & 1u) != 0;
			return got;
		}
	}
}

static void run_call(struct weft__tp_obj *o)
{
	if (o->run)
		o->run(o);
	else
		o->fn(o->arg);
	weft__tp_obj_done(o, 1);
}

void weft__tp_obj_packet(struct weft__tp_obj *o)
{
	bool repost;
	if (!claim(o, true, &repost)) {
		weft__tp_obj_unref(o); /* the packet's reference */
		return;
	}
	if (repost) {
		weft__tp_obj_ref(o); /* a new packet reference; ours now pays for the call */
		weft__tp_post_obj(o->pool, o);
	}
	run_call(o);
	weft__tp_obj_unref(o);
}

uint32_t weft__tp_obj_cancel(struct weft__tp_obj *o)
{
	uint32_t s = weft__load_rlx(&o->state);
	while (!weft__cas_acqrel(&o->state, &s, s & 1u))
		;
	weft__tp_obj_done(o, s >> 1);
	return s >> 1;
}

void weft__tp_obj_wait(struct weft__tp_obj *o, bool cancel_pending)
{
	if (cancel_pending) {
		weft__tp_obj_cancel(o);
	} else {
		struct weft__tp_worker *self = weft__tp_self();
		if (self && self->pool == o->pool) {
			/* Help while waiting: run the queued calls here rather than block a worker
			 * on work that may sit behind us in the queue. */
			while (claim(o, false, NULL)) {
				weft__tp_obj_ref(o);
				run_call(o);
				weft__tp_obj_unref(o);
			}
		}
	}
	/* The calls left are running on other threads. Short ones (fork-join at a fine grain)
	 * finish within microseconds: watch for that briefly before sleeping, which would
	 * pause this worker in the port and make the pool wake or add another. */
	if (weft__smp() && weft__load_acq(&o->outstanding) != 0) {
		uint64_t end = 0;
		for (uint32_t i = 1; weft__load_acq(&o->outstanding) != 0; i++) {
			weft_cpu_relax();
			if ((i & 63) == 0) {
				uint64_t now = weft__tp_now_ns();
				if (!end)
					end = now + WEFT__TP_WAIT_SPIN_NS;
				else if (now >= end)
					break;
			}
		}
	}
	weft_interlocked_increment(&o->waiters); /* seq_cst: see weft__tp_obj_done */
	int32_t v;
	while ((v = weft_interlocked_or(&o->outstanding, 0)) != 0)
		weft__tp_futex_wait((uint32_t *)&o->outstanding, (uint32_t)v, NULL);
	weft_interlocked_decrement_rel(&o->waiters);
}

/* ---------------------------------------------------------------------------------------
 * Work objects
 * ------------------------------------------------------------------------------------- */

static void work_member_close(struct weft__tp_obj *o, bool cancel_pending)
{
	weft__tp_obj_wait(o, cancel_pending);
	weft__tp_obj_close(o);
}

weft_work *weft_work_create(weft_pool *p, void (*fn)(void *arg), void *arg)
{
	if (!p || !fn)
		return NULL;
	weft_work *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	weft__tp_obj_init(&w->obj, p, WEFT__TP_WORK, fn, arg);
	w->obj.member_close = work_member_close;
	return w;
}

void weft_work_submit(weft_work *w)
{
	weft__tp_obj_submit(&w->obj, false);
}

void weft_work_wait(weft_work *w, bool cancel_pending)
{
	weft__tp_obj_wait(&w->obj, cancel_pending);
}

void weft_work_close(weft_work *w)
{
	if (w)
		weft__tp_obj_close(&w->obj);
}
