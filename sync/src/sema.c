/* sema.c - counting semaphores (CreateSemaphore, ReleaseSemaphore). */
#include "handle.h"

weft_handle *weft_semaphore_create(int32_t initial, int32_t maximum)
{
	if (initial < 0 || maximum <= 0 || initial > maximum)
		return NULL;
	struct weft_handle *h = weft__handle_alloc(WEFT__K_SEMA);
	if (!h)
		return NULL;
	h->u.sem.count = initial;
	h->u.sem.max = maximum;
	return h;
}

int weft_semaphore_release(weft_handle *h, int32_t count, int32_t *previous)
{
	if (!weft__handle_ok(h, WEFT__K_SEMA) || count <= 0)
		return -EINVAL;
	weft__obj_lock(h);
	int32_t cur = h->u.sem.count;
	if (count > h->u.sem.max - cur) {
		weft__obj_unlock(h);
		return -EOVERFLOW;
	}
	weft__store_rlx(&h->u.sem.count, cur + count);
	/* Each satisfied wait-any waiter takes one unit on the spot; what is left stays in
	 * the count for wait-all waiters (poked) and later arrivals. */
	weft__obj_unlock_wake(h, weft__satisfy(h));
	if (previous)
		*previous = cur;
	return 0;
}
