#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draw bench/sweep.sh results and rmig-bench --live --json rounds as PNGs.

  plot_sweep.py sweep SWEEP.json [-o DIR]     DIR/sweep-channels.png, DIR/sweep-ppp.png
  plot_sweep.py live LIVE.jsonl [-o OUT.png]  bytes, dirty rate and expected
                                              downtime of every round

SWEEP.json is what bench/sweep.sh writes: an object whose "rows" list holds
one object per measurement ("sweep": "channels" or "pages_per_packet",
"tool": "rmig", "iperf3" or "qemu", "transport", "channels",
"pages_per_packet", "gbytes_per_s"); each point is the median of its rows.
LIVE.jsonl is the JSON lines of rmig-bench --live --json: the "round"
events ("round", "round-bytes", "dirty-rate", "expected-downtime") and the
summary last ("downtime_limit_ms", "downtime_ms").

Bad input (a file that is not JSON or not of this shape, no matplotlib, an
output that cannot be written) ends with one line on stderr and exit status 1.
"""
import argparse
import json
import os
import statistics
import sys
from collections import defaultdict

PROG = "plot_sweep.py"


class PlotError(Exception):
    """A problem the user can fix: printed as one line, exit status 1."""


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise PlotError(f"cannot read {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not a text file")


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("matplotlib is not installed (Debian: apt install python3-matplotlib;"
                        " scripts/install-deps.sh installs it)")
    return plt


def save(fig, path):
    if os.path.isdir(path):
        raise PlotError(f"cannot write {path}: it is a directory")
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as e:
        raise PlotError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def number(row, key):
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


# ---- sweep ----------------------------------------------------------------

def load_sweep(path):
    try:
        doc = json.loads(read_text(path))
    except ValueError as e:
        raise PlotError(f"{path}: not JSON ({e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise PlotError(f"{path}: not a sweep file: expected an object with a \"rows\" list"
                        " (bench/sweep.sh writes one)")
    rows = doc["rows"]
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise PlotError(f"{path}: rows[{i}] is not an object")
    return doc, rows


def series_name(r):
    tool = r.get("tool", "rmig")
    if tool == "iperf3":
        return "iperf3 (a process per stream, summed)"
    if tool == "qemu":
        return "stock QEMU 10 multifd (paused guest)"
    return f"rmig {r.get('transport', 'tcp')}"


def medians(rows, sweep, xkey, ykey):
    pts = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("sweep") != sweep or r.get("error") or r.get("role") == "destination":
            continue
        x, y = number(r, xkey), number(r, ykey)
        if x is None or y is None:
            continue
        pts[series_name(r)][x].append(y)
    return {name: {x: statistics.median(ys) for x, ys in xs.items()} for name, xs in pts.items()}


def draw_sweep(plt, doc, rows, outdir, path):
    made = 0
    size = doc.get("size_bytes")
    what = ""
    if isinstance(size, (int, float)) and size:
        what = f"{size / 2**30:g} GiB, " if size >= 2**30 else f"{size / 2**20:g} MiB, "
    host = doc.get("host") if isinstance(doc.get("host"), dict) else {}
    load = host.get("loadavg_start")
    if isinstance(load, str) and load.split():
        what = f"load {load.split()[0]}, {what}"
    for sweep, xkey, fname, xlabel, title in (
            ("channels", "channels", "sweep-channels.png", "channels (iperf3: streams)",
             f"loopback, {what}GB/s by channels"),
            ("pages_per_packet", "pages_per_packet", "sweep-ppp.png", "pages per packet",
             f"loopback, {what}GB/s by pages per packet")):
        gbs = medians(rows, sweep, xkey, "gbytes_per_s")
        if not gbs:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for name in sorted(gbs):
            xs = sorted(gbs[name])
            ax.plot(xs, [gbs[name][x] for x in xs], marker="o", label=name)
        if sweep == "pages_per_packet":
            ax.set_xscale("log", base=2)
            cpu = medians(rows, sweep, xkey, "cpu_s_per_gb")
            if cpu:
                ax2 = ax.twinx()
                for name in sorted(cpu):
                    xs = sorted(cpu[name])
                    ax2.plot(xs, [cpu[name][x] for x in xs], ls="--", color="gray",
                             label=f"{name} CPU s/GB")
                ax2.set_ylabel("CPU s/GB (dashed)")
                ax2.set_ylim(bottom=0)
        ax.set_xticks(sorted({x for s in gbs.values() for x in s}))
        ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("GB/s (median)")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        save(fig, os.path.join(outdir, fname))
        plt.close(fig)
        made += 1
    if not made:
        raise PlotError(f"{path}: no rows with a \"sweep\" of channels or pages_per_packet and"
                        " numeric \"gbytes_per_s\"")


# ---- live -----------------------------------------------------------------

def load_live(path):
    events = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except ValueError as e:
            raise PlotError(f"{path}:{n}: not JSON ({e})")
        if not isinstance(e, dict):
            raise PlotError(f"{path}:{n}: not a JSON object")
        events.append(e)
    rounds = [e for e in events if e.get("event") == "round"]
    for r in rounds:
        if number(r, "round") is None or number(r, "round-bytes") is None:
            raise PlotError(f"{path}: a round event without numeric \"round\" and"
                            " \"round-bytes\"")
    if not rounds:
        raise PlotError(f"{path}: no \"round\" events: expected the output of"
                        " rmig-bench --live --json")
    summary = events[-1] if events[-1].get("event") in ("completed", "failed") else {}
    return rounds, summary


def draw_live(plt, rounds, summary, out):
    n = [int(r["round"]) for r in rounds]
    mb = [r["round-bytes"] / 1e6 for r in rounds]
    # the dirty rate is measured between two collections: none before round 2
    dirty = [(x, number(r, "dirty-rate") / 1e6) for x, r in zip(n, rounds)
             if number(r, "dirty-rate")]
    exp = [number(r, "expected-downtime") for r in rounds]
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 5.6), sharex=True)
    axes[0].bar(n, mb, color="tab:blue")
    axes[0].set_ylabel("MB sent in the round")
    axes[1].plot([d[0] for d in dirty], [d[1] for d in dirty], marker="o", color="tab:orange")
    axes[1].set_ylabel("dirty MB/s")
    axes[1].set_ylim(0, max([d[1] for d in dirty], default=1) * 1.15)
    xs = [x for x, e in zip(n, exp) if e is not None and e > 0]
    axes[2].plot(xs, [e for e in exp if e is not None and e > 0], marker="o", color="tab:green",
                 label="expected downtime")
    axes[2].set_yscale("log")
    limit = number(summary, "downtime_limit_ms")
    if limit:
        axes[2].axhline(limit, ls="--", color="gray", label=f"limit {limit:g} ms")
    down = number(summary, "downtime_ms")
    if down is not None:
        axes[2].plot([n[-1] + 0.5], [max(down, 1e-3)], marker="*", ms=12, ls="", color="tab:red",
                     label=f"measured downtime {down:.1f} ms"
                     + (" (forced)" if summary.get("forced") is True else ""))
    axes[2].set_ylabel("ms")
    axes[2].set_xlabel("round")
    axes[2].legend(fontsize=8)
    axes[2].set_xticks(n if len(n) <= 20 else n[::max(1, len(n) // 10)])
    for ax in axes:
        ax.grid(True, alpha=0.3)
    size = number(summary, "bytes")
    rate = number(summary, "dirty_rate_target")
    title = "rmig-bench --live: rounds"
    if size and rate is not None:
        title += f" ({size / 2**20:g} MiB, workload {rate / 1e6:.0f} MB/s," \
                 f" {summary.get('transport', '?')}, {summary.get('channels', '?')} channels)"
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    save(fig, out)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sweep", help="plots of a bench/sweep.sh JSON file")
    sp.add_argument("file")
    sp.add_argument("-o", "--outdir", default=".", help="directory for the PNGs [.]")
    lp = sub.add_parser("live", help="the rounds of rmig-bench --live --json")
    lp.add_argument("file")
    lp.add_argument("-o", "--output", default="live-rounds.png", help="PNG [live-rounds.png]")
    args = ap.parse_args()

    if args.cmd == "sweep":
        doc, rows = load_sweep(args.file)
        if not os.path.isdir(args.outdir):
            raise PlotError(f"cannot write into {args.outdir}: not a directory")
        draw_sweep(pyplot(), doc, rows, args.outdir, args.file)
    else:
        rounds, summary = load_live(args.file)
        draw_live(pyplot(), rounds, summary, args.output)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PlotError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug here, still said in one line
        print(f"{PROG}: unexpected error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
