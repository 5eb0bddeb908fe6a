/* bench_waitmany.c - waiting on many objects (issue 3's wait-any rows).
 *
 * waitany_ready/<impl>/<n>: the object at index n-1 is already signaled (a manual-reset
 * event; for poll, a readable eventfd); one iteration is one wait-any over all n objects,
 * returning index n-1 without blocking: the cost of scanning n objects.
 * waitany_pingpong/<impl>/<n>: the benchmark thread sets the object at index n-1 (an
 * auto-reset event, or an eventfd) and waits for a reply on one more; a helper thread
 * blocks in a wait-any over all n objects, then replies. One iteration is a round trip.
 * Peer: poll(2) over n eventfds, the Linux idiom for "wake me when any of these fires".
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <weft/sync.h>

#include "bench_common.h"

#define MAX_N 1000

struct wm_run {
	int n;
	bool use_poll;
	weft_handle *ev[MAX_N + 1]; /* [n] is the reply */
	int fd[MAX_N + 1];
	struct pollfd pfd[MAX_N];
	pthread_t helper;
	int stop;
	int errors;
};

static void wm_open(struct wm_run *r, bool manual)
{
	for (int i = 0; i <= r->n; i++) {
		if (r->use_poll) {
			r->fd[i] = eventfd(0, EFD_CLOEXEC);
			if (i < r->n)
				r->pfd[i] = (struct pollfd){ .fd = r->fd[i], .events = POLLIN };
		} else {
			r->ev[i] = weft_event_create(manual && i == r->n - 1, false);
		}
	}
}

static void wm_close(struct wm_run *r)
{
	for (int i = 0; i <= r->n; i++) {
		if (r->use_poll)
			close(r->fd[i]);
		else
			weft_handle_close(r->ev[i]);
	}
}

static void fd_signal(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof one) != sizeof one)
		abort();
}

static void fd_take(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof v) != sizeof v)
		abort();
}

/* Waits for any of the first n objects; returns the index. */
static int wm_wait_any(struct wm_run *r)
{
	if (!r->use_poll)
		return weft_wait_many(r->ev, (size_t)r->n, false, WEFT_INFINITE);
	if (poll(r->pfd, (nfds_t)r->n, -1) <= 0)
		return -1;
	for (int i = 0; i < r->n; i++)
		if (r->pfd[i].revents & POLLIN)
			return i;
	return -1;
}

static void ready_setup(weft_bench_state *st, void *ctx)
{
	struct wm_run *r = ctx;
	r->n = (int)weft_bench_arg(st, 0);
	wm_open(r, true);
	if (r->use_poll)
		fd_signal(r->fd[r->n - 1]);
	else
		weft_event_set(r->ev[r->n - 1]);
}

static void ready_teardown(weft_bench_state *st, void *ctx)
{
	(void)st;
	wm_close(ctx);
}

static void bm_ready(weft_bench_state *st, void *ctx)
{
	struct wm_run *r = ctx;
	int bad = 0;
	while (weft_bench_batch(st, 1))
		bad += wm_wait_any(r) != r->n - 1;
	if (bad)
		weft_bench_skip_with_error(st, "wait-any returned the wrong index");
	weft_bench_set_items(st, (int64_t)weft_bench_max_iterations(st));
}

static void *pp_helper(void *arg)
{
	struct wm_run *r = arg;
	for (;;) {
		int i = wm_wait_any(r);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			return NULL;
		if (i != r->n - 1)
			__atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
		if (r->use_poll) {
			fd_take(r->fd[r->n - 1]);
			fd_signal(r->fd[r->n]);
		} else {
			weft_event_set(r->ev[r->n]);
		}
	}
}

static void pp_setup(weft_bench_state *st, void *ctx)
{
	struct wm_run *r = ctx;
	r->n = (int)weft_bench_arg(st, 0);
	r->stop = 0;
	r->errors = 0;
	wm_open(r, false);
	pthread_create(&r->helper, NULL, pp_helper, r);
}

static void pp_teardown(weft_bench_state *st, void *ctx)
{
	(void)st;
	struct wm_run *r = ctx;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	if (r->use_poll)
		fd_signal(r->fd[r->n - 1]);
	else
		weft_event_set(r->ev[r->n - 1]);
	pthread_join(r->helper, NULL);
	wm_close(r);
}

static void bm_pingpong(weft_bench_state *st, void *ctx)
{
	struct wm_run *r = ctx;
	while (weft_bench_batch(st, 1)) {
		if (r->use_poll) {
			fd_signal(r->fd[r->n - 1]);
			struct pollfd p = { .fd = r->fd[r->n], .events = POLLIN };
			while (poll(&p, 1, -1) != 1)
				;
			fd_take(r->fd[r->n]);
		} else {
			weft_event_set(r->ev[r->n - 1]);
			weft_wait(r->ev[r->n], WEFT_INFINITE);
		}
	}
	if (__atomic_load_n(&r->errors, __ATOMIC_RELAXED))
		weft_bench_skip_with_error(st, "wait-any returned the wrong index");
	weft_bench_set_items(st, (int64_t)weft_bench_max_iterations(st));
}

void bench_waitmany_register(void)
{
	static struct wm_run runs[4];
	static const int64_t sizes[] = { 64, 1000 };
	const char *impl[2] = { "weft", "poll_eventfd" };
	for (int k = 0; k < 2; k++) {
		char name[96];
		struct wm_run *ready = &runs[k], *pp = &runs[2 + k];
		ready->use_poll = pp->use_poll = k == 1;
		snprintf(name, sizeof name, "waitany_ready/%s", impl[k]);
		weft_bench_register(name, bm_ready, &(weft_bench_opts){
			.args = sizes, .n_args = 2, .arg_names = (const char *const[]){ "n" },
			.min_time = bench_quick ? 0.02 : 0.2, .real_time = true,
			.setup = ready_setup, .teardown = ready_teardown, .ctx = ready});
		snprintf(name, sizeof name, "waitany_pingpong/%s", impl[k]);
		weft_bench_register(name, bm_pingpong, &(weft_bench_opts){
			.args = sizes, .n_args = 2, .arg_names = (const char *const[]){ "n" },
			.min_time = bench_quick ? 0.02 : 0.2, .real_time = true, .process_cpu_time = true,
			.setup = pp_setup, .teardown = pp_teardown, .ctx = pp});
	}
}
