/* weft/sync.h - user-mode synchronization: spinlocks, critical section, SRW lock,
 * condition variable, init-once and synchronization barrier.
 *
 * All objects here live in caller-owned storage, have a static initializer or an _init,
 * and never allocate. Blocking slow paths use futexes on CLOCK_MONOTONIC and report to the
 * blocking hook (see weft__block_begin in the sources), so the thread pool can count the
 * threads that really run. Timeouts are relative milliseconds; WEFT_INFINITE waits forever.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/interlocked.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_INFINITE UINT32_MAX

/* CONTAINING_RECORD: recover the enclosing object from a pointer to one of its members. */
#define weft_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#if defined(__cplusplus)
#define WEFT__STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define WEFT__STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* ---------------------------------------------------------------------------------------
 * Spinlocks. Each lock fills and is aligned to one cache line, so the lock never shares a
 * line with the data it protects (false sharing) or with another lock.
 * ------------------------------------------------------------------------------------- */

/* Test-and-test-and-set with exponential backoff. After a bounded number of backoff
 * rounds a waiter yields the CPU; on a machine with one online CPU it never spins at all
 * (the holder cannot run while we spin). Not recursive, not fair. Never sleeps in the
 * kernel, so keep the critical section short and do not block inside it. */
typedef struct WEFT_CACHE_ALIGNED weft_spinlock {
	uint32_t _private[WEFT_CACHE_LINE / 4];
} weft_spinlock;
#define WEFT_SPINLOCK_INIT {{0}}
WEFT_API void weft_spin_init(weft_spinlock *l);
/* The contended path of weft_spin_lock (exported for the inline fast path below). */
WEFT_API void weft__spin_lock_slow(weft_spinlock *l);
/* lock/trylock/unlock are inline: a spinlock's whole point is a few instructions, and a
 * call per operation would cost as much as the lock itself when uncontended. */
static inline void weft_spin_lock(weft_spinlock *l)
{
	/* acquire: pairs with the release store in weft_spin_unlock(). */
	if (__builtin_expect(__atomic_exchange_n(&l->_private[0], 1u, __ATOMIC_ACQUIRE) != 0, 0))
		weft__spin_lock_slow(l);
}
static inline bool weft_spin_trylock(weft_spinlock *l)
{
	return __atomic_load_n(&l->_private[0], __ATOMIC_RELAXED) == 0 &&
	       __atomic_exchange_n(&l->_private[0], 1u, __ATOMIC_ACQUIRE) == 0;
}
static inline void weft_spin_unlock(weft_spinlock *l)
{
	/* release: publishes the critical section to the next acquirer's exchange. */
	__atomic_store_n(&l->_private[0], 0u, __ATOMIC_RELEASE);
}

/* Fair FIFO ticket lock. Only the next ticket holder spins on the lock word; waiters
 * further back (or any waiter after a bounded spin) park on a futex keyed to their own
 * position, and unlock wakes exactly the next position. An admission gate keeps the FIFO
 * queue about as long as the number of CPUs: further arrivals park before taking a ticket
 * and are admitted when the queue runs empty or every 512 hand-offs. So the lock is
 * strictly FIFO among running threads (two threads on two CPUs alternate) and does not
 * collapse into a context switch per hand-off when oversubscribed. trylock succeeds only
 * when no one holds or waits. */
typedef struct WEFT_CACHE_ALIGNED weft_ticketlock {
	uint32_t _private[WEFT_CACHE_LINE / 4];
} weft_ticketlock;
#define WEFT_TICKETLOCK_INIT {{0}}
WEFT_API void weft_ticket_init(weft_ticketlock *t);
WEFT_API void weft_ticket_lock(weft_ticketlock *t);
WEFT_API bool weft_ticket_trylock(weft_ticketlock *t);
WEFT_API void weft_ticket_unlock(weft_ticketlock *t);

/* MCS queue lock: FIFO, each waiter spins on its own node (one cache line each), then
 * parks on a futex in that node after a bounded spin; the same admission gate as the
 * ticket lock keeps an oversubscribed machine from collapsing. The node is the caller's,
 * usually on its stack, and must stay alive and unused from lock to the matching unlock. */
