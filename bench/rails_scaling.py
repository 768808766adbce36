#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# rails_scaling.py OUTDIR [--channels N] [--cases LIST] [--min-ratio X] RATE...:
# the report of bench/rails-scaling.sh
# from the files its guests left in OUTDIR/rate-RATE/REP/ (perftest logs,
# rmig-bench JSON, counter snapshots before and after every case, the source's
# NIC byte counts sampled every 0.25 s); writes OUTDIR/summary.json.
import argparse
import json
import os
import statistics
import sys

CASES = ('bw0', 'bw1', 'bw01', 'rmig1', 'rmig2')


def snap(path):
    with open(path) as f:
        return {k: float(v) for k, v in (line.split() for line in f if len(line.split()) == 2)}


def delta(tag, side):
    a, b = snap(f'{tag}.{side}.before'), snap(f'{tag}.{side}.after')
    return {k: b[k] - a.get(k, 0) for k in b}


def perftest(path):
    """BW average in Gb/s from an ib_write_bw client log (--report_gbits)."""
    lines = open(path).read().splitlines()
    for k, line in enumerate(lines):
        if line.strip().startswith('#bytes') and k + 1 < len(lines):
            return float(lines[k + 1].split()[3])
    raise ValueError(f'{path}: no result line')


def wire(path):
    """Each NIC's rate (Gb/s, headers included) while it carried the bulk of
    the case: from the sample where 5% of its bytes had gone to the one where
    95% had. Then the median time between samples: far above 0.25 s, the
    guest's vCPU was starved by the host (its waits overran)."""
    rows = [tuple(map(float, l.split())) for l in open(path) if len(l.split()) == 3]
    res = []
    for k in (1, 2):
        t = [r[0] for r in rows]
        b = [r[k] - rows[0][k] for r in rows]
        total = b[-1] if b else 0
        lo = next((i for i, x in enumerate(b) if x >= 0.05 * total), None)
        hi = max((i for i, x in enumerate(b) if x <= 0.95 * total), default=None)
        ok = total > 1e6 and lo is not None and hi is not None and hi > lo
        res.append((b[hi] - b[lo]) * 8 / (t[hi] - t[lo]) / 1e9 if ok else 0.0)
    ticks = [y[0] - x[0] for x, y in zip(rows, rows[1:])]
    return res, statistics.median(ticks) if ticks else None


def busy(c):
    return (c['cpu.total'] - c['cpu.idle']) / c['cpu.total'] if c.get('cpu.total') else 0


def counters(src, dst):
    """What shows loss or waiting: retries, sequence errors, drops."""
    g = lambda c, k: int(sum(v for n, v in c.items() if n.endswith(k)))
    return {
        'retries': g(src, 'completer_retry_err') + g(dst, 'completer_retry_err'),
        'retry_exceeded': g(src, 'retry_exceeded_err') + g(dst, 'retry_exceeded_err'),
        'seq_err': g(src, 'rcvd_seq_err') + g(dst, 'out_of_seq_request'),
        'dup': g(dst, 'duplicate_request') + g(src, 'duplicate_request'),
        'send_err': g(src, 'send_err') + g(dst, 'send_err'),
        'drops': g(src, 'qdisc_dropped') + g(dst, 'qdisc_dropped'),
        'src_busy': round(busy(src), 3),
        'dst_busy': round(busy(dst), 3),
    }


