/* pool_manager.c - the thread pool's manager thread: it fires timers, watches the
 * workers and injects a thread when work is queued and the port could release one but
 * has none (every worker blocked in a callback), counts starvation episodes at
 * max_threads, and answers weft_pool_get_stats from the same scan. The rules are in the
 * comment at the top of pool.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "futex.h"
#include "pool_internal.h"

#define WEFT__TP_CHECK_NS (10ull * 1000000ull)
#define WEFT__TP_STALL_NS (1000ull * 1000000ull)

/* Calls counted so far: ring pushes and port packets. */
uint64_t weft__tp_submitted_count(weft_pool *p)
{
	return (weft__load_acq(&p->rtail) & ~WEFT__TP_RING_CLOSED) + (weft__load_acq(&p->submitted) >> 2);
}

/* Sums the workers' states and counts; pool lock held. */
void weft__tp_scan_locked(weft_pool *p, struct weft__tp_scan *s)
{
	memset(s, 0, sizeof *s);
	s->taken = p->retired_taken;
	s->completed = p->retired_completed;
	for (struct weft__tp_worker *x = p->workers; x; x = x->next) {
		uint32_t st = weft__load_rlx(&x->state);
		s->idle += st == WEFT__TP_IDLE;
		s->busy += st == WEFT__TP_BUSY;
		s->blocked += st == WEFT__TP_BLOCKED || st == WEFT__TP_LONG;
		s->taken += weft__load_rlx(&x->taken);
		/* acquire: pairs with the release store in dispatch. */
		s->completed += weft__load_acq(&x->completed);
	}
}

/* Work queued, no idle worker, fewer than concurrency running: inject one thread, or at
 * max_threads with nothing running count a starvation episode. Pool lock held. Returns
 * true if a thread was injected. */
static bool inject_locked(weft_pool *p, const struct weft__tp_scan *s, uint64_t queued)
{
	if (!(queued > 0 && s->idle == 0 && s->busy < p->concurrency)) {
		p->starving = false;
		return false;
	}
	if (weft__tp_spawn_locked(p)) {
		weft__fadd_rlx(&p->injected, 1u);
		p->starving = false;
		return true;
	}
	if (s->busy == 0 && !(weft__load_acq(&p->submitted) & 2u) && !p->starving) {
		p->starving = true;
		weft__fadd_rlx(&p->starvations, 1u);
		weft__tp_log_starvation(p, "blocked workers");
	}
	return false;
}

/* No progress: work queued, nobody idle, and not one callback finished for a while.
 * This covers callbacks that block where weft cannot see it (a plain read, sleep, a
 * pthread mutex): the port still counts them as running, so no thread can help; the pool
 * can only say so. One count per episode, none while a blocked episode runs. Pool lock
 * held. */
static void watch_progress_locked(weft_pool *p, const struct weft__tp_scan *s, uint64_t queued, uint64_t now)
{
	if (queued > 0 && s->idle == 0 && s->completed == p->last_completed) {
		if (p->stall_ns == 0)
			p->stall_ns = now;
		if (!p->stalled && now - p->stall_ns >= WEFT__TP_STALL_NS) {
			p->stalled = true;
			if (!p->starving) {
				weft__fadd_rlx(&p->starvations, 1u);
				weft__tp_log_starvation(p, "no callback finished for a second");
			}
		}
	} else {
		p->last_completed = s->completed;
		p->stall_ns = 0;
		p->stalled = false;
	}
}

/* When to look again: soon while work is queued; every 100 ms while any worker is busy
 * (work may pile up behind it) or the pool was idle only briefly; after a second of
 * idleness not at all - the next submit wakes us (mgr_asleep). Pool lock held. */
