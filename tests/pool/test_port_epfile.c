/* test_port_epfile.c - file reads that miss the page cache, on the backend named by
 * WEFT_BACKEND. On epoll such a read goes to the port's file helpers (backend_epoll.c)
 * instead of blocking the submitting thread; on io_uring to the ring. Either way each
 * completes exactly once with the right bytes, also when cancelled while queued, when
 * its fd is disassociated or closed through the port, or when the port closes with it
 * in flight, also while other threads keep submitting.
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
#include "port_util.h"

#define BLK 4096u
#define PG 4096u

/* Internal (backend_epoll.c): reads and writes the epoll file helpers ran. */
uint64_t weft__epoll_files_offloaded(void);

static unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 131u + (i >> 12) * 7u + 1u);
}

static bool on_epoll(weft_port *p)
{
	return strcmp(weft_port_backend(p), "epoll") == 0;
}

/* A file of n bytes of pat() on a disk-backed filesystem (its pages can be dropped),
 * readahead off; -1 when none is usable. */
static int cold_file(size_t n)
{
	static const char *dirs[] = {"/var/tmp", "/tmp", "."};
	for (size_t k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
		char path[128];
		snprintf(path, sizeof path, "%s/weft-epf-XXXXXX", dirs[k]);
		int fd = mkstemp(path);
		if (fd < 0)
			continue;
		unlink(path);
		unsigned char *b = malloc(n);
		assert_non_null(b);
		for (size_t i = 0; i < n; i++)
			b[i] = pat(i);
		ssize_t w = pwrite(fd, b, n, 0);
		free(b);
		if (w != (ssize_t)n) {
			close(fd);
			continue;
		}
		posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
		return fd;
	}
	return -1;
}

/* Pages of [off, off + len) in the page cache. */
static uint32_t resident(int fd, uint64_t off, uint32_t len)
{
	uint64_t start = off / PG * PG;
	size_t n = (size_t)(off + len - start);
	void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, (off_t)start);
	assert_true(m != MAP_FAILED);
	unsigned char v[64];
	size_t pages = (n + PG - 1) / PG;
	assert_true(pages <= sizeof v);
	assert_int_equal(mincore(m, n, v), 0);
	munmap(m, n);
	uint32_t c = 0;
	for (size_t i = 0; i < pages; i++)
		c += v[i] & 1u;
	return c;
}

/* Drops the file's clean pages; true when none is left (the cache can be dropped here). */
static bool drop(int fd, size_t n)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	for (size_t off = 0; off < n; off += 64 * PG)
		if (resident(fd, off, (uint32_t)(n - off < 64 * PG ? n - off : 64 * PG)) != 0)
			return false;
	return true;
}

static void check_bytes(const unsigned char *b, uint64_t off, uint32_t len)
{
	for (uint32_t j = 0; j < len; j++)
		if (b[j] != pat(off + j))
			fail_msg("byte %u of a read at %llu: %u, want %u", j, (unsigned long long)off, b[j],
				 pat(off + j));
}

/* One read at a time, each over two pages checked cold right before it: each completes
 * once with the whole length, byte-exact; on epoll every read that touched an uncached
 * page went to a helper (none was served by the submitting thread). */
