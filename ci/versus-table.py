#!/usr/bin/env python3
"""The versus table of docs/benchmarks.md from criterion's results of `cargo bench --bench versus`.

Each cell: M operations/s for the whole thread group (criterion's median), then in brackets the
ratio to `blocking` and to `mutex-hashmap` measured in the same run (above 1: faster).
Usage: python3 ci/versus-table.py [--criterion target/criterion]
"""
import argparse
import glob
import json
import os

GROUPS = ["model_update", "model_update_hot", "model_get", "session_load", "session_save"]
ORDER = ["lock-free", "lock-free-pinned", "blocking", "mutex-hashmap"]


def rows(root, group):
    out = {}
    for f in glob.glob(f"{root}/{group}/*/*/new/estimates.json"):
        parts = f.split(os.sep)
        name, threads = parts[-4], int(parts[-3])
        ns = json.load(open(f))["median"]["point_estimate"]
        out.setdefault(threads, {})[name] = 1e3 / ns
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", default="target/criterion")
    a = ap.parse_args()
    print("| operation | threads | lock-free | lock-free, pinned | blocking | mutex map | lock-free / blocking | lock-free / mutex map |")
    print("|---|---|---|---|---|---|---|---|")
    for prefix in ["", "after_256_threads_"]:
        for g in GROUPS:
            r = rows(a.criterion, prefix + g)
            for t in sorted(r):
                v = r[t]
                cell = lambda k: f"{v[k]:.2f}" if k in v else ""
                lf = v.get("lock-free")
                rb = f"{lf / v['blocking']:.2f}×" if lf and "blocking" in v else ""
                rm = f"{lf / v['mutex-hashmap']:.2f}×" if lf and "mutex-hashmap" in v else ""
                label = (prefix.replace("_", " ").strip() + " " if prefix else "") + g
                print(f"| {label} | {t} | {cell('lock-free')} | {cell('lock-free-pinned')} | {cell('blocking')} | {cell('mutex-hashmap')} | {rb} | {rm} |")


if __name__ == "__main__":
    main()
