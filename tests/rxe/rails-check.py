#!/usr/bin/env python3
# rails-check.py OUT: the rxe-rails verdict, run in the source guest after both
# migrations. The destination verified its RAM, and on each of the two rails the
# rxe device's own packet counters grew (in the source guest: sent, in the
# destination guest: received) and rmig's per-rail figures show channels and bytes.
import json
import os
import sys
import time

out = sys.argv[1]


def counters(name):
    c = {}
    with open(os.path.join(out, name)) as f:
        for line in f:
            dev, _, sent, _, rcvd = line.split()
            c[dev] = (int(sent), int(rcvd))
    return c


ok = True
src = json.load(open(os.path.join(out, 'rails-src.json')))
# the destination writes its JSON once it has finished; wait for it
for _ in range(100):
    try:
        dst = json.load(open(os.path.join(out, 'rails-dst.json')))
        break
    except (OSError, ValueError):
        time.sleep(0.2)
else:
    print('rails: no destination result')
    sys.exit(1)
if dst['verified'] is not True or src['error'] is not None:
    print(f"rails: destination verified {dst['verified']}, source error {src['error']}")
    ok = False
before, after = counters('hw-src-before'), counters('hw-src-after')
for k, side in (('source', src), ('destination', dst)):
    rails = side['rails']
    if len(rails) != 2:
        print(f'rails: the {k} reports {len(rails)} rails, not 2')
        ok = False
        continue
    for i, r in enumerate(rails):
        print(f"{k} rail {i}: {r['device']} {r['address']} node {r['numa_node']}, "
              f"{r['channels']} channels, {r['bytes']} bytes")
        if r['device'] != f'rxe{i}' or r['channels'] != 2 or r['bytes'] <= 0:
            ok = False
for i, dev in enumerate(('rxe0', 'rxe1')):
    sent = after[dev][0] - before[dev][0]
    share = src['rails'][i]['bytes'] / max(1, sum(r['bytes'] for r in src['rails']))
    print(f'{dev}: {sent} packets sent by the source guest during the migration; '
          f'rmig bytes share {share:.2f}')
    if sent < 1000 or share < 0.25:
        ok = False
print(f"rails: {src['gbits_per_s']:.3f} Gb/s end to end, "
      f"{src['transfer_gbits_per_s']:.3f} Gb/s data phase, connect {src['connect_s']:.2f} s; "
      f"{'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
