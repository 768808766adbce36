#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerate abi/librmig.so.0.abi, the recorded ABI of librmig, from a build
# with debug info (the default buildtype, debugoptimized, has -g):
#   abi/update.sh BUILDDIR
# The output is deterministic: no absolute paths, no build directory, no
# source locations, hashed type ids, no DT_NEEDED (that depends on -Drdma).
set -euo pipefail
builddir=${1:?usage: abi/update.sh BUILDDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$(readlink -f "$builddir/librmig.so")
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
	echo "abi/update.sh: $lib has no debug info (use buildtype debugoptimized or debug)" >&2
	exit 1
fi
# The name of each translation unit is as the compiler saw it, relative to
# the build directory (../../src/core/x.c): keep only the part under the
# source root.
abidw --exported-interfaces-only --headers-dir "$root/include/rmig" --drop-private-types \
	--no-corpus-path --no-comp-dir-path --no-show-locs --no-elf-needed \
	--type-id-style hash "$lib" |
	sed -E "s#path='([^']*/)?((core|transport)/[^']*)'#path='\\2'#" \
	> "$root/abi/librmig.so.0.abi.tmp"
mv "$root/abi/librmig.so.0.abi.tmp" "$root/abi/librmig.so.0.abi"
soname=$(sed -nE "1s/.* soname='([^']*)'.*/\\1/p" "$root/abi/librmig.so.0.abi")
echo "abi/librmig.so.0.abi: $soname, $(grep -c '<elf-symbol ' "$root/abi/librmig.so.0.abi") symbols"
