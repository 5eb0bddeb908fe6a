/* test_port_solo.c - the port's solo mode (port_io.c, weft__port_solo): the function of
 * the port's one user thread runs on the reaper thread, whose gets reap the backend
 * themselves (io_uring: it is the ring's issuer; epoll: it sleeps in epoll_wait). On
 * each backend: echo over socket pairs (every byte back, in order), packets posted by
 * another thread while it sleeps in the backend, a get's timeout, a receive completed
 * through gets that never wait (timeout 0), a close of an fd with
 * a receive pending from inside the solo thread (disassociate waits for the cancel,
 * which only that thread can reap), the end of the function, then the port serving
 * other threads through its reaper as before, and its close. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <weft/pool.h>

#include "atomic.h"
#include "port_util.h"

/* Internal (port_io.c). */
int weft__port_solo(weft_port *p, void (*fn)(void *), void *arg);
void weft__port_solo_join(weft_port *p);

enum { NCONN = 8, MSG = 64, NPOST = 2000 };
#define KEY_POST ((uintptr_t)77)
#define KEY_QUIT ((uintptr_t)99)

struct sconn {
	int sfd, cfd;
	char buf[MSG * 4];
	weft_overlapped rov, sov;
};

struct solo {
	weft_port *p;
	struct sconn c[NCONN];
	pthread_t main_thread;
	/* written by the solo thread, read by the main thread after the join */
	bool other_thread;
	int errors;	     /* completions with an unexpected status */
	uint32_t eofs;	     /* connections whose peer closed */
	uint64_t echoed;     /* bytes sent back */
	uint32_t posts;	     /* KEY_POST packets taken */
	int timeout_rc;	     /* get with a 30 ms timeout and nothing to take */
	int64_t timeout_ms;  /* how long it took */
	int close_rc;	     /* weft_port_close_fd with a receive pending */
	int cancelled;	     /* that receive's status */
	bool polled;	     /* a receive completed through gets with timeout 0 alone */
	uint32_t done;	     /* atomic: the phases above are over, send the quit */
	uint32_t extra_quits; /* quit packets seen before the phases were over (must be 0) */
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One completion of the echo phase. */
static void on_completion(struct solo *s, weft_completion *e)
{
	if (e->key == KEY_POST && !e->ov) {
		s->posts++;
		return;
	}
	if (e->key == KEY_QUIT) {
		s->extra_quits++;
		return;
	}
	struct sconn *c = &s->c[e->key];
	if (e->ov == &c->rov) {
		if (c->rov.status != 0) {
			s->errors++;
		} else if (e->bytes == 0) {
			s->eofs++;
		} else if (weft_port_send(s->p, c->sfd, c->buf, e->bytes, &c->sov) != 0) {
			s->errors++;
		}
	} else if (e->ov == &c->sov) {
		if (c->sov.status != 0)
			s->errors++;
		s->echoed += e->bytes;
		if (weft_port_recv(s->p, c->sfd, c->buf, sizeof c->buf, &c->rov) != 0)
			s->errors++;
	} else {
		s->errors++;
	}
}

static void solo_fn(void *arg)
{
	struct solo *s = arg;
	weft_port *p = s->p;
	s->other_thread = !pthread_equal(pthread_self(), s->main_thread);
	for (int i = 0; i < NCONN; i++)
		if (weft_port_recv(p, s->c[i].sfd, s->c[i].buf, sizeof s->c[i].buf, &s->c[i].rov) != 0)
			s->errors++;
	/* echo until every peer closed and every posted packet came */
	while (s->eofs < NCONN || s->posts < NPOST) {
		weft_completion e[16];
		uint32_t n = 0;
		int rc = weft_port_get_many(p, e, 16, &n, T_MS, false);
		if (rc != 0) {
			s->errors++;
			break;
		}
		for (uint32_t i = 0; i < n; i++)
			on_completion(s, &e[i]);
	}
	/* nothing left: a timed get sleeps in the backend and times out */
	int64_t t0 = now_ms();
	s->timeout_rc = weft_port_get(p, NULL, NULL, NULL, 30);
	s->timeout_ms = now_ms() - t0;
	/* gets that never wait (timeout 0) reap too: a receive whose bytes come after it
	 * went to the backend completes through them alone */
	int pv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pv) != 0 || weft_port_associate(p, pv[0], 6) != 0) {
		s->errors++;
	} else {
		weft_overlapped ov = {0};
		char b[16];
		if (weft_port_recv(p, pv[0], b, sizeof b, &ov) != 0 || write(pv[1], "polled", 6) != 6)
			s->errors++;
		weft_overlapped *got = NULL;
		int64_t t1 = now_ms();
		while (!got && now_ms() - t1 < 2000) {
			int rc = weft_port_get(p, NULL, NULL, &got, 0);
			if (rc == -ETIMEDOUT)
				usleep(100);
			else if (rc != 0)
				break;
		}
		s->polled = got == &ov && ov.status == 0 && ov.bytes == 6 && memcmp(b, "polled", 6) == 0;
		weft_port_close_fd(p, pv[0]);
		close(pv[1]);
	}
	/* a receive pending on an fd this thread closes: the close waits for its cancel,
	 * which only this thread can reap */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || weft_port_associate(p, sv[0], 5) != 0) {
		s->errors++;
	} else {
		weft_overlapped ov = {0};
		char b[16];
		if (weft_port_recv(p, sv[0], b, sizeof b, &ov) != 0)
			s->errors++;
		s->close_rc = weft_port_close_fd(p, sv[0]);
		weft_overlapped *got = NULL;
		uintptr_t key = 0;
		if (weft_port_get(p, NULL, &key, &got, T_MS) != 0 || got != &ov || key != 5)
			s->errors++;
		s->cancelled = ov.status;
		close(sv[1]);
	}
	/* relaxed would do for the flag; release: the results above, for the main thread's
	 * early look (the join publishes them anyway) */
	weft__store_rel(&s->done, 1u);
	for (;;) {
		uintptr_t key = 0;
		weft_overlapped *ov = NULL;
		int rc = weft_port_get(p, NULL, &key, &ov, T_MS);
		if (rc != 0) {
			s->errors++;
			return;
		}
		if (key == KEY_QUIT)
			return;
		s->errors++; /* nothing else may come now */
	}
}