def one_rate(d, rate, cases):
    runs = []
    rep = 1
    while os.path.isdir(f'{d}/{rep}'):
        if not os.path.exists(f'{d}/{rep}/src.rc'):  # not run (yet)
            rep += 1
            continue
        for c in cases:
            tag = f'{d}/{rep}/{rep}.{c}'
            row = {'rate_mbit': rate, 'rep': rep, 'case': c}
            try:
                row.update(counters(delta(tag, 'src'), delta(tag, 'dst')))
                row['wire_gbits'], row['tick_s'] = wire(f'{tag}.src.wire')
                if c.startswith('bw'):
                    devs = {'bw0': ('rxe0',), 'bw1': ('rxe1',), 'bw01': ('rxe0', 'rxe1')}[c]
                    row['rails_gbits'] = [perftest(f'{tag}.src.{x}.log') for x in devs]
                    row['gbits'] = sum(row['rails_gbits'])
                else:
                    s = json.load(open(f'{tag}.src.json'))
                    t = json.load(open(f'{tag}.dst.json'))
                    data_s = s['seconds'] - s['connect_s']
                    row.update(gbits=s['transfer_gbits_per_s'], seconds=s['seconds'],
                               connect_s=s['connect_s'], verified=t['verified'],
                               error=s['error'] or t['error'], mw_channels=s['mw_channels'],
                               rails_bytes=[r['bytes'] for r in s['rails']],
                               rails_channels=[r['channels'] for r in s['rails']],
                               rails_gbits=[r['bytes'] * 8 / data_s / 1e9 for r in s['rails']])
            except (OSError, ValueError, KeyError, ZeroDivisionError) as e:
                row['error'] = f'{type(e).__name__}: {e}'
            runs.append(row)
        rep += 1
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, p=3):
    return '-' if x is None else f'{x:.{p}f}'


