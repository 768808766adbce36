#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Time to first byte over rdma between two soft-RoCE guests (tests/rxe/rxe-vm.sh
# pair): rmig-ttfb-pair's destination in guest A (10.99.0.1), its source in
# guest B, the clocks compared over a side TCP connection (see ttfb_pair.c).
#
#   bench/ttfb-pair.sh [-n REPS] [-s "MIB..."] [-v "VARIANT..."] [-c CHANNELS]
#                      [-W] [-m GUEST_MB] [-b BUILD_DIR] [-o OUT_DIR]
#
#   -n REPS      rounds over every variant and size, alternated (default 3)
#   -s MIB...    destination RAM sizes in MiB (default "64 1024")
#   -v VARIANT   default (the library's defaults), upfront (RMIG_RDMA_REG=upfront),
#                mw-off (RMIG_RDMA_MW=off) (default "default upfront mw-off")
#   -c CHANNELS  rdma channels (default 2)
#   -W           no warm-up run (default: one run of the largest size first, not
#                counted: a fresh TCG guest's first touch of its memory)
#   -m MB        memory per guest (default 1792)
#   -b DIR       build directory with bench/rmig-ttfb-pair (default build/)
#   -o DIR       output directory (default BUILD_DIR/ttfb-pair)
#
# Prints every run's line, then per variant the median first byte for each
# size and the ratio largest / smallest. Exit status 0 when every run (warm-up
# included) verified and printed its line, 1 otherwise, 2 usage, 77 no
# soft-RoCE prerequisites (rxe-vm.sh's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
reps=3 sizes="64 1024" variants="default upfront mw-off" channels=2 warm=1 mem=1792
build=$here/../build out=
[[ ${1:-} = --help ]] && bench_usage "$0" 3 25
while getopts "n:s:v:c:Wm:b:o:h" o; do
	case $o in
	n) reps=$OPTARG ;; s) sizes=$OPTARG ;; v) variants=$OPTARG ;; c) channels=$OPTARG ;;
	W) warm=0 ;; m) mem=$OPTARG ;; b) build=$OPTARG ;; o) out=$OPTARG ;;
	h) bench_usage "$0" 3 25 ;;
	*) bench_usage "$0" 3 25 2 ;;
	esac
done
build=$(cd "$build" && pwd)
prog=$build/bench/rmig-ttfb-pair
[ -x "$prog" ] || { echo "no $prog: build first (meson setup build && ninja -C build)" >&2; exit 2; }
out=${out:-$build/ttfb-pair}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The plan, the same on both guests: "variant:MiB", the warm-up first.
plan=
big=$(tr ' ' '\n' <<< "$sizes" | sort -n | tail -1)
[ "$warm" = 1 ] && plan="warmup:$big"
for i in $(seq "$reps"); do
	for v in $variants; do
		case $v in default | upfront | mw-off) ;; *) echo "unknown variant $v" >&2; exit 2 ;; esac
		for m in $sizes; do plan="$plan $v:$m"; done
	done
done
# Each case: the variant's environment on both sides, the destination first
# (the source retries its side connection until the destination listens).
each='
	n=0
	for c in '"$plan"'; do
		v=${c%%:*} m=${c#*:} n=$((n + 1))
		case $v in upfront) e=RMIG_RDMA_REG=upfront ;; mw-off) e=RMIG_RDMA_MW=off ;; *) e= ;; esac'
dst="$each
		env \$e $prog dst \"\$RXE_ADDR\" \$m $channels || echo \"case \$n (\$c) failed\"
	done"
src="$each
		l=\$(env \$e $prog src \"\$RXE_PEER_ADDR\" \$m $channels) || echo \"case \$n (\$c) failed\"
		echo \"\$l\"
		[ \$v = warmup ] && echo \"\$l\" >> \"\$OUT/warmup.txt\" || echo \"\$l\" >> \"\$OUT/ttfb.txt\"
	done"
rm -f "$out/ttfb.txt" "$out/warmup.txt"
ncase=$(wc -w <<< "$plan")
# budget: 15 s a case and 80 s a GiB (1 GiB took about 40 s between 1-vCPU guests)
budget=120
for c in $plan; do budget=$((budget + 15 + ${c#*:} * 80 / 1024)); done
echo "host load before: $(uptime)"
rc=0
RXE_CACHE_DIR=${RXE_CACHE_DIR:-$build/rxe-cache} "$here/../tests/rxe/rxe-vm.sh" pair -q \
	--out "$out" --mem "$mem" --timeout "$budget" --dst "$dst" --src "$src" || rc=$?
echo "host load after: $(uptime)"
[ "$rc" = 77 ] && exit 77
python3 - "$out" "$ncase" "$warm" "$rc" <<'PY'
import re, statistics, sys
out, ncase, warm, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs, bad = [], 0
for name in (["warmup.txt"] if warm else []) + ["ttfb.txt"]:
    try:
        lines = open(f"{out}/{name}").read().splitlines()
    except OSError:
        lines = []
    for l in lines:
        if not l.startswith("ttfb-pair:"):
            continue
        r = dict(kv.split("=", 1) for kv in l.split()[1:])
        if r["verified"] != "1":
            bad += 1
        if name == "ttfb.txt":
            runs.append(r)
        print(("warm-up " if name == "warmup.txt" else "") + l)
seen = len(runs) + (1 if warm else 0)
series = {}
for r in runs:
    v = "upfront" if r["reg"] == "upfront" else "mw-off" if r["mw"] == "off" else "default"
    series.setdefault(v, {}).setdefault(int(r["mib"]), []).append(float(r["first_byte_s"]))
for v, by in series.items():
    meds = {m: statistics.median(x) for m, x in sorted(by.items())}
    row = "  ".join(f"{m} MiB {' '.join(f'{t:.3f}' for t in by[m])} median {t:.3f} s"
                    for m, t in meds.items())
    lo, hi = min(meds), max(meds)
    ratio = f"  {hi}/{lo} MiB {meds[hi] / meds[lo]:.2f}" if hi != lo and meds[lo] > 0 else ""
    print(f"{v}: {row}{ratio}")
ok = rc == 0 and bad == 0 and seen == ncase
print(f"{seen} of {ncase} runs reported, {bad} not verified, pair exit {rc}: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
