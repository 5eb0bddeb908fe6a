/* udp.c - UDP on the completion port (<weft/net.h>, weft_udp_*).
 *
 * One bound socket. `recvs` receive contexts are posted at all times, each with its own
 * buffer and source address; a completion runs on_datagram and reposts the same context.
 * Sends take one of `max_sends` send contexts from a free list (none free: the datagram
 * is dropped with -ENOBUFS, as a full socket buffer would drop it), copy the datagram into
 * the context's buffer (grown once to the largest size seen, so a warm socket allocates
 * nothing) and hand it to the port.
 *
 * Shutdown: `stopping` is set under the exclusive side of `gate`; every post happens
 * under its shared side after checking `stopping`, so once it is set no operation can be
 * posted on the fd, and weft_port_close_fd cancels those in flight. `live` counts the
 * contexts posted or being handled; destroy frees nothing before it reads 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/net.h>

#include "atomic.h"
#include "internal.h"
#include "net_internal.h"

enum { UIO_RECV = 1, UIO_SEND };

#define UDP_QUIT_KEY ((uintptr_t)-1)

struct udp_io {
	weft_overlapped ov;
	uint8_t kind;
	weft_udp *u;
	struct udp_io *next_free;   /* send contexts: the free list, under free_lock */
	char *buf;
	uint32_t cap;
	socklen_t addrlen;          /* receives: in/out for recvfrom */
	struct sockaddr_storage addr;
};

struct weft_udp {
	weft_port *port;
	int fd, port_no;
	bool associated;
	uint32_t threads, nrecvs, max_dgram, max_sends;
	void (*on_datagram)(weft_udp *u, const void *data, size_t len, const struct sockaddr *from,
			    socklen_t fromlen);
	void *user;
	pthread_t *workers;
	uint32_t nworkers;
	bool solo;                  /* the one port thread is the port's reaper (solo mode) */
	struct udp_io *recv_ios, *send_ios;
	weft_srw gate;              /* shared: posting; exclusive: setting stopping */
	bool stopping;              /* under gate */
	weft_spinlock free_lock;
	struct udp_io *free_sends;  /* under free_lock */
	uint32_t live;              /* atomic; see the top of the file */
	/* statistics, atomic, relaxed: counters publish nothing */
	uint64_t dgrams_in, dgrams_out, bytes_in, bytes_out, dropped, errors;
};

static inline void count(uint64_t *c, uint64_t d)
{
	weft__fadd_rlx(c, d);   /* relaxed: a statistic */
}

static inline void live_done(weft_udp *u)
{
	/* release: this context's last touch of u happens before destroy reads live == 0
	 * (its acquire load in udp_stop) */
	weft__fsub_rel(&u->live, 1);
}

/* Posts (or reposts) a receive context. The caller has counted it in live. */
static void post_recv(weft_udp *u, struct udp_io *io)
{
	int rc = -ESHUTDOWN;
	weft_srw_lock_shared(&u->gate);
	if (!u->stopping) {
		io->addrlen = sizeof io->addr;
		rc = weft_port_recvfrom(u->port, u->fd, io->buf, u->max_dgram, (struct sockaddr *)&io->addr,
					&io->addrlen, &io->ov);
	}
	weft_srw_unlock_shared(&u->gate);
	if (rc < 0) {
		if (rc != -ESHUTDOWN)
			count(&u->errors, 1);
		live_done(u);
	}
}

static void on_recv(weft_udp *u, struct udp_io *io)
{
	int st = io->ov.status;
	if (st == -ECANCELED || st == -ESHUTDOWN) {
		live_done(u);
		return;
	}
	if (st == 0) {
		count(&u->dgrams_in, 1);
		count(&u->bytes_in, io->ov.bytes);
		if (u->on_datagram)
			u->on_datagram(u, io->buf, io->ov.bytes, (const struct sockaddr *)&io->addr, io->addrlen);
	} else {
		count(&u->errors, 1);
	}
	post_recv(u, io);
}

static void send_ctx_put(weft_udp *u, struct udp_io *io)
{
	weft_spin_lock(&u->free_lock);
	io->next_free = u->free_sends;
	u->free_sends = io;
	weft_spin_unlock(&u->free_lock);
}

static void on_send(weft_udp *u, struct udp_io *io)
{
	if (io->ov.status < 0) {
		count(&u->errors, 1);
	} else {
		count(&u->dgrams_out, 1);
		count(&u->bytes_out, io->ov.bytes);
	}
	send_ctx_put(u, io);
	live_done(u);
}

