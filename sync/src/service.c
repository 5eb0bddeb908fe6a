/* service.c - one background thread, started on first use, that turns file descriptors
 * becoming readable (timerfds of waitable timers, pidfds of child processes) into
 * signals on waitable objects.
 *
 * Watches live in a list under svc_lock, keyed by a 64-bit id carried in the epoll event
 * (never a pointer, so an event that raced with an unwatch finds nothing). Callbacks run
 * with svc_lock held; weft__service_unwatch takes it too, so once it returns the callback
 * is not running and never runs again, and the object it points at may be freed.
 * Lock order: svc_lock, then an object lock; nobody takes svc_lock under an object lock.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "handle.h"

struct watch {
	struct watch *next;
	uint64_t id;
	int fd;
	bool (*cb)(void *ctx);
	void *ctx;
};

static pthread_once_t svc_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t svc_lock = PTHREAD_MUTEX_INITIALIZER;
static int svc_ep = -1; /* written once under svc_once */
static int svc_err;
static struct watch *svc_watches; /* under svc_lock */
static uint64_t svc_next_id = 1;  /* under svc_lock */

/* With svc_lock held. */
static void drop_watch(struct watch **pp)
{
	struct watch *w = *pp;
	*pp = w->next;
	epoll_ctl(svc_ep, EPOLL_CTL_DEL, w->fd, NULL);
	free(w);
}

static void dispatch(uint64_t id)
{
	pthread_mutex_lock(&svc_lock);
	for (struct watch **pp = &svc_watches; *pp; pp = &(*pp)->next) {
		if ((*pp)->id != id)
			continue;
		if (!(*pp)->cb((*pp)->ctx))
			drop_watch(pp);
		break;
	}
	pthread_mutex_unlock(&svc_lock);
}

static void *svc_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "weft-service", 0, 0, 0);
	struct epoll_event evs[16];
	for (;;) {
		int n = epoll_wait(svc_ep, evs, 16, -1);
		for (int i = 0; i < n; i++)
			dispatch(evs[i].data.u64);
	}
	return NULL;
}

static void svc_start(void)
{
	svc_ep = epoll_create1(EPOLL_CLOEXEC);
	if (svc_ep < 0) {
		svc_err = -errno;
		return;
	}
	/* The service thread inherits a full signal mask: signals go to user threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t pa;
	pthread_t pt;
	pthread_attr_init(&pa);
	pthread_attr_setdetachstate(&pa, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&pa, 256 * 1024);
	int r = pthread_create(&pt, &pa, svc_main, NULL);
	pthread_attr_destroy(&pa);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		svc_err = -r;
}

int64_t weft__service_watch(int fd, bool (*cb)(void *ctx), void *ctx)
{
	pthread_once(&svc_once, svc_start);
	if (svc_err)
		return svc_err;
	struct watch *w = malloc(sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->cb = cb;
	w->ctx = ctx;
	pthread_mutex_lock(&svc_lock);
	w->id = svc_next_id++;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = w->id };
	if (epoll_ctl(svc_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int err = -errno;
		pthread_mutex_unlock(&svc_lock);
		free(w);
		return err;
	}
	w->next = svc_watches;
	svc_watches = w;
	/* Lifetime: once unlocked, the service thread may run and drop w (a child that
	 * already exited), so the id is read before. */
	int64_t id = (int64_t)w->id;
	pthread_mutex_unlock(&svc_lock);
	return id;
}

void weft__service_unwatch(uint64_t id, int fd)
{
	(void)fd;
	pthread_mutex_lock(&svc_lock);
	for (struct watch **pp = &svc_watches; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			drop_watch(pp);
			break;
		}
	}
	pthread_mutex_unlock(&svc_lock);
}
