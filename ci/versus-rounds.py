#!/usr/bin/env python3
"""The versus cells measured in interleaved rounds, for a machine whose speed drifts.

On a shared VM a whole process can run in a fast or a slow phase (docs/benchmarks.md), and a
full `cargo bench --bench versus` measures `lock-free` and `blocking` of one cell tens of
seconds apart, so one run's ratio may compare a fast phase with a slow one. Here each process
measures the contenders of one cell back to back (seconds apart), every cell gets a process
per round, and the rounds go over all cells in turn: a phase then falls on both sides of a
ratio, and the median over rounds discards the rounds it did not.

    cargo bench --bench versus --no-run
    python3 ci/versus-rounds.py [--rounds 3] [--cells session_save/2 ...] [--seconds 2]
    python3 ci/versus-rounds.py --exe OLD --exe NEW ...   # two builds, interleaved per cell

Prints a Markdown table: per cell, the median ns per operation of each contender over the
rounds, then `lock-free / blocking` and `lock-free / mutex map` as speed ratios (above 1:
lock-free faster), each the median of the per-round ratios with their range.
"""
import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ["model_update", "model_update_hot", "model_get", "session_load", "session_save"]
THREADS = [1, 2, 8, 32]
CONTENDERS = ["lock-free", "lock-free-pinned", "blocking", "mutex-hashmap"]
LINE = re.compile(r"^test (\S+)/([a-z-]+)/(\d+) \.\.\. bench:\s+([\d,]+) ns/iter")


def binary():
    found = [p for p in glob.glob(os.path.join(ROOT, "target/release/deps/versus-*"))
             if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not found:
        sys.exit("no versus binary: run `cargo bench --bench versus --no-run` first")
    return max(found, key=os.path.getmtime)


def all_cells():
    cells = [(g, t) for g in GROUPS for t in THREADS]
    return cells + [("after_256_threads/" + g, 1) for g in GROUPS]


def measure(exe, group, threads, seconds):
    """ns per operation of each contender of one cell, measured in one process."""
    pattern = f"^{re.escape(group)}/({'|'.join(CONTENDERS)})/{threads}$"
    out = subprocess.run(
        [exe, "--bench", pattern, "--warm-up-time", "1", "--measurement-time", str(seconds),
         "--output-format", "bencher", "--noplot"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout
    got = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m and m.group(1) == group and int(m.group(3)) == threads:
            name = m.group(2)
            # The bencher line rounds to whole ns (a 3 ns `get` would carry a third of error):
            # criterion's own median, written by this very process, where it can be read.
            est = os.path.join(ROOT, "target/criterion", group.replace("/", "_"), name,
                               str(threads), "new/estimates.json")
            try:
                got[name] = json.load(open(est))["median"]["point_estimate"]
            except (OSError, ValueError, KeyError):
                got[name] = int(m.group(4).replace(",", ""))
    return got


def ratio_cell(values):
    if not values:
        return ""
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--exe", action="append", help="a versus binary (default: the newest "
                    "build); given twice or more, each cell runs once per binary per round and "
                    "the table has a row per binary")
    ap.add_argument("--cells", nargs="*", help="GROUP/THREADS, e.g. session_save/2 "
                    "after_256_threads/model_update/1 (default: every cell)")
    a = ap.parse_args()
    exes = a.exe or [binary()]
    cells = all_cells()
    if a.cells:
        cells = [(c.rsplit("/", 1)[0], int(c.rsplit("/", 1)[1])) for c in a.cells]
    runs = {(c, e): [] for c in cells for e in range(len(exes))}
    for r in range(a.rounds):
        for c in cells:
            for e, exe in enumerate(exes):
                got = measure(exe, c[0], c[1], a.seconds)
                runs[(c, e)].append(got)
                shown = {k: round(v, 1) for k, v in got.items()}
                print(f"round {r + 1}: {c[0]}/{c[1]} ({exe}): {shown}", file=sys.stderr,
                      flush=True)
    print("| operation | threads | lock-free | lock-free, pinned | blocking | mutex map "
          "| lock-free / blocking | lock-free / mutex map |")
    print("|---|---|---|---|---|---|---|---|")
    for ((group, threads), e), rs in runs.items():
        def median_ns(name):
            v = [r[name] for r in rs if name in r]
            return f"{statistics.median(v):,.1f}" if v else ""
        vs_bl = [r["blocking"] / r["lock-free"] for r in rs if "lock-free" in r and "blocking" in r]
        vs_mx = [r["mutex-hashmap"] / r["lock-free"] for r in rs
                 if "lock-free" in r and "mutex-hashmap" in r]
        label = group.replace("after_256_threads/", "after 256 threads ")
        if len(exes) > 1:
            label += f" [{os.path.basename(exes[e])}]"
        print(f"| {label} | {threads} | {median_ns('lock-free')} | {median_ns('lock-free-pinned')} "
              f"| {median_ns('blocking')} | {median_ns('mutex-hashmap')} | {ratio_cell(vs_bl)} "
              f"| {ratio_cell(vs_mx)} |")


if __name__ == "__main__":
    main()
