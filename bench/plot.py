#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plot a JSON-lines file of rmig-bench --json results (and tcp-vs-iperf3.sh -o rows).

Each line is one JSON object. Points are grouped into series by --group
(default: transport, plus role when two-process rows are present) and
drawn as the median of --y over each value of --x. A text table of the same
medians is always printed, so the script is useful without matplotlib.

  bench/plot.py results.jsonl                       # GB/s by channels
  bench/plot.py results.jsonl --x page_size --y cpu_s_per_gb -o cpu.png
  for c in 1 2 4 8; do rmig-bench -c $c --json; done >> results.jsonl
"""
import argparse
import json
import os
import statistics
import sys
from collections import defaultdict


def load(paths):
    rows = []
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            sys.exit(f"plot.py: cannot read {path}: {getattr(e, 'strerror', None) or e}")
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON: {e}")
            if not isinstance(row, dict):
                sys.exit(f"plot.py: {path}:{n}: not a JSON object (one rmig-bench --json"
                         " result per line)")
            rows.append(row)
    return rows


def number(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def series_key(row, group):
    if group:
        return " ".join(str(row.get(g, "?")) for g in group.split(","))
    tool = row.get("tool")
    if tool == "iperf3":
        return "iperf3"
    return f"{row.get('transport', '?')} {row.get('role', '')}".strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="JSON-lines files")
    ap.add_argument("--x", default="channels", help="field for the x axis [channels]")
    ap.add_argument("--y", default="gbytes_per_s", help="field for the y axis [gbytes_per_s]")
    ap.add_argument("--group", help="comma-separated fields that name a series")
    ap.add_argument("-o", "--output", default="rmig-bench.png", help="image file [rmig-bench.png]")
    args = ap.parse_args()

    data = defaultdict(lambda: defaultdict(list))
    for row in load(args.files):
        y = number(row.get(args.y))
        if args.y == "gbytes_per_s" and y is None and number(row.get("gbits_per_s")) is not None:
            y = row["gbits_per_s"] / 8  # iperf3 rows carry Gb/s only
        x = number(row.get(args.x, 0 if row.get("tool") == "iperf3" else None))
        if x is None or y is None or row.get("error"):
            continue
        data[series_key(row, args.group)][x].append(y)
    if not data:
        sys.exit(f"plot.py: no rows with numbers for both '{args.x}' and '{args.y}'")

    for name, pts in sorted(data.items()):
        print(f"{name}:")
        for x in sorted(pts):
            ys = pts[x]
            print(f"  {args.x}={x}: median {args.y} {statistics.median(ys):.4g} (n={len(ys)})")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (Debian: apt install python3-matplotlib);"
              " printed the medians only", file=sys.stderr)
        return 1

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in sorted(data.items()):
        xs = sorted(pts)
        ax.plot(xs, [statistics.median(pts[x]) for x in xs], marker="o", label=name)
    ax.set_xlabel(args.x)
    ax.set_ylabel(args.y)
    ax.set_title("rmig-bench")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        if os.path.isdir(args.output):
            raise IsADirectoryError(21, "it is a directory")
        fig.savefig(args.output, dpi=100)
    except (OSError, ValueError) as e:
        print(f"plot.py: cannot write {args.output}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug here, still said in one line
        print(f"plot.py: unexpected error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
