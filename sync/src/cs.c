/* cs.c - critical section: recursive futex mutex with a bounded spin and an
 * asymmetric-fence unlock.
 *
 * enter: one CAS of locked 0 -> 1. leave: a plain release store of 0 followed by a load of
 * the sleepers count, no locked instruction. That store/load pair races with a waiter that announces
 * itself (sleepers++) and then re-checks locked before sleeping - the Dekker pattern, which
 * needs a full fence on both sides. The waiter, which is about to sleep anyway, pays for
 * both: it issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which executes a full
 * barrier on every CPU running one of our threads, so either the leaving thread's store is
 * visible to the waiter's re-check or the waiter's announcement is visible to the leaving
 * thread's load. Where membarrier is unavailable (seccomp, kernels before 4.14) the mode
 * stays FENCED and leave uses an atomic exchange instead (two locked instructions per
 * enter/leave pair, as a plain futex mutex). */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomic.h"
#include "cs_impl.h"
#include "futex.h"

/* Sleeper counts live in global buckets keyed by the section's address, never in the
 * section: leave reads the count after it released the section, and by then another
 * thread may have entered, left and freed it (destroying a section right after its last
 * leave returns is legal). After the release, leave touches only its bucket and, when
 * someone sleeps, issues a futex wake on the section's address (a system call on a freed
 * address is harmless; at worst it wakes a waiter of a reused address, and every weft
 * waiter re-checks). Sections that share a bucket only cost each other spurious wakes. */
#define CS_BUCKETS 256
struct cs_bucket {
	uint32_t sleepers;
} WEFT_CACHE_ALIGNED;
static struct cs_bucket cs_buckets[CS_BUCKETS];

static inline uint32_t *cs_sleepers(const struct cs_impl *c)
{
	return &cs_buckets[weft__addr_bucket(c, CS_BUCKETS)].sleepers;
}

enum { MODE_UNKNOWN, MODE_FENCED, MODE_ASYM };
static uint32_t cs_mode = MODE_UNKNOWN;

/* Called by a waiter before it announces itself; returns the mode, registering with
 * membarrier the first time. Once ASYM the mode never changes. */
static uint32_t cs_mode_get(void)
{
	/* acquire: pairs with the release store below (registration precedes ASYM). */
	uint32_t m = weft__load_acq(&cs_mode);
	if (m != MODE_UNKNOWN)
		return m;
	long r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
	m = r == 0 ? MODE_ASYM : MODE_FENCED;
	uint32_t expected = MODE_UNKNOWN;
	/* release: publishes the registration; a lost race keeps the first decision. */
	if (!weft__cas_rel(&cs_mode, &expected, m))
		m = expected;
	return m;
}

/* Decide the mode when the library loads, so leave takes the cheap path from the first
 * call (the waiter-side lazy call above covers a failed or skipped constructor). */
__attribute__((constructor)) static void cs_mode_init(void)
{
	(void)cs_mode_get();
}

