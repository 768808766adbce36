#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets (fuzz/) and run each for SECONDS seconds.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bash bench/fuzz.sh SECONDS

Configures build-fuzz/ (CC=clang meson setup build-fuzz -Dfuzz=enabled -Drxe=false,
reconfigured when present), builds the fuzz targets, writes seed corpora with
fuzz-seedgen (rmig's own encoders), then runs every target for SECONDS seconds
on a working copy of its seeds (build-fuzz/fuzz/work/NAME) with the dictionary
fuzz/rmig.dict, one after the other, at nice 10.

Prints one line per target:  NAME EXECUTIONS RESULT
  RESULT is "ok", or "FINDING <file>" (the crashing input, or the log when a
  sanitizer, leak or timeout report left no input)
and last a summary: "fuzz: N targets, M ok, K findings".
Logs: build-fuzz/fuzz/logs/NAME.log. Exit status 1 on any finding, 2 on a
build or usage error. Needs clang with libFuzzer (scripts/install-deps.sh).
USAGE
}

if [[ $# -ne 1 ]]; then
	usage >&2
	exit 2
fi
if [[ $1 == --help || $1 == -h ]]; then
	usage
	exit 0
fi
if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1)); then
	echo "fuzz.sh: SECONDS must be a positive integer, not '$1'" >&2
	exit 2
fi
secs=$1

cd "$(dirname "$0")/.."
build=build-fuzz
fz=$build/fuzz
mkdir -p "$build"

if [[ -f $build/build.ninja ]]; then
	setup=(meson setup --reconfigure "$build" -Dfuzz=enabled -Drxe=false)
else
	setup=(meson setup "$build" -Dfuzz=enabled -Drxe=false)
fi
if ! CC=clang "${setup[@]}" >"$build/fuzz-setup.log" 2>&1; then
	echo "fuzz.sh: meson setup failed, see $build/fuzz-setup.log" >&2
	tail -n 20 "$build/fuzz-setup.log" >&2
	exit 2
fi
if ! ninja -C "$build" fuzz >"$build/fuzz-build.log" 2>&1; then
	echo "fuzz.sh: build failed, see $build/fuzz-build.log" >&2
	grep -E 'error|FAILED' "$build/fuzz-build.log" | head -n 20 >&2
	exit 2
fi

rm -rf "$fz/seeds" "$fz/work" "$fz/findings" "$fz/logs"
mkdir -p "$fz/work" "$fz/findings" "$fz/logs"
if ! "$fz/fuzz-seedgen" "$fz/seeds" >"$fz/logs/seedgen.log" 2>&1; then
	echo "fuzz.sh: fuzz-seedgen failed, see $fz/logs/seedgen.log" >&2
	exit 2
fi

targets=()
for exe in "$fz"/fuzz_*; do
	[[ -x $exe && -f $exe ]] && targets+=("${exe##*/fuzz_}")
done
if ((${#targets[@]} == 0)); then
	echo "fuzz.sh: no fuzz targets in $fz" >&2
	exit 2
fi

ok=0
found=0
for name in "${targets[@]}"; do
	work=$fz/work/$name
	log=$fz/logs/$name.log
	mkdir -p "$work"
	if [[ -d $fz/seeds/$name ]]; then
		cp "$fz/seeds/$name"/* "$work"/
	fi
	rc=0
	nice -n 10 "$fz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
		-dict=fuzz/rmig.dict -timeout=10 -rss_limit_mb=2048 -close_fd_mask=1 \
		-artifact_prefix="$fz/findings/$name-" "$work" </dev/null >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	execs=${execs:-0}
	artifact=$(ls -1 "$fz/findings/$name-"* 2>/dev/null | head -n 1 || true)
	if ((rc == 0)) && [[ -z $artifact ]] &&
		! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "$name $execs ok"
		ok=$((ok + 1))
	else
		echo "$name $execs FINDING ${artifact:-$log}"
		found=$((found + 1))
	fi
done
echo "fuzz: ${#targets[@]} targets, $ok ok, $found findings"
((found == 0))
