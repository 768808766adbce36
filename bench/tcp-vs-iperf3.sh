#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rmig over loopback TCP against an honest iperf3 ceiling, same machine, same
# minutes. Each repetition runs both sides, in ABBA order (odd repetitions
# iperf3 first, even ones rmig first), then prints the medians, the ratio
# rmig / iperf3 and the load average before every measurement:
#   ceiling: CHANNELS iperf3 servers (ports IPERF_PORT..+CHANNELS-1) and
#            CHANNELS `iperf3 -c 127.0.0.1 -p PORT -t SECONDS -J` client
#            processes in parallel, one per rmig channel; their receivers'
#            rates summed. (One `iperf3 -P N` is not a ceiling: iperf3 before
#            3.16 drives all its streams from one thread, one core per side.)
#   rmig:    rmig-bench --listen / --connect, two processes, CHANNELS channels,
#            SIZE of random pages, --json; the source's GB/s (connect to
#            finish, the destination's verification excluded).
#
# What each side pays. iperf3 writes one 128 KiB buffer over and over and
# reads into another: both stay in cache, so it measures the kernel's TCP
# stack and its two copies (user to socket, socket to user) and nothing else.
# rmig pays the same stack and copies, but its sender reads SIZE of RAM that
# is not in cache, its receiver writes SIZE of RAM that is not in cache (the
# bench maps and populates the destination's region before the clock starts,
# so there are no first-touch page faults in the figure: see docs/benchmarks.md
# for a fresh destination), every batch's pages go through zero detection
# (one load per random page; a full scan of every zero page), and each batch
# is handed from the producer thread to a channel thread (rmig's scheduler).
# Neither side pays for generating or checking content (rmig-bench does both
# outside its clock).
#
# Usage: bench/tcp-vs-iperf3.sh [-n REPS] [-s SIZE] [-c CHANNELS] [-t SECONDS]
#                               [-b RMIG_BENCH] [-o RESULTS.jsonl] [-- EXTRA rmig-bench flags]
#   defaults: -n 5 -s 4G -c 2 -t 5; IPERF_PORT=5201, RMIG_PORT=4444
set -euo pipefail
. "$(dirname "$0")/lib.sh"

reps=5 size=4G channels=2 secs=5 out= bench=
iperf_port=${IPERF_PORT:-5201} rmig_port=${RMIG_PORT:-4444}

usage() { bench_usage "$0" 3 32 "${1:-0}"; }

while getopts "n:s:c:t:b:o:h" opt; do
	case $opt in
	n) reps=$OPTARG ;;
	s) size=$OPTARG ;;
	c) channels=$OPTARG ;;
	t) secs=$OPTARG ;;
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
[[ -n $bench && -x $bench ]] || { echo "rmig-bench not found: build it or pass -b PATH" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "iperf3 is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to read the JSON" >&2; exit 2; }
[[ $channels =~ ^[1-9][0-9]*$ ]] || { echo "-c wants a positive number" >&2; exit 2; }

