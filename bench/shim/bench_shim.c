/* bench_shim.c - the shim's own cost: the same empty body as the native C++ reference
 * loops in weft_bench.cc (shim/native_range_for, shim/native_batch/<n>), driven from C.
 * shim/c_batch/<n> minus shim/native_batch/<n> is the shim's per-iteration overhead: one
 * out-of-line C->C++ call per n iterations. */
#include "bench_common.h"

static void bm_c_batch(weft_bench_state *st, void *ctx)
{
	(void)ctx;
	const int64_t n = weft_bench_arg(st, 0);
	while (weft_bench_batch(st, (uint64_t)n))
		for (int64_t i = 0; i < n; i++)
			WEFT_BENCH_KEEP(i);
}

void bench_shim_register(void)
{
	static const int64_t batches[] = {1, 8, 64};
	weft_bench_register_native_reference();
	weft_bench_register("shim/c_batch", bm_c_batch,
			    &(weft_bench_opts){.args = batches, .n_args = 3});
}