static uint64_t next_look_locked(weft_pool *p, const struct weft__tp_scan *s, uint64_t queued, uint64_t now)
{
	if (queued > 0 || s->idle < p->threads || s->blocked > 0)
		p->idle_looks = 0;
	else
		p->idle_looks++;
	if (queued > 0)
		return now + WEFT__TP_CHECK_NS;
	if (p->idle_looks < 10)
		return now + 10 * WEFT__TP_CHECK_NS;
	weft__store_rlx(&p->mgr_asleep, 1u); /* relaxed: a missed wake-up only delays a report */
	return UINT64_MAX;
}

/* Injection, starvation, retired threads; returns when to look again (UINT64_MAX: when
 * kicked). */
static uint64_t manager_check(weft_pool *p, uint64_t now)
{
	struct weft__tp_scan s;
	pthread_mutex_lock(&p->lock);
	weft__tp_scan_locked(p, &s);
	uint64_t sub = weft__tp_submitted_count(p);
	uint64_t queued = sub > s.taken ? sub - s.taken : 0;
	bool injected = inject_locked(p, &s, queued);
	/* Safety net: work queued and a worker idle at the same look. The wake protocol
	 * should never leave it so (a WAKE post that failed for memory could); a wake with
	 * the searching slot taken does nothing. */
	bool nudge = queued > 0 && s.idle > 0;
	watch_progress_locked(p, &s, queued, now);
	uint64_t next = next_look_locked(p, &s, queued, now);
	if (injected)
		next = now + 1000000ull; /* look again soon: one thread at a time */
	/* Join the retired workers. They left the list and only return from their thread
	 * function now, so the join is short. */
	struct weft__tp_worker *z = p->zombies;
	p->zombies = NULL;
	pthread_mutex_unlock(&p->lock);
	if (nudge && !(weft__load_acq(&p->submitted) & 2u))
		weft__tp_try_wake(p);
	while (z) {
		struct weft__tp_worker *n = z->next;
		pthread_join(z->thread, NULL);
		free(z);
		z = n;
	}
	return next;
}

void *weft__tp_manager_main(void *v)
{
	weft_pool *p = v;
	char name[32];
	snprintf(name, sizeof name, "%s-mgr", p->name);
	name[15] = 0;
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		/* acquire: pairs with the release add in weft__tp_kick. */
		uint32_t seq = weft__load_acq(&p->mgr_seq);
		if (weft__load_acq(&p->mgr_stop))
			break;
		weft__store_rel(&p->mgr_kicked, 0u);
		weft__store_rlx(&p->mgr_asleep, 0u);
		uint64_t now = weft__tp_now_ns();
		bool fire = !(weft__load_acq(&p->submitted) & 3u);
		if (!fire)
			weft__store_rel(&p->timers_off, 1u); /* pairs with destroy's acquire */
		uint64_t next = weft__tp_timers_run(p, now, fire);
		uint64_t chk = manager_check(p, now);
		if (chk < next)
			next = chk;
		struct timespec ts, *dl = NULL;
		if (next != UINT64_MAX) {
			ts.tv_sec = (time_t)(next / 1000000000ull);
			ts.tv_nsec = (long)(next % 1000000000ull);
			dl = &ts;
		}
		weft__futex_wait(&p->mgr_seq, seq, dl);
	}
	return NULL;
}

void weft_pool_get_stats(weft_pool *p, weft_pool_stats *out)
{
	struct weft__tp_scan s;
	memset(out, 0, sizeof *out);
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	weft__tp_scan_locked(p, &s);
	out->threads = p->threads;
	out->max_threads = p->max_threads;
	out->min_threads = p->min_threads;
	pthread_mutex_unlock(&p->lock);
	uint64_t sub = weft__tp_submitted_count(p);
	out->idle = s.idle;
	out->blocked = s.blocked;
	out->concurrency = p->concurrency;
	out->queued = sub > s.taken ? sub - s.taken : 0;
	out->completed = s.completed;
	out->starvations = weft__load_rlx(&p->starvations);
	out->injected = weft__load_rlx(&p->injected);
	out->retired = weft__load_rlx(&p->retired);
}
