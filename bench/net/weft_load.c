/* weft_load.c - the echo load generator for the I/O-models table.
 *
 * N connections to 127.0.0.1:PORT, each sending M messages of S bytes, pipeline depth 1:
 * a connection sends its next message only once the previous one came back whole. Every
 * echoed byte is checked against the pattern that was sent. Reports requests/s over the
 * message phase (connection setup excluded) and latency percentiles (p50, p99, max) of
 * every round trip. Bounded in count (N*M <= 20M, N <= 20000) and in time (-T).
 *
 *   weft_load -p PORT [-c CONNS] [-n MSGS] [-s SIZE] [-t THREADS] [-T MAX_SECONDS]
 *   weft_load --free-port            print a free 127.0.0.1 TCP port
 *   weft_load --wait-port PORT       wait (up to -T, default 10 s) until PORT accepts
 *   weft_load --parallel-check       the machine check: two threads of a plain read loop
 *                                    against one (>= 1.7x: the two CPUs really run in parallel)
 *
 * The last line of a run is machine-readable: "RESULT key=value ...". Exit status 0 when
 * every message came back intact, 1 on errors or timeout, 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 20000
#define MAX_TOTAL 20000000ull
#define MAX_SIZE (1u << 20)

struct opts {
	int port;
	uint32_t conns, msgs, size, threads;
	double max_secs;
};

struct conn {
	int fd;
	uint32_t id;        /* global index: seeds the byte pattern */
	uint32_t done;      /* messages completed */
	uint32_t sent;      /* bytes of the current message sent */
	uint32_t got;       /* bytes of the current message received and checked */
	bool want_out;      /* EPOLLOUT armed (a short send) */
	bool dead;
	uint64_t t0;        /* send time of the current message, ns */
};

struct worker {
	pthread_t th;
	const struct opts *o;
	struct conn *conns;
	uint32_t nconns;
	uint32_t *lat;      /* one slot per message of this worker's connections */
	uint64_t completed;
	uint64_t errors;
	uint64_t mismatches;
	bool timed_out;
	char *sendbuf;      /* scratch, size bytes */
	char *recvbuf;
};

static pthread_barrier_t start_barrier;
static uint64_t deadline_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Byte i of message k on connection c: cheap to recompute, differs per connection and
 * per message, so a crossed or stale echo is caught. */
static inline uint8_t pattern(uint32_t c, uint32_t k, uint32_t i)
{
	return (uint8_t)(c * 131u + k * 7u + i * 13u + (i >> 8));
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weft_load -p PORT [-c CONNS=50] [-n MSGS=10000] [-s SIZE=64] [-t THREADS=1]\n"
		"                 [-T MAX_SECONDS=60]\n"
		"       weft_load --free-port\n"
		"       weft_load --wait-port PORT [-T MAX_SECONDS=10]\n"
		"       weft_load --parallel-check   (2 threads of a read loop vs 1; prints the ratio)\n"
		"Echo load against 127.0.0.1:PORT: CONNS connections, MSGS messages of SIZE bytes\n"
		"each, one in flight per connection. Reports requests/s and latency p50/p99/max.\n"
		"Limits: CONNS <= %d, CONNS*MSGS <= %llu, SIZE <= %u.\n",
		MAX_CONNS, (unsigned long long)MAX_TOTAL, MAX_SIZE);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("weft_load: free port");
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

static int wait_port(int port, double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	do {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = loopback(port);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		usleep(20000);
	} while (now_ns() < end);
	fprintf(stderr, "weft_load: 127.0.0.1:%d did not accept within %.1f s\n", port, secs);
	return 1;
}

static int epoll_set(int ep, int op, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	return epoll_ctl(ep, op, c->fd, &ev);
}

static void conn_fail(struct worker *w, int ep, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	w->errors++;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
}