def main():
    ap = argparse.ArgumentParser(description='report of bench/rails-scaling.sh')
    ap.add_argument('out')
    ap.add_argument('rates', nargs='+', type=int)
    ap.add_argument('--channels', type=int, default=4)
    ap.add_argument('--cases', default=','.join(CASES))
    ap.add_argument('--min-ratio', type=float)
    a = ap.parse_args()
    out, chans, rates, cases = a.out, a.channels, a.rates, a.cases.split(',')
    summary = {'channels': chans, 'perftest_qps_per_rail': max(1, chans // 2), 'rates': []}
    bad = False
    for rate in rates:
        d = f'{out}/rate-{rate}'
        runs = one_rate(d, rate, cases)
        load = open(f'{d}/load').read().strip() if os.path.exists(f'{d}/load') else ''
        print(f'\n== {f"{rate} Mbit/s per NIC" if rate else "unthrottled"}, rmig {chans} channels, '
              f'ib_write_bw {max(1, chans // 2)} QPs per rail; Gb/s')
        print('\n'.join('  host load ' + l for l in load.splitlines()))
        print(f'  {"rep":>3} {"case":<6} {"total":>7} {"rail0":>7} {"rail1":>7} {"share0":>6} '
              f'{"wire0":>7} {"wire1":>7} {"tick":>5} {"srccpu":>6} {"dstcpu":>6} {"retry":>5} {"seq":>4} {"dup":>4} {"drop":>4}')
        by = {c: {} for c in CASES}
        for r in runs:
            if r.get('error') or r.get('verified') is False:
                print(f'  {r["rep"]:>3} {r["case"]:<6} FAILED: {r.get("error")}')
                bad = True
                continue
            by[r['case']][r['rep']] = r
            rg = r['rails_gbits']
            rb = r.get('rails_bytes') or []
            share = rb[0] / sum(rb) if len(rb) > 1 else None
            r0 = rg[0] if r['case'] != 'bw1' else None
            r1 = rg[-1] if r['case'] in ('bw1', 'bw01', 'rmig2') else None
            w = r['wire_gbits']
            print(f'  {r["rep"]:>3} {r["case"]:<6} {r["gbits"]:7.4f} {fmt(r0, 4):>7} {fmt(r1, 4):>7} '
                  f'{fmt(share, 2):>6} {w[0]:7.4f} {w[1]:7.4f} {fmt(r["tick_s"], 2):>5} {r["src_busy"]:6.2f} {r["dst_busy"]:6.2f} '
                  f'{r["retries"]:5d} {r["seq_err"]:4d} {r["dup"]:4d} {r["drops"]:4d}')
        reps = sorted(set(by['rmig1']) & set(by['rmig2']))
        ratio = [by['rmig2'][k]['gbits'] / by['rmig1'][k]['gbits'] for k in reps]
        per_rail = [[by['rmig2'][k]['rails_gbits'][i] / by[f'bw{i}'][k]['gbits']
                     for k in reps if k in by[f'bw{i}']] for i in (0, 1)]
        wire_rail = [[by['rmig2'][k]['wire_gbits'][i] / by[f'bw{i}'][k]['wire_gbits'][i]
                      for k in reps if k in by[f'bw{i}'] and by[f'bw{i}'][k]['wire_gbits'][i]]
                     for i in (0, 1)]
        m = {c: med([r['gbits'] for r in by[c].values()]) for c in CASES}
        mr = [med([r['rails_gbits'][i] for r in by['rmig2'].values()]) for i in (0, 1)]
        res = {
            'rate_mbit': rate, 'load': load, 'runs': runs,
            'median_gbits': m, 'median_rmig2_rails_gbits': mr,
            'ratio_2_over_1': ratio, 'median_ratio_2_over_1': med(ratio),
            'ratio_of_medians_2_over_1': m['rmig2'] / m['rmig1'] if m['rmig1'] and m['rmig2'] else None,
            'rail_over_bw': per_rail, 'median_rail_over_bw': [med(x) for x in per_rail],
            'wire_rail_over_bw': wire_rail, 'median_wire_rail_over_bw': [med(x) for x in wire_rail],
            'bw01_over_bw0': m['bw01'] / m['bw0'] if m['bw0'] and m['bw01'] else None,
        }
        ok = (res['median_ratio_2_over_1'] or 0) >= 1.6 and all((x or 0) >= 0.9 for x in res['median_rail_over_bw'])
        res['target_met'] = ok
        summary['rates'].append(res)
        lst = lambda xs: ' '.join(fmt(x, 2) for x in xs)
        have_bw = any(by[c] for c in ('bw0', 'bw1', 'bw01'))
        if have_bw:
            print(f'  medians: ib_write_bw rail 0 {fmt(m["bw0"], 4)}, rail 1 {fmt(m["bw1"], 4)}, '
                  f'both at once {fmt(m["bw01"], 4)} ({fmt(res["bw01_over_bw0"], 2)}x rail 0)')
        print(f'  medians: rmig 1 rail {fmt(m["rmig1"], 4)}, 2 rails {fmt(m["rmig2"], 4)} '
              f'(rail 0 {fmt(mr[0], 4)}, rail 1 {fmt(mr[1], 4)})')
        print(f'  rmig 2 rails / 1 rail: {lst(ratio)}, median {fmt(res["median_ratio_2_over_1"], 2)} '
              f'(ratio of medians {fmt(res["ratio_of_medians_2_over_1"], 2)})')
        if have_bw:
            for i in (0, 1):
                print(f'  rmig rail {i} / ib_write_bw on rail {i}: {lst(per_rail[i])}, median '
                      f'{fmt(res["median_rail_over_bw"][i], 2)}; on the wire {lst(wire_rail[i])}, '
                      f'median {fmt(res["median_wire_rail_over_bw"][i], 2)}')
            print(f'  target (2 rails >= 1.6x one, each rail >= 0.9x ib_write_bw on it): '
                  f'{"met" if ok else "not met"}')
        if a.min_ratio is not None and (res['median_ratio_2_over_1'] or 0) < a.min_ratio:
            print(f'  FAIL: the median of 2 rails / 1 rail is {fmt(res["median_ratio_2_over_1"], 2)}, '
                  f'below {a.min_ratio}')
            bad = True
    with open(f'{out}/summary.json', 'w') as f:
        json.dump(summary, f, indent=1)
    print(f'\nevery figure: {out}/summary.json')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
