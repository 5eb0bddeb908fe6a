/* bench_port.c - the completion port (issue 5) beside the classic Linux hand-offs.
 *
 * Every hand-off below is a channel with put (never blocks) and take (blocks):
 *   weft_port       weft_port_post / weft_port_get (port concurrency 0: one per CPU)
 *   weft_port_many  weft_port_post / weft_port_get_many (up to 16 packets per call)
 *   mutex_cond      a ring under a pthread mutex, a condvar for sleeping consumers
 *   eventfd_epoll   a ring under a pthread mutex plus a semaphore-mode eventfd; each
 *                   consumer epoll_waits on it (EPOLLEXCLUSIVE) and reads one token
 *   pipe            8-byte records through a pipe (one write, one read per packet)
 *
 * port_stream/<impl>/consumers:<k>: the benchmark thread posts packets, k consumer threads
 *   take them. The producer stays at most WINDOW packets ahead of what the consumers took
 *   (it yields while the window is full), so no queue grows without bound and the run ends
 *   with every packet taken (the drain is inside the measured time). ns_pkt: wall ns per
 *   packet; cpu_ns_pkt: process CPU ns per packet (CLOCK_PROCESS_CPUTIME_ID, all threads).
 * port_rt/<impl>/consumers:<k>: round trips: the benchmark thread puts a ping on channel A,
 *   one of k helpers takes it and puts the reply on channel B, which the benchmark thread
 *   takes. rt_us, cpu_us_rt; same_cpu: the share of sampled round trips (1 in 64) where
 *   the helper took the ping on the CPU the benchmark thread then took the reply on (the
 *   scheduler's placement, which decides whether a spinning waiter helps or hurts).
 * port_idle/<impl>: one round trip, then one consumer blocked in take while the benchmark
 *   thread sleeps 200 ms (quick: 20 ms): cpu_us_idle is the consumer thread's CPU time from
 *   the ping to the end of the sleep (its take and reply, its bounded spin, then nothing if
 *   it really sleeps).
 * port_io/<op>/<impl>: asynchronous I/O through a port against the plain system calls.
 *   The port's backend is fixed per process (weft_port_create caches the first choice of
 *   WEFT_BACKEND), so every row of this family runs in a child: weft-bench re-executes
 *   itself with WEFT_BACKEND=uring|epoll and WEFT_BENCH_PORT_CHILD set, the child measures
 *   for a fixed time and writes its counts back through a pipe. us_op: wall us per
 *   operation in the child, cpu_us_op: the child's CPU per operation.
 *     fileread: 4 KiB reads of a 1 MiB cached file (written just before): pread in a loop,
 *       or weft_port_read with qd reads in flight (1 or 8), completions by get_many.
 *     filewrite: the same with 4 KiB writes over the file's blocks (pwrite; or
 *       weft_port_write, qd 1).
 *     fileread_2threads: the same reads from 2 threads on one port (concurrency 2), each
 *       keeping qd reads in flight (1 or 8) and taking any completions (get_many); or 2
 *       threads of pread. us_op is wall time over the ops of both threads (2 threads
 *       in parallel: half of the one-thread figure).
 *     tcp: a 64-byte loopback round trip to a blocking echo thread (TCP_NODELAY):
 *       blocking send + recv, or weft_port_recv posted first then weft_port_send, and both
 *       completions taken from the port.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <weft/pool.h>

#include "bench_common.h"

extern char **environ;

#define WINDOW 1024u     /* stream: packets the producer may be ahead */
#define RING 2048u       /* ring capacity (>= WINDOW + stop packets), power of two */
#define STOP UINT64_MAX  /* the packet that tells a consumer to leave */
#define MAXC 4           /* consumers at most */
#define MANY 16          /* weft_port_get_many batch */

enum kind { K_PORT, K_PORT_MANY, K_MUTEX_COND, K_EVENTFD_EPOLL, K_PIPE, K_COUNT };
static const char *const kind_names[K_COUNT] = {"weft_port", "weft_port_many", "mutex_cond",
						"eventfd_epoll", "pipe"};

typedef struct chan {
	enum kind kind;
	weft_port *port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t head, len, sleepers;
	int efd, pfd[2];
	int last_cpu; /* port_rt: CPU of the helper that took a sampled ping (relaxed) */
	uint64_t ring[RING];
} chan;

/* One taker (a consumer thread, or the benchmark thread taking replies). */
typedef struct taker {
	chan *ch;
	int epfd;
	uint32_t bn, bi;
	weft_completion buf[MANY];
} taker;

static int chan_init(chan *c, enum kind k)
{
	memset(c, 0, sizeof *c);
	c->kind = k;
	c->efd = c->pfd[0] = c->pfd[1] = -1;
	switch (k) {
	case K_PORT:
	case K_PORT_MANY:
		c->port = weft_port_create(0);
		return c->port ? 0 : -ENOMEM;
	case K_MUTEX_COND:
	case K_EVENTFD_EPOLL:
		pthread_mutex_init(&c->mu, NULL);
		pthread_cond_init(&c->cv, NULL);
		if (k == K_EVENTFD_EPOLL) {
			c->efd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
			return c->efd < 0 ? -errno : 0;
		}
		return 0;
	case K_PIPE:
		return pipe2(c->pfd, O_CLOEXEC) < 0 ? -errno : 0;
	default:
		return -EINVAL;
	}
}

