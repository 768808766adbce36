#!/usr/bin/env bash
# rmig over real RDMA verbs: soft-RoCE (rxe) inside QEMU guests.
#
#   rmig-rxe.sh SCENARIO RMIG_BENCH RMIG_PEER
#
# Scenarios (each boots its own guests; see README.md):
#   channels    two guests: 64 MiB with 1, 2 and 4 channels, verified byte for byte
#   rounds      two guests: 4 sync rounds with rewritten pages, zero pages and
#               device state from two threads, checked at every round; the
#               destination looks at RAM slowly, so a source that wrote the next
#               round before the destination released the last one would fail;
#               the last two rounds are idle (SYNC after SYNC on every channel)
#   idle        two guests: 869 rounds, of them 710 idle (SYNC only on both
#               channels) and 155 with device state only, between 4 busy ones;
#               every busy round and the last checked, device state in order
#   faults      two guests: memlock too low (no CAP_IPC_LOCK, 64 KiB) refused
#               naming RLIMIT_MEMLOCK; then the source's link goes down
#               mid-migration: both sides fail with a reason, source RAM
#               intact, the destination never reports success
#   dst-dies    two guests: the destination exits mid-transfer; the source must
#               fail with a clear error and keep its RAM intact
#   vs-perftest one guest: rmig-bench beside ib_write_bw, same message size
#               (512 KiB: a full 128-page batch) and QP count (2), and the ratio
#   live        one guest: live migration over rdma, 2 channels, RAM dirtied by a
#               workload, a device whose initial data the destination must
#               acknowledge before switchover; the final state verified
#   rails       two guests with two NICs each (rxe0, rxe1): 48 MiB over two rails
#               and 4 channels, verified; both devices' packet counters and rmig's
#               per-rail bytes non-zero on both rails; a rail address without a
#               device fails naming the rail
#   rails-numa  two guests with two NUMA nodes, NIC i on node i: each channel's
#               thread (its allowed CPUs, sampled from /proc) and stream buffers on
#               its rail's node, in rmig's figures too; the source's RAM on both
#               nodes (one batch each in turn): with steering most data pages leave
#               on their own node's rail, against the run without
#   hugepages   one guest: 256 MiB of RAM in 2 MiB hugepages (both sides) migrated
#               in 2 MiB pages over rdma, verified, the hugepages in use meanwhile
#   rail-down   two guests, two rails, 4 channels, 10 checked rounds: the source's
#               eth1 goes down mid-migration; rail 1's channels move to rail 0 and
#               every round still verifies
#   rails-bad   two guests with two NICs each: a rail address that matches no
#               device (destination, then source), the rails in another order,
#               one address against two rails: each refused naming the rail,
#               with rmig's byte counters 0 on both sides
#   rails-routed two guests, two rails; the source reaches the destination's
#               rail 1 from an address in another subnet (a routed rail): refused
#               naming rail 1 and both ends' subnets, nothing moved; then with
#               RMIG_RDMA_RAILS_ALLOW=routed it migrates and verifies
#   rail0-down  two guests, two rails: the source's eth0 (rail 0, which holds
#               the control connection) goes down mid-migration; the control
#               connection and rail 0's channels move to rail 1 and every
#               round still verifies
#   live-rail0-down  live-pair over two rails; rail 0's link goes down as
#               postcopy starts: the control connection and its RDMA READs
#               move to rail 1, every page arrives and verifies
#   live-pair   two guests, one rmig-bench --live per side: postcopy after round
#               1, the destination pulls the pages still missing by RDMA READ
#               across the link and checks its RAM against the source's final
#               state
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vm=$here/rxe-vm.sh
scenario=${1:?scenario}
bench=${2:?rmig-bench path}
peer=${3:?rmig-peer path}
cache=${RXE_CACHE_DIR:-$here/../../build/rxe-cache}
out=${RXE_OUT:-$cache/$scenario}

# Every rdma destination here listens on a guest's own address, not
# loopback, so it needs a pre-shared key (docs/security.md): each guest
# writes the same test key (not a secret) before it starts.
key=/tmp/rmig-rxe.key
mkkey="(umask 077; printf %s rmig-rxe-suite-test-key-0123456789abcdef > $key)"
psk="--psk-file $key"

