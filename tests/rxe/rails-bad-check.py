#!/usr/bin/env python3
# rails-bad-check.py JSON EXIT WANT [handshake]: one refused rmig-bench run of
# rxe-rails-bad. It must have failed (EXIT != 0) with WANT in its error, and
# moved nothing: rmig's byte counters 0 (data bytes, bytes on the wire, every
# rail's bytes). With "handshake" the refusal came in the core's handshake, on
# the control connection: a one-rail source counts those messages (AUTH, HELLO,
# WELCOME: a few hundred bytes) on its rail, never a page (at most 4 KiB).
import json
import sys

path, code, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
handshake = len(sys.argv) > 4 and sys.argv[4] == 'handshake'
try:
    r = json.load(open(path))
except (OSError, ValueError) as e:
    print(f'FAIL {path}: no JSON ({e})')
    sys.exit(1)
rails = sum(x.get('bytes', 0) for x in r.get('rails', []))
ok = code != 0 and want in r.get('error', '') and r['bytes'] == 0 and r['wire_bytes'] == 0 \
    and (rails == 0 or (handshake and rails <= 4096))
print(f"{'ok' if ok else 'FAIL'} {r['role']}: exit {code}, bytes {r['bytes']}, wire_bytes "
      f"{r['wire_bytes']}, rails' bytes {rails}, error: {r.get('error', '')}")
if not ok and want not in r.get('error', ''):
    print(f'  the error does not say: {want}')
sys.exit(0 if ok else 1)