static void chan_destroy(chan *c)
{
	if (c->port)
		weft_port_close(c->port);
	if (c->kind == K_MUTEX_COND || c->kind == K_EVENTFD_EPOLL) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
	}
	if (c->efd >= 0)
		close(c->efd);
	if (c->pfd[0] >= 0) {
		close(c->pfd[0]);
		close(c->pfd[1]);
	}
}

static void taker_init(taker *t, chan *c)
{
	memset(t, 0, sizeof *t);
	t->ch = c;
	t->epfd = -1;
	if (c->kind == K_EVENTFD_EPOLL) {
		t->epfd = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
		epoll_ctl(t->epfd, EPOLL_CTL_ADD, c->efd, &ev);
	}
}

static void taker_fini(taker *t)
{
	if (t->epfd >= 0)
		close(t->epfd);
}

static inline __attribute__((always_inline)) void ring_push(chan *c, uint64_t v)
{
	c->ring[(c->head + c->len) & (RING - 1)] = v;
	c->len++;
}

static inline __attribute__((always_inline)) uint64_t ring_pop(chan *c)
{
	uint64_t v = c->ring[c->head];
	c->head = (c->head + 1) & (RING - 1);
	c->len--;
	return v;
}

static inline __attribute__((always_inline)) void chan_put(chan *c, enum kind k, uint64_t v)
{
	switch (k) {
	case K_PORT:
	case K_PORT_MANY:
		weft_port_post(c->port, 0, (uintptr_t)v, NULL);
		break;
	case K_MUTEX_COND:
		pthread_mutex_lock(&c->mu);
		ring_push(c, v);
		if (c->sleepers)
			pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		break;
	case K_EVENTFD_EPOLL: {
		pthread_mutex_lock(&c->mu);
		ring_push(c, v);
		pthread_mutex_unlock(&c->mu);
		uint64_t one = 1;
		if (write(c->efd, &one, sizeof one) != sizeof one)
			abort();
		break;
	}
	case K_PIPE:
		if (write(c->pfd[1], &v, sizeof v) != sizeof v)
			abort();
		break;
	default:
		abort();
	}
}

static inline __attribute__((always_inline)) uint64_t chan_take(taker *t, enum kind k)
{
	chan *c = t->ch;
	switch (k) {
	case K_PORT: {
		uint32_t bytes;
		uintptr_t key;
		weft_overlapped *ov;
		if (weft_port_get(c->port, &bytes, &key, &ov, WEFT_INFINITE) != 0)
			abort();
		return (uint64_t)key;
	}
	case K_PORT_MANY:
		if (t->bi == t->bn) {
			uint32_t n = 0;
			while (n == 0)
				if (weft_port_get_many(c->port, t->buf, MANY, &n, WEFT_INFINITE, false) != 0)
					abort();
			t->bn = n;
			t->bi = 0;
		}
		return (uint64_t)t->buf[t->bi++].key;
	case K_MUTEX_COND: {
		pthread_mutex_lock(&c->mu);
		while (c->len == 0) {
			c->sleepers++;
			pthread_cond_wait(&c->cv, &c->mu);
			c->sleepers--;
		}
		uint64_t v = ring_pop(c);
		pthread_mutex_unlock(&c->mu);
		return v;
	}
	case K_EVENTFD_EPOLL:
		for (;;) {
			uint64_t tok;
			if (read(c->efd, &tok, sizeof tok) == sizeof tok) {
				pthread_mutex_lock(&c->mu);
				uint64_t v = ring_pop(c);
				pthread_mutex_unlock(&c->mu);
				return v;
			}
			struct epoll_event ev;
			epoll_wait(t->epfd, &ev, 1, -1);
		}
	case K_PIPE: {
		uint64_t v;
		if (read(c->pfd[0], &v, sizeof v) != sizeof v)
			abort();
		return v;
	}
	default:
		abort();
	}
}

/* ---- consumer threads ------------------------------------------------------------------ */

typedef struct consumer {
	WEFT_CACHE_ALIGNED uint64_t taken; /* written by the consumer only (relaxed store) */
	taker tk;
	chan *reply;		/* port_rt: where the reply goes */
	enum kind kind;
	pthread_t tid;
} consumer;

#define CONSUMER_BODY(K)                                                                        \
	static void *consume_##K(void *arg)                                                     \
	{                                                                                       \
		consumer *c = arg;                                                              \
		uint64_t n = 0;                                                                 \
		for (;;) {                                                                      \
			uint64_t v = chan_take(&c->tk, K);                                      \
			if (v == STOP) {                                                        \
				/* a batch may hold another consumer's stop: pass it on */      \
				while (c->tk.bi < c->tk.bn)                                     \
					chan_put(c->tk.ch, K, c->tk.buf[c->tk.bi++].key);       \
				break;                                                          \
			}                                                                       \
			if (c->reply) {                                                         \
				if ((v & 63) == 0)                                              \
					__atomic_store_n(&c->tk.ch->last_cpu, sched_getcpu(),    \
							 __ATOMIC_RELAXED);                     \
				chan_put(c->reply, K, v);                                       \
			}                                                                       \
			__atomic_store_n(&c->taken, ++n, __ATOMIC_RELEASE);                     \
		}                                                                               \
		return NULL;                                                                    \
	}
