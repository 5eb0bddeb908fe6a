/* event.c - manual- and auto-reset events (CreateEvent, SetEvent, ResetEvent, PulseEvent). */
#include "handle.h"

weft_handle *weft_event_create(bool manual_reset, bool initially_set)
{
	struct weft_handle *h = weft__handle_alloc(WEFT__K_EVENT);
	if (!h)
		return NULL;
	h->u.ev.manual = manual_reset;
	h->u.ev.signaled = initially_set;
	return h;
}

int weft_event_set2(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_EVENT))
		return -EINVAL;
	weft__obj_lock(h);
	weft__store_rlx(&h->u.ev.signaled, true);
	weft__obj_unlock_wake(h, weft__satisfy(h));
	return 0;
}

int weft_event_reset2(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_EVENT))
		return -EINVAL;
	weft__obj_lock(h);
	weft__store_rlx(&h->u.ev.signaled, false);
	weft__obj_unlock(h);
	return 0;
}

void weft_event_set(weft_handle *h)
{
	(void)weft_event_set2(h);
}

void weft_event_reset(weft_handle *h)
{
	(void)weft_event_reset2(h);
}

void weft_event_pulse(weft_handle *h)
{
	if (!weft__handle_ok(h, WEFT__K_EVENT))
		return;
	/* Under one lock hold: every waiter already on the list is considered, none that
	 * arrives later is, so a pulse is never "lost" to a waiter that was briefly off the
	 * list (Windows' kernel-APC problem does not exist here). */
	weft__obj_lock(h);
	weft__store_rlx(&h->u.ev.signaled, true);
	struct weft__wait_block *chain = weft__satisfy(h);
	weft__store_rlx(&h->u.ev.signaled, false);
	weft__obj_unlock_wake(h, chain);
}