/* Sends what is left of the current message; arms EPOLLOUT on a short send. */
static void conn_send(struct worker *w, int ep, struct conn *c)
{
	uint32_t size = w->o->size;
	for (uint32_t i = c->sent; i < size; i++)
		w->sendbuf[i] = (char)pattern(c->id, c->done, i);
	while (c->sent < size) {
		ssize_t n = send(c->fd, w->sendbuf + c->sent, size - c->sent, MSG_NOSIGNAL);
		if (n > 0) {
			c->sent += (uint32_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			if (!c->want_out && epoll_set(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLOUT) == 0)
				c->want_out = true;
			return;
		} else {
			conn_fail(w, ep, c);
			return;
		}
	}
	if (c->want_out && epoll_set(ep, EPOLL_CTL_MOD, c, EPOLLIN) == 0)
		c->want_out = false;
}

static void conn_start_msg(struct worker *w, int ep, struct conn *c)
{
	c->sent = c->got = 0;
	c->t0 = now_ns();
	conn_send(w, ep, c);
}

/* Reads the echo of the current message, checks every byte, and on a whole message
 * records its latency and starts the next one. */
static void conn_recv(struct worker *w, int ep, struct conn *c)
{
	uint32_t size = w->o->size;
	for (;;) {
		ssize_t n = recv(c->fd, w->recvbuf, size - c->got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_fail(w, ep, c);
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			if ((uint8_t)w->recvbuf[i] != pattern(c->id, c->done, c->got + (uint32_t)i)) {
				w->mismatches++;
				conn_fail(w, ep, c);
				return;
			}
		}
		c->got += (uint32_t)n;
		if (c->got < size)
			continue;
		uint64_t dt = now_ns() - c->t0;
		w->lat[w->completed++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
		if (++c->done == w->o->msgs) {
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			return;
		}
		conn_start_msg(w, ep, c);
		if (c->dead || c->sent < size)
			return;
	}
}

static int conn_open(struct conn *c, int port)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	struct sockaddr_in a = loopback(port);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(c->fd);
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	uint32_t live = 0;
	for (uint32_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (ep < 0 || conn_open(c, w->o->port) < 0 || epoll_set(ep, EPOLL_CTL_ADD, c, EPOLLIN) < 0) {
			c->dead = true;
			w->errors++;
			continue;
		}
		live++;
	}
	pthread_barrier_wait(&start_barrier);
	for (uint32_t i = 0; i < w->nconns; i++) {
		if (w->conns[i].dead)
			continue;
		conn_start_msg(w, ep, &w->conns[i]);
		if (w->conns[i].dead)
			live--;
	}
	struct epoll_event evs[256];
	while (live > 0) {
		int n = epoll_wait(ep, evs, 256, 100);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->dead || c->done == w->o->msgs)
				continue;
			if (evs[i].events & EPOLLOUT)
				conn_send(w, ep, c);
			if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				conn_recv(w, ep, c);
			if (c->dead || c->done == w->o->msgs)
				live--;
		}
		if (now_ns() > deadline_ns) {
			w->timed_out = live > 0;
			break;
		}
	}
	for (uint32_t i = 0; i < w->nconns; i++)
		if (!w->conns[i].dead)
			close(w->conns[i].fd);
	if (ep >= 0)
		close(ep);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static double pct_us(const uint32_t *sorted, uint64_t n, double p)
{
	if (n == 0)
		return 0;
	uint64_t i = (uint64_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i] / 1000.0;
}

/* ---- the parallelism check: two threads of a plain read loop against one ---------------- */

#define PAR_WORDS 512   /* 4 KiB: stays in L1, so the loop measures the cores, not memory */
static uint64_t par_data[PAR_WORDS];

struct par_thread {
	pthread_t th;
	uint64_t deadline, loops;
	int *go;
};

static void *par_loop(void *arg)
{
	struct par_thread *t = arg;
	while (!__atomic_load_n(t->go, __ATOMIC_ACQUIRE))   /* pairs with the release below */
		;
	uint64_t loops = 0, sum = 0;
	while (now_ns() < t->deadline) {
		for (int i = 0; i < PAR_WORDS; i++)
			sum += ((volatile uint64_t *)par_data)[i];
		loops++;
	}
	__asm__ volatile("" : : "r"(sum) : "memory");
	t->loops = loops;
	return NULL;
}

static uint64_t par_run(int n, double secs)
{
	struct par_thread t[2];
	int go = 0;
	uint64_t deadline = now_ns() + 20000000ull + (uint64_t)(secs * 1e9);
	for (int i = 0; i < n; i++) {
		t[i] = (struct par_thread){ .deadline = deadline, .go = &go };
		pthread_create(&t[i].th, NULL, par_loop, &t[i]);
	}
	struct timespec settle = { 0, 20000000 };   /* both threads at the start line */
	nanosleep(&settle, NULL);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].th, NULL);
		total += t[i].loops;
	}
	return total;
}