CONSUMER_BODY(K_PORT)
CONSUMER_BODY(K_PORT_MANY)
CONSUMER_BODY(K_MUTEX_COND)
CONSUMER_BODY(K_EVENTFD_EPOLL)
CONSUMER_BODY(K_PIPE)
static void *(*const consume_fn[K_COUNT])(void *) = {consume_K_PORT, consume_K_PORT_MANY,
						     consume_K_MUTEX_COND, consume_K_EVENTFD_EPOLL,
						     consume_K_PIPE};

static void consumers_start(consumer *cs, int n, chan *in, chan *reply, enum kind k)
{
	for (int i = 0; i < n; i++) {
		memset(&cs[i], 0, sizeof cs[i]);
		taker_init(&cs[i].tk, in);
		cs[i].reply = reply;
		cs[i].kind = k;
		if (pthread_create(&cs[i].tid, NULL, consume_fn[k], &cs[i]) != 0)
			abort();
	}
}

static void consumers_stop(consumer *cs, int n, chan *in, enum kind k)
{
	for (int i = 0; i < n; i++)
		chan_put(in, k, STOP);
	for (int i = 0; i < n; i++) {
		pthread_join(cs[i].tid, NULL);
		taker_fini(&cs[i].tk);
	}
}

static uint64_t consumers_taken(consumer *cs, int n)
{
	uint64_t s = 0;
	for (int i = 0; i < n; i++)
		s += __atomic_load_n(&cs[i].taken, __ATOMIC_ACQUIRE);
	return s;
}

/* ---- port_stream ----------------------------------------------------------------------- */

#define STREAM_BATCH 64

static inline __attribute__((always_inline)) void stream_body(weft_bench_state *st, enum kind k)
{
	int nc = (int)weft_bench_arg(st, 0);
	chan *ch = aligned_alloc(64, sizeof(chan));
	consumer *cs = aligned_alloc(64, sizeof(consumer) * MAXC);
	if (!ch || !cs || chan_init(ch, k) != 0) {
		weft_bench_skip_with_error(st, "channel set-up failed");
		while (weft_bench_batch(st, 1))
			;
		free(ch);
		free(cs);
		return;
	}
	consumers_start(cs, nc, ch, NULL, k);
	uint64_t posted = 0, taken = 0, w0 = 0, c0 = 0;
	bool first = true;
	while (weft_bench_batch(st, STREAM_BATCH)) {
		if (first) {
			w0 = bench_now_ns(CLOCK_MONOTONIC);
			c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
			first = false;
		}
		for (int i = 0; i < STREAM_BATCH; i++) {
			if (posted - taken >= WINDOW) {
				taken = consumers_taken(cs, nc);
				while (posted - taken >= WINDOW) {
					sched_yield();
					taken = consumers_taken(cs, nc);
				}
			}
			chan_put(ch, k, posted++);
		}
	}
	while (consumers_taken(cs, nc) != posted)
		sched_yield();
	uint64_t w1 = bench_now_ns(CLOCK_MONOTONIC), c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	consumers_stop(cs, nc, ch, k);
	chan_destroy(ch);
	free(ch);
	free(cs);
	if (posted) {
		weft_bench_counter(st, "ns_pkt", (double)(w1 - w0) / (double)posted, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "cpu_ns_pkt", (double)(c1 - c0) / (double)posted, WEFT_BENCH_PLAIN);
	}
	weft_bench_set_items(st, (int64_t)posted);
}

/* ---- port_rt --------------------------------------------------------------------------- */

#define RT_BATCH 8

static inline __attribute__((always_inline)) void rt_body(weft_bench_state *st, enum kind k)
{
	int nc = (int)weft_bench_arg(st, 0);
	chan *ch = aligned_alloc(64, sizeof(chan) * 2);
	consumer *cs = aligned_alloc(64, sizeof(consumer) * MAXC);
	if (!ch || !cs || chan_init(&ch[0], k) != 0 || chan_init(&ch[1], k) != 0) {
		weft_bench_skip_with_error(st, "channel set-up failed");
		while (weft_bench_batch(st, 1))
			;
		free(ch);
		free(cs);
		return;
	}
	consumers_start(cs, nc, &ch[0], &ch[1], k);
	taker me;
	taker_init(&me, &ch[1]);
	uint64_t n = 0, bad = 0, w0 = 0, c0 = 0, sampled = 0, same = 0;
	bool first = true;
	while (weft_bench_batch(st, RT_BATCH)) {
		if (first) {
			w0 = bench_now_ns(CLOCK_MONOTONIC);
			c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
			first = false;
		}
		for (int i = 0; i < RT_BATCH; i++) {
			chan_put(&ch[0], k, n);
			bad += chan_take(&me, k) != n;
			if ((n & 63) == 0) {
				/* the reply's hand-off orders the helper's store before this load */
				sampled++;
				same += sched_getcpu() == __atomic_load_n(&ch[0].last_cpu, __ATOMIC_RELAXED);
			}
			n++;
		}
	}
	uint64_t w1 = bench_now_ns(CLOCK_MONOTONIC), c1 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	consumers_stop(cs, nc, &ch[0], k);
	taker_fini(&me);
	chan_destroy(&ch[0]);
	chan_destroy(&ch[1]);
	free(ch);
	free(cs);
	if (bad)
		weft_bench_skip_with_error(st, "a reply did not match its ping");
	if (n) {
		weft_bench_counter(st, "rt_us", (double)(w1 - w0) / (double)n / 1e3, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "cpu_us_rt", (double)(c1 - c0) / (double)n / 1e3, WEFT_BENCH_PLAIN);
		weft_bench_counter(st, "same_cpu", sampled ? (double)same / (double)sampled : 0,
				   WEFT_BENCH_PLAIN);
	}
	weft_bench_set_items(st, (int64_t)n);
}

