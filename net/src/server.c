/* server.c - the completion-port TCP server framework of <weft/net.h>: the listener and
 * its posted accepts, the port threads, the idle sweeper, start and stop. A connection
 * once accepted (receive, send queue, sendfile, cork, closing) is conn.c; the shared
 * state is server_impl.h.
 *
 * Every asynchronous operation carries a per-I/O context (struct net_io) that embeds its
 * weft_overlapped; a port thread recovers the context with weft_container_of and
 * dispatches on its kind. A connection has at most one receive and one send in flight,
 * each with its own context inside the connection, plus one close request.
 *
 * Lifetime of a connection: refs counts one "open" reference (dropped once, when the
 * connection starts closing) plus one per operation in flight or packet queued, plus one
 * held by accept_conn while it sets the connection up. The thread that drops the last
 * reference calls on_close and frees the connection; that is always a port thread,
 * because every path that can hold the last reference runs on one. A thread touches c
 * (even only to leave c->lock) only while it holds a reference or the server's list lock
 * (conn_final unlinks under it before freeing).
 *
 * Closing: `closing` is set under the connection's lock, and every operation is posted
 * under that lock after checking it, so once it is set no operation can be posted on the
 * fd; weft_port_close_fd then cancels those in flight and closes the fd. The fd number
 * may be reused at once by a new accept, which is why nothing may touch c->fd after. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/net.h>

#include "atomic.h"
#include "bufpool.h"
#include "internal.h"
#include "net_internal.h"
#include "server_impl.h"

/* ---- accepting ---------------------------------------------------------------------- */

static struct weft_conn *conn_new(weft_server *s, int fd)
{
	struct weft_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->rbuf = weft__bufpool_get(&s->bufs);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	weft_cs_init(&c->lock, 200);
	c->s = s;
	c->fd = fd;
	c->refs = 1;
	c->rio = (struct net_io){ .kind = IO_RECV, .c = c, .s = s };
	c->sio = (struct net_io){ .kind = IO_SEND, .c = c, .s = s };
	c->cio = (struct net_io){ .kind = IO_CLOSE, .c = c, .s = s };
	c->last_active = s->idle_ns ? now_ns() : 0;
	return c;
}

