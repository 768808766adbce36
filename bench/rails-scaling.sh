#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Do two rails carry twice one rail's rate when the links, not the CPUs, are
# the limit? Two soft-RoCE guests (tests/rxe/rxe-vm.sh pair --nics 2: rxe0 on
# eth0, rxe1 on eth1, each NIC pair on its own socket netdev), each NIC's
# egress throttled inside both guests with a tbf qdisc at RATE Mbit/s (rxe's
# RoCE v2 packets are UDP and pass the netdev's qdisc). The throttle stands in
# for a NIC's line rate: unthrottled, one 1-vCPU guest's rxe and virtio-net
# saturate its emulated CPU near 0.3 Gb/s and a second rail only shares that
# CPU, whereas a real NIC moves data without the host CPU and is limited by
# its link. The queue is deep enough that packets wait instead of being
# dropped (rxe keeps at most 64 packets per QP in flight); the rxe and tc
# counters of every case show whether anything was dropped or retried.
#
# One pair of guests per repetition and rate (the rates interleaved, so a
# change in the host's load touches all of them), the cases in ABBA order (odd
# repetitions as listed, even ones reversed):
#   bw0    ib_write_bw on rail 0 alone (rxe0), CHANNELS/2 QPs, 512 KiB WRITEs
#          (rmig's message: a 128-page batch in one WRITE), ACK timeout 18 (rmig's)
#   bw1    the same on rail 1 alone (rxe1)
#   bw01   both at once (what perftest gets from the two rails together)
#   rmig1  rmig-bench over rail 0: --listen A:PORT / --connect A:PORT, CHANNELS
#   rmig2  rmig-bench over both: --listen A,A2:PORT / --connect A,A2:PORT,
#          CHANNELS in all (channel c on rail c % 2)
# Prints every run: the rate (rmig: its data phase; per rail, the rail's bytes
# over the data phase), each NIC's rate on the wire while busy (the source
# guest's byte counters every 0.25 s), both guests' CPU busy share (perftest
# polls, so its share says nothing), retries, sequence errors, duplicates and
# drops; then per rate the medians, 2 rails / 1 rail and each rail against
# ib_write_bw on that rail.
#
# Usage: bench/rails-scaling.sh [-r RATES] [-n REPS] [-c CHANNELS] [-s MIB] [-D SECONDS]
#                               [-C CASES] [-m MIN] [-f FIRST] [-b RMIG_BENCH] [-o OUTDIR]
#                               [-L LOCKFILE]
#   -r  comma-separated Mbit/s per NIC; 0 = unthrottled (default 40,80,160)
#   -n  repetitions (default 3)     -c  rmig channels (default 4)
#   -s  rmig size in MiB (default: 1.5 x RATE, about 12 s on one throttled rail;
#       128 unthrottled)
#   -D  ib_write_bw seconds, 2 s margins at each end excluded (default 10)
#   -C  the cases to run (default bw0,bw1,bw01,rmig1,rmig2)
#   -m  exit 1 unless, at every rate, the median of rmig 2 rails / 1 rail is at least MIN
#   -f  first repetition (default 1; above 1 the results of earlier ones are kept)
#   -o  results (default build/rails-scaling); summary.json has every figure
#   -L  take this flock(1) lock around each pair of guests (e.g. /tmp/rmig-bench.lock)
# Environment: RXE_CACHE_DIR (see tests/rxe/README.md). Needs root, QEMU,
# perftest and python3, as the rxe suite does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

CASES=(bw0 bw1 bw01 rmig1 rmig2)

# ---------------------------------------------------------------- in a guest

# snap FILE: the counters the report needs, one "name value" a line (read
# builtins where possible: under TCG every fork costs tens of milliseconds)
snap() {
	local d f n v c1 c2 c3 c4 c5 c6 c7 c8
	{
		for d in rxe0 rxe1; do
			for f in "/sys/class/infiniband/$d/ports/1/hw_counters/"*; do
				read -r v < "$f" && echo "$d.${f##*/} $v"
			done
		done
		for n in eth0 eth1; do
			read -r v < /sys/class/net/$n/statistics/tx_bytes && echo "$n.tx_bytes $v"
			read -r v < /sys/class/net/$n/statistics/rx_bytes && echo "$n.rx_bytes $v"
		done
		tc -s qdisc show | awk '$1 == "qdisc" { n = ""; for (i = 1; i < NF; i++) if ($i == "dev") n = $(i + 1) }
			/dropped/ && n ~ /^eth/ { gsub(/[(),]/, ""); for (i = 1; i < NF; i++)
				if ($i == "dropped" || $i == "overlimits") print n ".qdisc_" $i " " $(i + 1) }'
		# cpu user nice system idle iowait irq softirq steal
		read -r f c1 c2 c3 c4 c5 c6 c7 c8 v < /proc/stat &&
			echo "cpu.total $((c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8))" && echo "cpu.idle $((c4 + c5))"
		read -r v f < /proc/uptime && echo "uptime $v"
	} > "$1"
}