/* ---- port_idle ------------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void idle_body(weft_bench_state *st, enum kind k)
{
	chan *ch = aligned_alloc(64, sizeof(chan) * 2);
	consumer *cs = aligned_alloc(64, sizeof(consumer));
	if (!ch || !cs || chan_init(&ch[0], k) != 0 || chan_init(&ch[1], k) != 0) {
		weft_bench_skip_with_error(st, "channel set-up failed");
		while (weft_bench_batch(st, 1))
			;
		free(ch);
		free(cs);
		return;
	}
	consumers_start(cs, 1, &ch[0], &ch[1], k);
	taker me;
	taker_init(&me, &ch[1]);
	clockid_t clk;
	pthread_getcpuclockid(cs[0].tid, &clk);
	const uint64_t sleep_ns = bench_quick ? 20000000ull : 200000000ull;
	double cpu_us = 0;
	uint64_t n = 0;
	while (weft_bench_batch(st, 1)) {
		/* from before the ping: the consumer's take, reply, and its way back into take
		 * (spin, then sleep) are all counted, so a spin cannot hide behind a slow reply */
		uint64_t t0 = bench_now_ns(clk);
		chan_put(&ch[0], k, n);
		(void)chan_take(&me, k);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)sleep_ns};
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
			;
		cpu_us += (double)(bench_now_ns(clk) - t0) / 1e3;
		n++;
	}
	consumers_stop(cs, 1, &ch[0], k);
	taker_fini(&me);
	chan_destroy(&ch[0]);
	chan_destroy(&ch[1]);
	free(ch);
	free(cs);
	weft_bench_counter(st, "cpu_us_idle", n ? cpu_us / (double)n : 0, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "idle_ms", (double)sleep_ns / 1e6, WEFT_BENCH_PLAIN);
}

#define KIND_BMS(K)                                                                             \
	static void bm_stream_##K(weft_bench_state *st, void *ctx)                              \
	{                                                                                       \
		(void)ctx;                                                                      \
		stream_body(st, K);                                                             \
	}                                                                                       \
	static void bm_rt_##K(weft_bench_state *st, void *ctx)                                  \
	{                                                                                       \
		(void)ctx;                                                                      \
		rt_body(st, K);                                                                 \
	}                                                                                       \
	static void bm_idle_##K(weft_bench_state *st, void *ctx)                                \
	{                                                                                       \
		(void)ctx;                                                                      \
		idle_body(st, K);                                                               \
	}
KIND_BMS(K_PORT)
KIND_BMS(K_PORT_MANY)
KIND_BMS(K_MUTEX_COND)
KIND_BMS(K_EVENTFD_EPOLL)
KIND_BMS(K_PIPE)
static const weft_bench_fn stream_fn[K_COUNT] = {bm_stream_K_PORT, bm_stream_K_PORT_MANY,
						 bm_stream_K_MUTEX_COND, bm_stream_K_EVENTFD_EPOLL,
						 bm_stream_K_PIPE};
static const weft_bench_fn rt_fn[K_COUNT] = {bm_rt_K_PORT, bm_rt_K_PORT_MANY, bm_rt_K_MUTEX_COND,
					     bm_rt_K_EVENTFD_EPOLL, bm_rt_K_PIPE};
static const weft_bench_fn idle_fn[K_COUNT] = {bm_idle_K_PORT, bm_idle_K_PORT_MANY,
					       bm_idle_K_MUTEX_COND, bm_idle_K_EVENTFD_EPOLL,
					       bm_idle_K_PIPE};

/* ---- port_io: runs in a child process ---------------------------------------------------- */

#define IO_BLOCK 4096u
#define IO_FILE (1u << 20)
#define IO_MSG 64u

struct io_result {
	uint64_t ops, wall_ns, cpu_ns;
	char backend[16];
	char err[96];
};

static int io_file_make(char *path, size_t cap)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, cap, "%s/weft-bench-io-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	unlink(path);
	static char blk[IO_BLOCK];
	for (uint32_t off = 0; off < IO_FILE; off += IO_BLOCK) {
		memset(blk, (int)(off / IO_BLOCK), sizeof blk);
		if (pwrite(fd, blk, IO_BLOCK, off) != (ssize_t)IO_BLOCK) {
			close(fd);
			return -EIO;
		}
	}
	/* read it once so every block is in the page cache */
	for (uint32_t off = 0; off < IO_FILE; off += IO_BLOCK)
		if (pread(fd, blk, IO_BLOCK, off) != (ssize_t)IO_BLOCK) {
			close(fd);
			return -EIO;
		}
	return fd;
}

/* pread/pwrite, or weft_port_read/weft_port_write (write: the file's blocks are
 * overwritten in place, so it stays 1 MiB and cached). */
static ssize_t io_rw(bool write, int fd, void *buf, off_t off)
{
	return write ? pwrite(fd, buf, IO_BLOCK, off) : pread(fd, buf, IO_BLOCK, off);
}

static int io_port_rw(bool write, weft_port *p, int fd, void *buf, weft_overlapped *ov)
{
	return write ? weft_port_write(p, fd, buf, IO_BLOCK, ov) : weft_port_read(p, fd, buf, IO_BLOCK, ov);
}

