/* main.c - the weft-bench program: registers every unit in bench_list.h, then hands the
 * command line to Google Benchmark (all --benchmark_* flags work).
 *
 * Own flags, removed before Google Benchmark sees the command line:
 *   --weft-quick            a few-second smoke run (fewer threads, short runs)
 *   --weft-no-parallel-check skip the 2-threads-vs-1 read loop check printed first
 */
#include <stdio.h>
#include <string.h>

#include "bench_common.h"

int main(int argc, char **argv)
{
	bool quick = false, check = true;
	int out = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--weft-quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--weft-no-parallel-check") == 0)
			check = false;
		else
			argv[out++] = argv[i];
	}
	argv[out] = NULL;
	argc = out;

	bench_config(quick);
	if (check)
		bench_parallel_check(quick ? 0.05 : 0.25);
#define WEFT_BENCH_UNIT(n) n##_register();
#include "bench_list.h"
#undef WEFT_BENCH_UNIT
	return weft_bench_main(argc, argv);
}
