#!/usr/bin/env bash
# Source and destination as two processes over loopback TCP: rounds with
# rewritten pages, zero pages and device state from two threads, checked by
# the destination at every round; long idle and device-state-only stretches;
# then the destination dying mid-transfer, and the source.
set -uo pipefail
peer=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Start a destination and wait until it says it listens (a probe connection
# would be taken for the source's control connection).
start_dst() {
	local log=$1; shift
	"$peer" dst "$@" >"$log" 2>&1 &
	dpid=$!
	for _ in $(seq 100); do grep -q listening "$log" && return 0; sleep 0.05; done
	echo "destination did not start:"; cat "$log"; return 1
}

port=$(free_port)
start_dst "$tmp/dst1" "tcp:127.0.0.1:$port" --size 48 --rounds 4 || fails=$((fails + 1))
"$peer" src "tcp:127.0.0.1:$port" --size 48 --rounds 4 --channels 3 || fails=$((fails + 1))
wait $dpid || fails=$((fails + 1))
cat "$tmp/dst1"

# Long stretches without RAM: hundreds of idle rounds and rounds with device
# state only, between busy ones (the same pattern runs over rdma in rxe-idle).
pattern=B,I300,B,D120,I40,B,D3,I200,B
port=$(free_port)
start_dst "$tmp/dst3" "tcp:127.0.0.1:$port" --size 8 --dev-chunks 2 --pattern $pattern ||
	fails=$((fails + 1))
"$peer" src "tcp:127.0.0.1:$port" --size 8 --dev-chunks 2 --pattern $pattern --channels 2 ||
	fails=$((fails + 1))
wait $dpid || fails=$((fails + 1))
cat "$tmp/dst3"

port=$(free_port)
start_dst "$tmp/dst2" "tcp:127.0.0.1:$port" --size 256 --rounds 2 --die-after-mib 32 ||
	fails=$((fails + 1))
timeout 60 "$peer" src "tcp:127.0.0.1:$port" --size 256 --rounds 2 --expect-fail --timeout 5000 ||
	fails=$((fails + 1))
wait $dpid
rc=$?
cat "$tmp/dst2"
[ $rc -eq 9 ] || { echo "destination did not die as scripted (exit $rc)"; fails=$((fails + 1)); }

# The source process killed (exit without a word, as SIGKILL would) mid-transfer:
# the destination must fail with a reason and never report success.
port=$(free_port)
# (30 s: the timeout is also the accept's, and a source under TSan on a loaded
# host took over 5 s to connect; the killed source's sockets close at once anyway)
start_dst "$tmp/dst4" "tcp:127.0.0.1:$port" --size 256 --rounds 2 --expect-fail --timeout 30000 ||
	fails=$((fails + 1))
timeout 60 "$peer" src "tcp:127.0.0.1:$port" --size 256 --rounds 2 --die-after-mib 32
rc=$?
[ $rc -eq 9 ] || { echo "source did not die as scripted (exit $rc)"; fails=$((fails + 1)); }
wait $dpid || fails=$((fails + 1))
cat "$tmp/dst4"
grep -q "PASS failed as expected" "$tmp/dst4" || fails=$((fails + 1))

if [ $fails -eq 0 ]; then echo "peer-tcp: PASS"; else echo "peer-tcp: FAIL ($fails)"; fi
exit $fails