# wire FILE: every 0.25 s, the guest's uptime and both NICs' bytes sent, until
# killed: how fast each link ran, whatever the programs' own clocks say. It
# waits on a FIFO nobody writes (read -t), not with sleep: a fork and exec
# per sample would take a share of the vCPU it measures.
wire() {
	local t a b fd
	mkfifo /tmp/rails-scaling.tick 2> /dev/null || true
	exec {fd}<> /tmp/rails-scaling.tick
	while :; do
		read -r t _ < /proc/uptime
		read -r a < /sys/class/net/eth0/statistics/tx_bytes
		read -r b < /sys/class/net/eth1/statistics/tx_bytes
		echo "$t $a $b"
		read -rt 0.25 -u "$fd" _ || true
	done > "$1"
}

throttle() {
	local rate=$1 n
	[ "$rate" = 0 ] && return 0
	modprobe sch_tbf || return 1
	for n in eth0 eth1; do
		# burst: a few jumbo frames; limit: far above what rxe keeps
		# queued (64 packets per QP), so packets wait, never drop
		tc qdisc replace dev "$n" root tbf rate "${rate}mbit" burst 64kb limit 8mb || return 1
	done
	tc qdisc show | sed 's/^/  /'
}

# go FILE [fail]: tell the source the destination's side of a case listens
go() { echo "${2:-ok}" > "$1.tmp" && mv "$1.tmp" "$1"; }

guest() {
	local role=$1 rate=$2 size=$3 rep=$4 chans=$5 secs=$6 bench=$7 want=$8
	local qps=$((chans / 2 > 0 ? chans / 2 : 1))
	local bw="ib_write_bw -x 1 -s 524288 -q $qps -D $secs -F --report_gbits -u 18"
	local rm="$bench --transport rdma --size ${size}M --json --insecure"
	local k c order=() port tag f pids=() sampler
	throttle "$rate" || { echo "throttle failed"; exit 1; }
	IFS=, read -ra order <<< "$want"
	if ((rep % 2 == 0)); then
		for ((k = ${#order[@]} - 1; k >= 0; k--)); do pids+=("${order[k]}"); done
		order=("${pids[@]}")
	fi
	for c in "${order[@]}"; do
		for k in "${!CASES[@]}"; do [ "${CASES[k]}" = "$c" ] && break; done
		port=$((19000 + k * 2))
		tag=$OUT/$rep.$c
		pids=()
		if [ "$role" = dst ]; then
			snap "$tag.dst.before"
			case $c in
			bw0 | bw01)
				$bw -d rxe0 -p "$port" > "$tag.dst.rxe0.log" 2>&1 &
				pids+=($!) ;;&
			bw1 | bw01)
				$bw -d rxe1 -p $((port + 1)) > "$tag.dst.rxe1.log" 2>&1 &
				pids+=($!) ;;
			rmig1)
				$rm --listen "$RXE_ADDR:$port" > "$tag.dst.json" 2> "$tag.dst.err" &
				pids+=($!) ;;
			rmig2)
				$rm --listen "$RXE_ADDR,$RXE_ADDR2:$port" > "$tag.dst.json" 2> "$tag.dst.err" &
				pids+=($!) ;;
			esac
			f=$port
			[ "$c" = bw1 ] && f=$((port + 1))
			if ! rxe_wait_listen "$f" 60 || { [ "$c" = bw01 ] && ! rxe_wait_listen $((port + 1)) 60; }; then
				go "$OUT/go.$rep.$c" fail
				exit 1
			fi
			go "$OUT/go.$rep.$c"
			for f in "${pids[@]}"; do wait "$f" || echo "$rep $c: destination exit $?"; done
			snap "$tag.dst.after"
			continue
		fi
		for ((k = 0; k < 1200; k++)); do
			[ -s "$OUT/go.$rep.$c" ] && break
			sleep 0.1
		done
		[ "$(cat "$OUT/go.$rep.$c" 2> /dev/null)" = ok ] || { echo "$rep $c: the destination is not ready"; exit 1; }
		snap "$tag.src.before"
		wire "$tag.src.wire" &
		sampler=$!
		case $c in
		bw0 | bw01)
			$bw -d rxe0 -p "$port" "$RXE_PEER_ADDR" > "$tag.src.rxe0.log" 2>&1 &
			pids+=($!) ;;&
		bw1 | bw01)
			$bw -d rxe1 -p $((port + 1)) "$RXE_PEER_ADDR2" > "$tag.src.rxe1.log" 2>&1 &
			pids+=($!) ;;
		rmig1)
			$rm --connect "$RXE_PEER_ADDR:$port" --channels "$chans" > "$tag.src.json" 2> "$tag.src.err" &
			pids+=($!) ;;
		rmig2)
			$rm --connect "$RXE_PEER_ADDR,$RXE_PEER_ADDR2:$port" --channels "$chans" > "$tag.src.json" 2> "$tag.src.err" &
			pids+=($!) ;;
		esac
		for f in "${pids[@]}"; do wait "$f" || echo "$rep $c: source exit $?"; done
		kill "$sampler"
		wait "$sampler" 2> /dev/null || true
		snap "$tag.src.after"
		echo "$rep $c done at $(cut -d' ' -f1 /proc/uptime) s"
	done
	[ "$role" = src ] && tc -s qdisc show
	return 0
}