static void io_fileread(struct io_result *r, bool use_port, uint32_t qd, double secs, bool write)
{
	char path[256];
	int fd = io_file_make(path, sizeof path);
	if (fd < 0) {
		snprintf(r->err, sizeof r->err, "test file: %s", strerror(-fd));
		return;
	}
	static char bufs[8][IO_BLOCK];
	weft_port *p = NULL;
	weft_overlapped ov[8];
	if (use_port) {
		p = weft_port_create(1);
		if (!p || weft_port_associate(p, fd, 1) != 0) {
			snprintf(r->err, sizeof r->err, "port set-up failed");
			close(fd);
			return;
		}
		snprintf(r->backend, sizeof r->backend, "%s", weft_port_backend(p));
	} else {
		snprintf(r->backend, sizeof r->backend, "none");
	}
	uint64_t next = 0, ops = 0, w0 = 0, c0 = 0, deadline = 0;
	const uint64_t warm = 256;
	if (!use_port) {
		for (uint64_t i = 0;; i++) {
			if (i == warm) {
				w0 = bench_now_ns(CLOCK_MONOTONIC);
				c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
				deadline = w0 + (uint64_t)(secs * 1e9);
			}
			if (io_rw(write, fd, bufs[0], (off_t)(next % IO_FILE)) != (ssize_t)IO_BLOCK) {
				snprintf(r->err, sizeof r->err, "pread/pwrite failed");
				break;
			}
			next += IO_BLOCK;
			if (i >= warm) {
				ops++;
				if ((ops & 63) == 0 && bench_now_ns(CLOCK_MONOTONIC) >= deadline)
					break;
			}
		}
	} else {
		for (uint32_t i = 0; i < qd; i++) {
			memset(&ov[i], 0, sizeof ov[i]);
			ov[i].offset = next % IO_FILE;
			next += IO_BLOCK;
			if (io_port_rw(write, p, fd, bufs[i], &ov[i]) != 0) {
				snprintf(r->err, sizeof r->err, "weft_port_read/write failed");
				goto out;
			}
		}
		uint64_t done = 0;
		bool stopping = false;
		uint32_t inflight = qd;
		while (inflight) {
			weft_completion c[8];
			uint32_t n = 0;
			int e = weft_port_get_many(p, c, qd, &n, 10000, false); /* fail, not hang */
			if (e != 0) {
				snprintf(r->err, sizeof r->err, "get_many: %s", strerror(-e));
				goto out;
			}
			for (uint32_t j = 0; j < n; j++) {
				weft_overlapped *o = c[j].ov;
				inflight--;
				if (o->status != 0 || o->bytes != IO_BLOCK) {
					snprintf(r->err, sizeof r->err, "completed with %d, %u bytes",
						 (int)o->status, (unsigned)o->bytes);
					stopping = true;
					continue;
				}
				done++;
				if (done == warm) {
					w0 = bench_now_ns(CLOCK_MONOTONIC);
					c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
					deadline = w0 + (uint64_t)(secs * 1e9);
				} else if (done > warm) {
					ops++;
					if ((ops & 63) == 0 && bench_now_ns(CLOCK_MONOTONIC) >= deadline)
						stopping = true;
				}
				if (stopping)
					continue;
				size_t slot = (size_t)(o - ov);
				o->offset = next % IO_FILE;
				next += IO_BLOCK;
				if (io_port_rw(write, p, fd, bufs[slot], o) != 0) {
					snprintf(r->err, sizeof r->err, "weft_port_read/write failed");
					stopping = true;
					continue;
				}
				inflight++;
			}
		}
	}
	r->wall_ns = bench_now_ns(CLOCK_MONOTONIC) - w0;
	r->cpu_ns = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	r->ops = ops;
out:
	if (p) {
		weft_port_close_fd(p, fd);
		weft_port_close(p);
	} else {
		close(fd);
	}
}

/* fileread with 2 threads on one port (concurrency 2): each thread keeps qd 4 KiB reads
 * in flight on its own overlappeds and takes completions with get_many (any thread's:
 * it resubmits whichever overlapped came back, into that overlapped's buffer); or 2
 * threads of plain pread (the machine's own parallelism for this loop). Shows whether
 * submissions from several threads serialize inside the port. */
#define IO_MT 2u
#define IO_MT_QD 8u

struct io_mt {
	weft_port *p;
	int fd;
	uint32_t qd;
	uint32_t stop, inflight; /* atomics */
	uint64_t ops[IO_MT];
	weft_overlapped ov[IO_MT * IO_MT_QD];
	char err[96];
	char bufs[IO_MT * IO_MT_QD][IO_BLOCK];
};

struct io_mt_arg {
	struct io_mt *m;
	uint32_t idx;
};

static void io_mt_fail(struct io_mt *m, const char *what)
{
	__atomic_fetch_sub(&m->inflight, 1u, __ATOMIC_RELEASE);
	__atomic_store_n(&m->stop, 1u, __ATOMIC_RELAXED);
	snprintf(m->err, sizeof m->err, "%s", what); /* a failed run: its numbers are dropped */
}

