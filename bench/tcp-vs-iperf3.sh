#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rmig over loopback TCP against iperf3 on the same machine, in the same
# minute: alternating repetitions of
#   iperf3 -c 127.0.0.1 -P CHANNELS -t SECONDS -J
#   rmig-bench --listen / --connect (two processes), CHANNELS channels, SIZE, --json
# then the median of each and the ratio rmig / iperf3.
#
# Usage: bench/tcp-vs-iperf3.sh [-n REPS] [-s SIZE] [-c CHANNELS] [-t SECONDS]
#                               [-b RMIG_BENCH] [-o RESULTS.jsonl] [-- EXTRA rmig-bench flags]
set -euo pipefail

reps=3 size=2G channels=2 secs=10 out= bench=${RMIG_BENCH:-}
iperf_port=${IPERF_PORT:-5201} rmig_port=${RMIG_PORT:-4444}

usage() {
	sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

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
if [[ -z $bench ]]; then
	for c in "$here/../build/bench/rmig-bench" "$here/rmig-bench" "$(command -v rmig-bench || true)"; do
		if [[ -n $c && -x $c ]]; then bench=$c; break; fi
	done
fi
[[ -n $bench && -x $bench ]] || { echo "rmig-bench not found: build it or pass -b PATH" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "iperf3 is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to read the JSON" >&2; exit 2; }

tmp=$(mktemp -d)
iperf_pid=
cleanup() {
	[[ -n $iperf_pid ]] && kill "$iperf_pid" 2>/dev/null && wait "$iperf_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

iperf3 -s -p "$iperf_port" >"$tmp/iperf-server.log" 2>&1 &
iperf_pid=$!
sleep 0.5
if ! kill -0 "$iperf_pid" 2>/dev/null; then
	echo "iperf3 -s -p $iperf_port did not start (set IPERF_PORT?):" >&2
	cat "$tmp/iperf-server.log" >&2
	iperf_pid=
	exit 2
fi

run_iperf() {
	iperf3 -c 127.0.0.1 -p "$iperf_port" -P "$channels" -t "$secs" -J >"$tmp/iperf-$1.json"
}

run_rmig() {
	local i=$1 dst
	"$bench" --listen "127.0.0.1:$rmig_port" --size "$size" --channels "$channels" --json \
		"${extra[@]}" >"$tmp/dst-$i.json" 2>"$tmp/dst-$i.err" &
	dst=$!
	# the source retries a refused connect until --timeout, so no need to wait here
	"$bench" --connect "127.0.0.1:$rmig_port" --size "$size" --channels "$channels" --json \
		"${extra[@]}" >"$tmp/src-$i.json" 2>"$tmp/src-$i.err" || true
	wait "$dst" || true
}

echo "rmig-bench: $bench; $reps repetitions, alternating; $channels streams/channels" >&2
for ((i = 1; i <= reps; i++)); do
	if ((i % 2)); then run_iperf "$i"; run_rmig "$i"; else run_rmig "$i"; run_iperf "$i"; fi
	echo "repetition $i/$reps done" >&2
done

python3 - "$tmp" "$reps" "$out" "$channels" <<'EOF'
import json, statistics, sys

tmp, reps, out, streams = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

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

def read_err(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""

iperf, rmig, rows, failed = [], [], [], 0
print(f"{'rep':>3}  {'iperf3 Gb/s':>11}  {'rmig Gb/s':>9}  {'rmig GB/s':>9}  {'CPU s/GB src':>12}  verified")
for i in range(1, reps + 1):
    ip = load(f"{tmp}/iperf-{i}.json")
    src, dst = load(f"{tmp}/src-{i}.json"), load(f"{tmp}/dst-{i}.json")
    ig = ip["end"]["sum_received"]["bits_per_second"] / 1e9 if ip and "end" in ip else None
    ok = bool(src and dst and not src.get("error") and dst.get("verified") is True)
    rg = src["gbits_per_s"] if ok else None
    if ig is not None:
        iperf.append(ig)
    if ok:
        rmig.append(rg)
    else:
        failed += 1
        why = (src or {}).get("error") or (dst or {}).get("error") or read_err(f"{tmp}/src-{i}.err") \
            or read_err(f"{tmp}/dst-{i}.err")
        print(f"  repetition {i}: rmig failed: {why}", file=sys.stderr)
    fmt = lambda v, p=2: f"{v:.{p}f}" if v is not None else "-"
    print(f"{i:>3}  {fmt(ig):>11}  {fmt(rg):>9}  {fmt(rg / 8 if rg else None, 3):>9}  "
          f"{fmt(src.get('cpu_s_per_gb') if ok else None, 3):>12}  {'yes' if ok else 'NO'}")
    rows.append({"tool": "iperf3", "rep": i, "channels": streams, "gbits_per_s": ig,
                 "gbytes_per_s": ig / 8 if ig is not None else None})
    if src:
        rows.append(dict(src, tool="rmig", rep=i))
    if dst:
        rows.append(dict(dst, tool="rmig", rep=i))

if out:
    with open(out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

mi = statistics.median(iperf) if iperf else None
mr = statistics.median(rmig) if rmig else None
print(f"median iperf3: {mi:.2f} Gb/s" if mi else "median iperf3: -")
print(f"median rmig:   {mr:.2f} Gb/s ({mr / 8:.3f} GB/s)" if mr else "median rmig:   -")
if mi and mr:
    print(f"ratio rmig/iperf3: {mr / mi:.3f}")
sys.exit(1 if failed or not iperf else 0)
EOF
