/* cs.c - critical section: recursive futex mutex with a bounded spin.
 * Fast path: one CAS on the state word (see cs_impl.h for the encoding). Slow path:
 * spin up to spin_count rounds trying to take a free section, then the classic
 * three-state futex mutex: mark the word 2 ("maybe sleepers") and sleep until the
 * exchange finds it free. Leaving wakes one sleeper only if the word was 2. */
#include "atomic.h"
#include "cs_impl.h"
#include "futex.h"

void weft_cs_init(weft_cs *cs, uint32_t spin_count)
{
	*cs = (weft_cs){{0}};
	cs_of(cs)->spin = spin_count;
}

void weft_cs_destroy(weft_cs *cs)
{
#ifdef WEFT_DEBUG
	if (weft__load_rlx(&cs_of(cs)->state) != 0)
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

static void cs_sleep_until_taken(struct cs_impl *c)
{
	/* acquire: pairs with the release exchange in weft_cs_leave(). */
	while (weft__xchg_acq(&c->state, 2u) != 0) {
		weft__fadd_rlx(&c->sleeps, 1u);
		weft__block_begin();
		weft__futex_wait(&c->state, 2u, NULL);
		weft__block_end();
	}
}

static void cs_enter_slow(struct cs_impl *c, uint32_t me)
{
	weft__fadd_rlx(&c->contentions, 1u);
	uint64_t spin = weft__smp() ? weft__load_rlx(&c->spin) : 0;
	for (uint64_t i = 0; i < spin; i++) {
		uint32_t s = weft__load_rlx(&c->state);
		if (s == 0 && weft__cas_acq(&c->state, &s, 1u)) {
			weft__fadd_rlx(&c->spins_won, 1u);
			goto owned;
		}
		weft_cpu_relax();
	}
	cs_sleep_until_taken(c);
owned:
	weft__store_rlx(&c->owner, me);
	c->recursion = 1;
}

void weft_cs_enter(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	uint32_t me = weft__tid();
	uint32_t s = 0;
	/* acquire: pairs with the release exchange in weft_cs_leave(). */
	if (__builtin_expect(weft__cas_acq(&c->state, &s, 1u), 1)) {
		weft__store_rlx(&c->owner, me);
		c->recursion = 1;
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
	weft__fadd_rlx(&c->contentions, 1u);
	cs_sleep_until_taken(c);
	weft__store_rlx(&c->owner, weft__tid());
	c->recursion = 1;
}

bool weft_cs_try_enter(weft_cs *cs)
{
	struct cs_impl *c = cs_of(cs);
	uint32_t me = weft__tid();
	uint32_t s = 0;
	/* acquire: pairs with the release exchange in weft_cs_leave(). */
	if (weft__cas_acq(&c->state, &s, 1u)) {
		weft__store_rlx(&c->owner, me);
		c->recursion = 1;
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
	weft__die("weft_cs_leave(%p \"%s\"): thread %u leaves a critical section it does not own "
		  "(owner: %s%u)",
		  (void *)c, c->name ? c->name : "", me, weft__load_rlx(&c->owner) ? "thread " : "none, ",
		  weft__load_rlx(&c->owner));
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
	/* release: publishes the critical section to the next acquirer. */
	if (__builtin_expect(weft__xchg_rel(&c->state, 0u) == 2, 0))
		weft__futex_wake(&c->state, 1);
}
