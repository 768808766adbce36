#!/usr/bin/env python3
# numa-check.py OUT: the rxe-rails-numa verdict. Two guests with two NUMA nodes
# (vCPU i and half the memory on node i) and NIC i behind a bridge on node i
# (rxe-vm.sh --numa 2): rail i's device is on node i. Every channel thread must be
# bound to its rail's node (sampled from /proc/PID/task/*/status while it ran:
# rmig-tx<c> on the source, rmig-rx<c> on the destination, channel c on rail c % 2),
# and rmig's own figures must say so: numa_node i, every channel's thread and
# stream buffers on it (get_mempolicy on the buffers' pages). Then the source's
# steering of pages to the rail of their node, from its figures (below).
import json
import os
import sys

out = sys.argv[1]
ok = True
for side, prefix in (('src', 'rmig-tx'), ('dst', 'rmig-rx')):
    r = json.load(open(os.path.join(out, f'numa-{side}.json')))
    if r.get('verified') is False or r['error'] is not None:
        print(f'{side}: verified {r.get("verified")}, error {r["error"]}')
        ok = False
    for i, rl in enumerate(r['rails']):
        print(f"{side} rail {i}: {rl['device']} node {rl['numa_node']}, {rl['channels']} "
              f"channels, {rl['threads_on_node']} threads and {rl['buffers_on_node']} "
              f"buffers on the node, {rl['bytes']} bytes")
        if (rl['numa_node'] != i or rl['channels'] != 2 or rl['threads_on_node'] != 2
                or rl['buffers_on_node'] != 2):
            ok = False
    seen = {}
    with open(os.path.join(out, f'threads-{side}')) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].startswith(prefix):
                seen.setdefault(parts[0], set()).add((parts[1], parts[2]))
    if len(seen) != 4:
        print(f'{side}: saw channel threads {sorted(seen)}, want 4')
        ok = False
    for name, samples in sorted(seen.items()):
        want = str(int(name[len(prefix):]) % 2)
        allowed = {a for a, _ in samples}
        cpus = {c for _, c in samples}
        print(f'{side} {name}: allowed CPUs {sorted(allowed)}, ran on {sorted(cpus)}; rail node {want}')
        # bound from its first operation on; the sampler may catch it just before
        if allowed - {want, '0-1'} or want not in allowed:
            ok = False

# Steering (the source): RAM on nodes 0 and 1 in turn (--ram-nodes 0,1). With it
# (numa-src.json) most data pages (80%) must leave on the rail of their own node,
# more than without it, and each rail's own pages must be at least two thirds of
# what it carried; without it (--numa place, numa-src-place.json) the split is whatever
# the idle channels made of it, printed beside it.
def share(r):
    loc, rem = r['numa_local_pages'], r['numa_remote_pages']
    return loc, rem, loc / (loc + rem) if loc + rem else 0.0


place = json.load(open(os.path.join(out, 'numa-src-place.json')))
steer = json.load(open(os.path.join(out, 'numa-src.json')))
for name, r in (('without steering (--numa place)', place), ('with steering', steer)):
    loc, rem, f = share(r)
    print(f'src {name}: {loc} data pages from the rail on their node, {rem} from the '
          f'other ({100 * f:.1f}% local), {r["seconds"]:.3f} s')
    for i, rl in enumerate(r['rails']):
        print(f'  rail {i} (node {rl["numa_node"]}): {rl["local_pages"]} local, '
              f'{rl["remote_pages"]} remote')
loc, rem, f = share(steer)
if loc + rem < 8192 or f < 0.8 or f <= share(place)[2]:
    print(f'steering: {100 * f:.1f}% of {loc + rem} pages local, want at least 80% of 8192 '
          f'or more, and more than without steering')
    ok = False
for i, rl in enumerate(steer['rails']):
    if rl['local_pages'] == 0 or rl['local_pages'] < 2 * rl['remote_pages']:
        print(f'steering: rail {i} carried {rl["local_pages"]} local and '
              f'{rl["remote_pages"]} remote pages')
        ok = False
if place['numa_local_pages'] + place['numa_remote_pages'] < 8192:
    print('without steering: no local/remote figures')
    ok = False
print('numa: ' + ('ok' if ok else 'FAIL'))
sys.exit(0 if ok else 1)
