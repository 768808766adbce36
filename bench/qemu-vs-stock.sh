#!/usr/bin/env bash
# QEMU+rmig against stock QEMU 10 multifd (the same binary without rmig-uri),
# over loopback tcp, same channel count, both uncapped (issue 11, Performance):
#   paused   2 GiB of random RAM (-S, memory-backend-file in /dev/shm)
#   running  a 1 GiB memcheck guest rewriting 512 MiB (tests/qemu/README.md)
# Each mode N times, the order alternating (rmig stock, stock rmig, ...).
# Prints every run, then medians of total time, downtime and throughput, and
# the ratios rmig/stock. Every run checks its result as the tests do (RAM
# identical, guest intact); a failed run is reported and left out.
#
# Usage: bench/qemu-vs-stock.sh [-q QEMU] [-n N] [-c CHANNELS] [-m paused,running] [-o DIR]
#   QEMU defaults to $RMIG_QEMU; DIR (default build-qemu-bench) keeps each
#   run's JSON, serial consoles and QEMU logs.
set -euo pipefail
cd "$(dirname "$0")/.."

qemu=${RMIG_QEMU:-} n=3 channels=2 modes=paused,running out=build-qemu-bench
while getopts "q:n:c:m:o:h" opt; do
	case $opt in
	q) qemu=$OPTARG ;;
	n) n=$OPTARG ;;
	c) channels=$OPTARG ;;
	m) modes=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
[ -n "$qemu" ] || { echo "qemu-vs-stock: give -q QEMU or set RMIG_QEMU" >&2; exit 2; }
mkdir -p "$out"
echo "qemu: $qemu ($("$qemu" --version | head -n 1)); channels $channels; $(nproc) cpus; load $(cut -d' ' -f1-3 /proc/loadavg)"

for mode in ${modes//,/ }; do
	for i in $(seq 1 "$n"); do
		if [ $((i % 2)) -eq 1 ]; then order="rmig stock"; else order="stock rmig"; fi
		for kind in $order; do
			dir=$out/$mode-$i-$kind
			rm -rf "$dir"
			echo "== $mode run $i $kind (load $(cut -d' ' -f1 /proc/loadavg))"
			timeout 900 python3 tests/qemu/migrate.py --qemu "$qemu" --out "$dir" --mode "$mode" \
				--"$kind" --channels "$channels" --json "$dir/result.json" | sed 's/^/   /' ||
				echo "   run failed (see $dir)"
		done
	done
done

python3 - "$out" "$modes" <<'PY'
import glob, json, os, statistics, sys
out, modes = sys.argv[1], sys.argv[2].split(",")
ncpu = os.cpu_count()
cpu_rows = []
print()
print(f"{'mode':8} {'kind':6} {'runs':>4} {'total ms':>9} {'downtime ms':>12} {'Mbit/s':>8}   (medians)")
for mode in modes:
    med = {}
    for kind in ("rmig", "stock"):
        rs = []
        for p in sorted(glob.glob(os.path.join(out, f"{mode}-*-{kind}", "result.json"))):
            r = json.load(open(p))
            if r.get("ok"):
                rs.append(r)
        if not rs:
            print(f"{mode:8} {kind:6} {0:>4}   (no successful run)")
            continue
        m = {k: statistics.median(r[k] for r in rs) for k in ("total_time_ms", "downtime_ms", "mbps")}
        med[kind] = m
        print(f"{mode:8} {kind:6} {len(rs):>4} {m['total_time_ms']:>9.0f} {m['downtime_ms']:>12.0f} "
              f"{m['mbps']:>8.0f}   all totals: {[r['total_time_ms'] for r in rs]}")
        cpu = [r for r in rs if r.get("cpu_src_s") is not None and r.get("cpu_dst_s") is not None]
        if cpu:
            gib = statistics.median(r["transferred"] for r in cpu) / 2**30
            cs = statistics.median(r["cpu_src_s"] for r in cpu)
            cd = statistics.median(r["cpu_dst_s"] for r in cpu)
            busy = statistics.median((r["cpu_src_s"] + r["cpu_dst_s"]) / (r["wall_s"] * ncpu)
                                     for r in cpu)
            cpu_rows.append(f"{mode:8} {kind:6} cpu s: source {cs:.2f}, destination {cd:.2f}, "
                            f"{(cs + cd) / gib:.2f} s per GiB moved; cores busy {busy:.0%}")
    if len(med) == 2:
        a, b = med["rmig"], med["stock"]
        print(f"{mode:8} ratio rmig/stock: total time {a['total_time_ms'] / b['total_time_ms']:.2f} "
              f"(target <= 0.5), downtime {a['downtime_ms']:.0f} vs {b['downtime_ms']:.0f} ms "
              f"(target: no longer)")
for row in cpu_rows:
    print(row)
PY