rc=0
"$vm" check || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"

# A rail's link goes down mid-migration: two rails, 4 channels (2 per
# rail), 10 rounds the destination checks one by one, each held 1 s; once
# the source's rxe$1 carried 2000 packets (round 1 under way) its eth$1 goes
# down. Every conn on that rail (rail 0: the control connection too) moves
# to the other rail, resends what may not have landed, and every round must
# still verify, the last one after the link went down. $2: the port.
rail_down() {
	local n=$1 port=$2

	"$vm" pair --nics 2 --out "$out" --timeout 300 \
		--dst "$mkkey; $peer dst rdma:\$RXE_ADDR,\$RXE_ADDR2:$port --size 32 --rounds 10 --check-delay-ms 1000 --timeout 60000 $psk" \
		--src "$mkkey; ( c=/sys/class/infiniband/rxe$n/ports/1/hw_counters/sent_pkts; for i in \$(seq 600); do [ \$(cat \$c) -gt 2000 ] && break; sleep 0.2; done
			ip link set eth$n down; date +%s.%N > \"\$OUT/down-at\"; echo \"link down (eth$n) after \$(cat \$c) packets on rxe$n\" ) &
			$peer src rdma:\$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:$port --size 32 --rounds 10 --channels 4 --timeout 60000 $psk || exit 1
			end=\$(date +%s.%N); wait
			[ -s \"\$OUT/down-at\" ] || { echo 'rail-down: the link never went down'; exit 1; }
			awk -v d=\"\$(cat \"\$OUT/down-at\")\" -v e=\"\$end\" 'BEGIN { printf \"migration ended %.1f s after eth$n went down\\n\", e - d; exit !(e - d > 2) }'
			ip -br link show eth$n"
}

case $scenario in
channels)
	# The destination listens three times in a row; the source retries a
	# refused connect until the destination is back. rxe has type 2 memory
	# windows: both sides must say each channel's rkeys were windows bound
	# to its QP (docs/security.md).
	mwcheck='echo "$o" | grep -q "rdma rkeys: memory windows bound" || { echo "no memory windows used"; exit 1; }'
	"$vm" pair --out "$out" --timeout 240 \
		--dst "$mkkey; for c in 1 2 4; do o=\$($bench --transport rdma --listen \$RXE_ADDR:18600 --size 64M -q $psk) || { echo \"\$o\"; exit 1; }; echo \"\$o\"; $mwcheck; done" \
		--src "$mkkey; for c in 1 2 4; do o=\$($bench --transport rdma --connect \$RXE_PEER_ADDR:18600 --size 64M --channels \$c -q $psk) || { echo \"\$o\"; exit 1; }; echo \"\$o\"; $mwcheck; done"
	;;
rounds)
	"$vm" pair --out "$out" --timeout 240 \
		--dst "$mkkey; $peer dst rdma:\$RXE_ADDR:18601 $psk --size 32 --rounds 6 --quiet-rounds 2 --check-delay-ms 1500" \
		--src "$mkkey; $peer src rdma:\$RXE_PEER_ADDR:18601 $psk --size 32 --rounds 6 --quiet-rounds 2 --channels 2"
	;;
idle)
	# An idle guest: hundreds of rounds without RAM on any channel, and
	# rounds with device state only, between busy ones (the deadlock of
	# issue 9: RELEASEs of quiet rounds were left unread and the
	# destination ran out of credits after about 30 of them).
	pat=B,I400,B,D150,I60,B,D5,I250,B
	"$vm" pair --out "$out" --timeout 300 \
		--dst "$mkkey; $peer dst rdma:\$RXE_ADDR:18605 $psk --size 8 --dev-chunks 2 --pattern $pat" \
		--src "$mkkey; $peer src rdma:\$RXE_PEER_ADDR:18605 $psk --size 8 --dev-chunks 2 --pattern $pat --channels 2"
	;;
