#!/usr/bin/env bash
# Installs the built tree into a scratch prefix, then builds and runs the consumer
# against the installed package twice: CMake find_package(weft CONFIG) and pkg-config.
set -euo pipefail
build=$1 scratch=$2 consumer=$3
rm -rf "$scratch"; mkdir -p "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/weft/sync.h"
test ! -e "$prefix/include/weft/internal.h"   # private headers never install

# 1. CMake package
cmake -S "$consumer" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$scratch/cmake-build/consumer" shared
"$scratch/cmake-build/consumer_static" static

# 2. pkg-config
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
libdir=$(pkg-config --variable=libdir weft)
cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags weft) "$consumer/consumer.c" \
	-o "$scratch/consumer_pc" $(pkg-config --libs weft)
LD_LIBRARY_PATH="$libdir" "$scratch/consumer_pc" pkg-config
cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags weft) "$consumer/consumer.c" \
	-o "$scratch/consumer_pc_static" "$libdir/libweft.a" $(pkg-config --libs-only-other --static weft) \
	$(pkg-config --libs --static weft | sed 's/-lweft//')
"$scratch/consumer_pc_static" pkg-config-static
echo "ok: installed package consumed via CMake and pkg-config"
