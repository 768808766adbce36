#!/usr/bin/env bash
# rmig over rdma beside perftest's ib_write_bw, in the same soft-RoCE guest
# (QEMU TCG, rdma_rxe, loopback on rxe0), alternating, same message size
# (512 KiB: one full 128-page batch, coalesced into one WRITE) and QP count.
#
#   bench/rdma-vs-perftest.sh [-n REPS] [-c CHANNELS] [-s SIZE] [-b BUILD_DIR]
#
# Prints every run, then medians and the ratio rmig / ib_write_bw, both for
# rmig's whole run (connect to verified finish) and for its data phase alone
# (what ib_write_bw reports: it excludes connection set-up).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reps=3 channels=2 size=512M build=$here/../build
while getopts "n:c:s:b:h" o; do
	case $o in
	n) reps=$OPTARG ;; c) channels=$OPTARG ;; s) size=$OPTARG ;; b) build=$OPTARG ;;
	*) sed -n 2,11p "$0"; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
bench=$build/bench/rmig-bench
[ -x "$bench" ] || { echo "no $bench: build first (meson setup build && ninja -C build)"; exit 2; }
out=$build/rdma-vs-perftest
mkdir -p "$out"

RXE_CACHE_DIR=${RXE_CACHE_DIR:-$build/rxe-cache} "$here/../tests/rxe/rxe-vm.sh" single \
	--out "$out" --timeout $((120 + reps * 90)) --mem 3072 --sh "
	pin_srv= pin_cli=
	[ \$(nproc) -ge 2 ] && pin_srv='taskset -c 1' pin_cli='taskset -c 0'
	bw='ib_write_bw -d rxe0 -x 1 -s 524288 -q $channels -D 10 -F --report_gbits'
	for i in \$(seq $reps); do
		\$pin_srv \$bw > \"\$OUT/srv.log\" 2>&1 &
		srv=\$!
		rxe_wait_listen 18515 30 || exit 1
		\$pin_cli \$bw \"\$RXE_ADDR\" > \"\$OUT/pt.\$i.log\" 2>&1 || { cat \"\$OUT/pt.\$i.log\"; exit 1; }
		wait \$srv || true
		echo \"ib_write_bw \$i: \$(awk '/#bytes/ { getline; print \$4; exit }' \"\$OUT/pt.\$i.log\") Gb/s\"
		$bench --transport rdma --host \$RXE_ADDR --channels $channels --size $size --json --insecure > \"\$OUT/rmig.\$i.json\" || { cat \"\$OUT/rmig.\$i.json\"; exit 1; }
		echo \"rmig \$i: \$(cat \"\$OUT/rmig.\$i.json\")\"
	done
"
python3 - "$out" "$reps" <<'PY'
import json, statistics, sys, re
out, reps = sys.argv[1], int(sys.argv[2])
pt, whole, data = [], [], []
for i in range(1, reps + 1):
    lines = open(f"{out}/pt.{i}.log").read().splitlines()
    for k, l in enumerate(lines):
        if l.strip().startswith("#bytes"):
            pt.append(float(lines[k + 1].split()[3]))
            break
    r = json.load(open(f"{out}/rmig.{i}.json"))
    assert r["verified"], "rmig run not verified"
    whole.append(r["gbits_per_s"]); data.append(r["transfer_gbits_per_s"])
m = statistics.median
print(f"ib_write_bw Gb/s: {pt}  median {m(pt):.3f}")
print(f"rmig whole run Gb/s: {whole}  median {m(whole):.3f}  ratio {m(whole)/m(pt):.2f}")
print(f"rmig data phase Gb/s: {data}  median {m(data):.3f}  ratio {m(data)/m(pt):.2f}")
PY
