#!/usr/bin/env bash
# rmig over rdma beside perftest's ib_write_bw on soft-RoCE (QEMU TCG guests,
# rdma_rxe), alternating, same message size (512 KiB: one full 128-page batch,
# coalesced into one WRITE) and QP count (rmig's channels).
#
#   bench/rdma-vs-perftest.sh [--pair] [-n REPS] [-c CHANNELS] [-s SIZE] [-b BUILD_DIR]
#
#   (default)  one 2-vCPU guest, loopback on rxe0: rmig-bench in process,
#              ib_write_bw server and client pinned to different vCPUs
#   --pair     two 1-vCPU guests (tests/rxe/rxe-vm.sh pair): rmig-bench --listen
#              in guest A and --connect in guest B with a pre-shared key, as a
#              migration between two hosts runs; ib_write_bw -R (rdma_cm) between
#              the same two; the order alternates (ABBA) and each client starts
#              only once its server listens (a file on the shared output dir)
#   -n REPS    repetitions of the pair of runs (default 3)
#   -c N       channels = QPs (default 2)
#   -s SIZE    rmig-bench --size (default 512M; 256M with --pair)
#   -b DIR     build directory (default build/); output in DIR/rdma-vs-perftest[-pair]
#
# Prints every run, then medians and the ratio rmig / ib_write_bw, both for
# rmig's whole run (connect to verified finish, measured on the source, as a
# user times a migration) and for its data phase alone (what ib_write_bw
# reports: it excludes connection set-up), and rmig's connect time. Every rmig
# run must verify (with --pair: the destination's check) or the script fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
reps=3 channels=2 size= build=$here/../build pair=0
args=()
for a in "$@"; do
	case $a in
	--pair) pair=1 ;;
	--help) bench_usage "$0" 2 24 ;;
	*) args+=("$a") ;;
	esac
done
set -- ${args[@]+"${args[@]}"}
while getopts "n:c:s:b:h" o; do
	case $o in
	n) reps=$OPTARG ;; c) channels=$OPTARG ;; s) size=$OPTARG ;; b) build=$OPTARG ;;
	h) bench_usage "$0" 2 24 ;;
	*) bench_usage "$0" 2 24 2 ;;
	esac
done
[ -n "$size" ] || { [ "$pair" = 1 ] && size=256M || size=512M; }
build=$(cd "$build" && pwd)
bench=$build/bench/rmig-bench
[ -x "$bench" ] || { echo "no $bench: build first (meson setup build && ninja -C build)"; exit 2; }
vm=$here/../tests/rxe/rxe-vm.sh
export RXE_CACHE_DIR=${RXE_CACHE_DIR:-$build/rxe-cache}

if [ "$pair" = 0 ]; then
out=$build/rdma-vs-perftest
mkdir -p "$out"
"$vm" single --out "$out" --timeout $((120 + reps * 90)) --mem 3072 --sh "
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
else
out=$build/rdma-vs-perftest-pair
mkdir -p "$out"
rm -f "$out"/go.* "$out"/pt.*.log "$out"/rmig-*.json
key=$out/mig.key
(umask 077; head -c 32 /dev/urandom > "$key")
# Step k of the plan is "pt" or "rmig"; the destination starts its server,
# waits until it listens, then writes go.k; the source waits for go.k.
plan=
for i in $(seq "$reps"); do
	if ((i % 2)); then plan="$plan pt:$i rmig:$i"; else plan="$plan rmig:$i pt:$i"; fi
done
bw="ib_write_bw -R -d rxe0 -x 1 -s 524288 -q $channels -D 10 -F --report_gbits"
port=18610
dst="k=0
	for s in$plan; do
		k=\$((k + 1)) i=\${s#*:}
		if [ \${s%:*} = pt ]; then
			$bw > \"\$OUT/pt-srv.\$i.log\" 2>&1 & srv=\$! p=18515
		else
			$bench --transport rdma --listen \$RXE_ADDR:$port --channels $channels --size $size \
				--json --psk-file $key > \"\$OUT/rmig-dst.\$i.json\" 2> \"\$OUT/rmig-dst.\$i.err\" &
			srv=\$! p=$port
		fi
		# (until it listens or exits: a server that refused its flags never listens)
		until rxe_cm_listening \$p; do
			kill -0 \$srv 2> /dev/null || { echo \"step \$k (\$s): the server exited\"; break; }
			sleep 0.1
		done
		touch \"\$OUT/go.\$k\"
		wait \$srv || echo \"step \$k (\$s): destination exit \$?\"
	done"
src="k=0
	for s in$plan; do
		k=\$((k + 1)) i=\${s#*:}
		for t in \$(seq 1200); do [ -e \"\$OUT/go.\$k\" ] && break; sleep 0.1; done
		if [ \${s%:*} = pt ]; then
			rxe_retry 5 1 $bw \"\$RXE_PEER_ADDR\" > \"\$OUT/pt.\$i.log\" 2>&1 || cat \"\$OUT/pt.\$i.log\"
			echo \"ib_write_bw \$i: \$(awk '/#bytes/ { getline; print \$4; exit }' \"\$OUT/pt.\$i.log\") Gb/s\"
		else
			$bench --transport rdma --connect \$RXE_PEER_ADDR:$port --channels $channels --size $size \
				--json --psk-file $key > \"\$OUT/rmig-src.\$i.json\"
			echo \"rmig \$i: \$(cat \"\$OUT/rmig-src.\$i.json\")\"
		fi
	done"
echo "host load before: $(uptime)"
"$vm" pair --out "$out" --timeout $((150 + reps * 60)) --mem 1024 --dst "$dst" --src "$src"
echo "host load after: $(uptime)"
fi
python3 - "$out" "$reps" "$pair" <<'PY'
import json, statistics, sys
out, reps, pair = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
pt, whole, data, conn = [], [], [], []
for i in range(1, reps + 1):
    lines = open(f"{out}/pt.{i}.log").read().splitlines()
    for k, l in enumerate(lines):
        if l.strip().startswith("#bytes"):
            pt.append(float(lines[k + 1].split()[3]))
            break
    else:
        sys.exit(f"ib_write_bw run {i} printed no result")
    r = json.load(open(f"{out}/rmig-src.{i}.json" if pair else f"{out}/rmig.{i}.json"))
    # a two-host source cannot see the check: the destination reports it
    v = json.load(open(f"{out}/rmig-dst.{i}.json")) if pair else r
    assert v["verified"] is True and r["error"] is None, f"rmig run {i} not verified"
    whole.append(r["gbits_per_s"]); data.append(r["transfer_gbits_per_s"]); conn.append(r["connect_s"])
    print(f"rep {i}: ib_write_bw {pt[-1]:.3f} Gb/s, rmig {whole[-1]:.3f} Gb/s whole run "
          f"({r['seconds']:.3f} s, connect {conn[-1]:.3f} s), {data[-1]:.3f} Gb/s data phase")
m = statistics.median
print(f"ib_write_bw Gb/s: {pt}  median {m(pt):.3f}")
print(f"rmig whole run Gb/s: {whole}  median {m(whole):.3f}  ratio {m(whole)/m(pt):.2f}")
print(f"rmig data phase Gb/s: {data}  median {m(data):.3f}  ratio {m(data)/m(pt):.2f}")
print(f"rmig connect s: {conn}  median {m(conn):.3f}")
PY
