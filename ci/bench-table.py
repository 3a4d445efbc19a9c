#!/usr/bin/env python3
"""Summarise criterion's results (target/criterion) as the headline tables of docs/benchmarks.md.

For every benchmark group, one row per thread count (or one row per function for groups
without a thread sweep): each variant's time per operation (criterion's median point estimate,
for the whole thread group) and its ratio to the group's baseline measured in the same run
(time of the variant / time of the baseline: above 1 is slower than the baseline).

Baseline: the `lock-free` (or `flurry`, the lock-free session back end) variant where the
group has one, otherwise the first variant listed in PREFERRED or found.
With --plots DIR, copies each thread-sweep group's `report/lines.svg` to DIR/<group>.svg.

Usage: python3 ci/bench-table.py [--criterion target/criterion] [--plots docs/plots]
"""

import argparse
import json
import os
import shutil
import sys

BASELINES = ["lock-free", "flurry", "parking_lot ReentrantMutex", "parking_lot ReentrantMutex (outer)"]
# Column order: our strategies first, then peers.
ORDER = ["lock-free", "flurry", "blocking", "papaya"]


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--plots")
    args = ap.parse_args()

    groups = {}  # group_id -> {function -> {value -> (ns, directory)}}
    for root, _dirs, files in os.walk(args.criterion):
        if os.path.basename(root) != "new" or "benchmark.json" not in files:
            continue
        bench = load(os.path.join(root, "benchmark.json"))
        est = load(os.path.join(root, "estimates.json"))
        value = bench.get("value_str")
        groups.setdefault(bench["group_id"], {}).setdefault(bench["function_id"], {})[
            value
        ] = (est["median"]["point_estimate"], os.path.dirname(root))

    if not groups:
        sys.exit(f"no criterion results under {args.criterion}")

    track = {g: f for g, f in groups.items() if g.startswith("track/")}
    if track:
        print_track(track)
    for group in sorted(groups):
        if group.startswith("track/"):
            continue
        funcs = groups[group]
        names = sorted(funcs, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
        base = next((b for b in BASELINES if b in funcs), names[0])
        values = sorted({v for f in funcs.values() for v in f}, key=lambda v: (v is not None, int(v) if v and v.isdigit() else 0))
        sweep = any(v is not None for v in values)
        print(f"\n**{group}** (median time per operation; ratio = time / `{base}`)\n")
        if sweep:
            print("| threads | " + " | ".join(f"`{n}`" for n in names) + " |")
            print("|---:|" + "---:|" * len(names))
            for v in values:
                b = funcs[base].get(v)
                cells = []
                for n in names:
                    m = funcs[n].get(v)
                    if m is None:
                        cells.append("—")
                    elif b is None or n == base:
                        cells.append(fmt_ns(m[0]))
                    else:
                        cells.append(f"{fmt_ns(m[0])} ({m[0] / b[0]:.2f}×)")
                print(f"| {v} | " + " | ".join(cells) + " |")
            if args.plots:
                src = os.path.join(args.criterion, group.replace("/", "_"), "report", "lines.svg")
                if os.path.exists(src):
                    os.makedirs(args.plots, exist_ok=True)
                    dst = os.path.join(args.plots, group.replace("/", "_").replace("+", "_") + ".svg")
                    shutil.copyfile(src, dst)
                    print(f"\nPlot: [{os.path.basename(dst)}](plots/{os.path.basename(dst)})")
        else:
            b = funcs[base][None][0]
            print("| operation | time | × baseline |")
            print("|---|---:|---:|")
            for n in names:
                m = funcs[n][None][0]
                print(f"| `{n}` | {fmt_ns(m)} | {m / b:.2f} |")


def print_track(track):
    """benches/track.rs: each operation in both strategies, quiet and with a background writer."""
    print("\n**track** (median time per operation, one thread; ratio = `blocking` / `lock-free`)\n")
    print("| operation | lock-free, quiet | blocking, quiet | ratio | lock-free, background writer | blocking, background writer | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ops = []
    for g in ("track/lock-free/quiet", "track/blocking/quiet"):
        for op in track.get(g, {}):
            if op not in ops:
                ops.append(op)
    for op in ops:
        cells = []
        for mode in ("quiet", "background"):
            lf = track.get(f"track/lock-free/{mode}", {}).get(op, {}).get(None)
            bl = track.get(f"track/blocking/{mode}", {}).get(op, {}).get(None)
            cells.append(fmt_ns(lf[0]) if lf else "—")
            cells.append(fmt_ns(bl[0]) if bl else "—")
            cells.append(f"{bl[0] / lf[0]:.2f}" if lf and bl else "—")
        print(f"| `{op}` | " + " | ".join(cells) + " |")
    lock = track.get("track/lock", {})
    if lock:
        print("\n| lock level (quiet) | time |")
        print("|---|---:|")
        for op, v in lock.items():
            print(f"| `{op}` | {fmt_ns(v[None][0])} |")


if __name__ == "__main__":
    main()
