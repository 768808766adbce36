#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# sweep-smoke.sh SRCROOT RMIG_BENCH: bench/sweep.sh -q (64 MiB, channels 1
# and 2 against iperf3, pages per packet 32 and 128, a live run) end to end:
# it exits 0, says why rdma was skipped (or measures it), and writes
# sweep.json (rows of both sweeps, iperf3 and rmig, every rmig run verified
# by its destination), live.jsonl (rounds 1..N and the summary) and three
# valid PNGs. Ports: IPERF_PORT 25201.., RMIG_PORT 24444 (not the defaults,
# so a benchmark running by hand does not collide).
set -uo pipefail
root=${1:?usage: sweep-smoke.sh SRCROOT RMIG_BENCH}
bench=${2:?usage: sweep-smoke.sh SRCROOT RMIG_BENCH}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

IPERF_PORT=25201 RMIG_PORT=24444 bash "$root/bench/sweep.sh" -q -b "$bench" -o "$tmp/out" \
	>"$tmp/log" 2>&1
rc=$?
cat "$tmp/log"
[ $rc -eq 0 ] || { echo "sweep-smoke: FAIL: bench/sweep.sh -q exited $rc"; exit 1; }
grep -qE '^  (skipped: no RDMA device|.* at [0-9])' "$tmp/log" ||
	{ echo "sweep-smoke: FAIL: no rdma line (measured or skipped with a reason)"; exit 1; }
python3 - "$tmp/out" <<'PY' || { echo "sweep-smoke: FAIL"; exit 1; }
import json, struct, sys, zlib
out = sys.argv[1]
doc = json.load(open(f"{out}/sweep.json"))
assert doc["kind"] == "rmig-sweep" and doc["size_bytes"] == 64 << 20, "header"
rows = doc["rows"]
def pick(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
for c in (1, 2):
    ip = pick(sweep="channels", channels=c, tool="iperf3")
    assert ip and ip[0]["gbytes_per_s"] > 0, f"iperf3 at {c} streams"
    dst = pick(sweep="channels", channels=c, tool="rmig", role="destination")
    assert dst and all(r["verified"] is True for r in dst), f"rmig at {c} channels: {dst}"
for p in (32, 128):
    src = pick(sweep="pages_per_packet", pages_per_packet=p, role="source")
    dst = pick(sweep="pages_per_packet", pages_per_packet=p, role="destination")
    assert src and src[0]["gbytes_per_s"] > 0, f"ppp {p} source"
    assert dst and dst[0]["verified"] is True, f"ppp {p} destination"
ev = [json.loads(l) for l in open(f"{out}/live.jsonl")]
rounds = [e["round"] for e in ev if e.get("event") == "round"]
assert rounds == list(range(1, len(rounds) + 1)) and rounds, rounds
assert ev[-1]["event"] == "completed" and ev[-1]["verified"] is True, ev[-1]
assert doc["live"] == ev, "sweep.json carries the live run"
for name in ("sweep-channels.png", "sweep-ppp.png", "live-rounds.png"):
    data = open(f"{out}/{name}", "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", name
    w, h = struct.unpack(">II", data[16:24])
    assert w > 0 and h > 0 and zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    assert len(data) < 100 * 1024, f"{name}: {len(data)} bytes"
print(f"sweep-smoke: PASS ({len(rows)} rows, {len(rounds)} live rounds)")
PY