faults)
	# 1. memlock too low: without CAP_IPC_LOCK and with 64 KiB of locked
	#    memory, registering 64 MiB must fail naming RLIMIT_MEMLOCK.
	# 2. link down: the source's eth0 goes down mid-migration (the
	#    destination holds each round 1.5 s, so the link dies between and
	#    during rounds); both sides must fail with a reason, the source's
	#    RAM intact, the destination never reporting success.
	"$vm" pair --out "$out" --timeout 240 \
		--dst "$mkkey; $peer dst rdma:\$RXE_ADDR:18604 $psk --size 32 --rounds 12 --check-delay-ms 1500 --expect-fail --timeout 30000" \
		--src "$mkkey; m=\$( (ulimit -l 64; setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock $bench --transport rdma --listen \$RXE_ADDR:18610 --size 64M -q $psk) 2>&1 ); r=\$?
			echo \"memlock 64 KiB: exit \$r: \$m\"
			[ \$r -ne 0 ] && echo \"\$m\" | grep -q RLIMIT_MEMLOCK || { echo 'memlock: FAIL'; exit 1; }
			( sleep 6; ip link set eth0 down; echo 'link down (eth0)' ) &
			$peer src rdma:\$RXE_PEER_ADDR:18604 $psk --size 32 --rounds 12 --expect-fail --timeout 30000"
	;;
dst-dies)
	"$vm" pair --out "$out" --timeout 240 \
		--dst "$mkkey; $peer dst rdma:\$RXE_ADDR:18602 $psk --size 128 --rounds 2 --die-after-mib 8; r=\$?; echo \"destination exit \$r\"; [ \$r -eq 9 ]" \
		--src "$mkkey; timeout 120 $peer src rdma:\$RXE_PEER_ADDR:18602 $psk --size 128 --rounds 2 --expect-fail --timeout 20000"
	;;