int weft_udp_sendto(weft_udp *u, const void *data, size_t len, const struct sockaddr *to, socklen_t tolen)
{
	if (!to || tolen == 0 || tolen > sizeof(struct sockaddr_storage) || (len && !data))
		return -EINVAL;
	if (len > u->max_dgram)
		return -EMSGSIZE;
	weft_spin_lock(&u->free_lock);
	struct udp_io *io = u->free_sends;
	if (io)
		u->free_sends = io->next_free;
	weft_spin_unlock(&u->free_lock);
	if (!io) {
		count(&u->dropped, 1);
		return -ENOBUFS;
	}
	if (io->cap < len || !io->buf) {
		/* Grown once to the largest datagram this context carried: no allocation per
		 * send once warm. */
		size_t cap = len < 2048 ? 2048 : len;
		char *nb = realloc(io->buf, cap);
		if (!nb) {
			send_ctx_put(u, io);
			return -ENOMEM;
		}
		io->buf = nb;
		io->cap = (uint32_t)cap;
	}
	if (len)
		memcpy(io->buf, data, len);
	int rc = -ESHUTDOWN;
	weft_srw_lock_shared(&u->gate);
	if (!u->stopping) {
		weft__fadd_rlx(&u->live, 1);   /* relaxed: ordered by the gate against destroy */
		rc = weft_port_sendto(u->port, u->fd, io->buf, (uint32_t)len, to, tolen, &io->ov);
		if (rc < 0)
			weft__fsub_rel(&u->live, 1);
	}
	weft_srw_unlock_shared(&u->gate);
	if (rc < 0)
		send_ctx_put(u, io);
	return rc;
}

/* A port thread; it leaves on a quit packet, for the reason given in server.c. */
static void *udp_worker(void *arg)
{
	weft_udp *u = arg;
	weft_completion ev[32];
	for (;;) {
		uint32_t n = 0, quits = 0;
		if (weft_port_get_many(u->port, ev, 32, &n, WEFT_INFINITE, false) == -ESHUTDOWN)
			break;
		for (uint32_t i = 0; i < n; i++) {
			if (!ev[i].ov) {
				quits += ev[i].key == UDP_QUIT_KEY;
				continue;
			}
			struct udp_io *io = weft_container_of(ev[i].ov, struct udp_io, ov);
			if (io->kind == UIO_RECV)
				on_recv(u, io);
			else
				on_send(u, io);
		}
		if (quits) {
			while (--quits)
				if (weft_port_post(u->port, 0, UDP_QUIT_KEY, NULL) < 0)
					break;
			break;
		}
	}
	return NULL;
}

/* Stops posting, cancels what is in flight and waits until no context is live. */
static void udp_solo(void *arg)
{
	(void)udp_worker(arg);
}

static void udp_stop(weft_udp *u)
{
	weft_srw_lock_exclusive(&u->gate);
	u->stopping = true;
	weft_srw_unlock_exclusive(&u->gate);
	if (u->fd >= 0) {
		if (u->associated)
			weft_port_close_fd(u->port, u->fd);
		else
			close(u->fd);
		u->fd = -1;
	}
	/* acquire: pairs with live_done's release */
	while (weft__load_acq(&u->live) != 0)
		usleep(1000);
}

static void udp_free(weft_udp *u)
{
	udp_stop(u);
	bool posted = true;
	if (u->solo) {
		/* as in server.c: the solo thread leaves before the close joins the reaper */
		while (weft_port_post(u->port, 0, UDP_QUIT_KEY, NULL) == -ENOMEM)
			usleep(1000);
		weft__port_solo_join(u->port);
	}
	for (uint32_t i = 0; i < u->nworkers && posted; i++)
		posted = weft_port_post(u->port, 0, UDP_QUIT_KEY, NULL) == 0;
	if (!posted)
		weft_port_close(u->port);
	for (uint32_t i = 0; i < u->nworkers; i++)
		pthread_join(u->workers[i], NULL);
	if (u->port && posted)
		weft_port_close(u->port);
	for (uint32_t i = 0; u->recv_ios && i < u->nrecvs; i++)
		free(u->recv_ios[i].buf);
	for (uint32_t i = 0; u->send_ios && i < u->max_sends; i++)
		free(u->send_ios[i].buf);
	free(u->recv_ios);
	free(u->send_ios);
	free(u->workers);
	free(u);
}

