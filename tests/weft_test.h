/* weft_test.h - shared helpers for the cmocka suites.
 * cmocka is not thread-safe: worker threads only record into structs; the main thread
 * joins them and asserts. */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_TEST_SANITIZED 1
#endif
#endif

/* Iteration counts for stress tests: full size in a plain build, divided under the
 * sanitizers (which slow atomics 5-20x) so the suite stays bounded on a 2-core machine.
 * WEFT_STRESS_SCALE=<n> in the environment multiplies (nightly runs). */
static inline uint64_t weft_test_iters(uint64_t n)
{
#ifdef WEFT_TEST_SANITIZED
	n /= 8;
	if (n == 0)
		n = 1;
#endif
	const char *s = getenv("WEFT_STRESS_SCALE");
	if (s && atoi(s) > 0)
		n *= (uint64_t)atoi(s);
	return n;
}

static inline uint64_t weft_test_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