vs-perftest)
	"$vm" single --out "$out" --timeout 300 --mem 2048 --sh "
		set -u
		pin_srv= pin_cli=
		[ \$(nproc) -ge 2 ] && pin_srv='taskset -c 1' pin_cli='taskset -c 0'
		bw='ib_write_bw -d rxe0 -x 1 -s 524288 -q 2 -D 8 -F --report_gbits'
		\$pin_srv \$bw > \"\$OUT/perftest-server.log\" 2>&1 &
		server=\$!
		rxe_wait_listen 18515 30 || { kill \$server; cat \"\$OUT/perftest-server.log\"; exit 1; }
		\$pin_cli \$bw \"\$RXE_ADDR\" > \"\$OUT/perftest.log\" 2>&1 || { cat \"\$OUT/perftest.log\"; exit 1; }
		wait \$server || true
		cat \"\$OUT/perftest.log\"
		pt=\$(awk '/#bytes/ { getline; print \$4; exit }' \"\$OUT/perftest.log\")
		$bench --transport rdma --host \$RXE_ADDR --channels 2 --size 256M --json --insecure > \"\$OUT/rmig.json\" || { cat \"\$OUT/rmig.json\"; exit 1; }
		cat \"\$OUT/rmig.json\"
		python3 - \"\$pt\" \"\$OUT/rmig.json\" <<'PY'
import json, sys
pt = float(sys.argv[1])
r = json.load(open(sys.argv[2]))
ratio = r['gbits_per_s'] / pt if pt > 0 else float('nan')
print(f'ib_write_bw 512 KiB x 2 QPs: {pt:.3f} Gb/s; rmig rdma 2 channels: {r[\"gbits_per_s\"]:.3f} Gb/s; ratio {ratio:.2f}; verified {r[\"verified\"]}')
sys.exit(0 if r['verified'] else 1)
PY
	"
	;;
live)
	# The ack comes at the destination's next barrier, so at least two
	# rounds are certain whatever the speed; the rest is the outcome.
	"$vm" single --out "$out" --timeout 240 --mem 2048 --sh "
		$bench --live --transport rdma --host \$RXE_ADDR --size 64M --channels 2 --insecure \
			--dirty-rate 40M --downtime-limit 20 --device 8M --switchover-ack --json \
			> \"\$OUT/live.json\" || { cat \"\$OUT/live.json\"; exit 1; }
		cat \"\$OUT/live.json\"
		python3 - \"\$OUT/live.json\" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])  # the summary: last of the JSON lines
ok = r['verified'] is True and r['error'] is None and r['acks'] == 1 and r['rounds'] >= 2
print(f\"live over rdma: rounds {r['rounds']}, downtime {r['downtime_ms']:.1f} ms, resent {r['pages_resent']} pages, acks {r['acks']}, forced {r['forced']}, verified {r['verified']}\")
sys.exit(0 if ok else 1)
PY
	"
	;;
live-pair)
	"$vm" pair --out "$out" --timeout 240 \
		--dst "$mkkey; $bench --transport rdma --listen \$RXE_ADDR:18603 --live --size 64M --postcopy --json $psk > \"\$OUT/live-dst.json\"; r=\$?; cat \"\$OUT/live-dst.json\"; [ \$r -eq 0 ] || exit \$r
		python3 - \"\$OUT/live-dst.json\" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])  # the summary: last of the JSON lines
ok = (r['verified'] is True and r['error'] is None and r['postcopy'] is True
      and r['postcopy_pull'] == 'read' and 0 < r['postcopy_pulled'] == r['postcopy_missing'])
print(f\"postcopy across two guests: {r['postcopy_pulled']} pages by {r['postcopy_pulls']} RDMA READs in {r['postcopy_ms']:.0f} ms, {r['postcopy_faults']} faults, verified {r['verified']}\")
sys.exit(0 if ok else 1)
PY" \
		--src "$mkkey; $bench --transport rdma --connect \$RXE_PEER_ADDR:18603 --live --size 64M --dirty-rate 40M --postcopy-after 1 --json $psk"
	;;
live-rail0-down)
	# live-pair over two rails, and rail 0's link (the destination's eth0)
	# goes down the moment the destination starts running: the control
	# connection, which carries the RDMA READs of postcopy, dies with pulls
	# in flight. It moves to rail 1, the pulls not waited for are read again
	# there (from the source's RAM as registered on rail 1), and every page
	# arrives and verifies.
	"$vm" pair --nics 2 --out "$out" --timeout 300 \
		--dst "$mkkey; ( while [ ! -e \"\$OUT/pc-started\" ]; do sleep 0.05; done; ip link set eth0 down; echo 'postcopy started: eth0 down' ) &
		$bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18604 --live --size 64M --postcopy --postcopy-mark \"\$OUT/pc-started\" --timeout 60000 --json $psk > \"\$OUT/live-dst.json\"; r=\$?; wait; cat \"\$OUT/live-dst.json\"; [ \$r -eq 0 ] || exit \$r
		python3 - \"\$OUT/live-dst.json\" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
ok = (r['verified'] is True and r['error'] is None and r['postcopy'] is True
      and r['postcopy_pull'] == 'read' and 0 < r['postcopy_pulled'] == r['postcopy_missing'])
print(f\"postcopy with rail 0 down at its start: {r['postcopy_pulled']} pages by {r['postcopy_pulls']} RDMA READs in {r['postcopy_ms']:.0f} ms, verified {r['verified']}\")
sys.exit(0 if ok else 1)
PY" \
		--src "$mkkey; $bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18604 --live --size 64M --dirty-rate 40M --postcopy-after 1 --timeout 60000 --json $psk"
	;;
rails)
	# Two rails (rxe0 on eth0, rxe1 on eth1, each NIC pair on its own
	# socket netdev): 48 MiB over 4 channels, 2 per rail, verified; both
	# devices' own packet counters and rmig's per-rail bytes must grow on
	# both rails. Before it, a rail address that matches no device fails
	# naming the rail, with nothing sent.
	hw='for d in rxe0 rxe1; do c=/sys/class/infiniband/$d/ports/1/hw_counters; echo "$d sent_pkts $(cat $c/sent_pkts) rcvd_pkts $(cat $c/rcvd_pkts)"; done'
	"$vm" pair --nics 2 --out "$out" --timeout 240 \
		--dst "$mkkey; $hw > \"\$OUT/hw-dst-before\"
			$bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18700 --size 48M --json $psk > \"\$OUT/rails-dst.json\"; r=\$?
			$hw > \"\$OUT/hw-dst-after\"; cat \"\$OUT/rails-dst.json\" \"\$OUT/hw-dst-before\" \"\$OUT/hw-dst-after\"; exit \$r" \
		--src "$mkkey; m=\$($bench --transport rdma --connect \$RXE_PEER_ADDR,10.99.7.1:18700 --size 48M --timeout 5000 -q $psk 2>&1); r=\$?
			echo \"no device: exit \$r: \$m\"
			[ \$r -ne 0 ] && echo \"\$m\" | grep -q 'rail 1 (10.99.7.1:18700)' || { echo 'no device: FAIL'; exit 1; }
			$hw > \"\$OUT/hw-src-before\"
			$bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18700 --size 48M --channels 4 --json $psk > \"\$OUT/rails-src.json\" || { cat \"\$OUT/rails-src.json\"; exit 1; }
			$hw > \"\$OUT/hw-src-after\"
			python3 \"\$RXE_LIB/rails-check.py\" \"\$OUT\""
	;;
rails-numa)
	# Two rails on two NUMA nodes (rxe-vm.sh --numa 2: rail i's NIC on node
	# i): every channel's thread, stream buffers and CQ on its rail's node.
	# A sampler records each thread's allowed and current CPU while rmig-bench
	# runs; numa-check.py holds them and rmig's figures to the topology.
	# Steering: the source's RAM is bound to nodes 0 and 1 in turn, one batch
	# each (--ram-nodes 0,1); a first run places channels without steering
	# (--numa place: the baseline split), the second steers (the default),
	# and then most pages must go out on the rail of their own node.
	"$vm" pair --nics 2 --numa 2 --out "$out" --timeout 300 \
		--dst "$mkkey; $bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18707 --size 32M --rounds 6 --json $psk > \"\$OUT/numa-dst-place.json\" || { cat \"\$OUT/numa-dst-place.json\"; exit 1; }
			$bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18707 --size 32M --rounds 6 --json $psk > \"\$OUT/numa-dst.json\" & b=\$!
			\"\$RXE_LIB/sample-threads.sh\" \$b > \"\$OUT/threads-dst\"; wait \$b; r=\$?; cat \"\$OUT/numa-dst.json\"; exit \$r" \
		--src "$mkkey; $bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18707 --size 32M --rounds 6 --channels 4 --ram-nodes 0,1 --numa place --json $psk > \"\$OUT/numa-src-place.json\" || { cat \"\$OUT/numa-src-place.json\"; exit 1; }
			$bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18707 --size 32M --rounds 6 --channels 4 --ram-nodes 0,1 --json $psk > \"\$OUT/numa-src.json\" & b=\$!
			\"\$RXE_LIB/sample-threads.sh\" \$b > \"\$OUT/threads-src\"; wait \$b || { cat \"\$OUT/numa-src.json\"; exit 1; }
			for i in 1 2 3 4 5 6 7 8 9 10; do [ -s \"\$OUT/numa-dst.json\" ] && break; sleep 1; done
			python3 \"\$RXE_LIB/numa-check.py\" \"\$OUT\""
	;;
hugepages)
	# RAM in 2 MiB hugepages (rmig-bench --hugepages: MAP_HUGETLB, 300
	# reserved), migrated in 2 MiB pages over rdma in one guest: registered,
	# verified, and the hugepages really in use while it ran.
	"$vm" single --out "$out" --timeout 300 --mem 2048 --sh "
		$mkkey
		echo 300 > /proc/sys/vm/nr_hugepages
		$bench --transport rdma --host \$RXE_ADDR --hugepages --size 256M --page-size 2M --channels 2 $psk --json > \"\$OUT/huge.json\" & b=\$!
		while kill -0 \$b 2> /dev/null; do awk '/HugePages_Free/ { print \$2 }' /proc/meminfo; sleep 0.2; done > \"\$OUT/free\"
		wait \$b; r=\$?; cat \"\$OUT/huge.json\"
		least=\$(sort -n \"\$OUT/free\" | head -n1)
		echo \"hugepages free: 300 reserved, at least \$least free while migrating\"
		[ \$r -eq 0 ] && grep -q '\"verified\":true' \"\$OUT/huge.json\" && grep -q '\"page_size\":2097152' \"\$OUT/huge.json\" && [ \"\$least\" -le 100 ]"
	;;
rail-down)
	# rail 1's link (eth1)
	rail_down 1 18706
	;;
