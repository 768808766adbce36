#!/bin/bash
# Environment smoke test for the rxe harness: perftest's ib_write_bw with
# 1 MiB messages (a) inside one guest, client and server on rxe0, and
# (b) between two guests with rdma_cm (-R). Prints the Gb/s measured.
# Exit 0 if both work, 77 if the prerequisites are missing.
#
# Results go to $RXE_SMOKE_OUT (default: <cache dir>/smoke), i.e.
# single/{log,rc} and pair/{dst,src}.{log,rc}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vm=$here/rxe-vm.sh
cache=${RXE_CACHE_DIR:-$here/../../build/rxe-cache}
out=${RXE_SMOKE_OUT:-$cache/smoke}
secs=${RXE_SMOKE_SECONDS:-5}

rc=0
"$vm" check || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
command -v ib_write_bw > /dev/null || {
	echo "SKIP: smoke: ib_write_bw missing (apt-get install perftest)" >&2
	exit 77
}

bw="ib_write_bw -d rxe0 -x 1 -s 1048576 -D $secs -F --report_gbits"

# From a perftest log, the result line after the "#bytes" header:
# iterations ($2) and average Gb/s ($4). perftest times with rdtsc; under
# TCG that can go wrong (it then prints 0), so the pass criterion is the
# exit codes plus a non-zero iteration count, and the Gb/s is reported.
iters() { awk '/#bytes/ { getline; print $2 + 0; exit }' "$1" 2> /dev/null; }
gbps() { awk '/#bytes/ { getline; print $4; exit }' "$1" 2> /dev/null; }
positive() { awk -v v="${1:-0}" 'BEGIN { exit !(v + 0 > 0) }'; }

passed=0 failed=0

echo "== smoke (a): one guest, ib_write_bw loopback on rxe0, 1 MiB x ${secs}s"
single_rc=0
"$vm" single --out "$out/single" --timeout 120 --sh "
	# One vCPU each: perftest's rdtsc timestamps must not cross vCPUs
	# (their TSCs are not synchronised under TCG).
	pin_srv= pin_cli=
	[ \$(nproc) -ge 2 ] && pin_srv='taskset -c 1' pin_cli='taskset -c 0'
	\$pin_srv $bw > \"\$OUT/server.log\" 2>&1 &
	server=\$!
	rxe_wait_listen 18515 30 || { kill \$server; cat \"\$OUT/server.log\"; exit 1; }
	\$pin_cli $bw \"\$RXE_ADDR\"
	client_rc=\$?
	wait \$server
	server_rc=\$?
	echo \"client rc \$client_rc, server rc \$server_rc\"
	[ \$client_rc -eq 0 ] && [ \$server_rc -eq 0 ]
" || single_rc=$?
single_bw=$(gbps "$out/single/log")
if [ "$single_rc" -eq 0 ] && positive "$(iters "$out/single/log")"; then
	echo "PASS: single guest ib_write_bw 1 MiB: ${single_bw} Gb/s ($(iters "$out/single/log") iterations)"
	passed=$((passed + 1))
else
	echo "FAIL: single guest ib_write_bw (exit $single_rc, bw '${single_bw}')"
	failed=$((failed + 1))
fi

echo "== smoke (b): two guests, ib_write_bw -R (rdma_cm), 1 MiB x ${secs}s"
pair_rc=0
"$vm" pair --out "$out/pair" --timeout 180 \
	--dst "$bw -R" \
	--src "$bw -R \"\$RXE_PEER_ADDR\"" || pair_rc=$?
pair_bw=$(gbps "$out/pair/src.log")
if [ "$pair_rc" -eq 0 ] && positive "$(iters "$out/pair/src.log")"; then
	echo "PASS: guest pair ib_write_bw -R 1 MiB: ${pair_bw} Gb/s ($(iters "$out/pair/src.log") iterations)"
	passed=$((passed + 1))
else
	echo "FAIL: guest pair ib_write_bw -R (exit $pair_rc, bw '${pair_bw}')"
	failed=$((failed + 1))
fi

echo "smoke: single ${single_bw:-?} Gb/s, pair ${pair_bw:-?} Gb/s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