static void *poster(void *arg)
{
	struct solo *s = arg;
	for (int i = 0; i < NPOST; i++) {
		assert_int_equal(weft_port_post(s->p, 0, KEY_POST, NULL), 0);
		if (i % 64 == 0)
			usleep(200); /* let the solo thread fall asleep in the backend between bursts */
	}
	return NULL;
}

static void test_port_solo_echo(void **state)
{
	(void)state;
	static struct solo s;
	memset(&s, 0, sizeof s);
	s.p = mkport(1);
	s.main_thread = pthread_self();
	for (int i = 0; i < NCONN; i++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		s.c[i].sfd = sv[0];
		s.c[i].cfd = sv[1];
		assert_int_equal(weft_port_associate(s.p, sv[0], (uintptr_t)i), 0);
	}
	assert_int_equal(weft__port_solo(NULL, solo_fn, &s), -EINVAL);
	assert_int_equal(weft__port_solo(s.p, NULL, &s), -EINVAL);
	assert_int_equal(weft__port_solo(s.p, solo_fn, &s), 0);
	assert_int_equal(weft__port_solo(s.p, solo_fn, &s), -EBUSY); /* once per port */
	pthread_t pt;
	assert_int_equal(pthread_create(&pt, NULL, poster, &s), 0);
	/* every connection: rounds of one message each, every byte back in order */
	unsigned rounds = (unsigned)weft_test_iters(400);
	for (unsigned r = 0; r < rounds; r++) {
		char out[MSG], in[MSG];
		for (int i = 0; i < NCONN; i++) {
			for (int k = 0; k < MSG; k++)
				out[k] = (char)(r * 31 + (unsigned)i * 7 + (unsigned)k);
			assert_int_equal(write(s.c[i].cfd, out, MSG), MSG);
		}
		for (int i = 0; i < NCONN; i++) {
			for (int k = 0; k < MSG; k++)
				out[k] = (char)(r * 31 + (unsigned)i * 7 + (unsigned)k);
			size_t got = 0;
			while (got < MSG) {
				ssize_t n = read(s.c[i].cfd, in + got, MSG - got);
				assert_true(n > 0);
				got += (size_t)n;
			}
			assert_memory_equal(in, out, MSG);
		}
		if (r % 50 == 49)
			usleep(2000); /* idle gaps: the solo thread sleeps, the next bytes wake it */
	}
	for (int i = 0; i < NCONN; i++)
		shutdown(s.c[i].cfd, SHUT_WR);
	pthread_join(pt, NULL);
	/* acquire: pairs with the release in solo_fn */
	while (!weft__load_acq(&s.done))
		usleep(1000);
	assert_int_equal(weft_port_post(s.p, 0, KEY_QUIT, NULL), 0);
	weft__port_solo_join(s.p);
	assert_true(s.other_thread);
	assert_int_equal(s.errors, 0);
	assert_int_equal(s.extra_quits, 0);
	assert_int_equal(s.eofs, NCONN);
	assert_int_equal(s.echoed, (uint64_t)rounds * NCONN * MSG);
	assert_int_equal(s.posts, NPOST);
	assert_int_equal(s.timeout_rc, -ETIMEDOUT);
	assert_true(s.timeout_ms >= 29 && s.timeout_ms < 2000);
	assert_true(s.polled);
	assert_int_equal(s.close_rc, 0);
	assert_int_equal(s.cancelled, -ECANCELED);
	/* after the solo function: the port (its reaper) serves other threads as before */
	assert_int_equal(weft_port_post(s.p, 3, KEY_POST, NULL), 0);
	uint32_t bytes = 0;
	assert_int_equal(weft_port_get(s.p, &bytes, NULL, NULL, T_MS), 0);
	assert_int_equal(bytes, 3);
	char b = 'x';
	weft_overlapped ov = {0};
	assert_int_equal(weft_port_recv(s.p, s.c[0].sfd, &b, 1, &ov), 0);
	expect(s.p, &ov, 0);
	assert_int_equal(ov.status, 0); /* the peer shut its side: end of stream */
	assert_int_equal(ov.bytes, 0);
	for (int i = 0; i < NCONN; i++) {
		assert_int_equal(weft_port_close_fd(s.p, s.c[i].sfd), 0);
		close(s.c[i].cfd);
	}
	weft_port_close(s.p);
}

int main(void)
{
	if (tp_skip_backend())
		return 77;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_solo_echo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
