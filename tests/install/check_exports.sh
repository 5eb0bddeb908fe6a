#!/usr/bin/env bash
# Fails if the shared library exports any symbol that is not weft_* (and lists them).
set -euo pipefail
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' | grep -v '^weft_' | grep -v '^WEFT_' || true)
if [ -n "$bad" ]; then
	echo "libweft.so exports symbols outside the weft_ namespace:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$lib" | grep -c ' weft_' || true)
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
echo "ok: $n weft_* symbols exported, soname $soname"
case "$soname" in libweft.so.[0-9]*) ;; *) echo "bad soname: $soname"; exit 1;; esac
