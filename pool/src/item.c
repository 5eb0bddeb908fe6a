/* item.c - the freelist behind weft_pool_submit: allocation-free once warm.
 *
 * Items are small (fn, arg) records shared by every pool of the process. Each thread keeps
 * a magazine (a private list, no atomics); a thread that allocates more than it frees
 * (a submitter) refills from the depot one batch of WEFT__TP_BATCH items at a time, a
 * thread that frees more than it allocates (a worker) returns whole batches. So the depot
 * lock is taken once per WEFT__TP_BATCH items on each side, and a warm pool allocates
 * nothing. Items are never returned to the system: the depot keeps them (reachable, so
 * leak checkers stay quiet) for the next burst. A thread's magazine goes back to the depot
 * when the thread exits (a pthread key destructor).
 */
#include <pthread.h>
#include <stdlib.h>

#include "pool_internal.h"

#define WEFT__TP_BATCH 64u

struct magazine {
	struct weft__tp_item *head;
	uint32_t n;
	bool registered;
};

static __thread struct magazine tls_mag;

static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__tp_item *depot;  /* batches, linked by batch_next (depot_lock) */
static struct weft__tp_item *partial; /* loose items from exited threads (depot_lock) */
static pthread_key_t mag_key;
static pthread_once_t mag_once = PTHREAD_ONCE_INIT;

static void depot_put_list(struct weft__tp_item *head)
{
	pthread_mutex_lock(&depot_lock);
	while (head) {
		struct weft__tp_item *next = head->next;
		head->next = partial;
		partial = head;
		head = next;
	}
	pthread_mutex_unlock(&depot_lock);
}

static void mag_exit(void *v)
{
	struct magazine *m = v;
	depot_put_list(m->head);
	m->head = NULL;
	m->n = 0;
}

static void mag_key_init(void)
{
	pthread_key_create(&mag_key, mag_exit);
}

static void mag_register(struct magazine *m)
{
	pthread_once(&mag_once, mag_key_init);
	pthread_setspecific(mag_key, m);
	m->registered = true;
}

/* Takes one batch (or builds one from loose items, or allocates a new one). */
static struct weft__tp_item *depot_get_batch(uint32_t *n)
{
	struct weft__tp_item *b = NULL;
	uint32_t count = 0;
	pthread_mutex_lock(&depot_lock);
	if (depot) {
		b = depot;
		depot = b->batch_next;
		count = WEFT__TP_BATCH;
	} else {
		while (partial && count < WEFT__TP_BATCH) {
			struct weft__tp_item *it = partial;
			partial = it->next;
			it->next = b;
			b = it;
			count++;
		}
	}
	pthread_mutex_unlock(&depot_lock);
	if (!b) {
		struct weft__tp_item *slab = calloc(WEFT__TP_BATCH, sizeof *slab);
		if (!slab)
			return NULL;
		for (uint32_t i = 0; i + 1 < WEFT__TP_BATCH; i++)
			slab[i].next = &slab[i + 1];
		b = slab;
		count = WEFT__TP_BATCH;
	}
	*n = count;
	return b;
}

struct weft__tp_item *weft__tp_item_alloc(void)
{
	struct magazine *m = &tls_mag;
	if (__builtin_expect(m->head == NULL, 0)) {
		if (!m->registered)
			mag_register(m);
		m->head = depot_get_batch(&m->n);
		if (!m->head)
			return NULL;
	}
	struct weft__tp_item *it = m->head;
	m->head = it->next;
	m->n--;
	return it;
}

void weft__tp_item_free(struct weft__tp_item *it)
{
	struct magazine *m = &tls_mag;
	it->next = m->head;
	m->head = it;
	if (__builtin_expect(++m->n >= 2 * WEFT__TP_BATCH, 0)) {
		/* Hand the first WEFT__TP_BATCH items to the depot as one batch. */
		struct weft__tp_item *b = m->head, *last = b;
		for (uint32_t i = 1; i < WEFT__TP_BATCH; i++)
			last = last->next;
		m->head = last->next;
		last->next = NULL;
		m->n -= WEFT__TP_BATCH;
		if (!m->registered)
			mag_register(m);
		pthread_mutex_lock(&depot_lock);
		b->batch_next = depot;
		depot = b;
		pthread_mutex_unlock(&depot_lock);
	}
}
