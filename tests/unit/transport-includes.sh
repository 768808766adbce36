#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The transport boundary (core/xport_util.h): a file under transport/ may
# include, of the core, only core/xport.h, core/xport_util.h (and what it
# pulls in: core/byteorder.h, core/barrier.h), core/util.h and
# core/msgcheck.h. Anything else is a hole in the interface.
set -uo pipefail
root=${1:?source root}
allowed='^core/(xport|xport_util|byteorder|barrier|util|msgcheck)\.h$'
bad=0 n=0
while IFS= read -r line; do
	file=${line%%:*}
	inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:}")
	n=$((n + 1))
	if [[ $inc == core/* && ! $inc =~ $allowed ]]; then
		echo "FAIL: $file includes $inc (not part of the transport interface)"
		bad=$((bad + 1))
	fi
done < <(cd "$root" && grep -rHn '#include "core/' transport/ | sed -E 's/^([^:]+):[0-9]+:/\1:/')
if [ "$n" -eq 0 ]; then
	echo "FAIL: no core include found under $root/transport (wrong root?)"
	exit 1
fi
echo "transport-includes: $n core includes under transport/, $bad outside the interface"
exit $((bad > 0))