static void *io_mt_thread(void *arg)
{
	struct io_mt_arg *a = arg;
	struct io_mt *m = a->m;
	uint64_t ops = 0, next = (uint64_t)a->idx * (IO_FILE / 2);
	if (!m->p) {
		while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
			if (pread(m->fd, m->bufs[a->idx], IO_BLOCK, (off_t)(next % IO_FILE)) != (ssize_t)IO_BLOCK)
				break;
			next += IO_BLOCK;
			ops++;
		}
		m->ops[a->idx] = ops;
		return NULL;
	}
	for (uint32_t i = 0; i < m->qd; i++) {
		weft_overlapped *o = &m->ov[a->idx * m->qd + i];
		memset(o, 0, sizeof *o);
		o->offset = next % IO_FILE;
		next += IO_BLOCK;
		if (weft_port_read(m->p, m->fd, m->bufs[o - m->ov], IO_BLOCK, o) != 0)
			io_mt_fail(m, "weft_port_read failed");
	}
	while (__atomic_load_n(&m->inflight, __ATOMIC_ACQUIRE)) {
		weft_completion c[IO_MT_QD];
		uint32_t n = 0;
		if (weft_port_get_many(m->p, c, m->qd, &n, 10, false) != 0)
			continue; /* timeout: look at inflight again */
		for (uint32_t j = 0; j < n; j++) {
			weft_overlapped *o = c[j].ov;
			if (o->status != 0 || o->bytes != IO_BLOCK)
				snprintf(m->err, sizeof m->err, "read completed with %d", (int)o->status);
			ops++;
			if (__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
				__atomic_fetch_sub(&m->inflight, 1u, __ATOMIC_RELEASE);
				continue;
			}
			o->offset = next % IO_FILE;
			next += IO_BLOCK;
			if (weft_port_read(m->p, m->fd, m->bufs[o - m->ov], IO_BLOCK, o) != 0)
				io_mt_fail(m, "weft_port_read failed");
		}
	}
	m->ops[a->idx] = ops;
	return NULL;
}

static void io_fileread_mt(struct io_result *r, bool use_port, uint32_t qd, double secs)
{
	char path[256];
	struct io_mt *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return;
	}
	m->qd = qd < 1 ? 1 : qd > IO_MT_QD ? IO_MT_QD : qd;
	m->fd = io_file_make(path, sizeof path);
	if (m->fd < 0) {
		snprintf(r->err, sizeof r->err, "test file: %s", strerror(-m->fd));
		free(m);
		return;
	}
	snprintf(r->backend, sizeof r->backend, "none");
	if (use_port) {
		m->p = weft_port_create(IO_MT);
		if (!m->p || weft_port_associate(m->p, m->fd, 1) != 0) {
			snprintf(r->err, sizeof r->err, "port set-up failed");
			goto out;
		}
		snprintf(r->backend, sizeof r->backend, "%s", weft_port_backend(m->p));
	}
	m->inflight = IO_MT * m->qd;
	pthread_t t[IO_MT];
	struct io_mt_arg a[IO_MT];
	uint64_t w0 = bench_now_ns(CLOCK_MONOTONIC), c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (uint32_t i = 0; i < IO_MT; i++) {
		a[i] = (struct io_mt_arg){m, i};
		pthread_create(&t[i], NULL, io_mt_thread, &a[i]);
	}
	struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
	nanosleep(&ts, NULL);
	__atomic_store_n(&m->stop, 1u, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < IO_MT; i++)
		pthread_join(t[i], NULL);
	r->wall_ns = bench_now_ns(CLOCK_MONOTONIC) - w0;
	r->cpu_ns = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	for (uint32_t i = 0; i < IO_MT; i++)
		r->ops += m->ops[i];
	if (m->err[0])
		snprintf(r->err, sizeof r->err, "%s", m->err);
out:
	if (m->p) {
		weft_port_close_fd(m->p, m->fd);
		weft_port_close(m->p);
	} else {
		close(m->fd);
	}
	free(m);
}