tmp=$(mktemp -d)
servers=()
cleanup() {
	local p
	for p in "${servers[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

for ((k = 0; k < channels; k++)); do
	iperf3 -s -p $((iperf_port + k)) >"$tmp/iperf-server-$k.log" 2>&1 &
	servers+=($!)
done
sleep 0.5
for ((k = 0; k < channels; k++)); do
	if ! kill -0 "${servers[k]}" 2>/dev/null; then
		echo "iperf3 -s -p $((iperf_port + k)) did not start (set IPERF_PORT?):" >&2
		cat "$tmp/iperf-server-$k.log" >&2
		exit 2
	fi
done

loadavg() {
	cut -d' ' -f1-3 /proc/loadavg >"$1"
}

run_iperf() {
	local i=$1 k pids=()
	loadavg "$tmp/load-iperf-$i"
	for ((k = 0; k < channels; k++)); do
		iperf3 -c 127.0.0.1 -p $((iperf_port + k)) -t "$secs" -J >"$tmp/iperf-$i-$k.json" &
		pids+=($!)
	done
	for k in "${pids[@]}"; do
		wait "$k" || true
	done
}

run_rmig() {
	local i=$1 dst
	loadavg "$tmp/load-rmig-$i"
	"$bench" --listen "127.0.0.1:$rmig_port" --size "$size" --channels "$channels" --json \
		"${extra[@]}" >"$tmp/dst-$i.json" 2>"$tmp/dst-$i.err" &
	dst=$!
	# the source retries a refused connect until --timeout, so no need to wait here
	"$bench" --connect "127.0.0.1:$rmig_port" --size "$size" --channels "$channels" --json \
		"${extra[@]}" >"$tmp/src-$i.json" 2>"$tmp/src-$i.err" || true
	wait "$dst" || true
}

echo "rmig-bench: $bench; $size, $channels channels; ceiling: $channels iperf3 client processes" \
	"x $secs s; $reps repetitions, ABBA; nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((i = 1; i <= reps; i++)); do
	if ((i % 2)); then run_iperf "$i"; run_rmig "$i"; else run_rmig "$i"; run_iperf "$i"; fi
	echo "repetition $i/$reps done" >&2
done

python3 - "$tmp" "$reps" "$out" "$channels" "$size" <<'EOF'
import json, statistics, sys

tmp, reps, out, streams, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

def load(path):
    """iperf3's pretty-printed document, or rmig-bench's one-line object"""
    try:
        with open(path) as f:
            text = f.read().strip()
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""

def iperf_rep(i):
    """sum of the receivers' rates (GB/s), CPU s/GB of the clients and of the servers"""
    gbs = cli = srv = gb = 0.0
    for k in range(streams):
        d = load(f"{tmp}/iperf-{i}-{k}.json")
        if not d or "sum_received" not in d.get("end", {}):
            return None, None, None
        e = d["end"]
        secs = e["sum_received"]["seconds"]
        cpu = e.get("cpu_utilization_percent", {})  # per process, percent of one CPU
        gbs += e["sum_received"]["bits_per_second"] / 8e9
        gb += e["sum_received"]["bytes"] / 1e9
        cli += cpu.get("host_total", 0) / 100 * secs
        srv += cpu.get("remote_total", 0) / 100 * secs
    return gbs, cli / gb, srv / gb

fmt = lambda v, p=3: f"{v:.{p}f}" if v is not None else "-"
iperf, rmig, loads, rows, failed = [], [], [], [], 0
print(f"{'rep':>3}  {'iperf3 GB/s':>11}  {'CPU s/GB c+s':>12}  {'load':>5}  "
      f"{'rmig GB/s':>9}  {'CPU s/GB s+d':>12}  {'load':>5}  verified")
for i in range(1, reps + 1):
    ig, icli, isrv = iperf_rep(i)
    src, dst = load(f"{tmp}/src-{i}.json"), load(f"{tmp}/dst-{i}.json")
    li = read(f"{tmp}/load-iperf-{i}").split() or ["-"]
    lr = read(f"{tmp}/load-rmig-{i}").split() or ["-"]
    for l in (li[0], lr[0]):
        try:
            loads.append(float(l))
        except ValueError:
            pass
    ok = bool(src and dst and not src.get("error") and dst.get("verified") is True)
    rg = src["gbytes_per_s"] if ok else None
    if ig is not None:
        iperf.append(ig)
    else:
        failed += 1
        print(f"  repetition {i}: iperf3 failed", file=sys.stderr)
    if ok:
        rmig.append(rg)
    else:
        failed += 1
        why = (src or {}).get("error") or (dst or {}).get("error") or read(f"{tmp}/src-{i}.err") \
            or read(f"{tmp}/dst-{i}.err")
        print(f"  repetition {i}: rmig failed: {why}", file=sys.stderr)
    icpu = f"{fmt(icli, 2)}+{fmt(isrv, 2)}" if ig is not None else "-"
    rcpu = f"{fmt(src.get('cpu_s_per_gb'), 2)}+{fmt(dst.get('cpu_s_per_gb'), 2)}" if ok else "-"
    print(f"{i:>3}  {fmt(ig):>11}  {icpu:>12}  {li[0]:>5}  {fmt(rg):>9}  {rcpu:>12}  {lr[0]:>5}  "
          f"{'yes' if ok else 'NO'}")
    rows.append({"tool": "iperf3", "rep": i, "processes": streams, "gbytes_per_s": ig,
                 "cpu_s_per_gb_clients": icli, "cpu_s_per_gb_servers": isrv,
                 "loadavg": li})
    if src:
        rows.append(dict(src, tool="rmig", rep=i, loadavg=lr))
    if dst:
        rows.append(dict(dst, tool="rmig", rep=i, loadavg=lr))

if out:
    with open(out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

mi = statistics.median(iperf) if iperf else None
mr = statistics.median(rmig) if rmig else None
print(f"median iperf3 ({streams} processes, summed): {fmt(mi)} GB/s")
print(f"median rmig ({size}, {streams} channels):    {fmt(mr)} GB/s")
if mi and mr:
    print(f"ratio rmig/iperf3: {mr / mi:.3f}")
if loads:
    print(f"1-minute load average before the runs: {min(loads):.2f}-{max(loads):.2f}"
          + ("" if max(loads) < 1.5 else " (busy machine: read the ratio, not the figures)"))
sys.exit(1 if failed else 0)
EOF
