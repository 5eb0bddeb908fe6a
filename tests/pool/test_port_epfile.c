/* test_port_epfile.c - file reads that miss the page cache, on the backend named by
 * WEFT_BACKEND. On epoll such a read goes to the port's file helpers (backend_epoll.c)
 * instead of blocking the submitting thread; on io_uring to the ring. Either way each
 * completes exactly once with the right bytes, also when cancelled while queued, when
 * its fd is disassociated or closed through the port, or when the port closes with it
 * in flight. (Cold reads racing disassociate and close while threads keep submitting:
 * test_port_io.c, whose racing harness they share.)
 *
 * Whether a read really missed is asked of the kernel (mincore on a mapping of the
 * file, right before the read, with readahead off): a read that touches a page not in
 * the cache cannot be served by preadv2(RWF_NOWAIT), so on epoll it must be counted by
 * the helpers (weft__epoll_files_offloaded, a test-only counter). Where the cache
 * cannot be dropped (tmpfs, some sandboxes) those checks are skipped and said so. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <weft/pool.h>

#include "atomic.h"
#include "file_util.h"
#include "port_util.h"

#define BLK 4096u

/* Internal (backend_epoll.c): reads and writes the epoll file helpers ran. */
uint64_t weft__epoll_files_offloaded(void);

static bool on_epoll(weft_port *p)
{
	return strcmp(weft_port_backend(p), "epoll") == 0;
}

static void check_bytes(const unsigned char *b, uint64_t off, uint32_t len)
{
	for (uint32_t j = 0; j < len; j++)
		if (b[j] != pat(off + j))
			fail_msg("byte %u of a read at %llu: %u, want %u", j, (unsigned long long)off, b[j],
				 pat(off + j));
}

/* A port (concurrency 2) with a cold-capable file of n bytes associated under key; skips
 * the test where no such file can be made. */
static weft_port *cold_port(size_t n, uintptr_t key, int *fd)
{
	*fd = cold_file(n);
	if (*fd < 0)
		skip(); /* does not return */
	weft_port *p = mkport(2);
	assert_int_equal(weft_port_associate(p, *fd, key), 0);
	return p;
}

/* One read at a time, each over two pages checked cold right before it: each completes
 * once with the whole length, byte-exact; on epoll every read that touched an uncached
 * page went to a helper (none was served by the submitting thread). */
