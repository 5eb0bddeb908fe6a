/* srw.c - slim reader/writer lock in one 64-bit word.
 *
 * bit 0       W: a writer holds the lock
 * bits 1..31  R: readers holding the lock (step 2)
 * bits 32..43 readers waiting (step 1 << 32)
 * bits 44..55 writers waiting (step 1 << 44)
 * bits 56..63 grant epoch, bumped when a writer admits the waiting readers
 *
 * Readers queue (the "readers waiting" count) whenever a writer holds the lock or waits
 * for it, so a stream of readers cannot starve a writer. A writer enters once W and R are
 * clear, even while readers queue: those readers are waiting for exactly this writer
 * phase. When a writer leaves and readers queue, it converts all of them into holders in
 * the same CAS (clearing W, bumping the epoch) and wakes them; they find the epoch moved
 * and return already holding the lock, so readers wait at most one writer phase.
 * Invariant: readers waiting > 0 implies W or writers waiting > 0, so someone will leave
 * a writer phase and grant them.
 * Futexes: writers sleep on the low 32 bits (W and R), readers on the high 32 bits
 * (counts and epoch); a changed half wakes or turns away the sleeper. */
#include <sched.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define W 1ull
#define R_ONE 2ull
#define R_MASK 0xfffffffeull
#define RW_ONE (1ull << 32)
#define RW_MASK (0xfffull << 32)
#define WW_ONE (1ull << 44)
#define WW_MASK (0xfffull << 44)
#define EP_ONE (1ull << 56)
#define SPIN 200

#define READERS_WAITING(v) (((v) & RW_MASK) >> 32)
#define WRITERS_WAITING(v) (((v) & WW_MASK) >> 44)

static inline uint64_t *word(weft_srw *s)
{
	return &s->_private;
}
/* Little-endian halves of the word (x86-64, AArch64). */
static inline uint32_t *lo(weft_srw *s)
{
	return (uint32_t *)(void *)&s->_private;
}
static inline uint32_t *hi(weft_srw *s)
{
	return lo(s) + 1;
}

void weft_srw_init(weft_srw *s)
{
	*s = (weft_srw)WEFT_SRW_INIT;
}

static inline bool reader_may_enter(uint64_t v)
{
	return !(v & W) && WRITERS_WAITING(v) == 0;
}

bool weft_srw_try_lock_shared(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	/* acquire: pairs with the release CAS/sub of the previous writer or readers. */
	while (reader_may_enter(v))
		if (weft__cas_acq(word(s), &v, v + R_ONE))
			return true;
	return false;
}

static void reader_sleep(weft_srw *s, uint32_t epoch)
{
	weft__block_begin();
	for (;;) {
		uint32_t h = weft__load_rlx(hi(s));
		if ((h >> 24) != epoch)
			break;
		weft__futex_wait(hi(s), h, NULL);
	}
	weft__block_end();
	/* acquire, on the whole word: pairs with the release CAS of the granting writer
	 * (a load of the same object, so ThreadSanitizer sees the pairing too). */
	(void)weft__load_acq(word(s));
}

static void srw_lock_shared_slow(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	for (uint32_t spin = weft__smp() ? SPIN : 0;; ) {
		if (reader_may_enter(v)) {
			if (weft__cas_acq(word(s), &v, v + R_ONE))
				return;
			continue;
		}
		if (spin > 0) {
			spin--;
			weft_cpu_relax();
			v = weft__load_rlx(word(s));
			continue;
		}
		/* Queue behind the writer; the writer that leaves next grants us the lock. */
		if (weft__cas_rlx(word(s), &v, v + RW_ONE)) {
			reader_sleep(s, (uint32_t)((v + RW_ONE) >> 56));
			return;
		}
	}
}

void weft_srw_lock_shared(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	/* acquire: pairs with the release CAS/sub of the previous writer or readers. */
	if (__builtin_expect(reader_may_enter(v) && weft__cas_acq(word(s), &v, v + R_ONE), 1))
		return;
	srw_lock_shared_slow(s);
}

void weft_srw_unlock_shared(weft_srw *s)
{
	/* release: publishes the read section (a writer reads data after us). */
	uint64_t v = weft__fsub_rel(word(s), R_ONE) - R_ONE;
	WEFT_ASSERT(((v + R_ONE) & R_MASK) != 0);
	if ((v & (R_MASK | W)) == 0 && WRITERS_WAITING(v) != 0)
		weft__futex_wake(lo(s), 1);
}

bool weft_srw_try_lock_exclusive(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	/* acquire: pairs with the release of the previous holders. */
	while (!(v & (W | R_MASK)))
		if (weft__cas_acq(word(s), &v, v | W))
			return true;
	return false;
}

static void srw_lock_exclusive_slow(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	bool queued = false;
	uint32_t spin = weft__smp() ? SPIN : 0;
	for (;;) {
		if (!(v & (W | R_MASK))) {
			uint64_t n = (v | W) - (queued ? WW_ONE : 0);
			/* acquire: pairs with the release of the previous holders. */
			if (weft__cas_acq(word(s), &v, n))
				return;
			continue;
		}
		if (!queued) {
			/* Register first: from now on new readers queue, so the ones inside drain. */
			if (!weft__cas_rlx(word(s), &v, v + WW_ONE))
				continue;
			v += WW_ONE;
			queued = true;
			continue;
		}
		if (spin > 0) {
			spin--;
			weft_cpu_relax();
		} else {
			weft__block_begin();
			weft__futex_wait(lo(s), (uint32_t)v, NULL);
			weft__block_end();
		}
		v = weft__load_rlx(word(s));
	}
}

void weft_srw_lock_exclusive(weft_srw *s)
{
	uint64_t v = 0;
	/* acquire: pairs with the release of the previous holders. */
	if (__builtin_expect(weft__cas_acq(word(s), &v, W), 1))
		return;
	srw_lock_exclusive_slow(s);
}

void weft_srw_unlock_exclusive(weft_srw *s)
{
	uint64_t v = weft__load_rlx(word(s));
	WEFT_ASSERT(v & W);
	for (;;) {
		uint64_t queued = READERS_WAITING(v);
		uint64_t n = v & ~W;
		if (queued)
			n = n - queued * RW_ONE + queued * R_ONE + EP_ONE;
		/* release: publishes the write section to the next holders. */
		if (!weft__cas_rel(word(s), &v, n))
			continue;
		if (queued)
			weft__futex_wake(hi(s), INT_MAX);
		else if (WRITERS_WAITING(n))
			weft__futex_wake(lo(s), 1);
		return;
	}
}
