/* weft/interlocked.h - the Interlocked family, cache-line helpers and the CPU pause.
 *
 * Header-only and usable from C11 and C++: the operations work on plain integer
 * objects (like the Win32 LONG volatile *), through the compiler's C11-model atomic
 * builtins, so no _Atomic type leaks into user code. Every function names its order:
 * the plain name is a full barrier (sequentially consistent, as Win32's are), and the
 * _acq, _rel and _nf ("no fence", relaxed) variants relax it where the caller knows
 * what it pairs with. All functions are lock-free on x86-64 and AArch64 for 32- and
 * 64-bit operands.
 */
#ifndef WEFT_INTERLOCKED_H
#define WEFT_INTERLOCKED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_BUILDING)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* The destructive-interference size on every CPU weft targets (x86-64, AArch64 cores
 * with 64-byte lines). Lock words and hot counters are aligned and padded to it. */
#define WEFT_CACHE_LINE 64
#define WEFT_CACHE_ALIGNED __attribute__((aligned(WEFT_CACHE_LINE)))

/* Keep read-mostly and read-write fields apart: put WEFT_CACHE_PAD(name) between the two
 * groups of a struct, or start the written group with WEFT_CACHE_ALIGNED. */
#define WEFT_CACHE_PAD(name) char name[WEFT_CACHE_LINE]

/* Spin-wait hint: PAUSE on x86 (lets the sibling hyper-thread run and avoids the
 * memory-order machine clear on loop exit), YIELD on Arm. */
static inline void weft_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Generates one operation in every order: name, name_acq, name_rel, name_nf. */
#define WEFT__IL_ORDERS(ret, name, params, body)                                              \
	static inline ret name params { const int weft__mo = __ATOMIC_SEQ_CST; body }             \
	static inline ret name##_acq params { const int weft__mo = __ATOMIC_ACQUIRE; body }       \
	static inline ret name##_rel params { const int weft__mo = __ATOMIC_RELEASE; body }       \
	static inline ret name##_nf params { const int weft__mo = __ATOMIC_RELAXED; body }

#define WEFT__IL_FAMILY(T, sfx)                                                               \
	/* Returns the new value, like InterlockedIncrement. */                                   \
	WEFT__IL_ORDERS(T, weft_interlocked_increment##sfx, (volatile T *p),                      \
			return __atomic_add_fetch(p, 1, weft__mo);)                               \
	WEFT__IL_ORDERS(T, weft_interlocked_decrement##sfx, (volatile T *p),                      \
			return __atomic_sub_fetch(p, 1, weft__mo);)                               \
	/* Return the previous value, like InterlockedExchangeAdd / Exchange / And / Or / Xor. */ \
	WEFT__IL_ORDERS(T, weft_interlocked_exchange_add##sfx, (volatile T *p, T v),              \
			return __atomic_fetch_add(p, v, weft__mo);)                               \
	WEFT__IL_ORDERS(T, weft_interlocked_exchange##sfx, (volatile T *p, T v),                  \
			return __atomic_exchange_n(p, v, weft__mo);)                              \
	WEFT__IL_ORDERS(T, weft_interlocked_and##sfx, (volatile T *p, T v),                       \
			return __atomic_fetch_and(p, v, weft__mo);)                               \
	WEFT__IL_ORDERS(T, weft_interlocked_or##sfx, (volatile T *p, T v),                        \
			return __atomic_fetch_or(p, v, weft__mo);)                                \
	WEFT__IL_ORDERS(T, weft_interlocked_xor##sfx, (volatile T *p, T v),                       \
			return __atomic_fetch_xor(p, v, weft__mo);)                               \
	/* Stores xchg if *p == cmp; returns the value *p held before, like                       \
	 * InterlockedCompareExchange (success iff the result equals cmp). */                     \
	WEFT__IL_ORDERS(T, weft_interlocked_compare_exchange##sfx, (volatile T *p, T xchg, T cmp), \
			T weft__old = cmp;                                                         \
			__atomic_compare_exchange_n(p, &weft__old, xchg, 0, weft__mo,              \
						    weft__mo == __ATOMIC_RELEASE ? __ATOMIC_RELAXED \
							: weft__mo);                               \
			return weft__old;)

WEFT__IL_FAMILY(int32_t, )
WEFT__IL_FAMILY(int64_t, 64)

/* Pointer exchange and compare-exchange (InterlockedExchangePointer / CompareExchangePointer). */
static inline void *weft_interlocked_exchange_pointer(void *volatile *p, void *v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

static inline void *weft_interlocked_compare_exchange_pointer(void *volatile *p, void *xchg, void *cmp)
{
	__atomic_compare_exchange_n(p, &cmp, xchg, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	return cmp;
}

/* A full memory barrier (MemoryBarrier). */
static inline void weft_memory_barrier(void)
{
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer does not model fences; a seq_cst read-modify-write is a full
	 * barrier on every target and TSan understands it. */
	static int weft__fence_word;
	__atomic_fetch_add(&weft__fence_word, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#ifdef __cplusplus
}
#endif
#endif
