#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plot-check.sh SRCROOT: the plotting scripts draw valid PNGs from the small
# fixtures in tests/plot/fixtures/ (bench/plot_sweep.py sweep and live,
# bench/plot.py), and bad input ends with one clear line on stderr and a
# non-zero exit, never a Python traceback: matplotlib missing (an import
# blocker on PYTHONPATH), files of the wrong shape, outputs that cannot be
# written. A PNG is valid when it has the PNG signature and an IHDR chunk
# first with a correct CRC and width and height above zero.
# Needs python3 with matplotlib (Debian: python3-matplotlib); PYTHON picks
# the interpreter (default: python3, or /usr/bin/python3 when only it has
# matplotlib).
set -uo pipefail
root=${1:?usage: plot-check.sh SRCROOT}
fix=$root/tests/plot/fixtures
sweep=$root/bench/plot_sweep.py plot=$root/bench/plot.py
py=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && ! python3 -c 'import matplotlib' 2>/dev/null &&
	/usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
	py=/usr/bin/python3
fi
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
	echo "plot-check: $py has no matplotlib (Debian: python3-matplotlib; scripts/install-deps.sh)"
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# png FILE: valid PNG, prints WxH
png() {
	"$py" - "$1" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
length, kind = struct.unpack(">I4s", data[8:16])
assert kind == b"IHDR" and length == 13, f"first chunk {kind!r} of {length} bytes, not IHDR"
body = data[16:29]
crc, = struct.unpack(">I", data[29:33])
assert zlib.crc32(b"IHDR" + body) == crc, "IHDR CRC mismatch"
w, h = struct.unpack(">II", body[:8])
assert w > 0 and h > 0, f"{w}x{h}"
assert data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND", "no IEND at the end"
print(f"{w}x{h}")
PY
}

# good FILE...: each is a valid PNG under 100 KB
good() {
	local f dim
	for f in "$@"; do
		n=$((n + 1))
		if ! dim=$(png "$f" 2>&1); then
			fail "$f: not a valid PNG: $dim"
		elif [ "$(stat -c %s "$f")" -ge 102400 ]; then
			fail "$f: $(stat -c %s "$f") bytes, not under 100 KB"
		else
			echo "ok: $(basename "$f") $dim, $(stat -c %s "$f") bytes"
		fi
	done
}

# bad NAME PATTERN CMD...: CMD exits non-zero, says PATTERN on stderr in one
# line, and prints no traceback
bad() {
	local name=$1 pat=$2 rc
	shift 2
	n=$((n + 1))
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -eq 0 ]; then
		fail "$name: exit 0"
	elif grep -q "Traceback" "$tmp/err" "$tmp/out"; then
		fail "$name: a traceback: $(head -c 400 "$tmp/err")"
	elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
		fail "$name: $(wc -l <"$tmp/err") lines on stderr, expected one: $(head -c 400 "$tmp/err")"
	elif ! grep -q -- "$pat" "$tmp/err"; then
		fail "$name: stderr does not say '$pat': $(cat "$tmp/err")"
	else
		echo "ok: $name (exit $rc): $(cat "$tmp/err")"
	fi
}

# 1. the pictures
"$py" "$sweep" sweep "$fix/sweep.json" -o "$tmp" >/dev/null || fail "plot_sweep.py sweep exited $?"
good "$tmp/sweep-channels.png" "$tmp/sweep-ppp.png"
"$py" "$sweep" live "$fix/live.jsonl" -o "$tmp/live.png" >/dev/null || fail "plot_sweep.py live exited $?"
good "$tmp/live.png"
"$py" - "$fix/sweep.json" >"$tmp/rows.jsonl" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    if r.get("sweep") == "channels":
        print(json.dumps(r))
PY
"$py" "$plot" "$tmp/rows.jsonl" -o "$tmp/plot.png" >/dev/null || fail "plot.py exited $?"
good "$tmp/plot.png"

