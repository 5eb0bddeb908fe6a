/* mutex.c - recursive, thread-owned mutexes with abandonment (CreateMutex, ReleaseMutex).
 *
 * Ownership holds a reference to the mutex, so a mutex closed by every handle holder
 * while owned stays alive until its owner releases it or ends (and abandons it). */
#include "handle.h"

weft_handle *weft_mutex_create(bool initially_owned)
{
	struct weft_handle *h = weft__handle_alloc(WEFT__K_MUTEX);
	if (!h)
		return NULL;
	if (initially_owned) {
		struct weft_handle *self = weft__self();
		if (!self) {
			weft__unref(h);
			return NULL;
		}
		weft__mutex_own(h, self);
	}
	return h;
}

/* With m locked: m is free or already owned by self. */
void weft__mutex_own(struct weft_handle *m, struct weft_handle *self)
{
	if (m->u.mtx.owner == self) {
		m->u.mtx.recursion++;
		return;
	}
	weft__store_rlx(&m->u.mtx.owner, self);
	m->u.mtx.recursion = 1;
	weft__ref(m);
	/* The owner's list is touched only by the owner itself or by a signaller acting for
	 * it while it waits (see handle.h), never by two parties at once. */
	struct weft__thread_obj *t = &self->u.th;
	m->u.mtx.prev = NULL;
	m->u.mtx.next = t->owned;
	if (t->owned)
		t->owned->u.mtx.prev = m;
	t->owned = m;
}

/* With m locked and owned by its owner, recursion dropped to 0: unlinks it from the
 * owner and hands it on. The caller drops the old owner's reference after unlocking (a
 * new owner took its own in weft__mutex_own) and wakes the returned chain. */
static struct weft__wait_block *mutex_disown(struct weft_handle *m)
{
	struct weft__thread_obj *t = &m->u.mtx.owner->u.th;
	if (m->u.mtx.prev)
		m->u.mtx.prev->u.mtx.next = m->u.mtx.next;
	else
		t->owned = m->u.mtx.next;
	if (m->u.mtx.next)
		m->u.mtx.next->u.mtx.prev = m->u.mtx.prev;
	m->u.mtx.next = m->u.mtx.prev = NULL;
	weft__store_rlx(&m->u.mtx.owner, NULL);
	return weft__satisfy(m);
}

int weft_mutex_release(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_MUTEX))
		return -EINVAL;
	struct weft_handle *self = weft__self();
	weft__obj_lock(h);
	if (!self || h->u.mtx.owner != self) {
		weft__obj_unlock(h);
		return -EPERM;
	}
	if (--h->u.mtx.recursion != 0) {
		weft__obj_unlock(h);
		return 0;
	}
	weft__obj_unlock_wake(h, mutex_disown(h));
	/* Lifetime: our ownership reference keeps h alive across the unlock above (a new
	 * owner took its own); dropping it is the last thing we do with h. */
	weft__unref(h);
	return 0;
}

void weft__mutex_abandon_all(struct weft_handle *self)
{
	struct weft__thread_obj *t = &self->u.th;
	/* Only this (ending) thread adds to or removes from its list now: it is not in a
	 * wait, so no signaller acts for it. */
	while (t->owned) {
		struct weft_handle *m = t->owned;
		weft__obj_lock(m);
		m->u.mtx.abandoned = true;
		m->u.mtx.recursion = 0;
		weft__obj_unlock_wake(m, mutex_disown(m));
		/* Lifetime: the ownership reference kept m alive up to here. */
		weft__unref(m);
	}
}