/* Prints "PARALLEL ratio=R one=N two=M" and exits 0. */
static int parallel_check(void)
{
	uint64_t one = par_run(1, 0.25), two = par_run(2, 0.25);
	double ratio = one ? (double)two / (double)one : 0;
	printf("PARALLEL ratio=%.2f one=%" PRIu64 " two=%" PRIu64 " verdict=%s\n", ratio, one, two,
	       ratio >= 1.7 ? "ok" : "FLAGGED");
	return 0;
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	bool wait = false, secs_given = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
			exit(0);
		}
		if (!strcmp(a, "--free-port"))
			exit(free_port());
		if (!strcmp(a, "--parallel-check"))
			exit(parallel_check());
		if (i + 1 >= argc)
			return -1;
		const char *v = argv[++i];
		uint32_t x = 0;
		if (!strcmp(a, "-T")) {
			char *end;
			o->max_secs = strtod(v, &end);
			if (*end != '\0')
				return -1;
			secs_given = true;
			continue;
		}
		if (!parse_u32(v, &x))
			return -1;
		if (!strcmp(a, "--wait-port")) {
			o->port = (int)x;
			wait = true;
		} else if (!strcmp(a, "-p")) {
			o->port = (int)x;
		} else if (!strcmp(a, "-c")) {
			o->conns = x;
		} else if (!strcmp(a, "-n")) {
			o->msgs = x;
		} else if (!strcmp(a, "-s")) {
			o->size = x;
		} else if (!strcmp(a, "-t")) {
			o->threads = x;
		} else {
			return -1;
		}
	}
	if (o->port <= 0 || o->port > 65535 || !(o->max_secs > 0))
		return -1;
	if (wait)
		exit(wait_port(o->port, secs_given ? o->max_secs : 10));
	if (o->conns == 0 || o->conns > MAX_CONNS || o->msgs == 0 ||
	    (uint64_t)o->conns * o->msgs > MAX_TOTAL || o->size == 0 || o->size > MAX_SIZE ||
	    o->threads == 0 || o->threads > 64)
		return -1;
	if (o->threads > o->conns)
		o->threads = o->conns;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .conns = 50, .msgs = 10000, .size = 64, .threads = 1, .max_secs = 60 };
	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	uint64_t total = (uint64_t)o.conns * o.msgs;
	struct conn *conns = calloc(o.conns, sizeof *conns);
	uint32_t *lat = malloc(total * sizeof *lat);
	struct worker *ws = calloc(o.threads, sizeof *ws);
	if (!conns || !lat || !ws) {
		fprintf(stderr, "weft_load: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&start_barrier, NULL, o.threads + 1);
	uint32_t per = o.conns / o.threads, extra = o.conns % o.threads, at = 0;
	for (uint32_t t = 0; t < o.threads; t++) {
		struct worker *w = &ws[t];
		w->o = &o;
		w->nconns = per + (t < extra);
		w->conns = conns + at;
		w->lat = lat + (uint64_t)at * o.msgs;
		for (uint32_t i = 0; i < w->nconns; i++)
			w->conns[i].id = at + i;
		at += w->nconns;
		w->sendbuf = malloc(o.size);
		w->recvbuf = malloc(o.size);
		if (!w->sendbuf || !w->recvbuf || pthread_create(&w->th, NULL, worker_main, w) != 0) {
			fprintf(stderr, "weft_load: cannot start worker %u\n", t);
			return 1;
		}
	}
	/* The deadline covers the whole run, connection setup included; the req/s clock
	 * starts once every connection is established. Workers read deadline_ns only after
	 * the barrier, which orders this store before their loads. */
	deadline_ns = now_ns() + (uint64_t)(o.max_secs * 1e9);
	pthread_barrier_wait(&start_barrier);
	uint64_t t0 = now_ns();
	uint64_t completed = 0, errors = 0, mismatches = 0;
	bool timed_out = false;
	for (uint32_t t = 0; t < o.threads; t++) {
		pthread_join(ws[t].th, NULL);
		/* Compact: each worker filled the front of its own slice. */
		memmove(lat + completed, ws[t].lat, ws[t].completed * sizeof *lat);
		completed += ws[t].completed;
		errors += ws[t].errors;
		mismatches += ws[t].mismatches;
		timed_out |= ws[t].timed_out;
		free(ws[t].sendbuf);
		free(ws[t].recvbuf);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	qsort(lat, completed, sizeof *lat, cmp_u32);
	double rps = secs > 0 ? (double)completed / secs : 0;
	double p50 = pct_us(lat, completed, 50), p99 = pct_us(lat, completed, 99);
	double mx = completed ? lat[completed - 1] / 1000.0 : 0;
	printf("%" PRIu64 "/%" PRIu64 " echoes of %u B over %u conns in %.3f s: %.0f req/s, "
	       "latency p50 %.1f us, p99 %.1f us, max %.1f us; errors %" PRIu64 "%s\n",
	       completed, total, o.size, o.conns, secs, rps, p50, p99, mx, errors,
	       timed_out ? " (TIMED OUT)" : "");
	printf("RESULT conns=%u msgs=%u size=%u threads=%u completed=%" PRIu64 " total=%" PRIu64
	       " secs=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f errors=%" PRIu64
	       " mismatches=%" PRIu64 " timed_out=%d\n",
	       o.conns, o.msgs, o.size, o.threads, completed, total, secs, rps, p50, p99, mx, errors,
	       mismatches, timed_out);
	free(lat);
	free(conns);
	free(ws);
	return completed == total && errors == 0 ? 0 : 1;
}
