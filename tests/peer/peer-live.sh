#!/usr/bin/env bash
# rmig-bench --live as two processes over loopback TCP: a destination
# (--listen on port 0; it prints the port it bound) and a source (--connect)
# whose workload keeps dirtying pages. Pre-copy with a synthetic device and
# its switchover ack; postcopy after one round; a destination of another
# size, which both sides must refuse with the reason; and a source wanting
# postcopy from a destination that did not enable it.
set -uo pipefail
bench=$1
tmp=$(mktemp -d)
dpid=
trap '[ -n "$dpid" ] && kill "$dpid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# start_dst CASE ARGS...: a destination in the background; sets dpid and port.
start_dst() {
	local c=$1
	shift
	timeout 20 "$bench" --listen 127.0.0.1:0 --live --json --timeout 10000 "$@" \
		>"$tmp/$c.dst" 2>"$tmp/$c.dst.err" &
	dpid=$!
	for _ in $(seq 200); do
		port=$(sed -n 's/.*listening on .*(port \([0-9]*\)).*/\1/p' "$tmp/$c.dst.err")
		[ -n "$port" ] && return 0
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.05
	done
	echo "destination ($c) did not start:"
	cat "$tmp/$c.dst.err"
	return 1
}

# run_case CASE DST-ARGS -- SRC-ARGS: both sides; sets src_rc and dst_rc.
run_case() {
	local c=$1 dargs=() sargs=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		dargs+=("$1")
		shift
	done
	shift
	sargs=("$@")
	src_rc=99 dst_rc=99
	if ! start_dst "$c" "${dargs[@]}"; then
		fail "$c: destination did not start"
		return
	fi
	timeout 20 "$bench" --connect "127.0.0.1:$port" --live --json --timeout 10000 "${sargs[@]}" \
		>"$tmp/$c.src" 2>"$tmp/$c.src.err"
	src_rc=$?
	wait "$dpid"
	dst_rc=$?
	dpid=
	for f in src dst; do
		echo "--- $c $f: $(cat "$tmp/$c.$f")"
		[ -s "$tmp/$c.$f.err" ] && sed "s/^/    /" "$tmp/$c.$f.err"
	done
}

# expect CASE SIDE EXPR: EXPR (python, the side's JSON object as s, the other's as o) holds.
expect() {
	local other=src
	[ "$2" = src ] && other=dst
	python3 - "$tmp/$1.$2" "$tmp/$1.$other" "$3" <<'EOF' || fail "$1 $2: $3"
import json, sys
def load(path):
    # --live --json: one object per event (rounds...), the summary last
    try:
        return json.loads(open(path).read().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
s, o = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if eval(sys.argv[3]) else 1)
EOF
}

# 1. pre-copy: every page, the device with its ack, the final RAM verified
run_case pre --size 64M --device 4M --switchover-ack -- \
	--size 64M --dirty-rate 50M --device 4M --switchover-ack
[ $src_rc -eq 0 ] || fail "pre: source exited $src_rc"
[ $dst_rc -eq 0 ] || fail "pre: destination exited $dst_rc"
expect pre dst 's["verified"] is True and s["error"] is None'
expect pre dst 's["pages"] == o["pages_sent"] >= 16384'
expect pre dst 's["device_acked"] is True and s["device_bytes"] >= 4 << 20'
# one host, one clock: the destination reports its own downtime from the source's stop
expect pre dst 's["downtime_ms"] > 0 and s["postcopy"] is False'
expect pre src 's["role"] == "source" and s["error"] is None and s["verified"] is None'
expect pre src 's["rounds"] >= 1 and s["downtime_ms"] > 0 and s["total_s"] > 0'
expect pre src 's["acks"] == 1 and s["postcopy_pages"] == 0 and s["manifest_ms"] >= 0'
expect pre src 'len(s["round_bytes"]) == min(s["rounds"], 64) and s["round_bytes"][0] >= 64 << 20'

# 2. postcopy after round 1: what was dirtied meanwhile is pulled, then verified
run_case pc --size 64M --postcopy -- --size 64M --dirty-rate 50M --postcopy-after 1
[ $src_rc -eq 0 ] || fail "pc: source exited $src_rc"
[ $dst_rc -eq 0 ] || fail "pc: destination exited $dst_rc"
expect pc dst 's["verified"] is True and s["error"] is None and s["postcopy"] is True'
expect pc dst '0 < s["postcopy_pulled"] == s["postcopy_missing"] == o["postcopy_pages"]'
expect pc dst 's["postcopy_ms"] >= 0 and s["downtime_ms"] > 0'
expect pc src 's["error"] is None and s["rounds"] == 1'

# 3. sizes differ: the handshake refuses, both sides say why and fail
run_case size --size 64M -- --size 32M --dirty-rate 50M
[ $src_rc -eq 1 ] || fail "size: source exited $src_rc, expected 1"
[ $dst_rc -eq 1 ] || fail "size: destination exited $dst_rc, expected 1"
expect size dst 's["verified"] is False and "block table mismatch" in s["error"]'
expect size dst '"same --size" in s["error"]'
expect size src '"block table mismatch" in s["error"] and "same --size" in s["error"]'
for side in src dst; do
	n=$(grep -c "^rmig-bench: live .*block table mismatch" "$tmp/size.$side.err")
	[ "$n" = 1 ] || fail "size: $side printed $n error lines naming the mismatch, expected 1"
done

# 4. postcopy the destination did not agree to: refused before anything is sent,
#    not after the source waited out --timeout (10 s here) for pulls that never come
t0=$(date +%s%N)
run_case nopc --size 64M -- --size 64M --dirty-rate 50M --postcopy-after 1
ms=$((($(date +%s%N) - t0) / 1000000))
[ $src_rc -eq 1 ] || fail "nopc: source exited $src_rc, expected 1"
[ $dst_rc -ne 0 ] || fail "nopc: destination exited 0"
expect nopc src '"does not accept postcopy" in s["error"]'
[ $ms -lt 5000 ] || fail "nopc: took $ms ms to fail"

if [ $fails -eq 0 ]; then echo "peer-live: PASS"; else echo "peer-live: FAIL ($fails)"; fi
exit $fails