if [ "${1:-}" = --guest ]; then
	shift
	guest "$@"
	exit
fi

# ---------------------------------------------------------------- on the host

usage() { bench_usage "$0" 3 47 "${1:-0}"; }
rates=40,80,160 reps=3 chans=4 size='' secs=10 bench='' outdir='' lock='' cases=bw0,bw1,bw01,rmig1,rmig2 min='' first=1
while getopts "r:n:c:s:D:b:o:L:C:m:f:h" o; do
	case $o in
	r) rates=$OPTARG ;; n) reps=$OPTARG ;; c) chans=$OPTARG ;; s) size=$OPTARG ;;
	D) secs=$OPTARG ;; b) bench=$OPTARG ;; o) outdir=$OPTARG ;; L) lock=$OPTARG ;;
	C) cases=$OPTARG ;; m) min=$OPTARG ;; f) first=$OPTARG ;;
	h) usage 0 ;; *) usage 2 >&2 ;;
	esac
done
[[ $rates =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "-r wants Mbit/s numbers, e.g. 40,80" >&2; exit 2; }
[[ ,$cases, =~ ^(,(bw0|bw1|bw01|rmig1|rmig2))+,$ ]] || { echo "-C wants a list of ${CASES[*]}" >&2; exit 2; }
[[ -z $min || $min =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "-m wants a ratio, e.g. 1.4" >&2; exit 2; }
for v in "$reps" "$chans" "$secs" "$first" ${size:+"$size"}; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "-n, -c, -s and -D want positive numbers, got '$v'" >&2; exit 2; }
done
((chans >= 2)) || { echo "-c: two rails need at least 2 channels" >&2; exit 2; }
if [[ -z $bench ]]; then bench=$(bench_find_rmig_bench "$here") || true; fi
[[ -n $bench && -x $bench ]] || { echo "rmig-bench not found: build it or pass -b PATH" >&2; exit 2; }
bench=$(cd "$(dirname "$bench")" && pwd)/$(basename "$bench")
command -v python3 > /dev/null || { echo "python3 is needed for the report" >&2; exit 2; }
outdir=${outdir:-$here/../build/rails-scaling}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd -P)
vm=$here/../tests/rxe/rxe-vm.sh
rc=0
"$vm" check || rc=$?
[ "$rc" = 0 ] || exit "$rc"

run=()
[ -n "$lock" ] && run=(flock "$lock")
IFS=, read -ra rate_list <<< "$rates"
((first > 1)) || for rate in "${rate_list[@]}"; do rm -rf "$outdir/rate-$rate"; done
# one pair of guests per repetition and rate, the rates interleaved, so that
# a change in the host's load spreads over all of them
for ((rep = first; rep <= reps; rep++)); do
	for rate in "${rate_list[@]}"; do
		sz=${size:-$((rate ? (rate < 22 ? 32 : rate * 3 / 2) : 128))}
		# guest seconds: boot, three perftest cases, two migrations at the
		# throttled rate (160 Mbit/s when unthrottled), with margin
		eff=$((rate ? rate : 160))
		tmo=$((60 + 2 * (3 * (secs + 15) + sz * 8 * 3 / 2 / eff + 40)))
		d=$outdir/rate-$rate
		mkdir -p "$d/$rep"
		echo "== repetition $rep, $rate Mbit/s per NIC (0: unthrottled), $sz MiB, $chans channels: $cases"
		echo "$rep before: $(uptime)" | tee -a "$d/load"
		# 125: a guest failed around the command (under a loaded host a TCG
		# guest now and then panics at boot in its timer check): once more
		for try in 1 2; do
			rc=0
			"${run[@]}" "$vm" pair --nics 2 --out "$d/$rep" --timeout "$tmo" -q \
				--dst "$self --guest dst $rate $sz $rep $chans $secs $bench $cases" \
				--src "$self --guest src $rate $sz $rep $chans $secs $bench $cases" || rc=$?
			if [ "$rc" != 125 ] || [ "$try" = 2 ]; then break; fi
			echo "rate $rate, repetition $rep: a guest failed to boot; again"
		done
		echo "$rep after: $(uptime)" | tee -a "$d/load"
		if [ "$rc" != 0 ]; then
			echo "rate $rate, repetition $rep: the guests failed (exit $rc); logs in $d/$rep" >&2
			tail -n 20 "$d/$rep/dst.log" "$d/$rep/src.log" >&2 || true
			exit 1
		fi
	done
done
python3 "$here/rails_scaling.py" "$outdir" --channels "$chans" --cases "$cases" \
	${min:+--min-ratio "$min"} "${rate_list[@]}"
