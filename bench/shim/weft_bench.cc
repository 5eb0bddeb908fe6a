// weft_bench.cc - the C shim over Google Benchmark (the only C++ file in weft).
//
// A weft_bench_state * is a benchmark::State * in disguise; every function below is a
// thin forwarder. The one piece of real logic is the per-run barrier that runs setup and
// teardown hooks in thread 0 while the other threads of the run wait.

#include "weft_bench.h"

#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace {

// A reusable barrier for the threads of one run. Sleeping is fine: it is only used
// outside the timed region.
class RunBarrier {
public:
	void wait(int parties)
	{
		std::unique_lock<std::mutex> lk(mu_);
		const uint64_t gen = generation_;
		if (++arrived_ == parties) {
			arrived_ = 0;
			++generation_;
			cv_.notify_all();
			return;
		}
		cv_.wait(lk, [&] { return generation_ != gen; });
	}

private:
	std::mutex mu_;
	std::condition_variable cv_;
	int arrived_ = 0;
	uint64_t generation_ = 0;
};

struct Registration {
	std::string name;
	weft_bench_fn fn;
	weft_bench_opts opts;
	RunBarrier barrier;
};

// Registrations live until exit; a deque never moves its elements.
std::deque<Registration> &registrations()
{
	static std::deque<Registration> regs;
	return regs;
}

thread_local Registration *current_reg;

benchmark::State &S(weft_bench_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
const benchmark::State &S(const weft_bench_state *st)
{
	return *reinterpret_cast<const benchmark::State *>(st);
}

void run_registered(benchmark::State &state, Registration *reg)
{
	weft_bench_state *st = reinterpret_cast<weft_bench_state *>(&state);
	const bool hooks = reg->opts.setup != nullptr || reg->opts.teardown != nullptr;
	current_reg = reg;
	if (hooks) {
		if (state.thread_index() == 0 && reg->opts.setup)
			reg->opts.setup(st, reg->opts.ctx);
		reg->barrier.wait(state.threads());
	}
	reg->fn(st, reg->opts.ctx);
	if (hooks) {
		reg->barrier.wait(state.threads());
		if (state.thread_index() == 0 && reg->opts.teardown)
			reg->opts.teardown(st, reg->opts.ctx);
	}
	current_reg = nullptr;
}

// The same body as the C loop: keep the iteration counter alive, so the loop is not
// deleted (an empty range-for compiles to nothing at -O2 and would measure 0 ns).
void native_range_for(benchmark::State &state)
{
	int64_t i = 0;
	for (auto _ : state)
		benchmark::DoNotOptimize(i++);
}

void native_batch(benchmark::State &state)
{
	const int64_t n = state.range(0);
	while (state.KeepRunningBatch(n))
		for (int64_t i = 0; i < n; i++)
			benchmark::DoNotOptimize(i);
}

} // namespace

extern "C" {

void weft_bench_register(const char *name, weft_bench_fn fn, const weft_bench_opts *opts)
{
	Registration &reg = registrations().emplace_back();
	reg.name = name;
	reg.fn = fn;
	reg.opts = opts ? *opts : weft_bench_opts{};
	const weft_bench_opts &o = reg.opts;

	Registration *rp = &reg;
	benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
		reg.name.c_str(), [rp](benchmark::State &s) { run_registered(s, rp); });
	for (size_t i = 0; o.threads && i < o.n_threads; i++)
		b->Threads(o.threads[i]);
	const size_t arity = o.arity ? o.arity : 1;
	for (size_t r = 0; o.args && r < o.n_args; r++)
		b->Args(std::vector<int64_t>(o.args + r * arity, o.args + (r + 1) * arity));
	if (o.arg_names)
		b->ArgNames(std::vector<std::string>(o.arg_names, o.arg_names + arity));
	if (o.iterations > 0)
		b->Iterations(o.iterations);
	else if (o.min_time > 0)
		b->MinTime(o.min_time);
	if (o.warmup_time > 0)
		b->MinWarmUpTime(o.warmup_time);
	if (o.repetitions > 0)
		b->Repetitions(o.repetitions);
	if (o.real_time)
		b->UseRealTime();
	if (o.process_cpu_time)
		b->MeasureProcessCPUTime();
	// Counters are not otherwise touched: reg.opts is no longer needed by the library.
}

int weft_bench_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}

bool weft_bench_batch(weft_bench_state *st, uint64_t n)
{
	return S(st).KeepRunningBatch(static_cast<benchmark::IterationCount>(n));
}

int weft_bench_threads(const weft_bench_state *st) { return S(st).threads(); }
int weft_bench_thread_index(const weft_bench_state *st) { return S(st).thread_index(); }
int64_t weft_bench_arg(const weft_bench_state *st, size_t i) { return S(st).range(i); }
int64_t weft_bench_max_iterations(const weft_bench_state *st)
{
	return static_cast<int64_t>(S(st).max_iterations);
}

void weft_bench_set_items(weft_bench_state *st, int64_t n) { S(st).SetItemsProcessed(n); }

void weft_bench_counter(weft_bench_state *st, const char *name, double value, unsigned flags)
{
	int f = benchmark::Counter::kDefaults;
	if (flags & WEFT_BENCH_RATE)
		f |= benchmark::Counter::kIsRate;
	if (flags & WEFT_BENCH_AVG_THREADS)
		f |= benchmark::Counter::kAvgThreads;
	if (flags & WEFT_BENCH_AVG_ITERS)
		f |= benchmark::Counter::kAvgIterations;
	if (flags & WEFT_BENCH_INVERT)
		f |= benchmark::Counter::kInvert;
	S(st).counters[name] = benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f));
}

void weft_bench_label(weft_bench_state *st, const char *label) { S(st).SetLabel(label); }
void weft_bench_skip_with_error(weft_bench_state *st, const char *msg) { S(st).SkipWithError(msg); }

void weft_bench_sync(weft_bench_state *st)
{
	if (current_reg)
		current_reg->barrier.wait(S(st).threads());
}

void weft_bench_context(const char *key, const char *value) { benchmark::AddCustomContext(key, value); }

void weft_bench_register_native_reference(void)
{
	benchmark::RegisterBenchmark("shim/native_range_for", native_range_for);
	benchmark::RegisterBenchmark("shim/native_batch", native_batch)->Arg(1)->Arg(8)->Arg(64);
}

} // extern "C"
