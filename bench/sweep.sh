#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# A channel-count and pages-per-packet sweep on this machine, with its peers
# measured in the same run, and pictures of it:
#   channels:  for each CHANNELS in -C, bench/tcp-vs-iperf3.sh (REPS
#              repetitions in ABBA order of CHANNELS iperf3 client processes,
#              summed, and a two-process rmig-bench --listen/--connect of
#              SIZE over CHANNELS tcp channels)
#   pages per packet: for each N in -P, REPS two-process rmig-bench runs over
#              -c channels with --pages-per-packet N
#   rdma:      the channel sweep over rdma when an RDMA device is present
#              (/sys/class/infiniband; its netdev's first IPv4 address, or
#              RMIG_RDMA_HOST), else a note says it was skipped
#   QEMU:      stock QEMU 10 multifd by channel count, where
#              integrations/qemu/build.sh built it (build-qemu/) or RMIG_QEMU
#              names a binary: a paused guest of QEMU_MIB (512) MiB random
#              RAM per channel count (with -q only when RMIG_QEMU is set)
#   live:      one rmig-bench --live --json run (LIVE_SIZE, a workload of
#              LIVE_RATE bytes/s, downtime limit LIVE_LIMIT ms), every round
# Writes to OUTDIR: sweep.json (every row measured, the host, the
# parameters), live.jsonl (the live run's JSON lines), sweep.log (what was
# printed), and the PNGs sweep-channels.png, sweep-ppp.png, live-rounds.png
# (bench/plot_sweep.py; needs matplotlib, Debian python3-matplotlib).
#
# Usage: bench/sweep.sh [-b RMIG_BENCH] [-o OUTDIR] [-s SIZE] [-n REPS] [-t SECONDS]
#                       [-C "1 2 4 8"] [-P "16 32 64 128 256 512 1024"] [-c CHANNELS]
#                       [-l LIVE_SIZE] [-r LIVE_RATE] [-L LIVE_LIMIT] [-q]
#   defaults: -o sweep-DATE -s 1G -n 3 -t 3 -c 2 -l 1G -r 300M -L 20;
#   -q: a quick smoke run (-s 64M -n 1 -t 1 -C "1 2" -P "32 128" -l 64M)
#   ports: IPERF_PORT (5201 up), RMIG_PORT (4444); PYTHON: the python3 with
#   matplotlib (default: python3, or /usr/bin/python3 when only it has it)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=${RMIG_BENCH:-} out= size=1G reps=3 secs=3 chans="1 2 4 8"
ppps="16 32 64 128 256 512 1024" pchan=2 lsize=1G lrate=300M llimit=20
rmig_port=${RMIG_PORT:-4444}

usage() {
	sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while getopts "b:o:s:n:t:C:P:c:l:r:L:qh" opt; do
	case $opt in
	b) bench=$OPTARG ;;
	o) out=$OPTARG ;;
	s) size=$OPTARG ;;
	n) reps=$OPTARG ;;
	t) secs=$OPTARG ;;
	C) chans=$OPTARG ;;
	P) ppps=$OPTARG ;;
	c) pchan=$OPTARG ;;
	l) lsize=$OPTARG ;;
	r) lrate=$OPTARG ;;
	L) llimit=$OPTARG ;;
	q) size=64M reps=1 secs=1 chans="1 2" ppps="32 128" lsize=64M quick=1 ;;
	h) usage 0 ;;
	*) usage 2 >&2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage 2 >&2

if [ -z "$bench" ]; then
	for c in "$here/../build/bench/rmig-bench" "$(command -v rmig-bench || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then bench=$c; break; fi
	done
fi
[ -n "$bench" ] && [ -x "$bench" ] || { echo "sweep: rmig-bench not found: build it or pass -b PATH" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "sweep: iperf3 is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "sweep: python3 is needed" >&2; exit 2; }
for v in $chans $ppps $pchan $reps; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "sweep: '$v' is not a positive number" >&2; exit 2; }
done
py=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && ! python3 -c 'import matplotlib' 2>/dev/null &&
	/usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
	py=/usr/bin/python3
fi