/* The waiter's half of the Dekker pair (see the top of the file). */
static void cs_waiter_barrier(uint32_t mode)
{
	if (mode == MODE_ASYM && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		weft__die("membarrier(PRIVATE_EXPEDITED) failed after registration");
	/* MODE_FENCED: the seq_cst announcement and the leaving thread's exchange order it. */
}

void weft_cs_init(weft_cs *cs, uint32_t spin_count)
{
	*cs = (weft_cs){{0}};
	cs_of(cs)->spin = spin_count;
}

void weft_cs_destroy(weft_cs *cs)
{
#ifdef WEFT_DEBUG
	if (weft__load_rlx(&cs_of(cs)->locked) != 0)
		weft__die("weft_cs_destroy(%p \"%s\"): section is still held by thread %u", (void *)cs,
			  cs_of(cs)->name ? cs_of(cs)->name : "", weft__load_rlx(&cs_of(cs)->owner));
#endif
	(void)cs;
}

uint32_t weft_cs_set_spin_count(weft_cs *cs, uint32_t spin_count)
{
	/* relaxed: a hint read by the slow path; no data depends on it. */
	return (uint32_t)__atomic_exchange_n(&cs_of(cs)->spin, (uint64_t)spin_count, __ATOMIC_RELAXED);
}

void weft_cs_set_name(weft_cs *cs, const char *name)
{
	cs_of(cs)->name = name;
}

bool weft_cs_is_owned(const weft_cs *cs)
{
	return weft__load_rlx(&((const struct cs_impl *)(const void *)cs)->owner) == weft__tid();
}

void weft_cs_get_stats(const weft_cs *cs, weft_cs_stats *out)
{
	const struct cs_impl *c = (const struct cs_impl *)(const void *)cs;
	out->contentions = weft__load_rlx(&c->contentions);
	out->sleeps = weft__load_rlx(&c->sleeps);
	out->spins_won = weft__load_rlx(&c->spins_won);
}

static inline bool cs_try_take(struct cs_impl *c)
{
	uint32_t z = 0;
	/* acquire: pairs with the release store (or exchange) of 0 in weft_cs_leave(). */
	return weft__cas_acq(&c->locked, &z, 1u);
}

static void cs_sleep_until_taken(struct cs_impl *c)
{
	uint32_t mode = cs_mode_get();
	for (;;) {
		if (cs_try_take(c))
			return;
		/* seq_cst: announce before re-checking locked (see the top of the file). */
		__atomic_fetch_add(cs_sleepers(c), 1, __ATOMIC_SEQ_CST);
		cs_waiter_barrier(mode);
		if (cs_try_take(c)) {
			__atomic_fetch_sub(cs_sleepers(c), 1, __ATOMIC_RELAXED);
			return;
		}
		weft__fadd_rlx(&c->sleeps, 1u);
		weft__block_begin();
		weft__futex_wait(&c->locked, 1u, NULL);
		weft__block_end();
		__atomic_fetch_sub(cs_sleepers(c), 1, __ATOMIC_RELAXED);
	}
}

static inline void cs_own(struct cs_impl *c, uint32_t me)
{
	weft__store_rlx(&c->owner, me);
	c->recursion = 1;
}

static void cs_enter_slow(struct cs_impl *c, uint32_t me)
{
	weft__fadd_rlx(&c->contentions, 1u);
	uint64_t spin = weft__smp() ? weft__load_rlx(&c->spin) : 0;
	/* Exponential backoff between looks (1..64 pauses, each counted against the spin
	 * count): waiters that poll the line less let the owner's next enter find it in its
	 * own cache, instead of every hand-off bouncing the line between CPUs. */
	uint32_t backoff = 1;
	for (uint64_t i = 0; i < spin; i += backoff) {
		if (weft__load_rlx(&c->locked) == 0 && cs_try_take(c)) {
			weft__fadd_rlx(&c->spins_won, 1u);
			cs_own(c, me);
			return;
		}
		/* Others already sleep: the section is contended beyond what spinning helps
		 * (typically more threads than CPUs, the owner maybe descheduled). Queue up
		 * rather than burn the CPU the owner may need. */
		if (weft__load_rlx(cs_sleepers(c)) != 0)
			break;
		weft__backoff(&backoff);
	}
	cs_sleep_until_taken(c);
	cs_own(c, me);
}

void weft_cs_enter(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	uint32_t me = weft__tid();
	if (__builtin_expect(cs_try_take(c), 1)) {
		cs_own(c, me);
		return;
	}
	if (weft__load_rlx(&c->owner) == me) {
		c->recursion++;
		return;
	}
	cs_enter_slow(c, me);
}

void weft__cs_enter_after_wait(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	if (!cs_try_take(c)) {
		weft__fadd_rlx(&c->contentions, 1u);
		cs_sleep_until_taken(c);
	}
	cs_own(c, weft__tid());
}

bool weft_cs_try_enter(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	uint32_t me = weft__tid();
	if (cs_try_take(c)) {
		cs_own(c, me);
		return true;
	}
	if (weft__load_rlx(&c->owner) == me) {
		c->recursion++;
		return true;
	}
	return false;
}

static _Noreturn void cs_foreign_leave(struct cs_impl *c, uint32_t me)
{
	uint32_t owner = weft__load_rlx(&c->owner);
	weft__die("weft_cs_leave(%p \"%s\"): thread %u leaves a critical section it does not own "
		  "(owner: %s%u)",
		  (void *)c, c->name ? c->name : "", me, owner ? "thread " : "none, ", owner);
}

/* After the release: c may be freed already, so only futex wakes on its addresses and
 * the bucket count are used (see cs_buckets). */
static void cs_leave_slow(struct cs_impl *c, uint32_t *sleepers, bool requeued)
{
	/* A requeued thread gets the turn; if it already left (timed out), the turn goes
	 * to a sleeper on locked, so no sleeper misses this leave. */
	if (requeued && weft__futex_wake(&c->rq, 1) > 0)
		return;
	if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST) != 0)
		weft__futex_wake(&c->locked, 1);
}

void weft_cs_leave(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	uint32_t me = weft__tid();
	if (__builtin_expect(weft__load_rlx(&c->owner) != me, 0))
		cs_foreign_leave(c, me);
	if (--c->recursion != 0)
		return;
	weft__store_rlx(&c->owner, 0u);
	/* Threads a condition variable moved onto rq: hand one of them the next turn
	 * (decided while we still hold the section, which guards the count). */
	bool requeued = c->requeued != 0;
	if (__builtin_expect(requeued, 0))
		c->requeued--;
	uint32_t *sleepers = cs_sleepers(c);
	/* relaxed: the mode only tells which fence discipline waiters follow; it moves
	 * once, from UNKNOWN (treated as FENCED) to its final value. */
	if (__builtin_expect(weft__load_rlx(&cs_mode) == MODE_ASYM, 1)) {
		/* release: publishes the critical section to the next acquirer. The sleepers
		 * load after it is ordered by the waiters' membarrier (top of the file); the
		 * compiler must not hoist it above the store. */
		weft__store_rel(&c->locked, 0u);
		__asm__ __volatile__("" ::: "memory");
	} else {
		/* seq_cst: pairs with the seq_cst announcement in cs_sleep_until_taken(). */
		__atomic_exchange_n(&c->locked, 0u, __ATOMIC_SEQ_CST);
	}
	/* From here on c may be freed: only the bucket and futex wakes (see cs_buckets). */
	if (__builtin_expect(requeued || __atomic_load_n(sleepers, __ATOMIC_SEQ_CST) != 0, 0))
		cs_leave_slow(c, sleepers, requeued);
}