static void accept_conn(weft_server *s, int fd)
{
	/* Reserve a slot first, so two threads accepting at once cannot both take the last.
	 * relaxed: a count, nothing is published through it (stop's waits pair with the
	 * release in weft__conn_final). */
	uint64_t n = weft__load_rlx(&s->active);
	do {
		if (n >= s->max_conns) {
			count(&s->refused, 1);   /* before the peer can see the close */
			close(fd);
			return;
		}
	} while (!weft__cas_rlx(&s->active, &n, n + 1));
	struct weft_conn *c = conn_new(s, fd);
	if (!c) {
		close(fd);
		count(&s->errors, 1);
		weft__fsub_rel(&s->active, 1);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = weft_port_associate(s->port, fd, (uintptr_t)c);
	if (rc < 0) {
		close(fd);
		weft__bufpool_put(&s->bufs, c->rbuf);
		weft_cs_destroy(&c->lock);
		free(c);
		count(&s->errors, 1);
		weft__fsub_rel(&s->active, 1);
		return;
	}
	count(&s->accepted, 1);
	/* Our own reference until the end: once c is listed (the sweeper, a stop) or its
	 * receive is posted, another thread may close it and drop the open reference while
	 * this thread still runs on_accept or leaves c->lock. */
	c->refs = 2;
	weft_cs_enter(&s->list_lock);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	weft_cs_leave(&s->list_lock);
	if (s->cb.on_accept && (rc = s->cb.on_accept(c)) < 0) {
		weft__conn_shutdown(c, rc);
		conn_unref(c);
		return;
	}
	weft_cs_enter(&c->lock);
	if (!c->closing)
		rc = weft__conn_post_recv_locked(c);
	weft_cs_leave(&c->lock);
	if (rc < 0)
		weft__conn_shutdown(c, rc);
	conn_unref(c);
}

static void on_accept(struct net_io *io, int status)
{
	weft_server *s = io->s;
	if (status == 0) {
		if (weft__load_rlx(&s->stopping))
			close(io->accepted);   /* accepted just before the listener closed */
		else
			accept_conn(s, io->accepted);
	} else if (status != -ECANCELED && status != -ESHUTDOWN) {
		count(&s->errors, 1);
	}
	int rc = -ESHUTDOWN;
	weft_cs_enter(&s->listen_lock);
	if (!s->stopping && status != -ECANCELED && status != -ESHUTDOWN)
		rc = weft_port_accept(s->port, s->lfd, &io->accepted, NULL, 0, &io->ov);
	weft_cs_leave(&s->listen_lock);
	if (rc < 0) {
		if (rc != -ESHUTDOWN)
			count(&s->errors, 1);
		/* release: pairs with the acquire in weft_server_stop; this context is done */
		weft__fsub_rel(&s->accepts_live, 1);
	}
}

/* ---- port threads ------------------------------------------------------------------- */

static void dispatch(weft_overlapped *ov)
{
	struct net_io *io = weft_container_of(ov, struct net_io, ov);
	switch (io->kind) {
	case IO_ACCEPT:
		on_accept(io, ov->status);
		break;
	case IO_RECV:
		weft__conn_on_recv(io->c, ov->status, ov->bytes);
		break;
	case IO_SEND:
		weft__conn_on_send(io->c, ov->status, ov->bytes);
		break;
	case IO_CLOSE: {
		/* under the lock: a concurrent weft__conn_shutdown (peer EOF) may be writing it */
		weft_cs_enter(&io->c->lock);
		int reason = io->c->reason;
		weft_cs_leave(&io->c->lock);
		weft__conn_shutdown(io->c, reason);
		conn_unref(io->c);
		break;
	}
	default:
		weft__die("weft_server: unknown completion kind %d", io->kind);
	}
}

/* A user packet without an overlapped telling one port thread to leave. */
#define QUIT_KEY ((uintptr_t)-1)

/* A port thread. It leaves on a quit packet, not on the port's close: a thread whose
 * first get came after weft_port_close returned would touch a freed port (only threads
 * that already took part may call get late), and a thread slow to start can be that
 * late. So the server posts one quit per thread, joins them all, then closes the port. */
static void *worker_main(void *arg)
{
	weft_server *s = arg;
	weft_completion ev[32];
	for (;;) {
		uint32_t n = 0, quits = 0;
		int rc = weft_port_get_many(s->port, ev, 32, &n, WEFT_INFINITE, false);
		if (rc == -ESHUTDOWN)
			break;
		for (uint32_t i = 0; i < n; i++) {
			if (ev[i].ov)
				dispatch(ev[i].ov);
			else if (ev[i].key == QUIT_KEY)
				quits++;
		}
		if (quits) {
			/* One quit each: hand back the ones this batch took for other threads. */
			while (--quits)
				if (weft_port_post(s->port, 0, QUIT_KEY, NULL) < 0)
					break;
			break;
		}
	}
	return NULL;
}

/* Solo mode (pool/src/port_io.c): with one port thread, the thread is the port's
 * reaper itself, so the server runs one thread where it would run two, and on io_uring
 * a completion needs no hand-off between them. WEFT_PORT_SOLO=0 turns it off. */
bool weft__net_solo_wanted(uint32_t threads)
{
	const char *e = getenv("WEFT_PORT_SOLO");
	return threads == 1 && !(e && strcmp(e, "0") == 0);
}

static void solo_main(void *arg)
{
	(void)worker_main(arg);
}

/* ---- idle connections ---------------------------------------------------------------- */

/* Closes the connections that received nothing for idle_ns. A walk of the list every
 * quarter of the timeout costs O(connections) four times per timeout and nothing per
 * request beyond one clock read, where a timer per connection would cost a heap update
 * on every receive. */
static void sweep(weft_server *s)
{
	uint64_t now = now_ns();
	weft_cs_enter(&s->list_lock);
	/* c stays alive while listed: weft__conn_final unlinks under list_lock before freeing */
	for (struct weft_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		/* last_active may be a moment after now: a completion raced this sweep */
		uint64_t last = weft__load_rlx(&c->last_active);
		if (last < now && now - last > s->idle_ns && weft__conn_close_async(c, -ETIMEDOUT))
			count(&s->timeouts, 1);
	}
	weft_cs_leave(&s->list_lock);
}

static void *sweeper_main(void *arg)
{
	weft_server *s = arg;
	uint64_t period = s->idle_ns / 4;
	pthread_mutex_lock(&s->sweep_mutex);
	while (!s->sweep_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t t = (uint64_t)ts.tv_nsec + period;
		ts.tv_sec += (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		if (pthread_cond_timedwait(&s->sweep_cond, &s->sweep_mutex, &ts) == 0 || s->sweep_stop)
			continue;
		pthread_mutex_unlock(&s->sweep_mutex);
		sweep(s);
		pthread_mutex_lock(&s->sweep_mutex);
	}
	pthread_mutex_unlock(&s->sweep_mutex);
	return NULL;
}

static int sweeper_start(weft_server *s)
{
	if (!s->idle_ns)
		return 0;
	if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0)
		return -EAGAIN;
	s->sweeper_started = true;
	return 0;
}

static void sweeper_stop(weft_server *s)
{
	if (!s->sweeper_started)
		return;
	pthread_mutex_lock(&s->sweep_mutex);
	s->sweep_stop = true;
	pthread_cond_signal(&s->sweep_cond);
	pthread_mutex_unlock(&s->sweep_mutex);
	pthread_join(s->sweeper, NULL);
	s->sweeper_started = false;
}

/* ---- the server --------------------------------------------------------------------- */

int weft__net_parse_addr(const char *spec, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof host)
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port > 65535)
		return -EINVAL;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static int open_listener(weft_server *s, const char *spec)
{
	struct sockaddr_in a;
	int rc = weft__net_parse_addr(spec ? spec : "127.0.0.1:0", &a);
	if (rc < 0)
		return rc;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	s->lfd = fd;
	s->port_no = ntohs(a.sin_port);
	return 0;
}

