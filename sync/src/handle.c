/* handle.c - the common waitable object: allocation, reference counting, the object lock,
 * the waiter list and the hand-off from a signaller to its waiters. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"

/* Dead handles are not returned to malloc at once: they wait, tagged dead, in a FIFO
 * quarantine and are reused only after WEFT__QUARANTINE more handles died. So a wait on,
 * or a second close of, a recently closed handle reads valid memory and reliably gets
 * -EINVAL (or is ignored), like a stale Windows handle value - until the slot is reused,
 * which is as undefined as a reused Windows handle value. Bounded: at most
 * WEFT__QUARANTINE + 1 idle objects (~150 bytes each), reachable from here. */
#define WEFT__QUARANTINE 1024
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_handle *q_head, *q_tail; /* linked through u.dead_next */
static size_t q_len;

struct weft_handle *weft__handle_alloc(enum weft__kind kind)
{
	struct weft_handle *h = NULL;
	pthread_mutex_lock(&q_lock);
	if (q_len > WEFT__QUARANTINE) {
		h = q_head;
		q_head = h->u.dead_next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
	}
	pthread_mutex_unlock(&q_lock);
	if (h)
		memset((char *)h + sizeof h->magic, 0, sizeof *h - sizeof h->magic);
	else if (!(h = calloc(1, sizeof *h)))
		return NULL;
	h->kind = (uint32_t)kind;
	h->refs = 1;
	/* relaxed: the handle is published to other threads by whatever hands them the
	 * pointer (a release store, a thread start, a lock), which orders this store too. */
	weft__store_rlx(&h->magic, WEFT__MAGIC_LIVE);
	return h;
}

void weft__unref(struct weft_handle *h)
{
	/* acq_rel: the last reference sees every other holder's writes before freeing. */
	uint32_t prev = weft__fsub_acqrel(&h->refs, 1);
	if (prev != 1) {
		if (prev == 0)
			weft__die("handle %p closed more often than referenced", (void *)h);
		return;
	}
	switch (h->kind) {
	case WEFT__K_TIMER:
		weft__timer_destroy(h);
		break;
	case WEFT__K_PROCESS:
		weft__process_destroy(h);
		break;
	case WEFT__K_THREAD:
		weft__thread_destroy(h);
		break;
	default:
		break;
	}
	weft__store_rlx(&h->magic, WEFT__MAGIC_DEAD);
	h->u.dead_next = NULL;
	pthread_mutex_lock(&q_lock);
	if (q_tail)
		q_tail->u.dead_next = h;
	else
		q_head = h;
	q_tail = h;
	q_len++;
	pthread_mutex_unlock(&q_lock);
}

weft_handle *weft_handle_dup(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_ANY))
		return NULL;
	weft__ref(h);
	return h;
}

void weft_handle_close(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_ANY))
		return;
	weft__unref(h);
}

void weft__obj_lock_slow(struct weft_handle *h)
{
	/* The lock is held for a few dozen instructions (or, by a wait-all waiter, one check
	 * over its objects), so spin briefly before sleeping. */
	/* Kept short (~100 pauses): the holder is often a thread we preempted on its CPU,
	 * and spinning cannot help it finish (a 64-round exponential backoff here cost a
	 * 70x slower event ping-pong on a loaded 2-vCPU machine). */
	for (int i = 0; i < 100 && weft__smp(); i++) {
		uint32_t z = 0;
		if (weft__load_rlx(&h->lock) == 0 && weft__cas_acq(&h->lock, &z, 1))
			return;
		weft_cpu_relax();
	}
	/* acquire: pairs with the release in weft__obj_unlock. Marking the word 2 makes the
	 * holder's unlock wake one sleeper. */
	while (weft__xchg_acq(&h->lock, 2) != 0) {
		weft__block_begin();
		weft__futex_wait(&h->lock, 2, NULL);
		weft__block_end();
	}
}