# 2. no matplotlib: a package of that name that refuses to import
mkdir -p "$tmp/nompl/matplotlib"
echo 'raise ImportError("blocked by plot-check.sh")' >"$tmp/nompl/matplotlib/__init__.py"
bad "sweep without matplotlib" "matplotlib is not installed" \
	env PYTHONPATH="$tmp/nompl" "$py" "$sweep" sweep "$fix/sweep.json" -o "$tmp"
bad "live without matplotlib" "matplotlib is not installed" \
	env PYTHONPATH="$tmp/nompl" "$py" "$sweep" live "$fix/live.jsonl" -o "$tmp/x.png"
bad "plot.py without matplotlib" "matplotlib is not installed" \
	env PYTHONPATH="$tmp/nompl" "$py" "$plot" "$tmp/rows.jsonl" -o "$tmp/x.png"

# 3. JSON of the wrong shape
echo '[1, 2, 3]' >"$tmp/list.json"
echo '{"rows": [1, 2]}' >"$tmp/rows-not-objects.json"
echo '{"rows": [{"sweep": "channels", "channels": "two", "gbytes_per_s": "fast"}]}' >"$tmp/no-numbers.json"
printf '{"event": "setup"}\n{"event": "completed"}\n' >"$tmp/no-rounds.jsonl"
printf '{"event": "round", "round": 1}\n' >"$tmp/round-no-bytes.jsonl"
printf 'not json at all\n' >"$tmp/text.txt"
bad "sweep: a list" "not a sweep file" "$py" "$sweep" sweep "$tmp/list.json" -o "$tmp"
bad "sweep: rows not objects" "rows\[0\] is not an object" \
	"$py" "$sweep" sweep "$tmp/rows-not-objects.json" -o "$tmp"
bad "sweep: no numbers" "no rows with" "$py" "$sweep" sweep "$tmp/no-numbers.json" -o "$tmp"
bad "sweep: not JSON" "not JSON" "$py" "$sweep" sweep "$tmp/text.txt" -o "$tmp"
bad "sweep: missing file" "cannot read" "$py" "$sweep" sweep "$tmp/absent.json" -o "$tmp"
bad "live: the sweep file" "not JSON" "$py" "$sweep" live "$fix/sweep.json" -o "$tmp/x.png"
bad "live: a list" "not a JSON object" "$py" "$sweep" live "$tmp/list.json" -o "$tmp/x.png"
bad "live: no rounds" "no \"round\" events" "$py" "$sweep" live "$tmp/no-rounds.jsonl" -o "$tmp/x.png"
bad "live: round without bytes" "round-bytes" \
	"$py" "$sweep" live "$tmp/round-no-bytes.jsonl" -o "$tmp/x.png"
bad "plot.py: a list" "not a JSON object" "$py" "$plot" "$tmp/list.json" -o "$tmp/x.png"
bad "plot.py: no numbers" "no rows with numbers" "$py" "$plot" "$fix/live.jsonl" -o "$tmp/x.png"
bad "plot.py: not JSON" "not JSON" "$py" "$plot" "$tmp/text.txt" -o "$tmp/x.png"

# 4. outputs that cannot be written
bad "sweep: -o a file" "not a directory" "$py" "$sweep" sweep "$fix/sweep.json" -o "$fix/sweep.json"
bad "sweep: -o missing dir" "not a directory" "$py" "$sweep" sweep "$fix/sweep.json" -o "$tmp/no/such"
bad "live: -o in a missing dir" "cannot write" \
	"$py" "$sweep" live "$fix/live.jsonl" -o "$tmp/no/such/live.png"
bad "live: -o a directory" "cannot write" "$py" "$sweep" live "$fix/live.jsonl" -o "$tmp"
bad "plot.py: -o in a missing dir" "cannot write" "$py" "$plot" "$tmp/rows.jsonl" -o "$tmp/no/x.png"

if [ $fails -eq 0 ]; then echo "plot-check: PASS ($n checks)"; else echo "plot-check: FAIL ($fails of $n)"; fi
exit $fails