out=${out:-sweep-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || { echo "sweep: cannot create $out" >&2; exit 2; }
[ -w "$out" ] || { echo "sweep: cannot write into $out" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
exec > >(tee "$out/sweep.log") 2>&1
failed=0

tag() { # tag FILE.jsonl KEY=VALUE...: add fields to every row
	python3 - "$@" <<'PY'
import json, sys
path, extra = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
for k, v in extra.items():
    try:
        extra[k] = int(v)
    except ValueError:
        pass
with open(path) as f:
    for line in f:
        if line.strip():
            print(json.dumps(dict(json.loads(line), **extra)))
PY
}

# rmig_pair TRANSPORT HOST CHANNELS PPP: one two-process run; both sides' objects
rmig_pair() {
	local xport=$1 host=$2 ch=$3 ppp=$4 dst
	# --insecure: over rdma the destination listens on the device's address, not
	# loopback; this measures throughput, not authentication (docs/security.md)
	"$bench" --transport "$xport" --listen "$host:$rmig_port" --size "$size" --channels "$ch" \
		--pages-per-packet "$ppp" --json --quiet --insecure >"$tmp/dst.json" 2>"$tmp/dst.err" &
	dst=$!
	"$bench" --transport "$xport" --connect "$host:$rmig_port" --size "$size" --channels "$ch" \
		--pages-per-packet "$ppp" --json --quiet >"$tmp/src.json" 2>"$tmp/src.err"
	local src_rc=$?
	wait "$dst"
	local dst_rc=$?
	if [ $src_rc -ne 0 ] || [ $dst_rc -ne 0 ]; then
		echo "  rmig $xport ${ch}ch ppp $ppp failed: $(cat "$tmp/src.err" "$tmp/dst.err" | head -2)"
		failed=$((failed + 1))
	fi
	cat "$tmp/src.json" "$tmp/dst.json"
}

echo "sweep: $bench; $size; channels '$chans'; pages per packet '$ppps' over $pchan channels;" \
	"$reps repetitions; iperf3 ${secs} s; nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$tmp/rows.jsonl"

echo "== tcp: channels, against iperf3 (bench/tcp-vs-iperf3.sh)"
for c in $chans; do
	: >"$tmp/c.jsonl"
	RMIG_PORT=$rmig_port bash "$here/tcp-vs-iperf3.sh" -n "$reps" -s "$size" -c "$c" -t "$secs" \
		-b "$bench" -o "$tmp/c.jsonl" || { echo "  channels $c: a repetition failed"; failed=$((failed + 1)); }
	tag "$tmp/c.jsonl" sweep=channels channels="$c" transport=tcp >>"$tmp/rows.jsonl"
done

echo "== tcp: pages per packet ($pchan channels, two processes)"
for p in $ppps; do
	for ((i = 1; i <= reps; i++)); do
		rmig_pair tcp 127.0.0.1 "$pchan" "$p" >"$tmp/p.jsonl"
		tag "$tmp/p.jsonl" sweep=pages_per_packet pages_per_packet="$p" tool=rmig rep="$i" \
			>>"$tmp/rows.jsonl"
	done
	python3 - "$tmp/rows.jsonl" "$p" <<'PY'
import json, statistics, sys
g = [r["gbytes_per_s"] for r in map(json.loads, open(sys.argv[1]))
     if r.get("sweep") == "pages_per_packet" and r.get("pages_per_packet") == int(sys.argv[2])
     and r.get("role") == "source" and not r.get("error")]
print(f"  pages per packet {sys.argv[2]:>5}: median {statistics.median(g):.3f} GB/s (n={len(g)})"
      if g else f"  pages per packet {sys.argv[2]}: no result")
PY
done

echo "== rdma: channels"
rdev=$(ls /sys/class/infiniband 2>/dev/null | head -1)
if [ -z "$rdev" ]; then
	echo "  skipped: no RDMA device on this machine (/sys/class/infiniband is empty or absent);" \
		"tests/rxe/ and bench/rdma-vs-perftest.sh measure rdma on soft-RoCE in QEMU guests"
else
	rhost=${RMIG_RDMA_HOST:-}
	if [ -z "$rhost" ]; then
		nd=$(cat "/sys/class/infiniband/$rdev/ports/1/gid_attrs/ndevs/0" 2>/dev/null)
		[ -n "$nd" ] && rhost=$(ip -4 -o addr show dev "$nd" 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
	fi
	if [ -z "$rhost" ]; then
		echo "  skipped: $rdev has no IPv4 address on its netdev (set RMIG_RDMA_HOST)"
	else
		echo "  $rdev at $rhost"
		for c in $chans; do
			for ((i = 1; i <= reps; i++)); do
				rmig_pair rdma "$rhost" "$c" 128 >"$tmp/r.jsonl"
				tag "$tmp/r.jsonl" sweep=channels channels="$c" tool=rmig rep="$i" >>"$tmp/rows.jsonl"
			done
		done
	fi
fi

# Stock QEMU 10 multifd, where integrations/qemu/build.sh has built it (or
# RMIG_QEMU names a binary): a paused guest with QEMU_MIB MiB of random RAM
# migrated over loopback by QEMU's own multifd channels (no rmig-uri: the
# patched binary then runs stock multifd code), once per channel count;
# GB/s is the RAM size over query-migrate's total-time.
qemu=${RMIG_QEMU:-}
if [ -z "$qemu" ] && [ -z "${quick:-}" ]; then
	qemu=$(ls "$here"/../build-qemu/qemu-*/build/qemu-system-x86_64 2>/dev/null | head -1)
fi
qmib=${QEMU_MIB:-512}
if [ -n "$qemu" ] && [ -x "$qemu" ]; then
	echo "== QEMU: stock multifd, paused $qmib MiB guest, by channels ($qemu)"
	for c in $chans; do
		qdir=$tmp/qemu-$c
		if timeout 600 python3 "$here/../tests/qemu/migrate.py" --qemu "$qemu" --out "$qdir" \
			--mode paused --mem "$qmib" --stock --channels "$c" --json "$qdir.json" \
			>"$qdir.log" 2>&1; then
			python3 - "$qdir.json" "$c" "$qmib" >>"$tmp/rows.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ms = r.get("total_time_ms") or 0
gbs = int(sys.argv[3]) * 2**20 / (ms / 1000) / 1e9 if ms else None
print(json.dumps({"sweep": "channels", "channels": int(sys.argv[2]), "tool": "qemu",
                  "transport": "tcp", "gbytes_per_s": gbs, "total_time_ms": ms,
                  "downtime_ms": r.get("downtime_ms"), "ram_identical": r.get("ram_identical")}))
PY
			echo "  channels $c: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r.get("total_time_ms"), "ms")' "$qdir.json")"
		else
			echo "  channels $c: the QEMU migration failed (log: $qdir.log)"
			failed=$((failed + 1))
		fi
	done
else
	echo "== QEMU: no integrations/qemu/build.sh binary (build-qemu/, or RMIG_QEMU): stock multifd not measured"
fi

echo "== live: rmig-bench --live --json --size $lsize --dirty-rate $lrate --downtime-limit $llimit"
"$bench" --live --json --size "$lsize" --dirty-rate "$lrate" --downtime-limit "$llimit" \
	--channels "$pchan" >"$out/live.jsonl" 2>"$tmp/live.err" ||
	{ echo "  live run failed: $(cat "$tmp/live.err")"; failed=$((failed + 1)); }
tail -1 "$out/live.jsonl" | cut -c1-200

python3 - "$tmp/rows.jsonl" "$out/sweep.json" "$out/live.jsonl" "$size" "$reps" "$secs" \
	"$chans" "$ppps" "$pchan" "$load0" "$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null)" <<'PY'
import json, os, sys, time
rows_path, out, live, size, reps, secs, chans, ppps, pchan, load0, commit = sys.argv[1:12]
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
size_b = int(size[:-1]) * units[size[-1].upper()] if size[-1].upper() in units else int(size)
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
try:
    live_ev = [json.loads(l) for l in open(live) if l.strip()]
except ValueError:
    live_ev = []
doc = {
    "kind": "rmig-sweep", "version": 1,
    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": {"nproc": os.cpu_count(), "kernel": os.uname().release, "loadavg_start": load0,
             "loadavg_end": open("/proc/loadavg").read().split()[:3], "commit": commit},
    "size_bytes": size_b, "reps": int(reps), "iperf3_seconds": int(secs),
    "channels": [int(c) for c in chans.split()],
    "pages_per_packet": [int(p) for p in ppps.split()], "ppp_channels": int(pchan),
    "rows": rows, "live": live_ev,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
print(f"wrote {out}: {len(rows)} rows, {len(live_ev)} live events")
PY

"$py" "$here/plot_sweep.py" sweep "$out/sweep.json" -o "$out" || failed=$((failed + 1))
"$py" "$here/plot_sweep.py" live "$out/live.jsonl" -o "$out/live-rounds.png" || failed=$((failed + 1))
echo "sweep: done in $out ($failed failures)"
[ $failed -eq 0 ]