static void server_free(weft_server *s)
{
	sweeper_stop(s);
	pthread_mutex_destroy(&s->sweep_mutex);
	pthread_cond_destroy(&s->sweep_cond);
	/* See worker_main: quit packets first, the port's close only once every thread left
	 * (a failed post falls back on the close, which ends every get with -ESHUTDOWN). */
	bool posted = true;
	if (s->solo) {
		/* the solo thread must leave before the close, which joins the reaper it runs
		 * on: a failed post (-ENOMEM, the only way it fails before the close) is tried
		 * again */
		while (weft_port_post(s->port, 0, QUIT_KEY, NULL) == -ENOMEM)
			usleep(1000);
		weft__port_solo_join(s->port);
	}
	for (uint32_t i = 0; i < s->nworkers && posted; i++)
		posted = weft_port_post(s->port, 0, QUIT_KEY, NULL) == 0;
	if (!posted)
		weft_port_close(s->port);
	for (uint32_t i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->port && posted)
		weft_port_close(s->port);
	if (s->lfd >= 0 && !s->stopping)
		close(s->lfd);
	weft__bufpool_fini(&s->bufs);
	weft_cs_destroy(&s->listen_lock);
	weft_cs_destroy(&s->list_lock);
	free(s->workers);
	free(s->accept_ios);
	free(s);
}

static int server_start(weft_server *s, const weft_server_config *cfg)
{
	int rc = open_listener(s, cfg->listen);
	if (rc < 0)
		return rc;
	s->port = weft_port_create(s->threads);
	if (!s->port)
		return -ENODEV;
	rc = weft_port_associate(s->port, s->lfd, 0);
	if (rc < 0)
		return rc;
	s->workers = calloc(s->threads, sizeof *s->workers);
	s->accept_ios = calloc(s->naccepts, sizeof *s->accept_ios);
	if (!s->workers || !s->accept_ios)
		return -ENOMEM;
	s->solo = weft__net_solo_wanted(s->threads) && weft__port_solo(s->port, solo_main, s) == 0;
	for (; !s->solo && s->nworkers < s->threads; s->nworkers++)
		if (pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) != 0)
			return -EAGAIN;
	if ((rc = sweeper_start(s)) < 0)
		return rc;
	for (uint32_t i = 0; i < s->naccepts; i++) {
		struct net_io *io = &s->accept_ios[i];
		*io = (struct net_io){ .kind = IO_ACCEPT, .s = s, .accepted = -1 };
		weft__fadd_rlx(&s->accepts_live, 1);
		weft_cs_enter(&s->listen_lock);
		rc = weft_port_accept(s->port, s->lfd, &io->accepted, NULL, 0, &io->ov);
		weft_cs_leave(&s->listen_lock);
		if (rc < 0) {
			weft__fsub_rel(&s->accepts_live, 1);
			return rc;
		}
	}
	return 0;
}

