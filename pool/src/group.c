/* group.c - cleanup groups (CreateThreadpoolCleanupGroup) and closing objects.
 *
 * A group is a list of member objects under the pool's group lock. Closing a member by
 * hand unlinks it; closing the group's members takes the whole list at once under the
 * lock and then waits for and closes each member outside it (a wait may run callbacks).
 */
#include <errno.h>
#include <stdlib.h>

#include "pool_internal.h"

struct weft_cleanup_group {
	weft_pool *pool;
	struct weft__tp_obj *head; /* group lock */
};

static void unlink_locked(struct weft__tp_obj *o)
{
	struct weft_cleanup_group *g = o->group;
	if (!g)
		return;
	if (o->gprev)
		o->gprev->gnext = o->gnext;
	else
		g->head = o->gnext;
	if (o->gnext)
		o->gnext->gprev = o->gprev;
	o->group = NULL;
	o->gnext = o->gprev = NULL;
}

void weft__tp_obj_close(struct weft__tp_obj *o)
{
	weft_pool *p = o->pool;
	pthread_mutex_lock(&p->group_lock);
	unlink_locked(o);
	pthread_mutex_unlock(&p->group_lock);
	weft__store_rel(&o->closed, 1u);
	weft__tp_obj_unref(o);
}

weft_cleanup_group *weft_cleanup_group_create(weft_pool *p)
{
	if (!p)
		return NULL;
	weft_cleanup_group *g = calloc(1, sizeof *g);
	if (g)
		g->pool = p;
	return g;
}

static int add(weft_cleanup_group *g, struct weft__tp_obj *o)
{
	if (!g || !o)
		return -EINVAL;
	if (o->pool != g->pool)
		return -EXDEV;
	int r = 0;
	pthread_mutex_lock(&g->pool->group_lock);
	if (o->group) {
		r = -EBUSY;
	} else {
		o->group = g;
		o->gprev = NULL;
		o->gnext = g->head;
		if (g->head)
			g->head->gprev = o;
		g->head = o;
	}
	pthread_mutex_unlock(&g->pool->group_lock);
	return r;
}

int weft_cleanup_group_add_work(weft_cleanup_group *g, weft_work *w)
{
	return add(g, (struct weft__tp_obj *)(void *)w);
}

int weft_cleanup_group_add_timer(weft_cleanup_group *g, weft_pool_timer *t)
{
	return add(g, t ? &t->obj : NULL);
}

int weft_cleanup_group_add_waiter(weft_cleanup_group *g, weft_pool_waiter *wt)
{
	return add(g, wt ? &wt->obj : NULL);
}

int weft_cleanup_group_add_io(weft_cleanup_group *g, weft_pool_io *io)
{
	return add(g, io ? &io->obj : NULL);
}

void weft_cleanup_group_close_members(weft_cleanup_group *g, bool cancel_pending)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->pool->group_lock);
	struct weft__tp_obj *list = g->head;
	g->head = NULL;
	for (struct weft__tp_obj *o = list; o; o = o->gnext)
		o->group = NULL;
	pthread_mutex_unlock(&g->pool->group_lock);
	/* The list is ours now: nobody else links or unlinks these members. */
	while (list) {
		struct weft__tp_obj *o = list;
		list = o->gnext;
		o->gnext = o->gprev = NULL;
		o->member_close(o, cancel_pending);
	}
}

void weft_cleanup_group_close(weft_cleanup_group *g, bool cancel_pending)
{
	if (!g)
		return;
	weft_cleanup_group_close_members(g, cancel_pending);
	free(g);
}
