/* bench_list.h - every benchmark unit, in run order. Each entry names a C function
 * <unit>_register(void) that registers the unit's benchmarks with the shim; bench/main.c
 * calls them in this order (explicit calls, no constructor attributes, so a static link
 * cannot drop a unit). Add a line here when you add a bench/<module>/bench_<unit>.c. */
WEFT_BENCH_UNIT(bench_shim)     /* bench/shim/bench_shim.c: the shim's own overhead */
WEFT_BENCH_UNIT(bench_locks)    /* bench/sync/bench_locks.c: mutual exclusion + ranking */
WEFT_BENCH_UNIT(bench_rwlock)   /* bench/sync/bench_rwlock.c: read/write mixes, writer starvation */
WEFT_BENCH_UNIT(bench_handoff)  /* bench/sync/bench_handoff.c: ping-pong hand-offs */
WEFT_BENCH_UNIT(bench_waitmany) /* bench/sync/bench_waitmany.c: wait-any over 64 and 1,000 objects */
WEFT_BENCH_UNIT(bench_port)     /* bench/pool/bench_port.c: completion port hand-offs, async I/O */
WEFT_BENCH_UNIT(bench_pool)     /* bench/pool/bench_pool.c: thread pool items, latency, fork-join */