rails-bad)
	# Bad rail lists, each refused naming the rail before any RAM moves
	# (rails-bad-check.py: exit status, the error, byte counters 0). The
	# destination first lists an address of no device of its own; then it
	# listens on both rails and meets, in turn: a source whose rail 1
	# matches no device (nothing reaches it), a source with the rails in
	# the other order (refused in the rail hello, it listens on), and a
	# one-address source (refused in the handshake, which ends it).
	chk="python3 \"\$RXE_LIB/rails-bad-check.py\""
	"$vm" pair --nics 2 --out "$out" --timeout 300 \
		--dst "$mkkey; $bench --transport rdma --listen \$RXE_ADDR,10.99.7.1:18708 --size 16M --timeout 5000 --json $psk > \"\$OUT/nodev-dst.json\"
			$chk \"\$OUT/nodev-dst.json\" \$? 'rail 1 (10.99.7.1:18708): no RDMA device' || exit 1
			$bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18708 --size 16M --timeout 120000 --json $psk > \"\$OUT/bad-dst.json\"
			$chk \"\$OUT/bad-dst.json\" \$? 'the source opened no rails'" \
		--src "$mkkey; sleep 4
			$bench --transport rdma --connect \$RXE_PEER_ADDR,10.99.7.1:18708 --size 16M --timeout 10000 --json $psk > \"\$OUT/nodev-src.json\"
			$chk \"\$OUT/nodev-src.json\" \$? 'rail 1 (10.99.7.1:18708)' || exit 1
			$bench --transport rdma --connect \$RXE_PEER_ADDR2,\$RXE_PEER_ADDR:18708 --size 16M --timeout 10000 --json $psk > \"\$OUT/order-src.json\"
			$chk \"\$OUT/order-src.json\" \$? \"the source's rail 1 arrived on this destination's rail 0\" || exit 1
			$bench --transport rdma --connect \$RXE_PEER_ADDR:18708 --size 16M --timeout 10000 --json $psk > \"\$OUT/count-src.json\"
			$chk \"\$OUT/count-src.json\" \$? 'the source opened no rails' handshake"
	;;
