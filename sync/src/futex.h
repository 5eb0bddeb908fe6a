/* futex.h - thin wrappers over futex(2), private to the process.
 * Waits take an absolute CLOCK_MONOTONIC deadline (NULL: none), computed once on entry by
 * the caller, so spurious wake-ups never stretch a wait. */
#ifndef WEFT_FUTEX_H
#define WEFT_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, until woken, the deadline passes (-ETIMEDOUT), a signal
 * (-EINTR) or *word != expected on entry (-EAGAIN). Only waiters whose bitset intersects
 * the waker's are woken. */
static inline int weft__futex_wait_bits(uint32_t *word, uint32_t expected, const struct timespec *deadline,
					uint32_t bits)
{
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, deadline, NULL, bits);
	return r == 0 ? 0 : -errno;
}

static inline int weft__futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline)
{
	return weft__futex_wait_bits(word, expected, deadline, FUTEX_BITSET_MATCH_ANY);
}

/* Wakes up to n waiters (INT_MAX: all); returns how many woke. */
static inline int weft__futex_wake_bits(uint32_t *word, int n, uint32_t bits)
{
	long r = syscall(SYS_futex, word, FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, n, NULL, NULL, bits);
	return r >= 0 ? (int)r : -errno;
}

static inline int weft__futex_wake(uint32_t *word, int n)
{
	long r = syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
	return r >= 0 ? (int)r : -errno;
}

/* Wakes n_wake waiters on from and moves up to n_requeue others onto to, if *from still
 * holds expected (else -EAGAIN). */
static inline int weft__futex_cmp_requeue(uint32_t *from, uint32_t expected, int n_wake, int n_requeue, uint32_t *to)
{
	long r = syscall(SYS_futex, from, FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG, n_wake,
			 (unsigned long)n_requeue, to, expected);
	return r >= 0 ? (int)r : -errno;
}

#endif