weft_server *weft_server_create(const weft_server_config *cfg, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	weft_server *s = cfg ? calloc(1, sizeof *s) : NULL;
	if (!s) {
		*err = cfg ? -ENOMEM : -EINVAL;
		return NULL;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s->lfd = -1;
	s->threads = cfg->threads ? cfg->threads : (uint32_t)(ncpu > 0 ? ncpu : 1);
	s->naccepts = cfg->accepts ? cfg->accepts : 16;
	s->max_conns = cfg->max_conns ? cfg->max_conns : 10000;
	s->buf_size = cfg->buf_size ? cfg->buf_size : 16384;
	s->send_queue_max = cfg->send_queue_max ? cfg->send_queue_max : 256 * 1024;
	if (s->send_queue_max < 2 * s->buf_size)
		s->send_queue_max = 2 * s->buf_size;
	/* An echo of one receive (<= buf_size) while under high always fits the bound. */
	s->high = s->send_queue_max / 2;
	s->low = s->high / 2;
	s->idle_ns = (uint64_t)cfg->idle_timeout_ms * 1000000ull;
	if (cfg->cb)
		s->cb = *cfg->cb;
	s->user = cfg->user;
	weft_cs_init(&s->listen_lock, 200);
	weft_cs_init(&s->list_lock, 200);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sweep_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->sweep_mutex, NULL);
	int rc = -EINVAL;
	if (s->threads > 1024 || s->naccepts > 65536 || s->buf_size > (64u << 20) ||
	    (rc = weft__bufpool_init(&s->bufs, s->buf_size, s->naccepts + 4 * s->threads,
	                             s->max_conns < 1024 ? 2 * s->max_conns + 64 : 2048)) < 0) {
		weft_cs_destroy(&s->listen_lock);
		weft_cs_destroy(&s->list_lock);
		pthread_mutex_destroy(&s->sweep_mutex);
		pthread_cond_destroy(&s->sweep_cond);
		free(s);
		*err = rc;
		return NULL;
	}
	rc = server_start(s, cfg);
	if (rc < 0) {
		weft_server_stop(s, 0);
		server_free(s);
		*err = rc;
		return NULL;
	}
	*err = 0;
	return s;
}

int weft_server_port(const weft_server *s)
{
	return s->port_no;
}

const char *weft_server_backend(const weft_server *s)
{
	return weft_port_backend(s->port);
}

void *weft_server_user(const weft_server *s)
{
	return s->user;
}

void weft_server_get_stats(const weft_server *s, weft_server_stats *o)
{
	o->accepted = weft__load_rlx(&s->accepted);
	o->refused = weft__load_rlx(&s->refused);
	o->closed = weft__load_rlx(&s->closed);
	o->active = weft__load_rlx(&s->active);
	o->bytes_in = weft__load_rlx(&s->bytes_in);
	o->bytes_out = weft__load_rlx(&s->bytes_out);
	o->errors = weft__load_rlx(&s->errors);
	o->queued_bytes = weft__load_rlx(&s->queued);
	o->recv_pauses = weft__load_rlx(&s->recv_pauses);
	o->timeouts = weft__load_rlx(&s->timeouts);
	o->buf_allocs = weft__load_rlx(&s->bufs.allocs);
	o->buf_free = weft__load_rlx(&s->bufs.nfree);
	o->buf_in_use = weft__load_rlx(&s->bufs.out);
}

/* Waits (polling: stop is rare and slow by nature) until *counter is 0 or the deadline
 * (NULL: none) passes. True when it reached 0. */
static bool wait_zero(uint64_t *counter, const struct timespec *deadline)
{
	/* acquire: pairs with the release decrements in weft__conn_final / on_accept, so what
	 * those threads did is visible once the count reads 0 */
	while (weft__load_acq(counter) != 0) {
		if (deadline && weft__deadline_passed(deadline))
			return false;
		usleep(1000);
	}
	return true;
}

int weft_server_stop(weft_server *s, uint32_t timeout_ms)
{
	if (s->stopped)
		return 0;
	s->stopped = true;
	weft_cs_enter(&s->listen_lock);
	weft__store_rlx(&s->stopping, true);
	weft_cs_leave(&s->listen_lock);
	/* accepts complete with -ECANCELED; -ENOENT: never associated, close it here */
	if (s->lfd >= 0 && (!s->port || weft_port_close_fd(s->port, s->lfd) == -ENOENT))
		close(s->lfd);
	/* Every accept context handled: no connection can be created after this. */
	while (weft__load_acq(&s->accepts_live) != 0)
		usleep(1000);
	/* Idle connections still time out while the others finish. */
	struct timespec ts;
	bool drained = wait_zero(&s->active, weft__deadline(&ts, timeout_ms));
	sweeper_stop(s);
	if (drained)
		return 0;
	int forced = 0;
	weft_cs_enter(&s->list_lock);
	/* c stays alive while listed: weft__conn_final unlinks under list_lock before freeing */
	for (struct weft_conn *c = s->conns, *next; c; c = next) {
		next = c->next;   /* read first: a failed post may finish c at once */
		(void)weft__conn_close_async(c, -ESHUTDOWN);
		forced++;
	}
	weft_cs_leave(&s->list_lock);
	wait_zero(&s->active, NULL);
	return forced;
}

void weft_server_destroy(weft_server *s)
{
	if (!s)
		return;
	weft_server_stop(s, 0);
	server_free(s);
}