static void *io_echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char b[IO_MSG];
	for (;;) {
		ssize_t n = recv(fd, b, sizeof b, 0);
		if (n <= 0)
			break;
		if (send(fd, b, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
	return NULL;
}

static int io_tcp_pair(int *cli, int *srv)
{
	*cli = *srv = -1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		return -errno;
	*cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof a) < 0)
		return -errno;
	*srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	if (*srv < 0)
		return -errno;
	int one = 1;
	setsockopt(*cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

static void io_tcp(struct io_result *r, bool use_port, double secs)
{
	int cli = -1, srv = -1;
	int e = io_tcp_pair(&cli, &srv);
	if (e < 0) {
		snprintf(r->err, sizeof r->err, "loopback pair: %s", strerror(-e));
		return;
	}
	pthread_t echo;
	pthread_create(&echo, NULL, io_echo, (void *)(intptr_t)srv);
	weft_port *p = NULL;
	if (use_port) {
		p = weft_port_create(1);
		if (!p || weft_port_associate(p, cli, 1) != 0) {
			snprintf(r->err, sizeof r->err, "port set-up failed");
			goto out;
		}
		snprintf(r->backend, sizeof r->backend, "%s", weft_port_backend(p));
	} else {
		snprintf(r->backend, sizeof r->backend, "none");
	}
	char out_msg[IO_MSG], in_msg[IO_MSG];
	memset(out_msg, 'x', sizeof out_msg);
	uint64_t ops = 0, w0 = 0, c0 = 0, deadline = 0;
	const uint64_t warm = 200;
	for (uint64_t i = 0;; i++) {
		if (i == warm) {
			w0 = bench_now_ns(CLOCK_MONOTONIC);
			c0 = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID);
			deadline = w0 + (uint64_t)(secs * 1e9);
		}
		out_msg[0] = (char)i;
		uint32_t got = 0;
		if (!use_port) {
			if (send(cli, out_msg, IO_MSG, MSG_NOSIGNAL) != IO_MSG) {
				snprintf(r->err, sizeof r->err, "send failed");
				break;
			}
			while (got < IO_MSG) {
				ssize_t n = recv(cli, in_msg + got, IO_MSG - got, 0);
				if (n <= 0) {
					snprintf(r->err, sizeof r->err, "recv failed");
					goto out;
				}
				got += (uint32_t)n;
			}
		} else {
			weft_overlapped rov, sov;
			memset(&rov, 0, sizeof rov);
			memset(&sov, 0, sizeof sov);
			if (weft_port_recv(p, cli, in_msg, IO_MSG, &rov) != 0 ||
			    weft_port_send(p, cli, out_msg, IO_MSG, &sov) != 0) {
				snprintf(r->err, sizeof r->err, "submit failed");
				goto out;
			}
			bool sent = false, rcvd = false;
			while (!sent || !rcvd) {
				uint32_t b;
				uintptr_t key;
				weft_overlapped *o;
				if (weft_port_get(p, &b, &key, &o, 5000) != 0) {
					snprintf(r->err, sizeof r->err, "get failed");
					goto out;
				}
				if (o->status != 0) {
					snprintf(r->err, sizeof r->err, "op failed: %s", strerror(-o->status));
					goto out;
				}
				if (o == &sov) {
					sent = true;
				} else {
					got += o->bytes;
					if (o->bytes == 0) {
						snprintf(r->err, sizeof r->err, "peer closed");
						goto out;
					}
					if (got < IO_MSG) {
						memset(&rov, 0, sizeof rov);
						if (weft_port_recv(p, cli, in_msg + got, IO_MSG - got, &rov) != 0) {
							snprintf(r->err, sizeof r->err, "recv submit failed");
							goto out;
						}
					} else {
						rcvd = true;
					}
				}
			}
		}
		if (in_msg[0] != (char)i) {
			snprintf(r->err, sizeof r->err, "echo mismatch");
			break;
		}
		if (i >= warm) {
			ops++;
			if ((ops & 15) == 0 && bench_now_ns(CLOCK_MONOTONIC) >= deadline)
				break;
		}
	}
	r->wall_ns = bench_now_ns(CLOCK_MONOTONIC) - w0;
	r->cpu_ns = bench_now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	r->ops = ops;
out:
	if (p) {
		weft_port_close_fd(p, cli);
		weft_port_close(p);
	} else {
		close(cli);
	}
	pthread_join(echo, NULL); /* the echo thread sees the close (recv 0) and leaves */
	close(srv);
}

/* The child: WEFT_BENCH_PORT_CHILD="<op> <qd> <seconds>", results on fd 3. */
static void io_child(const char *spec)
{
	char op[32] = "";
	unsigned qd = 0;
	double secs = 0.2;
	struct io_result r;
	memset(&r, 0, sizeof r);
	if (sscanf(spec, "%31s %u %lf", op, &qd, &secs) != 3) {
		snprintf(r.err, sizeof r.err, "bad child spec");
	} else if (strcmp(op, "fileread") == 0) {
		io_fileread(&r, qd > 0, qd ? qd : 1, secs, false);
	} else if (strcmp(op, "filewrite") == 0) {
		io_fileread(&r, qd > 0, qd ? qd : 1, secs, true);
	} else if (strcmp(op, "fileread2t") == 0) {
		io_fileread_mt(&r, qd > 0, qd, secs);
	} else if (strcmp(op, "tcp") == 0) {
		io_tcp(&r, qd > 0, secs);
	} else {
		snprintf(r.err, sizeof r.err, "unknown op");
	}
	char line[256];
	int n = snprintf(line, sizeof line, "%llu %llu %llu %s %s\n", (unsigned long long)r.ops,
			 (unsigned long long)r.wall_ns, (unsigned long long)r.cpu_ns,
			 r.backend[0] ? r.backend : "-", r.err[0] ? r.err : "ok");
	if (write(3, line, (size_t)n) != n)
		_exit(2);
	_exit(0);
}

typedef struct io_row {
	const char *name;	/* port_io/<op>/<impl> */
	const char *op;
	const char *backend;	/* NULL: plain system calls */
	unsigned qd;		/* 0: plain system calls */
} io_row;

static const io_row io_rows[] = {
	{"port_io/fileread/pread", "fileread", NULL, 0},
	{"port_io/fileread/weft_uring_qd1", "fileread", "uring", 1},
	{"port_io/fileread/weft_epoll_qd1", "fileread", "epoll", 1},
	{"port_io/fileread/weft_uring_qd8", "fileread", "uring", 8},
	{"port_io/fileread/weft_epoll_qd8", "fileread", "epoll", 8},
	{"port_io/filewrite/pwrite", "filewrite", NULL, 0},
	{"port_io/filewrite/weft_uring_qd1", "filewrite", "uring", 1},
	{"port_io/filewrite/weft_epoll_qd1", "filewrite", "epoll", 1},
	{"port_io/fileread_2threads/pread", "fileread2t", NULL, 0},
	{"port_io/fileread_2threads/weft_uring_qd1", "fileread2t", "uring", 1},
	{"port_io/fileread_2threads/weft_epoll_qd1", "fileread2t", "epoll", 1},
	{"port_io/fileread_2threads/weft_uring_qd8", "fileread2t", "uring", 8},
	{"port_io/fileread_2threads/weft_epoll_qd8", "fileread2t", "epoll", 8},
	{"port_io/tcp/blocking", "tcp", NULL, 0},
	{"port_io/tcp/weft_uring", "tcp", "uring", 1},
	{"port_io/tcp/weft_epoll", "tcp", "epoll", 1},
};

static int io_spawn(const io_row *row, struct io_result *r)
{
	char spec[96], backend[48];
	snprintf(spec, sizeof spec, "WEFT_BENCH_PORT_CHILD=%s %u %g", row->op, row->qd,
		 bench_quick ? 0.02 : 0.25);
	snprintf(backend, sizeof backend, "WEFT_BACKEND=%s", row->backend ? row->backend : "epoll");
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **envp = calloc(ne + 3, sizeof *envp);
	if (!envp)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], "WEFT_BACKEND=", 13) != 0 &&
		    strncmp(environ[i], "WEFT_BENCH_PORT_CHILD=", 22) != 0)
			envp[k++] = environ[i];
	envp[k++] = backend;
	envp[k++] = spec;
	envp[k] = NULL;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		free(envp);
		return -errno;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 3);
	char *argv[] = {"weft-bench", "--weft-no-parallel-check", NULL};
	pid_t pid;
	int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	close(pfd[1]);
	if (e != 0) {
		close(pfd[0]);
		return -e;
	}
	char line[256];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(pfd[0], line + got, sizeof line - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	line[got] = 0;
	close(pfd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	unsigned long long ops, wall, cpu;
	char be[16], rest[96];
	memset(r, 0, sizeof *r);
	if (sscanf(line, "%llu %llu %llu %15s %95[^\n]", &ops, &wall, &cpu, be, rest) != 5) {
		snprintf(r->err, sizeof r->err, "child failed (status %d)", status);
		return -EIO;
	}
	r->ops = ops;
	r->wall_ns = wall;
	r->cpu_ns = cpu;
	snprintf(r->backend, sizeof r->backend, "%s", be);
	if (strcmp(rest, "ok") != 0)
		snprintf(r->err, sizeof r->err, "%s", rest);
	return 0;
}

static void bm_io(weft_bench_state *st, void *ctx)
{
	const io_row *row = ctx;
	uint64_t ops = 0, wall = 0, cpu = 0;
	char err[128] = "";
	while (weft_bench_batch(st, 1)) {
		struct io_result r;
		io_spawn(row, &r);
		if (r.err[0] && !err[0])
			snprintf(err, sizeof err, "%s", r.err);
		if (row->backend && strcmp(r.backend, row->backend) != 0 && !err[0])
			snprintf(err, sizeof err, "child got backend %s", r.backend);
		ops += r.ops;
		wall += r.wall_ns;
		cpu += r.cpu_ns;
	}
	if (err[0] || !ops) {
		weft_bench_skip_with_error(st, err[0] ? err : "no operations");
		return;
	}
	weft_bench_counter(st, "us_op", (double)wall / (double)ops / 1e3, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "cpu_us_op", (double)cpu / (double)ops / 1e3, WEFT_BENCH_PLAIN);
	weft_bench_counter(st, "child_ops", (double)ops, WEFT_BENCH_PLAIN);
}

/* ---- registration ------------------------------------------------------------------------ */

void bench_port_register(void)
{
	const char *child = getenv("WEFT_BENCH_PORT_CHILD");
	if (child)
		io_child(child); /* never returns */

	static const int64_t cons_full[] = {1, 2, 4}, cons_quick[] = {1, 2};
	static const char *const cons_name[] = {"consumers"};
	const int64_t *cons = bench_quick ? cons_quick : cons_full;
	size_t ncons = bench_quick ? 2 : 3;
	char name[96];
	for (int k = 0; k < K_COUNT; k++) {
		snprintf(name, sizeof name, "port_stream/%s", kind_names[k]);
		weft_bench_register(name, stream_fn[k], &(weft_bench_opts){
			.args = cons, .n_args = ncons, .arity = 1, .arg_names = cons_name,
			.real_time = true, .warmup_time = bench_quick ? 0.0 : 0.05});
	}
	for (int k = 0; k < K_COUNT; k++) {
		snprintf(name, sizeof name, "port_rt/%s", kind_names[k]);
		weft_bench_register(name, rt_fn[k], &(weft_bench_opts){
			.args = cons, .n_args = ncons, .arity = 1, .arg_names = cons_name,
			.real_time = true, .warmup_time = bench_quick ? 0.0 : 0.05});
	}
	for (int k = 0; k < K_COUNT; k++) {
		if (k == K_PORT_MANY)
			continue;
		snprintf(name, sizeof name, "port_idle/%s", kind_names[k]);
		weft_bench_register(name, idle_fn[k], &(weft_bench_opts){
			.iterations = bench_quick ? 1 : 3, .real_time = true});
	}
	for (size_t i = 0; i < sizeof io_rows / sizeof io_rows[0]; i++) {
		if (io_rows[i].backend && !weft_port_backend_available(io_rows[i].backend))
			continue;
		weft_bench_register(io_rows[i].name, bm_io, &(weft_bench_opts){
			.iterations = 1, .real_time = true, .ctx = (void *)&io_rows[i]});
	}
}