static void test_port_epfile_cold_reads_via_helpers(void **state)
{
	(void)state;
	enum { N = 24, STRIDE = 8 * PG };
	int fd;
	weft_port *p = cold_port(N * STRIDE, 4, &fd);
	bool dropped = drop(fd, N * STRIDE);
	static unsigned char r[BLK];
	uint32_t cold = 0;
	uint64_t before = weft__epoll_files_offloaded();
	for (int i = 0; i < N; i++) {
		weft_overlapped ov = {0};
		ov.offset = (uint64_t)i * STRIDE + 100; /* over two pages */
		uint32_t rc = resident(fd, ov.offset, BLK);
		bool miss = rc < 2;
		cold += miss;
		memset(r, 0, sizeof r);
		uint64_t b0 = weft__epoll_files_offloaded();
		assert_int_equal(weft_port_read(p, fd, r, BLK, &ov), 0);
		expect(p, &ov, 4);
		assert_int_equal(ov.status, 0);
		assert_int_equal(ov.bytes, BLK);
		check_bytes(r, ov.offset, BLK);
		/* a helper counts its op before reporting it, so before the packet */
		uint64_t b1 = weft__epoll_files_offloaded();
		/* never more than this read; none for a read of cached pages. A cold one
		 * usually goes to a helper, but not always: RWF_NOWAIT starts the read of
		 * the missing pages, and a fast disk may finish it before the call returns */
		if (b1 - b0 > (on_epoll(p) && miss ? 1u : 0u))
			fail_msg("read %d at %llu (pages cached before: %u): helpers ran %llu", i,
				 (unsigned long long)ov.offset, rc, (unsigned long long)(b1 - b0));
	}
	expect_none(p);
	uint64_t off = weft__epoll_files_offloaded() - before;
	fprintf(stderr, "  %u of %d reads touched uncached pages (cache dropped: %s); helpers ran %llu\n",
		cold, N, dropped ? "yes" : "no", (unsigned long long)off);
	if (on_epoll(p) && cold > 0)
		assert_true(off >= 1); /* the submitting thread did not wait for the disk */
	if (!on_epoll(p))
		assert_int_equal(off, 0);
	if (!dropped || cold == 0)
		fprintf(stderr,
			"  (the page cache could not be dropped here: the miss path was not exercised)\n");
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

/* A read that starts in a cached page and goes on into an uncached one: RWF_NOWAIT
 * answers short. The rest goes to a helper (epoll) or the ring (io_uring) and the read
 * completes whole on both: a short read would look like the end of the file. */
static void test_port_epfile_read_half_cached(void **state)
{
	(void)state;
	enum { PAGES = 64 };
	int fd;
	weft_port *p = cold_port(PAGES * PG, 6, &fd);
	static unsigned char r[BLK];
	int built = 0, shorts = 0;
	for (uint32_t base = 8; base + 16 < PAGES; base += 16) {
		if (!drop(fd, PAGES * PG))
			break;
		unsigned char one;
		assert_int_equal(pread(fd, &one, 1, (off_t)base * PG), 1); /* caches a folio */
		uint32_t k = base + 1; /* the first uncached page after it */
		while (k < base + 16 && resident(fd, (uint64_t)k * PG, PG) == 1)
			k++;
		if (k == base + 16 || resident(fd, (uint64_t)(k - 1) * PG, PG) != 1)
			continue;
		weft_overlapped ov = {0};
		ov.offset = (uint64_t)k * PG - 300; /* 300 cached bytes, then page k */
		memset(r, 0, sizeof r);
		assert_int_equal(weft_port_read(p, fd, r, BLK, &ov), 0);
		expect(p, &ov, 6);
		assert_int_equal(ov.status, 0);
		assert_int_equal(ov.bytes, BLK);
		check_bytes(r, ov.offset, ov.bytes);
		built++;
		shorts += ov.bytes < BLK;
	}
	fprintf(stderr, "  %d half-cached reads built, %d completed short\n", built, shorts);
	expect_none(p);
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

/* ---- many cold reads, cancels racing them ---- */

#define CT 2  /* submitting threads */
#define CN 48 /* reads per thread per round */
#define CSTRIDE (8 * PG)

struct crace {
	weft_port *p;
	int fd;
	uint32_t go;	     /* atomic: round number released to the threads */
	uint32_t sweep;	     /* a canceller thread cancels everything on fd this round */
	uint64_t bad_submit; /* recorded by the threads, asserted by the main thread */
	uint64_t bad_cancel, cancels_ok, cancels_late;
	weft_overlapped ov[CT][CN];
	unsigned char buf[CT][CN][BLK];
};

struct csub {
	struct crace *c;
	int i;
	uint64_t bad_submit, bad_cancel, cancels_ok, cancels_late;
};

static void cancel_one(struct csub *a, weft_overlapped *ov)
{
	int e = weft_port_cancel(a->c->p, a->c->fd, ov);
	if (e == 0)
		a->cancels_ok++;
	else if (e == -ENOENT)
		a->cancels_late++; /* already completed (inline, or by a helper) */
	else
		a->bad_cancel++;
}

/* Submits its reads; cancels every third right away and, after every third, an older
 * one (queued, running on a helper, or done). */
static void *csub_main(void *arg)
{
	struct csub *a = arg;
	struct crace *c = a->c;
	for (int j = 0; j < CN; j++) {
		weft_overlapped *ov = &c->ov[a->i][j];
		memset(ov, 0, sizeof *ov);
		ov->offset = (uint64_t)(a->i * CN + j) * CSTRIDE + 100;
		if (weft_port_read(c->p, c->fd, c->buf[a->i][j], BLK, ov) != 0) {
			a->bad_submit++;
			continue;
		}
		if (j % 3 == 0)
			cancel_one(a, ov);
		else if (j % 3 == 1)
			cancel_one(a, &c->ov[a->i][j / 2]);
	}
	return NULL;
}

static void *csweep_main(void *arg)
{
	struct crace *c = arg;
	for (int k = 0; k < 20; k++) {
		sched_yield();
		int e = weft_port_cancel(c->p, c->fd, NULL);
		if (e != 0 && e != -ENOENT)
			c->bad_cancel++;
	}
	return NULL;
}

/* Two threads submit cold reads while cancels race them (each thread's own, and in
 * odd rounds a third thread cancelling all on the fd): every read completes exactly
 * once, with its bytes or -ECANCELED. */
static void test_port_epfile_cold_reads_racing_cancels(void **state)
{
	(void)state;
	int fd;
	weft_port *p = cold_port(CT * CN * CSTRIDE, 8, &fd);
	struct crace *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->p = p;
	c->fd = fd;
	uint32_t rounds = (uint32_t)weft_test_iters(24);
	if (rounds < 2)
		rounds = 2;
	uint64_t ok = 0, cancelled = 0, before = weft__epoll_files_offloaded();
	struct csub a[CT];
	for (uint32_t round = 0; round < rounds; round++) {
		drop(c->fd, CT * CN * CSTRIDE);
		pthread_t t[CT], sw;
		for (int i = 0; i < CT; i++) {
			a[i] = (struct csub){.c = c, .i = i};
			assert_int_equal(pthread_create(&t[i], NULL, csub_main, &a[i]), 0);
		}
		if (round & 1)
			assert_int_equal(pthread_create(&sw, NULL, csweep_main, c), 0);
		for (int i = 0; i < CT; i++) {
			pthread_join(t[i], NULL);
			c->bad_submit += a[i].bad_submit;
			c->bad_cancel += a[i].bad_cancel;
			c->cancels_ok += a[i].cancels_ok;
			c->cancels_late += a[i].cancels_late;
		}
		if (round & 1)
			pthread_join(sw, NULL);
		assert_int_equal(c->bad_submit, 0);
		assert_int_equal(c->bad_cancel, 0);
		static int seen[CT][CN];
		memset(seen, 0, sizeof seen);
		for (int k = 0; k < CT * CN; k++) {
			uint32_t b;
			uintptr_t key;
			weft_overlapped *o;
			assert_int_equal(weft_port_get(c->p, &b, &key, &o, T_MS), 0);
			assert_int_equal(key, 8);
			ptrdiff_t idx = o - &c->ov[0][0];
			assert_true(idx >= 0 && idx < CT * CN);
			int i = (int)idx / CN, j = (int)idx % CN;
			seen[i][j]++;
			if (o->status == -ECANCELED) {
				assert_int_equal(b, 0);
				cancelled++;
				continue;
			}
			assert_int_equal(o->status, 0);
			assert_int_equal(b, BLK);
			check_bytes(c->buf[i][j], o->offset, BLK);
			ok++;
		}
		for (int i = 0; i < CT; i++)
			for (int j = 0; j < CN; j++)
				assert_int_equal(seen[i][j], 1);
		expect_none(c->p);
	}
	fprintf(
	    stderr,
	    "  %u rounds: %llu read, %llu cancelled (cancel said 0: %llu, -ENOENT: %llu); helpers ran %llu\n",
	    rounds, (unsigned long long)ok, (unsigned long long)cancelled, (unsigned long long)c->cancels_ok,
	    (unsigned long long)c->cancels_late,
	    (unsigned long long)(weft__epoll_files_offloaded() - before));
	assert_int_equal(weft_port_close_fd(c->p, c->fd), 0);
	weft_port_close(c->p);
	free(c);
}

/* ---- disassociate, close_fd and port close with helper reads in flight ---- */

#define DN 32
#define DSTRIDE (8 * PG)

struct drun {
	weft_overlapped ov[DN];
	unsigned char buf[DN][BLK];
};

/* Submits DN cold reads on fd (main thread). */
static void dsubmit(weft_port *p, int fd, struct drun *d)
{
	for (int j = 0; j < DN; j++) {
		memset(&d->ov[j], 0, sizeof d->ov[j]);
		d->ov[j].offset = (uint64_t)j * DSTRIDE + 100;
		assert_int_equal(weft_port_read(p, fd, d->buf[j], BLK, &d->ov[j]), 0);
	}
}

/* Takes the DN completions, which must all be queued already (timeout 0): each once,
 * data or -ECANCELED. Returns the number cancelled. */
static int dcollect(weft_port *p, struct drun *d, uintptr_t want_key)
{
	int seen[DN] = {0}, cancelled = 0;
	for (int k = 0; k < DN; k++) {
		uint32_t b;
		uintptr_t key;
		weft_overlapped *o;
		assert_int_equal(weft_port_get(p, &b, &key, &o, 0), 0);
		assert_int_equal(key, want_key);
		ptrdiff_t j = o - d->ov;
		assert_true(j >= 0 && j < DN);
		seen[j]++;
		if (o->status == -ECANCELED) {
			assert_int_equal(b, 0);
			cancelled++;
			continue;
		}
		assert_int_equal(o->status, 0);
		assert_int_equal(b, BLK);
		check_bytes(d->buf[j], o->offset, BLK);
	}
	for (int j = 0; j < DN; j++)
		assert_int_equal(seen[j], 1);
	return cancelled;
}

/* Disassociate (even rounds) or close_fd (odd rounds) right after submitting cold
 * reads: it returns (waiting for the reads a helper runs), and by then every read has
 * completed, exactly once. The fd number is then reused by the next round's dup. */
static void test_port_epfile_disassociate_in_flight(void **state)
{
	(void)state;
	weft_port *p = mkport(2);
	int base = cold_file(DN * DSTRIDE);
	if (base < 0) {
		weft_port_close(p);
		skip();
		return;
	}
	static struct drun d;
	uint32_t rounds = (uint32_t)weft_test_iters(24);
	if (rounds < 2)
		rounds = 2;
	int cancelled = 0;
	for (uint32_t round = 0; round < rounds; round++) {
		int fd = dup(base);
		assert_true(fd >= 0);
		assert_int_equal(weft_port_associate(p, fd, 10 + round), 0);
		drop(base, DN * DSTRIDE);
		dsubmit(p, fd, &d);
		if (round & 1) {
			assert_int_equal(weft_port_close_fd(p, fd), 0);
		} else {
			assert_int_equal(weft_port_disassociate(p, fd), 0);
			assert_int_equal(weft_port_read(p, fd, d.buf[0], BLK, &d.ov[0]), -EBADF);
			close(fd);
		}
		cancelled += dcollect(p, &d, 10 + round);
		expect_none(p);
	}
	fprintf(stderr, "  %u rounds of %d reads: %d cancelled\n", rounds, DN, cancelled);
	close(base);
	weft_port_close(p);
}

/* The port closes right after cold reads were submitted: close returns, every read
 * has completed exactly once into the queue, and the helpers are joined (a new port
 * per round starts its own). */
static void test_port_epfile_port_close_in_flight(void **state)
{
	(void)state;
	int base = cold_file(DN * DSTRIDE);
	if (base < 0) {
		skip();
		return;
	}
	static struct drun d;
	uint32_t rounds = (uint32_t)weft_test_iters(24);
	if (rounds < 2)
		rounds = 2;
	int cancelled = 0;
	for (uint32_t round = 0; round < rounds; round++) {
		weft_port *p = mkport(2);
		/* this thread gets on p, so it may take the packets after the close */
		assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), -ETIMEDOUT);
		int fd = dup(base);
		assert_true(fd >= 0);
		assert_int_equal(weft_port_associate(p, fd, 3), 0);
		drop(base, DN * DSTRIDE);
		dsubmit(p, fd, &d);
		weft_port_close(p);
		cancelled += dcollect(p, &d, 3);
		assert_int_equal(weft_port_get(p, NULL, NULL, NULL, 0), -ESHUTDOWN);
		close(fd);
	}
	fprintf(stderr, "  %u rounds of %d reads: %d cancelled\n", rounds, DN, cancelled);
	close(base);
}

