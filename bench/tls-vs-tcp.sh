#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rmig over loopback TCP with TLS 1.3 against plain TCP, same machine, same
# minutes. Each repetition runs both, in ABBA order (odd repetitions plain
# first, even ones TLS first), two processes each (rmig-bench --listen on
# 127.0.0.1 and --connect), CHANNELS channels, SIZE of random pages, --json.
# Prints every run, then the medians of the source's GB/s and CPU s/GB (the
# source process only), the ratio tls / plain, and whether the kernel
# encrypted the sends (kTLS) or OpenSSL did in the process.
#
# TLS uses X.509 certificates made for the run by
# tests/common/make-test-certs.sh (a throw-away CA in a temporary directory),
# verified both ways, as --tls-creds.
#
# Usage: bench/tls-vs-tcp.sh [-n REPS] [-s SIZE] [-c CHANNELS] [-b RMIG_BENCH]
#                            [-o RESULTS.jsonl] [-- EXTRA rmig-bench flags]
#   defaults: -n 3 -s 2G -c 2; RMIG_PORT=4445
set -euo pipefail
. "$(dirname "$0")/lib.sh"

reps=3 size=2G channels=2 out= bench=
port=${RMIG_PORT:-4445}

usage() { bench_usage "$0" 3 18 "${1:-0}"; }

while getopts "n:s:c:b:o:h" opt; do
	case $opt in
	n) reps=$OPTARG ;;
	s) size=$OPTARG ;;
	c) channels=$OPTARG ;;
	b) bench=$OPTARG ;;
	o) out=$OPTARG ;;
	h) usage 0 ;;
	*) usage 2 >&2 ;;
	esac
done
shift $((OPTIND - 1))
extra=("$@")

here=$(cd "$(dirname "$0")" && pwd)
if [[ -z $bench ]]; then bench=$(bench_find_rmig_bench "$here") || true; fi
[[ -n $bench && -x $bench ]] || { echo "tls-vs-tcp: rmig-bench not found (-b PATH)" >&2; exit 2; }

tmp=$(mktemp -d)
dst_pid=
cleanup() {
	[[ -n $dst_pid ]] && kill "$dst_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
bash "$here/../tests/common/make-test-certs.sh" "$tmp/certs" >/dev/null
creds=$tmp/certs/good

# json FILE KEY: one field of rmig-bench's JSON line
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# run MODE (plain|tls): one migration; appends "MODE GB/s CPU-s/GB kTLS-channels load" to $tmp/runs
run() {
	local mode=$1 tls=()
	[[ $mode == tls ]] && tls=(--tls-creds "$creds")
	local load
	load=$(cut -d' ' -f1 /proc/loadavg)
	"$bench" --listen "127.0.0.1:$port" --size "$size" --json "${tls[@]}" "${extra[@]}" \
		>"$tmp/dst.json" 2>"$tmp/dst.err" &
	dst_pid=$!
	if ! "$bench" --connect "127.0.0.1:$port" --size "$size" -c "$channels" --json "${tls[@]}" \
		"${extra[@]}" >"$tmp/src.json" 2>"$tmp/src.err"; then
		echo "tls-vs-tcp: $mode source failed: $(cat "$tmp/src.err" "$tmp/src.json")" >&2
		exit 1
	fi
	wait "$dst_pid" || { echo "tls-vs-tcp: $mode destination failed: $(cat "$tmp/dst.err" "$tmp/dst.json")" >&2; exit 1; }
	dst_pid=
	[[ $(json "$tmp/dst.json" verified) == True ]] || { echo "tls-vs-tcp: $mode: not verified" >&2; exit 1; }
	[[ -n $out ]] && { cat "$tmp/src.json" >>"$out"; }
	local gbs cpu ktls tlsch
	gbs=$(json "$tmp/src.json" gbytes_per_s)
	cpu=$(json "$tmp/src.json" cpu_s_per_gb)
	tlsch=$(json "$tmp/src.json" tls_channels)
	ktls=$(json "$tmp/src.json" ktls_channels)
	if [[ $mode == tls && $tlsch != "$channels" ]]; then
		echo "tls-vs-tcp: tls run reports $tlsch TLS channels, not $channels" >&2
		exit 1
	fi
	printf '%-5s %8.3f GB/s %7.3f CPU s/GB  kTLS channels %s/%s  load %s\n' "$mode" "$gbs" \
		"$cpu" "$ktls" "$tlsch" "$load"
	echo "$mode $gbs $cpu $ktls $load" >>"$tmp/runs"
}

echo "tls-vs-tcp: $reps x (plain, tls), $size, $channels channels, $(nproc) CPUs, $(uname -r), $("$bench" --help >/dev/null && openssl version)"
for ((i = 1; i <= reps; i++)); do
	if ((i % 2)); then
		run plain
		run tls
	else
		run tls
		run plain
	fi
done

python3 - "$tmp/runs" <<'EOF'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
med = {}
for mode in ("plain", "tls"):
    r = [x for x in runs if x[0] == mode]
    med[mode] = (statistics.median(float(x[1]) for x in r), statistics.median(float(x[2]) for x in r))
    print(f"median {mode:5s} {med[mode][0]:.3f} GB/s  {med[mode][1]:.3f} CPU s/GB  (n={len(r)})")
ktls = [int(x[3]) for x in runs if x[0] == "tls"]
print(f"tls / plain: {med['tls'][0] / med['plain'][0]:.3f} of the throughput, "
      f"{med['tls'][1] / med['plain'][1]:.2f}x the source's CPU per GB")
print("kTLS: " + ("yes" if all(k > 0 for k in ktls) else "no (OpenSSL encrypts in the process)"))
EOF
