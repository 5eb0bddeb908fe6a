/* test_port_io.c - the port's inline paths, on the backend named by WEFT_BACKEND: file
 * reads and writes completed by the submitting thread without the io lock (the fast
 * path), their fallback when the page cache does not have the data, socket operations
 * completed inline or queued, cancel of an operation that already completed (-ENOENT),
 * and the fast path racing disassociate and port close (every accepted operation
 * completes exactly once, nothing is submitted on a device that is gone). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/pool.h>

#include "atomic.h"
#include "file_util.h"
#include "port_util.h"

#define BLK 4096u

/* Internal (backend_epoll.c): reads and writes the epoll file helpers ran. */
uint64_t weft__epoll_files_offloaded(void);
/* Internal (backend_uring.c, absent without io_uring): the SQ size of the next rings,
 * and counts of single-issuer rings made and of stages / cancels that waited for room. */
extern uint32_t weft__uring_test_sq __attribute__((weak));
void weft__uring_counts(uint64_t *single, uint64_t *backlogged) __attribute__((weak));

/* Writes then reads at offsets through the port (the fast path on a cached file): the
 * data round-trips, each operation completes once, and a cancel of a completed one says
 * -ENOENT without producing a packet. */
static void test_port_io_file_inline(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int fd = tmpfile_in("/tmp", 64 * BLK);
	assert_true(fd >= 0);
	assert_int_equal(weft_port_associate(p, fd, 5), 0);
	static unsigned char w[8][BLK], r[8][BLK];
	weft_overlapped ov[8];
	for (int i = 0; i < 8; i++) {
		memset(w[i], 0x40 + i, BLK);
		memset(&ov[i], 0, sizeof ov[i]);
		ov[i].offset = (uint64_t)(i * 3 + 1) * BLK;
		assert_int_equal(weft_port_write(p, fd, w[i], BLK, &ov[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		weft_completion c;
		uint32_t n = 0;
		assert_int_equal(weft_port_get_many(p, &c, 1, &n, T_MS, false), 0);
		assert_int_equal(n, 1);
		assert_int_equal(c.key, 5);
		assert_int_equal(c.ov->status, 0);
		assert_int_equal(c.ov->bytes, BLK);
	}
	expect_none(p);
	for (int i = 0; i < 8; i++) {
		ov[i].status = 1;
		assert_int_equal(weft_port_read(p, fd, r[i], BLK, &ov[i]), 0);
		expect(p, &ov[i], 5);
		assert_int_equal(ov[i].status, 0);
		assert_int_equal(ov[i].bytes, BLK);
		assert_memory_equal(r[i], w[i], BLK);
		/* completed (inline or not): not cancellable any more */
		assert_int_equal(weft_port_cancel(p, fd, &ov[i]), -ENOENT);
	}
	assert_int_equal(weft_port_cancel(p, fd, NULL), -ENOENT);
	expect_none(p);
	/* a read at the end of the file: 0 bytes, status 0 */
	ov[0].offset = 64 * BLK;
	assert_int_equal(weft_port_read(p, fd, r[0], BLK, &ov[0]), 0);
	expect(p, &ov[0], 5);
	assert_int_equal(ov[0].status, 0);
	assert_int_equal(ov[0].bytes, 0);
	/* a short read across the end */
	ov[0].offset = 64 * BLK - 100;
	assert_int_equal(weft_port_read(p, fd, r[0], BLK, &ov[0]), 0);
	expect(p, &ov[0], 5);
	assert_int_equal(ov[0].bytes, 100);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(r[0][i], pat(64 * BLK - 100 + i));
	/* not associated / bad arguments: nothing submitted */
	assert_int_equal(weft_port_read(p, fd + 100, r[0], BLK, &ov[0]), -EBADF);
	assert_int_equal(weft_port_read(p, fd, NULL, BLK, &ov[0]), -EINVAL);
	expect_none(p);
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

/* Reads of a file whose pages were dropped: the inline try would block (io_uring:
 * RWF_NOWAIT says -EAGAIN), so they take the queued path; every one completes once
 * with the right bytes, also when cancelled right after submission (then -ECANCELED or
 * the data, never both, never twice). */
static void test_port_io_file_uncached_fallback(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	enum { N = 16 };
	int fd = tmpfile_in("/var/tmp", N * 4 * BLK);
	if (fd < 0) {
		weft_port_close(p);
		skip();
	}
	static unsigned char r[N][BLK];
	weft_overlapped ov[N];
	for (int round = 0; round < 2; round++) {
		fsync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (round == 0)
			assert_int_equal(weft_port_associate(p, fd, 9), 0);
		for (int i = 0; i < N; i++) {
			memset(&ov[i], 0, sizeof ov[i]);
			memset(r[i], 0, BLK);
			ov[i].offset = (uint64_t)i * 4 * BLK + 8;
			assert_int_equal(weft_port_read(p, fd, r[i], BLK, &ov[i]), 0);
			if (round == 1 && (i & 1)) {
				int c = weft_port_cancel(p, fd, &ov[i]);
				assert_true(c == 0 || c == -ENOENT);
			}
		}
		int seen[N] = {0};
		for (int k = 0; k < N; k++) {
			uint32_t b;
			uintptr_t key;
			weft_overlapped *o;
			assert_int_equal(weft_port_get(p, &b, &key, &o, T_MS), 0);
			assert_int_equal(key, 9);
			int i = (int)(o - ov);
			assert_true(i >= 0 && i < N);
			seen[i]++;
			if (o->status == -ECANCELED) {
				assert_int_equal(round, 1);
				assert_int_equal(b, 0);
				continue;
			}
			assert_int_equal(o->status, 0);
			assert_int_equal(b, BLK);
			for (uint32_t j = 0; j < BLK; j += 97)
				assert_int_equal(r[i][j], pat(o->offset + j));
		}
		for (int i = 0; i < N; i++)
			assert_int_equal(seen[i], 1);
		expect_none(p);
	}
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

/* A recv with data already buffered completes inline; one posted before the data waits
 * (ring / readiness queue) and completes once the data comes; a send into an empty
 * buffer completes inline. Cancel after completion: -ENOENT. */
static void test_port_io_socket_inline_and_queued(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(weft_port_associate(p, sv[0], 3), 0);
	char in[64], out[64];
	memset(out, 'a', sizeof out);
	weft_overlapped rov = {0}, sov = {0};
	/* inline: data is there */
	assert_int_equal(send(sv[1], "hello", 5, 0), 5);
	assert_int_equal(weft_port_recv(p, sv[0], in, sizeof in, &rov), 0);
	expect(p, &rov, 3);
	assert_int_equal(rov.status, 0);
	assert_int_equal(rov.bytes, 5);
	assert_memory_equal(in, "hello", 5);
	assert_int_equal(weft_port_cancel(p, sv[0], &rov), -ENOENT);
	/* queued: no data yet */
	assert_int_equal(weft_port_recv(p, sv[0], in, sizeof in, &rov), 0);
	expect_none(p);
	assert_int_equal(weft_port_send(p, sv[0], out, sizeof out, &sov), 0);
	expect(p, &sov, 3);
	assert_int_equal(sov.status, 0);
	assert_int_equal(sov.bytes, sizeof out);
	assert_int_equal(weft_port_cancel(p, sv[0], &sov), -ENOENT);
	char peer[64];
	assert_int_equal(recv(sv[1], peer, sizeof peer, MSG_WAITALL), (ssize_t)sizeof peer);
	assert_memory_equal(peer, out, sizeof out);
	assert_int_equal(send(sv[1], "world!", 6, 0), 6);
	expect(p, &rov, 3);
	assert_int_equal(rov.status, 0);
	assert_int_equal(rov.bytes, 6);
	assert_memory_equal(in, "world!", 6);
	assert_int_equal(weft_port_cancel(p, sv[0], &rov), -ENOENT);
	/* queued, then cancelled: -ECANCELED exactly once */
	assert_int_equal(weft_port_recv(p, sv[0], in, sizeof in, &rov), 0);
	assert_int_equal(weft_port_cancel(p, sv[0], &rov), 0);
	expect(p, &rov, 3);
	assert_int_equal(rov.status, -ECANCELED);
	assert_int_equal(weft_port_cancel(p, sv[0], &rov), -ENOENT);
	expect_none(p);
	assert_int_equal(weft_port_close_fd(p, sv[0]), 0);
	close(sv[1]);
	weft_port_close(p);
}

/* ---- the fast path racing disassociate and close ----
 * Two threads submit (reads of a cached file, sends on a socket, or, in cold mode, reads
 * that often miss the page cache: the miss takes the locked path still pinned, a helper
 * on epoll), one thread gets, and the main thread disassociates / associates the fd in a
 * loop or closes the port. */

#define SUBS 2
#define RPAGES 256 /* cold mode: the file's reads, one per 8 pages */

struct race {
	weft_port *p;
	int fd;
	uint32_t stop;		/* atomic */
	uint32_t ready;		/* atomic: submitters associated with the port */
	uint32_t finished;	/* atomic: submitters through */
	uint32_t done[SUBS];	/* atomic: completions seen per submitter's overlapped */
	uint64_t iters;
	/* recorded by the threads, asserted by the main thread */
	uint64_t submitted[SUBS], rejected[SUBS], completed[SUBS], ok[SUBS], cancelled[SUBS];
	uint64_t bad_submit, bad_status, bad_ov, churns;
	uint64_t bytes_done;  /* getter: bytes the completed sends report */
	uint64_t bytes_seen;  /* drain thread: bytes that came out of the peer */
	int sock, peer;	      /* socket mode: sends on fd (= sock), the peer drained */
	bool cold;	      /* cold mode: reads spread over a file whose cache is dropped */
	weft_overlapped ov[SUBS];
	unsigned char buf[SUBS][BLK];
};

struct sub_arg {
	struct race *r;
	int i;
};

/* Submits reads one at a time on its own overlapped, waiting for each to complete (the
 * getter thread marks it) before reusing it. */
static void *race_submitter(void *arg)
{
	struct sub_arg *a = arg;
	struct race *r = a->r;
	/* associate this thread with the port (a get), so the port outlives a racing
	 * close for it, as the port's rules ask of threads that touch it late */
	weft_port_get(r->p, NULL, NULL, NULL, 0);
	/* ... before anyone submits: that get must not take another thread's packet */
	weft__fadd_rel(&r->ready, 1u);
	while (weft__load_acq(&r->ready) < SUBS)
		sched_yield();
	uint32_t seen = 0;
	for (uint64_t k = 0; k < r->iters && !weft__load_acq(&r->stop); k++) {
		weft_overlapped *o = &r->ov[a->i];
		memset(o, 0, sizeof *o);
		o->offset = r->cold ? ((k * SUBS + (uint64_t)a->i) * 7 % RPAGES) * 8 * PG + 100 : (k % 32) * BLK;
		int e = r->sock ? weft_port_send(r->p, r->fd, r->buf[a->i], BLK, o)
				: weft_port_read(r->p, r->fd, r->buf[a->i], BLK, o);
		if (e == -EBADF || e == -ESHUTDOWN) {
			r->rejected[a->i]++;
			if (e == -ESHUTDOWN)
				break;
			sched_yield();
			continue;
		}
		if (e != 0) {
			r->bad_submit++;
			break;
		}
		r->submitted[a->i]++;
		seen++;
		/* acquire: pairs with the getter's release; o is ours again after it */
		while (weft__load_acq(&r->done[a->i]) < seen)
			sched_yield();
	}
	weft__fadd_rel(&r->finished, 1u);
	return NULL;
}

static void *race_getter(void *arg)
{
	struct race *r = arg;
	for (;;) {
		uint32_t b;
		uintptr_t key;
		weft_overlapped *o;
		int e = weft_port_get(r->p, &b, &key, &o, 20);
		if (e == -ESHUTDOWN)
			break;
		if (e == -ETIMEDOUT) {
			if (weft__load_acq(&r->stop) == 2)
				break;
			continue;
		}
		int i = (int)(o - r->ov);
		if (i < 0 || i >= SUBS) {
			r->bad_ov++;
			continue;
		}
		r->completed[i]++;
		r->bytes_done += b;
		if (o->status == 0 && b == BLK) {
			for (uint32_t j = 0; !r->sock && j < BLK; j++)
				if (r->buf[i][j] != pat(o->offset + j)) {
					r->bad_status++;
					break;
				}
			r->ok[i]++;
		}
		else if (o->status == -ECANCELED && (b == 0 || (r->sock && b < BLK)))
			r->cancelled[i]++; /* a send cancelled midway reports what went out */
		else
			r->bad_status++;
		weft__fadd_rel(&r->done[i], 1u); /* release: hands o back to its submitter */
	}
	return NULL;
}

static void *race_drain(void *arg)
{
	struct race *r = arg;
	static char sink[1 << 16];
	for (;;) {
		ssize_t n = recv(r->peer, sink, sizeof sink, 0);
		if (n <= 0)
			break; /* EOF: the test shut the sending side down */
		r->bytes_seen += (uint64_t)n;
	}
	return NULL;
}

static void race_run(bool close_port, bool sock, bool cold)
{
	struct race *r = calloc(1, sizeof *r);
	assert_non_null(r);
	r->sock = sock;
	r->cold = cold;
	if (cold) {
		r->fd = cold_file(RPAGES * 8 * PG);
		if (r->fd < 0) {
			free(r);
			skip();
			return;
		}
	}
	r->p = mkport(4);
	pthread_t drain;
	if (sock) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		int small = 16 * 1024; /* the sends fill it now and then: the queued path too */
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
		r->fd = sv[0];
		r->peer = sv[1];
		assert_int_equal(pthread_create(&drain, NULL, race_drain, r), 0);
	} else if (!cold) {
		r->fd = tmpfile_in("/tmp", 32 * BLK);
	}
	assert_true(r->fd >= 0);
	r->iters = weft_test_iters(cold ? 1600 : 20000);
	assert_int_equal(weft_port_associate(r->p, r->fd, 1), 0);
	if (cold)
		drop(r->fd, RPAGES * 8 * PG);
	uint64_t offloaded = weft__epoll_files_offloaded();
	pthread_t g, s[SUBS];
	struct sub_arg sa[SUBS];
	assert_int_equal(pthread_create(&g, NULL, race_getter, r), 0);
	for (int i = 0; i < SUBS; i++) {
		sa[i] = (struct sub_arg){r, i};
		assert_int_equal(pthread_create(&s[i], NULL, race_submitter, &sa[i]), 0);
	}
	if (close_port) {
		/* 20 ms, the cache dropped every 2 ms in cold mode (the reads miss again) */
		struct timespec ts = {0, 2 * 1000 * 1000};
		for (int k = 0; k < 10; k++) {
			if (cold)
				posix_fadvise(r->fd, 0, 0, POSIX_FADV_DONTNEED);
			nanosleep(&ts, NULL);
		}
		weft_port_close(r->p); /* submitters and getter hold the port (they got on it) */
	} else {
		/* the fd leaves and comes back while reads are submitted on it, until the
		 * submitters are through */
		while (weft__load_acq(&r->finished) < SUBS) {
			if (cold && (r->churns & 7) == 0)
				posix_fadvise(r->fd, 0, 0, POSIX_FADV_DONTNEED); /* misses again */
			if (weft_port_disassociate(r->p, r->fd) != 0) {
				r->bad_submit++;
				break;
			}
			sched_yield(); /* a window in which submissions are refused */
			if (weft_port_associate(r->p, r->fd, 1) != 0) {
				r->bad_submit++;
				break;
			}
			r->churns++;
			sched_yield();
		}
	}
	for (int i = 0; i < SUBS; i++)
		pthread_join(s[i], NULL);
	weft__store_rel(&r->stop, 2u);
	pthread_join(g, NULL);
	assert_int_equal(r->bad_submit, 0);
	assert_int_equal(r->bad_status, 0);
	assert_int_equal(r->bad_ov, 0);
	uint64_t total = 0;
	for (int i = 0; i < SUBS; i++) {
		assert_int_equal(r->completed[i], r->submitted[i]);
		assert_int_equal(r->ok[i] + r->cancelled[i], r->completed[i]);
		total += r->submitted[i];
	}
	assert_true(total > 0);
	if (sock) {
		shutdown(r->fd, SHUT_WR);
		pthread_join(drain, NULL);
		close(r->peer);
		assert_int_equal(r->bytes_seen, r->bytes_done); /* every byte sent once */
	}
	const char *what = sock ? "sends" : cold ? "cold reads" : "reads";
	fprintf(stderr,
		"  %s, %s: %llu ops completed (%llu + %llu ok, %llu + %llu cancelled), %llu + %llu refused, "
		"%llu churns, epoll file helpers ran %llu\n",
		close_port ? "close" : "disassociate", what, (unsigned long long)total,
		(unsigned long long)r->ok[0], (unsigned long long)r->ok[1],
		(unsigned long long)r->cancelled[0], (unsigned long long)r->cancelled[1],
		(unsigned long long)r->rejected[0], (unsigned long long)r->rejected[1],
		(unsigned long long)r->churns, (unsigned long long)(weft__epoll_files_offloaded() - offloaded));
	if (close_port) {
		close(r->fd);
	} else {
		assert_int_equal(weft_port_close_fd(r->p, r->fd), 0);
		weft_port_close(r->p);
	}
	free(r);
}

/* Disassociate / associate in a loop while 2 threads submit reads on the fd: a read
 * either is refused (-EBADF) or completes exactly once (data, or -ECANCELED when the
 * disassociate caught it on its way to the queue). */
static void test_port_io_fast_path_vs_disassociate(void **state)
{
	(void)state;
	race_run(false, false, false);
}

/* The same with sends on a socket whose peer is drained (a small send buffer, so some
 * sends wait in the backend): a send is refused, or completes once (all bytes, or
 * -ECANCELED with what went out), and the peer receives exactly the bytes the
 * completions report. Sends take the locked path (the fast path is for files: see
 * docs/port.md on why it was not extended to sockets). */
static void test_port_io_fast_path_sends_vs_disassociate(void **state)
{
	(void)state;
	race_run(false, true, false);
}

static void test_port_io_fast_path_sends_vs_close(void **state)
{
	(void)state;
	race_run(true, true, false);
}

/* The port closes while 2 threads submit reads: each accepted read completes exactly
 * once and is drained by the getter; later submissions get -ESHUTDOWN. */
static void test_port_io_fast_path_vs_close(void **state)
{
	(void)state;
	race_run(true, false, false);
}

/* Disassociate / associate in a loop (dropping the cache now and then) while 2 threads
 * submit reads that often miss: each read is refused (-EBADF) or completes exactly
 * once, with its bytes or -ECANCELED (the miss takes the locked path still pinned; on
 * epoll a helper may hold it, and disassociate must wait for it). */
static void test_port_io_cold_reads_vs_disassociate(void **state)
{
	(void)state;
	race_run(false, false, true);
}

/* The port closes while 2 threads submit reads that miss: each accepted read completes
 * exactly once; later submissions get -ESHUTDOWN. */
static void test_port_io_cold_reads_vs_close(void **state)
{
	(void)state;
	race_run(true, false, true);
}

/* ---- a full submission queue ----
 * On a single-issuer io_uring ring only the reaper may submit, so a stage (or a cancel)
 * prepared while the SQ is full waits in the backend's backlog until the reaper makes
 * room. With an SQ of 2 entries, 48 sockets get two receives each from two threads at
 * once: the second receive of a socket must still get the second half of the bytes
 * (order kept through the backlog), then a receive per socket is cancelled (exactly one
 * -ECANCELED each, whether it waited in the ring or in the backlog), then one of two
 * (the running one, or the one waiting its turn: the other still gets the bytes), then
 * the fds are closed under two pending receives each. On epoll (or a kernel without DEFER_TASKRUN) the same traffic runs
 * without a backlog. */

#define BL_SOCKS 48

static int small_sq(void **state)
{
	(void)state;
	if (&weft__uring_test_sq)
		weft__uring_test_sq = 2;
	return 0;
}

static int default_sq(void **state)
{
	(void)state;
	if (&weft__uring_test_sq)
		weft__uring_test_sq = 0;
	return 0;
}

static bool weft__uring_test_sq_set(void)
{
	return &weft__uring_test_sq && weft__uring_test_sq != 0;
}

struct bl {
	weft_port *p;
	int sv[BL_SOCKS][2];
	char buf[BL_SOCKS][2][4];
	weft_overlapped ov[BL_SOCKS][2];
};

struct bl_arg {
	struct bl *b;
	int half;
};

static void *bl_post(void *arg)
{
	struct bl_arg *a = arg;
	struct bl *b = a->b;
	for (int i = a->half; i < BL_SOCKS; i += 2)
		for (int k = 0; k < 2; k++)
			assert_int_equal(weft_port_recv(b->p, b->sv[i][0], b->buf[i][k], 4, &b->ov[i][k]), 0);
	return NULL;
}

/* Takes n completions: each overlapped of the table once, checked by check(). */
static void bl_collect(struct bl *b, int n, int per, void (*check)(struct bl *, int, int))
{
	bool seen[BL_SOCKS][2] = {{false}};
	for (int got = 0; got < n; got++) {
		uint32_t bytes;
		uintptr_t key;
		weft_overlapped *ov = NULL;
		assert_int_equal(weft_port_get(b->p, &bytes, &key, &ov, T_MS), 0);
		assert_true(key < BL_SOCKS);
		int i = (int)key, k = ov == &b->ov[i][0] ? 0 : 1;
		assert_true(k < per && ov == &b->ov[i][k]);
		assert_false(seen[i][k]);
		seen[i][k] = true;
		check(b, i, k);
	}
	expect_none(b->p);
}

static void bl_check_data(struct bl *b, int i, int k)
{
	char want[4];
	memset(want, k ? 'a' + i % 26 : 'A' + i % 26, sizeof want);
	assert_int_equal(b->ov[i][k].status, 0);
	assert_int_equal(b->ov[i][k].bytes, 4);
	assert_memory_equal(b->buf[i][k], want, 4);
}

static void bl_check_cancelled(struct bl *b, int i, int k)
{
	assert_int_equal(b->ov[i][k].status, -ECANCELED);
	assert_int_equal(b->ov[i][k].bytes, 0);
}

/* Two receives per socket, one cancelled: the first on even sockets (the one running,
 * so the second starts after it), the second on odd ones (still waiting its turn); the
 * other one gets the 4 bytes. */
static void bl_check_one_cancelled(struct bl *b, int i, int k)
{
	if ((i % 2 == 0) == (k == 0)) {
		bl_check_cancelled(b, i, k);
		return;
	}
	char want[4];
	memset(want, '0' + i % 10, sizeof want);
	assert_int_equal(b->ov[i][k].status, 0);
	assert_int_equal(b->ov[i][k].bytes, 4);
	assert_memory_equal(b->buf[i][k], want, 4);
}

static void bl_check_done(struct bl *b, int i, int k)
{
	/* closed under it: cancelled, or it took the byte that came first */
	assert_true(b->ov[i][k].status == -ECANCELED || (b->ov[i][k].status == 0 && b->ov[i][k].bytes == 1));
}

static void test_port_io_full_sq_backlog(void **state)
{
	(void)state;
	uint64_t single0 = 0, bl0 = 0, single1 = 0, bl1 = 0;
	if (weft__uring_counts)
		weft__uring_counts(&single0, &bl0);
	struct bl *b = calloc(1, sizeof *b);
	assert_non_null(b);
	b->p = mkport(2);
	bool uring = weft__uring_counts && weft__uring_test_sq_set() && !strcmp(weft_port_backend(b->p), "uring");
	for (int i = 0; i < BL_SOCKS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->sv[i]), 0);
		assert_int_equal(weft_port_associate(b->p, b->sv[i][0], (uintptr_t)i), 0);
	}
	/* two receives per socket, posted by two threads at once, then the bytes */
	pthread_t t[2];
	struct bl_arg args[2] = {{b, 0}, {b, 1}};
	for (int h = 0; h < 2; h++)
		assert_int_equal(pthread_create(&t[h], NULL, bl_post, &args[h]), 0);
	for (int h = 0; h < 2; h++)
		pthread_join(t[h], NULL);
	for (int i = 0; i < BL_SOCKS; i++) {
		char msg[8];
		memset(msg, 'A' + i % 26, 4);
		memset(msg + 4, 'a' + i % 26, 4);
		assert_int_equal(send(b->sv[i][1], msg, sizeof msg, 0), (ssize_t)sizeof msg);
	}
	bl_collect(b, 2 * BL_SOCKS, 2, bl_check_data);
	/* one receive per socket, all cancelled */
	for (int i = 0; i < BL_SOCKS; i++)
		assert_int_equal(weft_port_recv(b->p, b->sv[i][0], b->buf[i][0], 4, &b->ov[i][0]), 0);
	for (int i = 0; i < BL_SOCKS; i++)
		assert_int_equal(weft_port_cancel(b->p, b->sv[i][0], &b->ov[i][0]), 0);
	bl_collect(b, BL_SOCKS, 1, bl_check_cancelled);
	/* two receives per socket, one of them cancelled, then the bytes */
	for (int i = 0; i < BL_SOCKS; i++)
		for (int k = 0; k < 2; k++)
			assert_int_equal(weft_port_recv(b->p, b->sv[i][0], b->buf[i][k], 4, &b->ov[i][k]), 0);
	for (int i = 0; i < BL_SOCKS; i++)
		assert_int_equal(weft_port_cancel(b->p, b->sv[i][0], &b->ov[i][i % 2]), 0);
	/* the cancels first (no bytes yet, so none can lose), then the survivors' bytes */
	bl_collect(b, BL_SOCKS, 2, bl_check_one_cancelled);
	for (int i = 0; i < BL_SOCKS; i++) {
		char msg[4];
		memset(msg, '0' + i % 10, sizeof msg);
		assert_int_equal(send(b->sv[i][1], msg, sizeof msg, 0), (ssize_t)sizeof msg);
	}
	bl_collect(b, BL_SOCKS, 2, bl_check_one_cancelled);
	/* two receives per socket, a byte to every other socket, then every fd closed */
	for (int i = 0; i < BL_SOCKS; i++)
		for (int k = 0; k < 2; k++)
			assert_int_equal(weft_port_recv(b->p, b->sv[i][0], b->buf[i][k], 4, &b->ov[i][k]), 0);
	for (int i = 0; i < BL_SOCKS; i += 2)
		assert_int_equal(send(b->sv[i][1], "x", 1, 0), 1);
	for (int i = 0; i < BL_SOCKS; i++) {
		assert_int_equal(weft_port_close_fd(b->p, b->sv[i][0]), 0);
		close(b->sv[i][1]);
	}
	bl_collect(b, 2 * BL_SOCKS, 2, bl_check_done);
	weft_port_close(b->p);
	free(b);
	if (uring) {
		weft__uring_counts(&single1, &bl1);
		/* a single-issuer ring was made: its backlog must have been used */
		if (single1 > single0)
			assert_true(bl1 > bl0);
		print_message("uring: single-issuer rings %llu, backlogged %llu\n",
			      (unsigned long long)(single1 - single0), (unsigned long long)(bl1 - bl0));
	}
}

/* The end of a stream right behind its last bytes: a receive reads them (short of its
 * buffer, stopping at the peer's end), and the next receive still completes, with 0.
 * The epoll backend lets a short TCP read stand for "socket empty" and then waits for
 * the next edge instead of trying; the peer's end arrives with no edge of its own when
 * the edge that brought it is already spent. Both orders: bytes and end there before the
 * receives are posted, and a receive posted first. Also a full read (the buffer filled:
 * more may wait) followed by the rest. */
static void test_port_io_stream_end_after_short_read(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	for (int order = 0; order < 2; order++) {
		int srv, cli;
		tcp_pair(&cli, &srv);
		assert_int_equal(weft_port_associate(p, srv, 9), 0);
		char buf[4096];
		weft_overlapped ov = {0};
		if (order == 1) {
			assert_int_equal(weft_port_recv(p, srv, buf, sizeof buf, &ov), 0);
			usleep(20000); /* the receive waits in the backend */
		}
		assert_int_equal(write(cli, "abc", 3), 3);
		assert_int_equal(shutdown(cli, SHUT_WR), 0);
		usleep(20000); /* bytes and end arrive, and the backend sees their edge */
		if (order == 0)
			assert_int_equal(weft_port_recv(p, srv, buf, sizeof buf, &ov), 0);
		expect(p, &ov, 9);
		assert_int_equal(ov.status, 0);
		assert_int_equal(ov.bytes, 3);
		assert_memory_equal(buf, "abc", 3);
		assert_int_equal(weft_port_recv(p, srv, buf, sizeof buf, &ov), 0);
		expect(p, &ov, 9);
		assert_int_equal(ov.status, 0);
		assert_int_equal(ov.bytes, 0);
		assert_int_equal(weft_port_close_fd(p, srv), 0);
		close(cli);
	}
	/* a read that fills its buffer, then the rest and the end */
	int srv, cli;
	tcp_pair(&cli, &srv);
	assert_int_equal(weft_port_associate(p, srv, 9), 0);
	assert_int_equal(write(cli, "0123456789", 10), 10);
	assert_int_equal(shutdown(cli, SHUT_WR), 0);
	usleep(20000);
	char b4[4];
	weft_overlapped ov = {0};
	uint32_t total = 0;
	for (;;) {
		assert_int_equal(weft_port_recv(p, srv, b4, sizeof b4, &ov), 0);
		expect(p, &ov, 9);
		assert_int_equal(ov.status, 0);
		if (ov.bytes == 0)
			break;
		assert_memory_equal(b4, "0123456789" + total, ov.bytes);
		total += ov.bytes;
	}
	assert_int_equal(total, 10);
	assert_int_equal(weft_port_close_fd(p, srv), 0);
	close(cli);
	weft_port_close(p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_io_file_inline),
	    cmocka_unit_test(test_port_io_file_uncached_fallback),
	    cmocka_unit_test(test_port_io_socket_inline_and_queued),
	    cmocka_unit_test(test_port_io_fast_path_vs_disassociate),
	    cmocka_unit_test(test_port_io_fast_path_vs_close),
	    cmocka_unit_test(test_port_io_fast_path_sends_vs_disassociate),
	    cmocka_unit_test(test_port_io_fast_path_sends_vs_close),
	    cmocka_unit_test(test_port_io_cold_reads_vs_disassociate),
	    cmocka_unit_test(test_port_io_cold_reads_vs_close),
	    cmocka_unit_test_setup_teardown(test_port_io_full_sq_backlog, small_sq, default_sq),
	    cmocka_unit_test(test_port_io_stream_end_after_short_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