/* Writes through the port at offsets in pages not cached (whole pages and pieces of
 * pages): each completes once with its length, and the file holds exactly the bytes. */
static void test_port_epfile_cold_writes(void **state)
{
	(void)state;
	enum { N = 16, STRIDE = 4 * PG };
	int fd;
	weft_port *p = cold_port(N * STRIDE, 2, &fd);
	drop(fd, N * STRIDE);
	static unsigned char w[N][BLK];
	weft_overlapped ov[N];
	for (int i = 0; i < N; i++) {
		memset(&ov[i], 0, sizeof ov[i]);
		ov[i].offset = (uint64_t)i * STRIDE + (i & 1 ? 777 : 0);
		memset(w[i], 0xa0 + i, BLK);
		assert_int_equal(weft_port_write(p, fd, w[i], BLK, &ov[i]), 0);
	}
	int seen[N] = {0};
	for (int k = 0; k < N; k++) {
		uint32_t b;
		weft_overlapped *o;
		assert_int_equal(weft_port_get(p, &b, NULL, &o, T_MS), 0);
		ptrdiff_t i = o - ov;
		assert_true(i >= 0 && i < N);
		seen[i]++;
		assert_int_equal(o->status, 0);
		assert_int_equal(b, BLK);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	expect_none(p);
	static unsigned char r[STRIDE];
	for (int i = 0; i < N; i++) {
		uint64_t at = (uint64_t)i * STRIDE;
		assert_int_equal(pread(fd, r, STRIDE, (off_t)at), STRIDE);
		uint32_t wo = i & 1 ? 777 : 0;
		for (uint32_t j = 0; j < STRIDE; j++) {
			unsigned char want =
			    j >= wo && j < wo + BLK ? (unsigned char)(0xa0 + i) : pat(at + j);
			if (r[j] != want)
				fail_msg("file byte %llu: %u, want %u", (unsigned long long)(at + j), r[j],
					 want);
		}
	}
	assert_int_equal(weft_port_close_fd(p, fd), 0);
	weft_port_close(p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_epfile_cold_reads_via_helpers),
	    cmocka_unit_test(test_port_epfile_read_half_cached),
	    cmocka_unit_test(test_port_epfile_cold_reads_racing_cancels),
	    cmocka_unit_test(test_port_epfile_disassociate_in_flight),
	    cmocka_unit_test(test_port_epfile_port_close_in_flight),
	    cmocka_unit_test(test_port_epfile_cold_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