rails-routed)
	# The source's traffic for the destination's rail 1 (10.99.1.1) leaves
	# from 10.99.5.2/24 (a second address on its eth1, chosen by a host
	# route), which the destination reaches back through a route of its
	# own: RoCE v2 connects, but the rail's two ends are in different IP
	# subnets, which the rail hello refuses on both sides before any RAM
	# moves. A source that says the fabric is routed by design
	# (RMIG_RDMA_RAILS_ALLOW=routed) then migrates over the same rails.
	chk="python3 \"\$RXE_LIB/rails-bad-check.py\""
	why="rail 1: the source's end (rxe1 port 1, Ethernet, RoCE v2, 10.99.5.2/24 on eth1) and the destination's (rxe1 port 1, Ethernet, RoCE v2, 10.99.1.1/24 on eth1) are on different IP subnets"
	"$vm" pair --nics 2 --out "$out" --timeout 300 \
		--dst "$mkkey; ip route add 10.99.5.0/24 dev eth1
			$bench --transport rdma --listen \$RXE_ADDR,\$RXE_ADDR2:18710 --size 16M --timeout 120000 --json $psk > \"\$OUT/routed-dst.json\"; r=\$?
			cat \"\$OUT/routed-dst.json\"; [ \$r -eq 0 ] && grep -q '\"verified\":true' \"\$OUT/routed-dst.json\"" \
		--src "$mkkey; ip addr add 10.99.5.2/24 dev eth1 && ip route add \$RXE_PEER_ADDR2/32 dev eth1 src 10.99.5.2 || exit 1
			ip route get \$RXE_PEER_ADDR2; sleep 4
			$bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18710 --size 16M --timeout 10000 --json $psk > \"\$OUT/routed-src.json\"
			$chk \"\$OUT/routed-src.json\" \$? \"$why\" || exit 1
			RMIG_RDMA_RAILS_ALLOW=routed $bench --transport rdma --connect \$RXE_PEER_ADDR,\$RXE_PEER_ADDR2:18710 --size 16M --channels 4 --json $psk > \"\$OUT/allowed-src.json\"; r=\$?
			cat \"\$OUT/allowed-src.json\"; [ \$r -eq 0 ] && grep -q '\"error\":null' \"\$OUT/allowed-src.json\""
	;;
rail0-down)
	# rail 0's link (eth0), under the control connection
	rail_down 0 18709
	;;
*)
	echo "unknown scenario '$scenario'" >&2
	exit 2
	;;
esac