bool weft__signaled(const struct weft_handle *h, const struct weft_handle *self)
{
	switch (h->kind) {
	case WEFT__K_EVENT:
		return h->u.ev.signaled;
	case WEFT__K_SEMA:
		return h->u.sem.count > 0;
	case WEFT__K_MUTEX:
		return h->u.mtx.owner == NULL || h->u.mtx.owner == self;
	case WEFT__K_TIMER:
		return h->u.tmr.signaled;
	case WEFT__K_THREAD:
		return weft__load_rlx(&h->u.th.done) != 0;
	case WEFT__K_PROCESS:
		return weft__load_rlx(&h->u.proc.done) != 0;
	default:
		return false;
	}
}

bool weft__consume(struct weft_handle *h, struct weft_handle *self)
{
	switch (h->kind) {
	case WEFT__K_EVENT:
		if (!h->u.ev.manual)
			weft__store_rlx(&h->u.ev.signaled, false);
		return false;
	case WEFT__K_SEMA:
		weft__store_rlx(&h->u.sem.count, h->u.sem.count - 1);
		return false;
	case WEFT__K_MUTEX: {
		bool abandoned = h->u.mtx.abandoned;
		h->u.mtx.abandoned = false;
		weft__mutex_own(h, self);
		return abandoned;
	}
	case WEFT__K_TIMER:
		if (!h->u.tmr.manual)
			weft__store_rlx(&h->u.tmr.signaled, false);
		return false;
	default:
		return false;
	}
}

void weft__wb_link(struct weft_handle *h, struct weft__wait_block *wb)
{
	wb->next = NULL;
	wb->prev = h->tail;
	if (h->tail)
		h->tail->next = wb;
	else
		h->head = wb;
	h->tail = wb;
	wb->linked = true;
}

void weft__wb_unlink(struct weft_handle *h, struct weft__wait_block *wb)
{
	if (!wb->linked)
		return;
	if (wb->prev)
		wb->prev->next = wb->next;
	else
		h->head = wb->next;
	if (wb->next)
		wb->next->prev = wb->prev;
	else
		h->tail = wb->prev;
	wb->linked = false;
}

struct weft__wait_block *weft__satisfy(struct weft_handle *h)
{
	/* Lifetime: every waiter record and wait block on the list stays alive while we hold
	 * h's lock: a waiter unlinks its blocks under this lock before returning, except the
	 * block we claim here, which we unlink ourselves and which stays alive until we
	 * publish its result (the waiter sleeps through WEFT__W_CLAIMED). */
	struct weft__wait_block *claimed = NULL, **tail = &claimed, *next;
	for (struct weft__wait_block *wb = h->head; wb; wb = next) {
		next = wb->next;
		struct weft__waiter *w = wb->w;
		if (!weft__signaled(h, w->self))
			break;
		uint32_t z = 0;
		if (w->wait_all) {
			/* release: pairs with the waiter's acquire load of its state; it re-checks
			 * everything under all its locks, so a poke carries no data. The wake stays
			 * under h's lock: a wait-all waiter may leave as soon as it can lock h. */
			if (weft__cas_rel(&w->state, &z, WEFT__W_POKE))
				weft__futex_wake(&w->state, 1);
			continue;
		}
		/* relaxed: claiming only reserves the waiter; the data (consumption, unlink)
		 * is published by the release exchange in weft__wake_claimed. */
		if (!weft__cas_rlx(&w->state, &z, WEFT__W_CLAIMED))
			continue; /* finished some other way; it unlinks itself */
		bool abandoned = weft__consume(h, w->self);
		wb->result = (abandoned ? (uint32_t)WEFT_WAIT_ABANDONED_0 : 0u) + wb->index;
		weft__wb_unlink(h, wb);
		wb->next = NULL;
		*tail = wb;
		tail = &wb->next;
	}
	return claimed;
}

void weft__wake_claimed(struct weft__wait_block *chain)
{
	while (chain) {
		struct weft__wait_block *next = chain->next;
		uint32_t *word = &chain->w->state;
		uint32_t res = chain->result + 1;
		/* release: pairs with the waiter's acquire load; publishes the consumption and
		 * the unlink done under the object lock. Lifetime: after this store the waiter
		 * may return and its stack (wb, w) die, so nothing is read from them after it.
		 * The wake below may then hit a dead address: at worst a spurious wake-up for
		 * whoever waits there now, which every futex waiter tolerates. */
		weft__xchg_rel(word, res);
		weft__futex_wake(word, 1);
		chain = next;
	}
}
