#!/usr/bin/env python3
# numa-check.py OUT: the rxe-rails-numa verdict. Two guests with two NUMA nodes
# (vCPU i and half the memory on node i) and NIC i behind a bridge on node i
# (rxe-vm.sh --numa 2): rail i's device is on node i. Every channel thread must be
# bound to its rail's node (sampled from /proc/PID/task/*/status while it ran:
# rmig-tx<c> on the source, rmig-rx<c> on the destination, channel c on rail c % 2),
# and rmig's own figures must say so: numa_node i, every channel's thread and
# stream buffers on it (get_mempolicy on the buffers' pages).
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
print('numa: ' + ('ok' if ok else 'FAIL'))
sys.exit(0 if ok else 1)