typedef struct WEFT_CACHE_ALIGNED weft_mcslock {
	void *_private[WEFT_CACHE_LINE / sizeof(void *)];
} weft_mcslock;
typedef struct WEFT_CACHE_ALIGNED weft_mcs_node {
	void *_private[WEFT_CACHE_LINE / sizeof(void *)];
} weft_mcs_node;
#define WEFT_MCSLOCK_INIT {{0}}
WEFT_API void weft_mcs_init(weft_mcslock *m);
WEFT_API void weft_mcs_lock(weft_mcslock *m, weft_mcs_node *n);
WEFT_API bool weft_mcs_trylock(weft_mcslock *m, weft_mcs_node *n);
WEFT_API void weft_mcs_unlock(weft_mcslock *m, weft_mcs_node *n);

/* ---------------------------------------------------------------------------------------
 * Critical section (CRITICAL_SECTION): recursive, owned by a thread.
 *
 * enter: one compare-and-swap when free; leave: a plain store and a load (waiters pay for
 * the fence with membarrier(2) when they go to sleep; see cs.c). The owner re-entering only
 * bumps a count. When
 * taken, spins up to spin_count rounds (InitializeCriticalSectionAndSpinCount; ignored on
 * a single-CPU machine), then sleeps on a futex: it never busy-waits after the spin.
 * leave by a thread that does not own the section is always detected and aborts the
 * process with a message naming the section (its address and name, if set) and both
 * threads: it is a bug that would otherwise corrupt whoever owns it. In WEFT_DEBUG builds
 * destroying a held section aborts as well.
 * ------------------------------------------------------------------------------------- */
typedef struct WEFT_CACHE_ALIGNED weft_cs {
	uint64_t _private[WEFT_CACHE_LINE / 8];
} weft_cs;
/* ~25 us of PAUSE on current x86 (about one futex sleep and wake-up). */
#define WEFT_CS_DEFAULT_SPIN 1000u
/* A statically initialized section, with the default spin count. */
#define WEFT_CS_INIT {{0, WEFT_CS_DEFAULT_SPIN}}

WEFT_API void weft_cs_init(weft_cs *cs, uint32_t spin_count);
WEFT_API void weft_cs_destroy(weft_cs *cs);
WEFT_API void weft_cs_enter(weft_cs *cs);
WEFT_API bool weft_cs_try_enter(weft_cs *cs);
WEFT_API void weft_cs_leave(weft_cs *cs);
/* Sets the spin count; returns the previous one (SetCriticalSectionSpinCount). */
WEFT_API uint32_t weft_cs_set_spin_count(weft_cs *cs, uint32_t spin_count);
/* Names the section in misuse reports. The string must outlive the section. */
WEFT_API void weft_cs_set_name(weft_cs *cs, const char *name);
/* True when the calling thread owns the section. */
WEFT_API bool weft_cs_is_owned(const weft_cs *cs);

/* Contention statistics, like CRITICAL_SECTION_DEBUG. Counting happens only on the slow
 * path (after the first CAS failed), so it costs nothing to the uncontended fast path.
 * contentions: enters that found the section held by another thread; sleeps: times a
 * thread slept on the futex; spins_won: contended enters that got in while spinning. */
typedef struct weft_cs_stats {
	uint64_t contentions, sleeps, spins_won;
} weft_cs_stats;
WEFT_API void weft_cs_get_stats(const weft_cs *cs, weft_cs_stats *out);

/* ---------------------------------------------------------------------------------------
 * SRW lock (SRWLOCK): pointer-sized, shared or exclusive, not recursive.
 *
 * Policy - writers are never starved and neither are readers:
 *  - while a writer holds the lock or waits for it, new readers queue behind it;
 *  - a writer gets in as soon as the readers inside leave;
 *  - when a writer leaves, every reader that queued while it held or waited is admitted at
 *    once, before the next writer: readers wait at most one writer phase.
 * Both kinds spin briefly, then sleep on a futex. Limits: 4095 threads waiting on one
 * lock of each kind at a time.
 * ------------------------------------------------------------------------------------- */
typedef struct weft_srw {
	uint64_t _private;
} weft_srw;
#define WEFT_SRW_INIT {0}
WEFT_API void weft_srw_init(weft_srw *s);
WEFT_API void weft_srw_lock_shared(weft_srw *s);
WEFT_API void weft_srw_unlock_shared(weft_srw *s);
WEFT_API void weft_srw_lock_exclusive(weft_srw *s);
WEFT_API void weft_srw_unlock_exclusive(weft_srw *s);
WEFT_API bool weft_srw_try_lock_shared(weft_srw *s);
WEFT_API bool weft_srw_try_lock_exclusive(weft_srw *s);