static int udp_bind(weft_udp *u, const char *spec)
{
	struct sockaddr_in a;
	int rc = weft__net_parse_addr(spec ? spec : "127.0.0.1:0", &a);
	if (rc < 0)
		return rc;
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0)
		return -errno;
	socklen_t len = sizeof a;
	if (bind(u->fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(u->fd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	u->port_no = ntohs(a.sin_port);
	return 0;
}

static int udp_start(weft_udp *u, const weft_udp_config *cfg)
{
	int rc = udp_bind(u, cfg->bind);
	if (rc < 0)
		return rc;
	u->port = weft_port_create(u->threads);
	if (!u->port)
		return -ENODEV;
	if ((rc = weft_port_associate(u->port, u->fd, 0)) < 0)
		return rc;
	u->associated = true;
	u->workers = calloc(u->threads, sizeof *u->workers);
	u->recv_ios = calloc(u->nrecvs, sizeof *u->recv_ios);
	u->send_ios = calloc(u->max_sends, sizeof *u->send_ios);
	if (!u->workers || !u->recv_ios || !u->send_ios)
		return -ENOMEM;
	for (uint32_t i = 0; i < u->max_sends; i++) {
		u->send_ios[i].kind = UIO_SEND;
		u->send_ios[i].u = u;
		send_ctx_put(u, &u->send_ios[i]);
	}
	for (uint32_t i = 0; i < u->nrecvs; i++) {
		u->recv_ios[i].kind = UIO_RECV;
		u->recv_ios[i].u = u;
		if (!(u->recv_ios[i].buf = malloc(u->max_dgram)))
			return -ENOMEM;
	}
	u->solo = weft__net_solo_wanted(u->threads) && weft__port_solo(u->port, udp_solo, u) == 0;
	for (; !u->solo && u->nworkers < u->threads; u->nworkers++)
		if (pthread_create(&u->workers[u->nworkers], NULL, udp_worker, u) != 0)
			return -EAGAIN;
	for (uint32_t i = 0; i < u->nrecvs; i++) {
		weft__fadd_rlx(&u->live, 1);   /* relaxed: this thread reads it in udp_stop */
		post_recv(u, &u->recv_ios[i]);
	}
	return 0;
}

weft_udp *weft_udp_create(const weft_udp_config *cfg, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	weft_udp *u = cfg ? calloc(1, sizeof *u) : NULL;
	if (!u) {
		*err = cfg ? -ENOMEM : -EINVAL;
		return NULL;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	u->fd = -1;
	u->threads = cfg->threads ? cfg->threads : (uint32_t)(ncpu > 0 ? ncpu : 1);
	u->nrecvs = cfg->recvs ? cfg->recvs : 8;
	u->max_dgram = cfg->max_datagram ? cfg->max_datagram : 65536;
	u->max_sends = cfg->max_sends ? cfg->max_sends : 64;
	u->on_datagram = cfg->on_datagram;
	u->user = cfg->user;
	weft_srw_init(&u->gate);
	weft_spin_init(&u->free_lock);
	int rc = -EINVAL;
	if (u->threads <= 1024 && u->nrecvs <= 4096 && u->max_sends <= 65536 && u->max_dgram <= (1u << 20))
		rc = udp_start(u, cfg);
	if (rc < 0) {
		udp_free(u);
		*err = rc;
		return NULL;
	}
	*err = 0;
	return u;
}

int weft_udp_port(const weft_udp *u)
{
	return u->port_no;
}

const char *weft_udp_backend(const weft_udp *u)
{
	return weft_port_backend(u->port);
}

void *weft_udp_user(const weft_udp *u)
{
	return u->user;
}

void weft_udp_get_stats(const weft_udp *u, weft_udp_stats *o)
{
	o->datagrams_in = weft__load_rlx(&u->dgrams_in);
	o->datagrams_out = weft__load_rlx(&u->dgrams_out);
	o->bytes_in = weft__load_rlx(&u->bytes_in);
	o->bytes_out = weft__load_rlx(&u->bytes_out);
	o->dropped = weft__load_rlx(&u->dropped);
	o->errors = weft__load_rlx(&u->errors);
}

void weft_udp_destroy(weft_udp *u)
{
	if (u)
		udp_free(u);
}
