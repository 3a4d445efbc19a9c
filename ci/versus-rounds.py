#!/usr/bin/env python3
"""The versus cells measured in interleaved rounds, for a machine whose speed drifts.

On a shared VM a whole process can run in a fast or a slow phase (docs/benchmarks.md), and a
full `cargo bench --bench versus` measures `lock-free` and `blocking` of one cell tens of
seconds apart, so one run's ratio may compare a fast phase with a slow one. Here the
contenders of one cell run back to back (seconds apart), every cell gets its turn in each
round, and the rounds go over all cells in turn: a phase then falls on both sides of a
ratio, and the median over rounds discards the rounds it did not.

    cargo bench --bench versus --no-run
    python3 ci/versus-rounds.py [--rounds 3] [--cells session_save/2 ...] [--seconds 2]
    python3 ci/versus-rounds.py --exe OLD --exe NEW ...   # two builds, interleaved per cell

Prints a Markdown table: per cell, the median ns per operation of each contender over the
rounds, then `lock-free / blocking` and `lock-free / mutex map` as speed ratios (above 1:
lock-free faster), each the median of the per-round ratios with their range.

The VM's phases differ most in what a cache-line transfer between the two cores costs (23-45
ns in the fast phase and 182-263 ns in the slow one on 2026-12-08), and a lock-free write
moves more lines than a mutex map's. So each contender runs in a process of its own, with the
line-transfer gauge (`examples/line_transfer.rs`) read before it and after it. `--phase-ns`
(default 50,120) splits the readings into phases (the middle one catches the readings taken
while the VM changed phase); a contender's measurement is in a phase when both its
readings are, *mixed* otherwise. With `--phases` the table gets a row per cell and phase,
each ratio from the rounds where both of its contenders ran in that phase (mixed ones are
left out of those rows). `--no-gauge` measures a cell's contenders in one process, as
before. `--replay LOG` tabulates the stderr of an earlier gauged run without measuring.
"""
import argparse
import ast
import bisect
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


def gauge_binary():
    subprocess.run(["cargo", "build", "--release", "--example", "line_transfer", "-q"],
                   cwd=ROOT, check=True)
    return os.path.join(ROOT, "target/release/examples/line_transfer")


def gauge(exe):
    """The one-way cache-line transfer time now, in ns (median of three short readings)."""
    readings = []
    for _ in range(3):
        out = subprocess.run([exe, "200000"], capture_output=True, text=True,
                             check=True).stdout
        readings.append(float(re.search(r"([\d.]+) ns", out).group(1)))
    return statistics.median(readings)


def phase_names(bounds):
    """The phases `bounds` split the readings into: `<B0`, `B0–B1`, ..., `≥Bn`."""
    return ([f"<{bounds[0]:g}"] + [f"{lo:g}–{hi:g}" for lo, hi in zip(bounds, bounds[1:])]
            + [f"≥{bounds[-1]:g}"])


def bucket(reading, bounds):
    """The phase a reading falls in."""
    return phase_names(bounds)[bisect.bisect_right(bounds, reading)]


def phase(before, after, bounds):
    """The phase of a measurement between two readings, `mixed` if they differ."""
    a, b = bucket(before, bounds), bucket(after, bounds)
    return a if a == b else "mixed"


def measure(exe, group, threads, seconds, contenders=CONTENDERS):
    """ns per operation of the given contenders of one cell, measured in one process."""
    pattern = f"^{re.escape(group)}/({'|'.join(contenders)})/{threads}$"
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


def measure_gauged(exe, group, threads, seconds, gauge_exe, bounds):
    """As `measure`, one process per contender, each between two gauge readings: returns
    {contender: ns}, {contender: phase} and the readings."""
    got, phases = {}, {}
    readings = [gauge(gauge_exe)]
    for name in CONTENDERS:
        one = measure(exe, group, threads, seconds, [name])
        if name not in one:
            continue
        readings.append(gauge(gauge_exe))
        got[name] = one[name]
        phases[name] = phase(readings[-2], readings[-1], bounds)
    return got, phases, readings


def ratios(rs, over, under, want=None):
    """Per-round speed ratios under/over (above 1: `over` faster), from rounds where both
    ran (and, given `want`, both in that phase)."""
    out = []
    for got, phases in rs:
        if over in got and under in got:
            if want is None or (phases.get(over) == want and phases.get(under) == want):
                out.append(got[under] / got[over])
    return out


ROUND = re.compile(r"^round \d+: (\S+)/(\d+) \((.+)\): (\{.*?\})"
                   r"(?: phases \{.*?\} transfers (\[.*?\]) ns)?$")


