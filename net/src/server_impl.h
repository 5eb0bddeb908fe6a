/* server_impl.h - the server framework's private state, shared by server.c (listener,
 * accepts, port threads, idle sweeper, start and stop) and conn.c (a connection's
 * receive, send queue, sendfile, cork and closing). Private to net/. The lifetime and
 * locking rules are at the top of server.c. */
#ifndef WEFT_NET_SERVER_IMPL_H
#define WEFT_NET_SERVER_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <weft/net.h>

#include "atomic.h"
#include "bufpool.h"
#include "internal.h"

enum io_kind { IO_ACCEPT = 1, IO_RECV, IO_SEND, IO_CLOSE };

/* A per-I/O context: one operation in flight (or one close request queued). */
struct net_io {
	weft_overlapped ov;
	uint8_t kind;
	int accepted;               /* IO_ACCEPT: the new socket */
	struct weft_conn *c;        /* IO_RECV, IO_SEND, IO_CLOSE */
	weft_server *s;
};

struct weft_conn {
	weft_cs lock;               /* guards the fields marked (L) */
	weft_server *s;
	int fd;                     /* not to be used once closing is set */
	uint32_t refs;              /* atomic; see the top of server.c */
	struct net_io rio, sio, cio;
	struct weft__buf *rbuf;     /* the receive buffer, owned for the connection's life */
	struct weft__buf *sq_head, *sq_tail;   /* (L) the send queue, oldest first */
	struct weft__buf *inflight; /* (L) sq_head while a send of it is in flight */
	bool sf_inflight;           /* (L) a weft_conn_sendfile is in flight (then no buffer is) */
	uint32_t sf_len;            /* (L) its length, counted in sq_bytes */
	uint64_t sq_bytes;          /* (L) bytes queued; read relaxed by weft_conn_queued */
	bool paused;                /* (L) receive not reposted: queue over the high mark */
	bool closing;               /* (L) */
	bool close_queued;          /* (L) a close request sits in the port */
	int reason;                 /* (L) for on_close; written before closing is set */
	void *user;
	uint64_t last_active;         /* atomic, relaxed: monotonic ns of the last completed I/O */
	struct weft_conn *prev, *next;   /* the server's list, under s->list_lock */
};

struct weft_server {
	weft_port *port;
	int lfd, port_no;
	weft_server_callbacks cb;
	void *user;
	uint32_t threads, naccepts, max_conns, buf_size, send_queue_max;
	uint64_t high, low;         /* pause receiving at high queued bytes, resume at low */
	pthread_t *workers;
	uint32_t nworkers;
	bool solo;                  /* the one port thread is the port's reaper (server.c) */
	struct net_io *accept_ios;
	weft_cs listen_lock;        /* orders accept reposts against the listener's close */
	bool stopping;              /* set under listen_lock; read relaxed as a hint */
	bool stopped;               /* only the stopping thread touches it */
	uint32_t accepts_live;      /* atomic: accept contexts posted or being handled */
	weft_cs list_lock;
	struct weft_conn *conns;    /* under list_lock */
	struct weft__bufpool bufs;
	/* the idle sweeper: wakes every idle_ms / 4, or when stop signals sweep_cond */
	uint64_t idle_ns;
	pthread_t sweeper;
	bool sweeper_started;
	bool sweep_stop;            /* under sweep_mutex */
	pthread_mutex_t sweep_mutex;
	pthread_cond_t sweep_cond;
	/* statistics, atomic, relaxed: counters publish nothing */
	uint64_t accepted, refused, closed, active, bytes_in, bytes_out, errors, queued, recv_pauses;
	uint64_t timeouts;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void count(uint64_t *c, int64_t d)
{
	/* relaxed: a statistic, or (active) polled with its own acquire in wait_zero */
	weft__fadd_rlx(c, (uint64_t)d);
}

/* conn.c */
/* The last reference is gone: on_close, then the connection is freed. */
WEFT_INTERNAL void weft__conn_final(struct weft_conn *c);
/* Starts closing c (idempotent); drops the open reference. */
WEFT_INTERNAL void weft__conn_shutdown(struct weft_conn *c, int reason);
/* Queues a close request so that on_close runs on a port thread; false when c was
 * already closing or asked to. */
WEFT_INTERNAL bool weft__conn_close_async(struct weft_conn *c, int reason);
/* Posts the receive; lock held, not closing. 0 or the port's error. */
WEFT_INTERNAL int weft__conn_post_recv_locked(struct weft_conn *c);
/* A receive or send completed (port thread); each drops the operation's reference. */
WEFT_INTERNAL void weft__conn_on_recv(struct weft_conn *c, int status, uint32_t bytes);
WEFT_INTERNAL void weft__conn_on_send(struct weft_conn *c, int status, uint32_t bytes);

static inline void conn_ref(struct weft_conn *c)
{
	/* relaxed: the caller already holds a reference, so c stays alive */
	weft__fadd_rlx(&c->refs, 1);
}

static inline void conn_unref(struct weft_conn *c)
{
	/* acq_rel: the release publishes this thread's writes to c; the acquire of the
	 * thread that drops the last reference pairs with it before weft__conn_final reads them */
	if (weft__fsub_acqrel(&c->refs, 1) == 1)
		weft__conn_final(c);
}

#endif
