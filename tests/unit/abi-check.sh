#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The ABI of the built librmig against the record abi/librmig.so.0.abi
# (abi/README.md says why and how to regenerate it):
#   abi-check.sh SOURCE_ROOT BUILT_LIBRMIG_SO
# Fails when the SONAME differs from the record's, or abidiff finds an
# incompatible change (bit 8), or an ABI change (bit 4) that is anything but
# additions. Additions pass with a note asking for the record to be updated.
# Skips (77) when abidiff is missing or the library has no debug info.
set -uo pipefail
root=${1:?source root}
lib=${2:?built library}
record=$root/abi/librmig.so.0.abi

if ! command -v abidiff >/dev/null; then
	echo "SKIP: abidiff not found (Debian package abigail-tools)"
	exit 77
fi
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
	echo "SKIP: $lib has no debug info (buildtype without -g)"
	exit 77
fi

# abidw can write a function without its ELF symbol (libabigail 2.2 did for
# six rmig_src_* functions without --exported-interfaces-only), and abidiff
# then sees no change to that function at all: every exported function of
# the record must be tied to its declaration.
nsym=$(grep -c "<elf-symbol name=.*type='func-type'" "$record")
nlinked=$(grep -oE "<function-decl [^>]*elf-symbol-id='[^']*'" "$record" |
	sed -E "s/.*elf-symbol-id='([^']*)'/\\1/" | sort -u | wc -l)
if [ "$nsym" -ne "$nlinked" ]; then
	echo "FAIL: abi/librmig.so.0.abi ties $nlinked of $nsym exported functions to a declaration; regenerate it with abi/update.sh"
	exit 1
fi

want=$(sed -nE "1s/.* soname='([^']*)'.*/\\1/p" "$record")
got=$(readelf -d "$lib" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p')
if [ -z "$want" ] || [ "$got" != "$want" ]; then
	echo "FAIL: SONAME of $lib is '$got', the record abi/librmig.so.0.abi has '$want':"
	echo "      a soname bump goes with a regenerated record (abi/update.sh BUILDDIR)"
	exit 1
fi

# No --headers-dir/--drop-private-types here: the record was cut to the types
# of include/rmig/ when abidw wrote it, and it carries no source locations,
# so abidiff's header filter would count every recorded type as private and
# hide its changes (a struct member inserted in rmig.h passed that way).
out=$(abidiff --no-show-locs "$record" "$lib" 2>&1)
rc=$?
[ -n "$out" ] && echo "$out"
if (( rc & 3 )); then
	echo "FAIL: abidiff could not compare (exit $rc)"
	exit 1
fi
if (( rc & 8 )); then
	echo "FAIL: incompatible ABI change against abi/librmig.so.0.abi (abidiff exit $rc)"
	exit 1
fi
if (( rc & 4 )); then
	# Every "... changes summary:" line must read 0 Removed and 0 Changed
	# (functions, variables, symbols without debug info, types).
	bad=$(grep -E 'summary:' <<<"$out" | grep -E '[1-9][0-9]* (Removed|Changed)' || true)
	if [ -n "$bad" ] || ! grep -qE 'summary:' <<<"$out"; then
		echo "FAIL: ABI change other than additions against abi/librmig.so.0.abi (abidiff exit $rc)"
		exit 1
	fi
	echo "NOTE: compatible additions only; regenerate the record in the same commit: abi/update.sh BUILDDIR"
	exit 0
fi
echo "ok: librmig ABI ($got, $(grep -c '<elf-symbol ' "$record") symbols) matches abi/librmig.so.0.abi"