/* ---------------------------------------------------------------------------------------
 * Condition variable (CONDITION_VARIABLE).
 *
 * sleep releases the lock, waits for a wake or the timeout (relative ms on
 * CLOCK_MONOTONIC, WEFT_INFINITE for none), and reacquires the lock in the same mode
 * before returning; false means it timed out. Spurious wake-ups can happen (as on
 * Windows): always re-check the predicate in a loop. A sleeper spins briefly on the
 * variable before it sleeps, so a quick hand-off costs no system call; an idle sleeper
 * then burns no CPU. wake_all by the holder of a section-guarded variable wakes one sleeper
 * and moves the others onto the section, which lets one in per leave, instead of waking
 * them all at once to fight for it (no thundering herd).
 * A critical section must be held exactly once (not recursively) while sleeping on it.
 * ------------------------------------------------------------------------------------- */
typedef struct weft_cond {
	uint64_t _private[2];
} weft_cond;
#define WEFT_COND_INIT {{0, 0}}
WEFT_API void weft_cond_init(weft_cond *c);
WEFT_API bool weft_cond_sleep_cs(weft_cond *c, weft_cs *cs, uint32_t timeout_ms);
WEFT_API bool weft_cond_sleep_srw(weft_cond *c, weft_srw *s, uint32_t timeout_ms, bool shared);
WEFT_API void weft_cond_wake(weft_cond *c);
WEFT_API void weft_cond_wake_all(weft_cond *c);

/* ---------------------------------------------------------------------------------------
 * Init-once (INIT_ONCE / InitOnceExecuteOnce).
 *
 * weft_once_execute runs fn(once, param, &ctx) exactly once across all threads; callers
 * that arrive while it runs sleep until it finishes. If fn returns false the once stays
 * uninitialized (the next caller runs fn again) and weft_once_execute returns -EAGAIN;
 * otherwise it returns 0 and stores the context fn produced into *context (if non-NULL).
 * ------------------------------------------------------------------------------------- */
typedef struct weft_once {
	uint64_t _private[2];
} weft_once;
#define WEFT_ONCE_INIT {{0, 0}}
typedef bool (*weft_once_fn)(weft_once *once, void *param, void **context);
WEFT_API void weft_once_init(weft_once *once);
WEFT_API int weft_once_execute(weft_once *once, weft_once_fn fn, void *param, void **context);

/* ---------------------------------------------------------------------------------------
 * Synchronization barrier (SYNCHRONIZATION_BARRIER / EnterSynchronizationBarrier).
 *
 * total threads meet at the barrier each phase. Arrivals spin up to spin_count rounds
 * (-1: a default; 0: never), then sleep. weft_barrier_enter returns true in exactly one
 * thread per phase (the last to arrive) and false in the others. The barrier is reusable
 * at once for the next phase. init returns -EINVAL when total is 0.
 * ------------------------------------------------------------------------------------- */
typedef struct WEFT_CACHE_ALIGNED weft_barrier {
	uint32_t _private[WEFT_CACHE_LINE / 4];
} weft_barrier;
WEFT_API int weft_barrier_init(weft_barrier *b, uint32_t total, int32_t spin_count);
WEFT_API bool weft_barrier_enter(weft_barrier *b);
WEFT_API void weft_barrier_destroy(weft_barrier *b);

/* The number of online CPUs, read once. */
WEFT_API uint32_t weft_cpu_count(void);

/* The caller's kernel thread id (gettid), cached per thread. */
WEFT_API uint32_t weft_current_tid(void);

WEFT__STATIC_ASSERT(sizeof(weft_spinlock) == WEFT_CACHE_LINE, "weft_spinlock is one line");
WEFT__STATIC_ASSERT(sizeof(weft_ticketlock) == WEFT_CACHE_LINE, "weft_ticketlock is one line");
WEFT__STATIC_ASSERT(sizeof(weft_mcslock) == WEFT_CACHE_LINE, "weft_mcslock is one line");
WEFT__STATIC_ASSERT(sizeof(weft_mcs_node) == WEFT_CACHE_LINE, "weft_mcs_node is one line");
WEFT__STATIC_ASSERT(sizeof(weft_cs) == WEFT_CACHE_LINE, "weft_cs is one line");
WEFT__STATIC_ASSERT(sizeof(weft_srw) <= sizeof(void *), "weft_srw is pointer-sized");
WEFT__STATIC_ASSERT(sizeof(weft_cond) == 16, "weft_cond ABI");
WEFT__STATIC_ASSERT(sizeof(weft_once) == 16, "weft_once ABI");
WEFT__STATIC_ASSERT(sizeof(weft_barrier) == WEFT_CACHE_LINE, "weft_barrier is one line");

#include <weft/waitable.h>
#ifdef __cplusplus
}
#endif
#endif
