#!/usr/bin/env bash
# bench.sh - the contention benchmark, from a fresh clone to a results folder.
#
#   ./bench.sh            full suite: 1/2/4/8 threads, 5 repetitions (medians reported)
#   ./bench.sh --quick    a few-second smoke run (CI): 1/2 threads, short runs, 1 repetition
#
# Options:  --reps N  --min-time SECONDS  --filter REGEX  --out DIR  --build DIR
#           -- ARGS...   passed to weft-bench (Google Benchmark flags)
# Environment: WEFT_BENCH_BUILD_DIR (default build-release), WEFT_BENCH_NO_INSTALL=1,
#              WEFT_BENCH_TIMEOUT (seconds for the whole run; 300 quick, 3600 full).
#
# Installs the Debian packages it needs when they are missing (and says which), builds
# weft-bench in Release, runs it, and writes under results/<UTC timestamp>/:
#   console.txt    the console table (with the machine parallelism check on top)
#   bench.json     Google Benchmark's JSON, every repetition
#   summary.md     medians, ratios against the named peers, the issue's goals
#   *.svg, *.png   throughput against threads, one chart per family
#   machine.txt    CPU, kernel, load, git revision
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmdline="$0 $*"
quick=0
reps=5
min_time=0.15
filter=
out=
build=${WEFT_BENCH_BUILD_DIR:-$root/build-release}
extra=()

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--reps) reps=$2; shift ;;
	--min-time) min_time=$2; shift ;;
	--filter) filter=$2; shift ;;
	--out) out=$2; shift ;;
	--build) build=$2; shift ;;
	--) shift; extra=("$@"); break ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

# ---- packages ---------------------------------------------------------------------------
# libck-dev, libuv1-dev: peers (concurrencykit locks, uv_queue_work); liburing-dev: the
# port's io_uring backend rows. Each is optional to the build, but rows go missing without.
need=(cmake make gcc g++ pkg-config python3 libbenchmark-dev libck-dev gnuplot-nox
	libuv1-dev liburing-dev)
missing=()
for p in "${need[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "${WEFT_BENCH_NO_INSTALL:-0}" = 1 ]; then
		echo "bench.sh: missing Debian packages (not installing): ${missing[*]}" >&2
	else
		echo "bench.sh: installing missing Debian packages: ${missing[*]}"
		sudo=
		[ "$(id -u)" -ne 0 ] && sudo=sudo
		export DEBIAN_FRONTEND=noninteractive
		$sudo apt-get update -qq
		$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
fi

# ---- build ------------------------------------------------------------------------------
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 2 ] || jobs=2
echo "bench.sh: building weft-bench (Release) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEFT_TESTS=OFF -DWEFT_BENCH=ON >"$build.configure.log" 2>&1 ||
	{ cat "$build.configure.log" >&2; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" -j"$jobs" --target weft-bench >/dev/null ||
	cmake --build "$build" -j1 --target weft-bench
exe=$build/bench/weft-bench
[ -x "$exe" ] || { echo "bench.sh: $exe was not built (is libbenchmark-dev installed?)" >&2; exit 1; }

# ---- run --------------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ -z "$out" ]; then
	out=$root/results/$stamp
	[ $quick = 0 ] || out=$out-quick
fi
mkdir -p "$out"
args=(--benchmark_out="$out/bench.json" --benchmark_out_format=json)
if [ $quick = 1 ]; then
	args+=(--weft-quick --benchmark_min_time=0.01 --benchmark_repetitions=1)
	reps=1
else
	args+=(--benchmark_min_time="$min_time" --benchmark_repetitions="$reps")
	# Interleave the repetitions of all rows in random order: a burst of load from other
	# processes then spoils one repetition of a row, not all of them, and the median holds.
	[ "$reps" -gt 1 ] && args+=(--benchmark_display_aggregates_only=true
		--benchmark_enable_random_interleaving=true)
fi
[ -n "$filter" ] && args+=(--benchmark_filter="$filter")
args+=("${extra[@]}")

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command: $cmdline"
	echo "git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with local changes)')"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
	echo "topology: $(lscpu 2>/dev/null | awk -F: '/^(Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)|Hypervisor vendor)/ {gsub(/^ +/, "", $2); printf "%s=%s; ", $1, $2}')"
	echo "kernel: $(uname -sr)"
	echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "glibc: $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')"
	echo "benchmark: $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null) ck: $(dpkg-query -W -f='${Version}' libck-dev 2>/dev/null)"
} >"$out/machine.txt"

echo "bench.sh: running $(basename "$exe") ($([ $quick = 1 ] && echo quick || echo "full, $reps repetitions")) -> $out"
start=$(date +%s)
# A hung row (a lost wake-up in a primitive under test) must not hang CI: cap the run.
limit=${WEFT_BENCH_TIMEOUT:-$([ $quick = 1 ] && echo 300 || echo 3600)}
set +e
timeout --signal=TERM --kill-after=10 "$limit" "$exe" "${args[@]}" 2>&1 | tee "$out/console.txt"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
	echo "bench.sh: weft-bench did not finish within $limit s (WEFT_BENCH_TIMEOUT); the last" \
		"row it printed was: $(grep -E '^[a-z_]+/' "$out/console.txt" | tail -1 | awk '{print $1}')" \
		"- the row after it hung" >&2
	exit "$status"
fi
echo "bench.sh: benchmark took $(( $(date +%s) - start )) s"
[ "$status" -eq 0 ] || { echo "bench.sh: weft-bench failed ($status)" >&2; exit "$status"; }

# ---- summary and charts -----------------------------------------------------------------
sumstatus=0
python3 "$root/bench/summary.py" "$out" || sumstatus=$?
echo
echo "bench.sh: results in $out"
echo "  summary: $out/summary.md"
if ls "$out"/*.svg >/dev/null 2>&1; then
	echo "  charts:  $(cd "$out" && ls *.svg | tr '\n' ' ')"
fi
if [ "$sumstatus" -ne 0 ]; then
	echo "bench.sh: summary.py failed ($sumstatus): see $out/summary.md" >&2
	exit "$sumstatus"
fi
