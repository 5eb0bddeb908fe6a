/* atomic.h - the only place raw __atomic_* builtins appear in weft's sources.
 * Every wrapper names its memory order; call sites say what they pair with. */
#ifndef WEFT_ATOMIC_H
#define WEFT_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#define weft__load_rlx(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define weft__load_acq(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define weft__store_rlx(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define weft__store_rel(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define weft__xchg_acq(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQUIRE)
#define weft__xchg_rel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELEASE)
#define weft__xchg_acqrel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define weft__fadd_rlx(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define weft__fadd_acq(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQUIRE)
#define weft__fadd_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#define weft__fadd_acqrel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define weft__fsub_rel(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_RELEASE)
#define weft__fsub_acqrel(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_ACQ_REL)
#define weft__for_acqrel(p, v) __atomic_fetch_or((p), (v), __ATOMIC_ACQ_REL)
#define weft__fand_acqrel(p, v) __atomic_fetch_and((p), (v), __ATOMIC_ACQ_REL)
/* Strong CAS; on failure *expected receives the current value (relaxed/acquire load). */
#define weft__cas_acq(p, expected, desired) \
	__atomic_compare_exchange_n((p), (expected), (desired), false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
#define weft__cas_rel(p, expected, desired) \
	__atomic_compare_exchange_n((p), (expected), (desired), false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)
#define weft__cas_acqrel(p, expected, desired) \
	__atomic_compare_exchange_n((p), (expected), (desired), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define weft__cas_rlx(p, expected, desired) \
	__atomic_compare_exchange_n((p), (expected), (desired), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
#define weft__fence_seq() __atomic_thread_fence(__ATOMIC_SEQ_CST)

#endif
