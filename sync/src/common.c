/* common.c - thread ids, CPU count, deadlines, the blocking hook, misuse reports. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomic.h"
#include "internal.h"

__thread uint32_t weft__tls_tid __attribute__((tls_model("initial-exec")));
__thread struct weft__block_tls weft__tls_block __attribute__((tls_model("initial-exec")));

uint32_t weft__tid_slow(void)
{
	weft__tls_tid = (uint32_t)syscall(SYS_gettid);
	return weft__tls_tid;
}

uint32_t weft_current_tid(void)
{
	return weft__tid();
}

uint32_t weft_cpu_count(void)
{
	/* relaxed: any thread computes the same value; a race only repeats the sysconf. */
	static uint32_t cached;
	uint32_t n = weft__load_rlx(&cached);
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (uint32_t)c : 1;
		weft__store_rlx(&cached, n);
	}
	return n;
}

bool weft__smp(void)
{
	return weft_cpu_count() > 1;
}

struct timespec *weft__deadline(struct timespec *ts, uint32_t timeout_ms)
{
	if (timeout_ms == WEFT_INFINITE)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
	return ts;
}

bool weft__deadline_passed(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

void weft__block_set_hook(const struct weft__block_hook *hook, void *ctx)
{
	weft__tls_block.hook = hook;
	weft__tls_block.ctx = ctx;
}

void weft__die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "weft: fatal: %s\n", buf);
	fflush(stderr);
	abort();
}
