#!/usr/bin/env bash
# test.sh - build weft and run its whole test suite three times: a checked debug build,
# AddressSanitizer+UBSan and ThreadSanitizer, all with -Wall -Wextra -Werror.
# Installs the Debian packages it needs when they are missing (needs root or sudo).
#   ./test.sh                 all three builds
#   ./test.sh dev|asan|tsan   one of them
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(cmake make gcc g++ pkg-config libcmocka-dev liburing-dev libbenchmark-dev libck-dev libuv1-dev)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing missing Debian packages: ${missing[*]}"
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

JOBS=$(nproc 2>/dev/null || echo 2)
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=(dev asan tsan)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
for b in "${builds[@]}"; do
	echo "=== test.sh: $b build ==="
	start=$(date +%s)
	cmake --preset "ci-$b" >/dev/null
	cmake --build "build/ci-$b" -j "$JOBS"
	runner=()
	# ThreadSanitizer's shadow layout breaks on kernels with more mmap randomization
	# bits than it expects (vm.mmap_rnd_bits=32); running without ASLR avoids it.
	[ "$b" = tsan ] && command -v setarch >/dev/null && runner=(setarch "$(uname -m)" -R)
	"${runner[@]}" ctest --test-dir "build/ci-$b" --output-on-failure -j "$JOBS"
	echo "=== test.sh: $b passed in $(( $(date +%s) - start )) s ==="
done
echo "test.sh: all builds passed (${builds[*]})"