def replay(log, bounds):
    """The rounds of an earlier run's stderr, phases recomputed with `bounds`."""
    runs, readings = {}, {}
    for line in open(log):
        m = ROUND.match(line.strip())
        if not m:
            continue
        cell, exe = (m.group(1), int(m.group(2))), m.group(3)
        got = ast.literal_eval(m.group(4))
        read = ast.literal_eval(m.group(5)) if m.group(5) else []
        phases = {}
        if read:
            # The readings bracket the contenders in the order they ran.
            for i, name in enumerate(n for n in CONTENDERS if n in got):
                phases[name] = phase(read[i], read[i + 1], bounds)
        runs.setdefault((cell, exe), []).append((got, phases))
        readings.setdefault((cell, exe), []).extend(read)
    return runs, readings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--exe", action="append", help="a versus binary (default: the newest "
                    "build); given twice or more, each cell runs once per binary per round and "
                    "the table has a row per binary")
    ap.add_argument("--cells", nargs="*", help="GROUP/THREADS, e.g. session_save/2 "
                    "after_256_threads/model_update/1 (default: every cell)")
    ap.add_argument("--no-gauge", action="store_true", help="no line-transfer readings: "
                    "a cell's contenders in one process")
    ap.add_argument("--phase-ns", default="50,120", help="bounds (ns) between the phases "
                    "of the gauge readings, comma-separated")
    ap.add_argument("--phases", action="store_true", help="add a row per cell and phase")
    ap.add_argument("--replay", metavar="LOG", help="no measuring: tabulate the rounds a "
                    "gauged run printed to stderr (to sort them by other --phase-ns bounds)")
    a = ap.parse_args()
    exes = a.exe or ([] if a.replay else [binary()])
    gauge_exe = None if a.no_gauge or a.replay else gauge_binary()
    bounds = sorted(float(b) for b in a.phase_ns.split(","))
    cells = all_cells()
    if a.cells:
        cells = [(c.rsplit("/", 1)[0], int(c.rsplit("/", 1)[1])) for c in a.cells]
    runs = {(c, e): [] for c in cells for e in range(len(exes))}
    readings = {(c, e): [] for c in cells for e in range(len(exes))}
    if a.replay:
        by_path, read_by_path = replay(a.replay, bounds)
        exes = sorted({e for _, e in by_path})
        runs = {(c, exes.index(e)): v for (c, e), v in by_path.items()}
        readings = {(c, exes.index(e)): v for (c, e), v in read_by_path.items()}
    for r in range(0 if a.replay else a.rounds):
        for c in cells:
            for e, exe in enumerate(exes):
                if gauge_exe:
                    got, phases, read = measure_gauged(exe, c[0], c[1], a.seconds, gauge_exe,
                                                       bounds)
                    readings[(c, e)].extend(read)
                else:
                    got, phases, read = measure(exe, c[0], c[1], a.seconds), {}, []
                runs[(c, e)].append((got, phases))
                shown = {k: round(v, 1) for k, v in got.items()}
                gauged = f" phases {phases} transfers {[round(x, 1) for x in read]} ns" if read else ""
                print(f"round {r + 1}: {c[0]}/{c[1]} ({exe}): {shown}{gauged}",
                      file=sys.stderr, flush=True)
    print("| operation | threads | rounds | line transfer, ns | lock-free | lock-free, pinned "
          "| blocking | mutex map | lock-free / blocking | lock-free / mutex map |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ((group, threads), e), rs in runs.items():
        label = group.replace("after_256_threads/", "after 256 threads ")
        if len(exes) > 1:
            label += f" [{os.path.basename(exes[e])}]"
        read = readings[((group, threads), e)]
        span = f"{min(read):.0f}–{max(read):.0f}" if read else ""
        rows = [("all", None)]
        if a.phases and read:
            rows += [(f"{p} ns", p) for p in phase_names(bounds)]

        for which, want in rows:
            def median_ns(name):
                v = [got[name] for got, phases in rs
                     if name in got and (want is None or phases.get(name) == want)]
                return f"{statistics.median(v):,.1f}" if v else ""
            vs_bl = ratios(rs, "lock-free", "blocking", want)
            vs_mx = ratios(rs, "lock-free", "mutex-hashmap", want)
            if want is not None and not (vs_bl or vs_mx):
                continue
            n = max(len(vs_bl), len(vs_mx))
            print(f"| {label} | {threads} | {which}: {n} | {span if want is None else ''} "
                  f"| {median_ns('lock-free')} | {median_ns('lock-free-pinned')} "
                  f"| {median_ns('blocking')} | {median_ns('mutex-hashmap')} "
                  f"| {ratio_cell(vs_bl)} | {ratio_cell(vs_mx)} |")


if __name__ == "__main__":
    main()