static void test_port_epfile_cold_reads_via_helpers(void **state)
{
	(void)state;
	enum { N = 24, STRIDE = 8 * PG };
	weft_port *p = mkport(2);
	int fd = cold_file(N * STRIDE);
	if (fd < 0) {
		weft_port_close(p);
		skip();
		return;
	}
	assert_int_equal(weft_port_associate(p, fd, 4), 0);
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
	weft_port *p = mkport(2);
	int fd = cold_file(PAGES * PG);
	if (fd < 0) {
		weft_port_close(p);
		skip();
		return;
	}
	assert_int_equal(weft_port_associate(p, fd, 6), 0);
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
	struct crace *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->p = mkport(2);
	c->fd = cold_file(CT * CN * CSTRIDE);
	if (c->fd < 0) {
		weft_port_close(c->p);
		free(c);
		skip();
		return;
	}
	assert_int_equal(weft_port_associate(c->p, c->fd, 8), 0);
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
	weft_port *p = mkport(2);
	int fd = cold_file(N * STRIDE);
	if (fd < 0) {
		weft_port_close(p);
		skip();
		return;
	}
	assert_int_equal(weft_port_associate(p, fd, 2), 0);
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

/* ---- submitters racing disassociate and close, with the cache dropped meanwhile ----
 * The fast path's miss takes the locked path still pinned; a disassociate or close in
 * between must cancel it there, and one that finds it on a helper must wait for it. */

#define RS 2	   /* submitting threads */
#define RPAGES 256 /* the file's reads: one per 8 pages */

struct frace {
	weft_port *p;
	int fd;
	uint32_t ready, finished; /* atomic */
	uint32_t stop;		  /* atomic: 2 = the getter may leave */
	uint32_t done[RS];	  /* atomic: completions per submitter */
	uint64_t iters;
	/* recorded by the threads, asserted by the main thread */
	uint64_t submitted[RS], refused[RS], ok[RS], cancelled[RS], completed[RS];
	uint64_t bad;
	weft_overlapped ov[RS];
	unsigned char buf[RS][BLK];
};

struct fsub {
	struct frace *r;
	int i;
};

static void *fsub_main(void *arg)
{
	struct fsub *a = arg;
	struct frace *r = a->r;
	weft_port_get(r->p, NULL, NULL, NULL, 0); /* on the port: it outlives a racing close */
	weft__fadd_rel(&r->ready, 1u);
	while (weft__load_acq(&r->ready) < RS + 1)
		sched_yield();
	uint32_t seen = 0;
	for (uint64_t k = 0; k < r->iters; k++) {
		weft_overlapped *o = &r->ov[a->i];
		memset(o, 0, sizeof *o);
		o->offset = ((k * RS + (uint64_t)a->i) * 7 % RPAGES) * 8 * PG + 100;
		int e = weft_port_read(r->p, r->fd, r->buf[a->i], BLK, o);
		if (e == -EBADF || e == -ESHUTDOWN) {
			r->refused[a->i]++;
			if (e == -ESHUTDOWN)
				break;
			sched_yield();
			continue;
		}
		if (e != 0) {
			r->bad++;
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

static void *fget_main(void *arg)
{
	struct frace *r = arg;
	weft_port_get(r->p, NULL, NULL, NULL, 0);
	weft__fadd_rel(&r->ready, 1u);
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
		if (e != 0 || i < 0 || i >= RS) {
			r->bad++;
			continue;
		}
		r->completed[i]++;
		if (o->status == 0 && b == BLK) {
			for (uint32_t j = 0; j < BLK; j++)
				if (r->buf[i][j] != pat(o->offset + j)) {
					r->bad++;
					break;
				}
			r->ok[i]++;
		} else if (o->status == -ECANCELED && b == 0) {
			r->cancelled[i]++;
		} else {
			r->bad++;
		}
		weft__fadd_rel(&r->done[i], 1u); /* release: hands o back to its submitter */
	}
	return NULL;
}

static void frace_run(bool close_port)
{
	struct frace *r = calloc(1, sizeof *r);
	assert_non_null(r);
	r->fd = cold_file(RPAGES * 8 * PG);
	if (r->fd < 0) {
		free(r);
		skip();
		return;
	}
	r->p = mkport(4);
	r->iters = weft_test_iters(1600);
	assert_int_equal(weft_port_associate(r->p, r->fd, 1), 0);
	drop(r->fd, RPAGES * 8 * PG);
	uint64_t before = weft__epoll_files_offloaded();
	pthread_t g, s[RS];
	struct fsub sa[RS];
	assert_int_equal(pthread_create(&g, NULL, fget_main, r), 0);
	for (int i = 0; i < RS; i++) {
		sa[i] = (struct fsub){r, i};
		assert_int_equal(pthread_create(&s[i], NULL, fsub_main, &sa[i]), 0);
	}
	uint64_t churns = 0;
	if (close_port) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		for (int k = 0; k < 10; k++) {
			posix_fadvise(r->fd, 0, 0, POSIX_FADV_DONTNEED); /* misses again */
			nanosleep(&ts, NULL);
		}
		weft_port_close(r->p); /* submitters and getter hold the port (they got on it) */
	} else {
		while (weft__load_acq(&r->finished) < RS) {
			if ((churns & 7) == 0)
				posix_fadvise(r->fd, 0, 0, POSIX_FADV_DONTNEED); /* misses again */
			if (weft_port_disassociate(r->p, r->fd) != 0)
				break;
			sched_yield(); /* a window in which submissions are refused */
			if (weft_port_associate(r->p, r->fd, 1) != 0)
				break;
			churns++;
			sched_yield();
		}
	}
	for (int i = 0; i < RS; i++)
		pthread_join(s[i], NULL);
	weft__store_rel(&r->stop, 2u);
	pthread_join(g, NULL);
	assert_int_equal(r->bad, 0);
	uint64_t total = 0, ok = 0, cancelled = 0;
	for (int i = 0; i < RS; i++) {
		assert_int_equal(r->completed[i], r->submitted[i]);
		assert_int_equal(r->ok[i] + r->cancelled[i], r->completed[i]);
		total += r->submitted[i];
		ok += r->ok[i];
		cancelled += r->cancelled[i];
	}
	assert_true(total > 0);
	fprintf(stderr,
		"  %s: %llu reads completed (%llu ok, %llu cancelled), %llu + %llu refused, %llu churns, "
		"helpers ran %llu\n",
		close_port ? "close" : "disassociate", (unsigned long long)total, (unsigned long long)ok,
		(unsigned long long)cancelled, (unsigned long long)r->refused[0],
		(unsigned long long)r->refused[1], (unsigned long long)churns,
		(unsigned long long)(weft__epoll_files_offloaded() - before));
	if (close_port) {
		close(r->fd);
	} else {
		assert_int_equal(weft_port_close_fd(r->p, r->fd), 0);
		weft_port_close(r->p);
	}
	free(r);
}

/* Disassociate / associate in a loop (dropping the cache now and then) while 2 threads
 * submit reads that often miss: each read is refused (-EBADF) or completes exactly
 * once, with its bytes or -ECANCELED. */
static void test_port_epfile_cold_reads_vs_disassociate(void **state)
{
	(void)state;
	frace_run(false);
}

/* The port closes while 2 threads submit reads that miss: each accepted read completes
 * exactly once; later submissions get -ESHUTDOWN. */
static void test_port_epfile_cold_reads_vs_close(void **state)
{
	(void)state;
	frace_run(true);
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
	    cmocka_unit_test(test_port_epfile_cold_reads_vs_disassociate),
	    cmocka_unit_test(test_port_epfile_cold_reads_vs_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
