/* internal.h - what every sync/ source shares: thread ids, deadlines, the blocking hook,
 * fatal misuse reports. */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <weft/sync.h>

#define WEFT_INTERNAL __attribute__((visibility("hidden")))

/* The cached kernel thread id of the calling thread (never 0 once read). initial-exec
 * TLS: one %fs-relative load, no __tls_get_addr call, also from libweft.so. */
extern __thread uint32_t weft__tls_tid __attribute__((tls_model("initial-exec")));
WEFT_INTERNAL uint32_t weft__tid_slow(void);
static inline uint32_t weft__tid(void)
{
	uint32_t t = weft__tls_tid;
	return t ? t : weft__tid_slow();
}

/* True when spinning can help: more than one CPU online. */
WEFT_INTERNAL bool weft__smp(void);

/* Relative milliseconds to an absolute CLOCK_MONOTONIC deadline. Returns NULL for
 * WEFT_INFINITE (no deadline), else fills and returns ts. */
WEFT_INTERNAL struct timespec *weft__deadline(struct timespec *ts, uint32_t timeout_ms);
/* True once the deadline (non-NULL) has passed. */
WEFT_INTERNAL bool weft__deadline_passed(const struct timespec *deadline);

/* The blocking hook. Every slow path that is about to put the calling thread to sleep in
 * the kernel calls weft__block_begin() first and weft__block_end() after it wakes, so
 * that a completion port can stop counting the thread as running (Windows does this in
 * its scheduler). The hook is per thread: pool/ installs one on its workers; on other
 * threads both calls cost one TLS load. Hooks must not block or call back into a
 * blocking weft primitive. */
struct weft__block_hook {
	void (*begin)(void *ctx);
	void (*end)(void *ctx);
};
struct weft__block_tls {
	const struct weft__block_hook *hook;
	void *ctx;
};
extern __thread struct weft__block_tls weft__tls_block __attribute__((tls_model("initial-exec")));
WEFT_INTERNAL void weft__block_set_hook(const struct weft__block_hook *hook, void *ctx);
static inline void weft__block_begin(void)
{
	if (weft__tls_block.hook)
		weft__tls_block.hook->begin(weft__tls_block.ctx);
}
static inline void weft__block_end(void)
{
	if (weft__tls_block.hook)
		weft__tls_block.hook->end(weft__tls_block.ctx);
}

/* Index of the global bucket (of n) that holds the counters a lock's unlock may touch
 * after its release, when the lock's own memory may already be freed (cs.c, gate.h).
 * Keyed by cache line, so fields of one lock share a bucket. */
static inline uint32_t weft__addr_bucket(const void *p, uint32_t n)
{
	uintptr_t a = (uintptr_t)p / WEFT_CACHE_LINE;
	return (uint32_t)((a ^ (a >> 8)) % n);
}

/* Reports a fatal misuse (a bug in the caller) on stderr and aborts. */
WEFT_INTERNAL _Noreturn void weft__die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef WEFT_DEBUG
#define WEFT_ASSERT(c) ((c) ? (void)0 : weft__die("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__))
#else
#define WEFT_ASSERT(c) ((void)0)
#endif

/* Bounded exponential backoff for spinning waiters: 1, 2, 4 ... 64 pauses. */
static inline void weft__backoff(uint32_t *b)
{
	for (uint32_t i = 0; i < *b; i++)
		weft_cpu_relax();
	if (*b < 64)
		*b <<= 1;
}

#endif
