#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# live-view-check.sh RMIG_BENCH: rmig-bench --live draws the migration as it
# happens (bench/live_view.c).
#  1. --json: every stdout line is a JSON object; "setup" first, then rounds
#     1, 2, ... N in order with transferred growing and the query-migrate
#     names present, a "switchover", and the summary last ("completed",
#     rounds == N, verified).
#  2. --json with postcopy: "postcopy-active", then "postcopy-done" with
#     pages-pulled == pages-missing == the summary's postcopy_pages.
#  3. text, stdout and stderr not terminals: a header and one line per round
#     before the table, no terminal control sequences anywhere.
#  4. text on a terminal (script(1) gives it one): the status line is drawn
#     in place on stderr ("\r\033[K round ...").
set -uo pipefail
bench=${1:?usage: live-view-check.sh RMIG_BENCH}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# 1. pre-copy: 1 to 4 rounds (limit 0: converged only when nothing is left,
#    which a workload slowed down by a sanitizer may allow, even after the
#    first round when the workload thread had not written yet (TSan, CI);
#    else the switchover is forced after --max-rounds)
"$bench" --live --json --size 32M --dirty-rate 300M --downtime-limit 0 --max-rounds 4 \
	>"$tmp/pre.jsonl" 2>"$tmp/pre.err" || fail "pre-copy run exited $?: $(cat "$tmp/pre.err")"
python3 - "$tmp/pre.jsonl" <<'PY' || fail "pre-copy JSON lines"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = [json.loads(l) for l in lines]            # every line parses
assert ev and all(isinstance(e, dict) for e in ev), "not all objects"
assert ev[0]["event"] == "setup" and ev[0]["total"] == 32 << 20, ev[0]
rounds = [e for e in ev if e["event"] == "round"]
n = len(rounds)
assert 1 <= n <= 4, f"{n} round events, expected 1 to 4"
last = rounds[-1]["decision"]
assert [r["decision"] for r in rounds[:-1]] == ["continue"] * (n - 1), "decisions"
# converged (nothing left) in any round, or forced at the last one allowed
assert (last == "switchover" and rounds[-1]["remaining"] == 0) or (last == "force" and n == 4), \
    f"round {n}: {last}, remaining {rounds[-1]['remaining']}"
assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1)), "rounds not 1..N"
for r in rounds:
    for k in ("transferred", "remaining", "total", "dirty-rate", "dirty-pages-rate", "mbps",
              "expected-downtime", "dirty-sync-count", "round-bytes", "time-ms", "decision"):
        assert k in r, f"round {r['round']} lacks {k}"
    assert r["status"] == "active"
t = [r["transferred"] for r in rounds]
assert t == sorted(t) and t[0] >= 32 << 20, f"transferred {t}"
# a dirty rate is measured once a round found pages dirtied during it
assert n == 1 or rounds[-1]["dirty-rate"] > 0, "no dirty rate measured"
assert [r["time-ms"] for r in rounds] == sorted(r["time-ms"] for r in rounds)
names = [e["event"] for e in ev]
sw = names.index("switchover")
assert sw > names.index("round") and sw == len(ev) - 2, names
s = ev[-1]
assert s["event"] == "completed" and s["status"] == "completed", s.get("event")
assert s["rounds"] == n and s["forced"] is (last == "force")
assert s["verified"] is True and s["error"] is None
print(f"pre-copy: {len(ev)} lines, {len(rounds)} rounds, last expected-downtime "
      f"{rounds[-1]['expected-downtime']} ms, dirty-rate {rounds[-1]['dirty-rate']} B/s")
PY

# 2. postcopy after one round
"$bench" --live --json --size 64M --dirty-rate 500M --postcopy-after 1 \
	>"$tmp/pc.jsonl" 2>"$tmp/pc.err" || fail "postcopy run exited $?: $(cat "$tmp/pc.err")"
python3 - "$tmp/pc.jsonl" <<'PY' || fail "postcopy JSON lines"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
names = [e["event"] for e in ev]
assert names[0] == "setup" and names[1] == "round" and ev[1]["round"] == 1, names
a, d = names.index("postcopy-active"), names.index("postcopy-done")
assert names.index("switchover") < a < d == len(ev) - 2, names
s, done = ev[-1], ev[d]
assert s["event"] == "completed" and s["verified"] is True, s
assert done["pages-pulled"] == done["pages-missing"] == s["postcopy_pages"] > 0, (done, s)
assert done["postcopy-requests"] > 0 and done["postcopy-ms"] >= 0
print(f"postcopy: {done['pages-pulled']} pages pulled by {done['postcopy-requests']} requests,"
      f" {names.count('postcopy')} progress events")
PY

# 3. text, not a terminal
"$bench" --live --size 32M --dirty-rate 300M --downtime-limit 0 --max-rounds 3 \
	>"$tmp/text.out" 2>"$tmp/text.err" || fail "text run exited $?"
n=$(awk '/^ round  time s/ { on = 1; next } /^ switchover at / { on = 0 }
	on && /^ [0-9]+ +[0-9.]+ / { n++ } END { print n + 0 }' "$tmp/text.out")
rounds=$(awk '/^ #rounds/ { getline; print $1 }' "$tmp/text.out")
grep -q '^ round  time s' "$tmp/text.out" || fail "text: no round header"
# a line per round the summary counts; a sanitizer-slowed workload can leave
# nothing dirty after the first round, so one round is a valid run here (the
# JSON run above checks rounds that follow each other)
[ "$n" -ge 1 ] && [ "$n" = "$rounds" ] || fail "text: $n round lines, table says ${rounds:-?} rounds"
grep -q '^ switchover at ' "$tmp/text.out" || fail "text: no switchover line"
if grep -q $'\033' "$tmp/text.out" "$tmp/text.err"; then
	fail "text: control sequences written although nothing is a terminal"
fi

# 4. on a terminal: the status line, drawn at once and every 200 ms
if script -qefc "$bench --live --size 32M --dirty-rate 300M --downtime-limit 0 --max-rounds 2 2>&1" \
	"$tmp/tty.out" >/dev/null 2>&1 </dev/null; then
	grep -q $'\r\033\\[K round [0-9]' "$tmp/tty.out" || fail "tty: no status line drawn in place"
	grep -q '^ round  time s' "$tmp/tty.out" || fail "tty: no round lines"
else
	fail "tty run under script(1) failed: $(tail -3 "$tmp/tty.out")"
fi

if [ $fails -eq 0 ]; then echo "live-view-check: PASS"; else echo "live-view-check: FAIL ($fails)"; fi
exit $fails
