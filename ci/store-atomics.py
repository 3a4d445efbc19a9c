#!/usr/bin/env python3
"""Atomic read-modify-writes per store operation, counted under callgrind (repeatable on a
noisy machine, where each one costs about 11.6 ns: ../shared/FACTS.md).

    cargo build --release --example store_probe
    python3 ci/store-atomics.py [STRATEGY/OP ...]     # default: lock-free/save blocking/save

Runs `store_probe OP N` under callgrind with per-instruction counts at N = 100k and 200k,
finds the `lock`-prefixed and `xchg` instructions of the probe's own code in `objdump -d`,
and prints, per function, how many of them one operation executes (the difference of the
two runs / 100k, so setup cancels). Atomics inside libc (none on the paths measured: glibc
skips them while one thread runs) are not counted.
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/examples/store_probe")


def atomic_sites(binary):
    """Address -> function of every atomic read-modify-write instruction in `binary`."""
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", binary],
                         capture_output=True, text=True, check=True).stdout
    sites, fn = {}, None
    for line in dis.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            fn = m.group(2)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)", line)
        if m and fn and (m.group(2) == "lock" or m.group(2).startswith("xchg")):
            sites[int(m.group(1), 16)] = fn
    return sites


def executed(binary, op, n, out):
    """Address -> times executed, for the probe's own object."""
    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no",
                    "--compress-strings=no", f"--callgrind-out-file={out}", binary, op, str(n)],
                   capture_output=True, check=True)
    counts, obj, skip = collections.Counter(), None, False
    name = os.path.basename(binary)
    with open(out) as f:
        for line in f:
            if line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("calls="):
                skip = True  # the next line is the call's inclusive cost, not an instruction
            elif skip:
                skip = False
            elif line.startswith("0x") and obj and os.path.basename(obj) == name:
                parts = line.split()
                counts[int(parts[0], 16)] += int(parts[-1])
    return counts


def per_function(counts, sites):
    per = collections.Counter()
    for addr, n in counts.items():
        if addr in sites:
            per[sites[addr]] += n
    return per


def main():
    for tool in ("valgrind", "objdump"):
        if shutil.which(tool) is None:
            print(f"notice: {tool} not installed; skipping")
            return
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release --example store_probe")
    ops = sys.argv[1:] or ["lock-free/save", "blocking/save"]
    sites = atomic_sites(BIN)
    with tempfile.TemporaryDirectory() as tmp:
        for op in ops:
            a = per_function(executed(BIN, op, 100_000, os.path.join(tmp, "a")), sites)
            b = per_function(executed(BIN, op, 200_000, os.path.join(tmp, "b")), sites)
            print(f"== {op}: atomic read-modify-writes per operation")
            total = 0.0
            for fn in sorted(set(a) | set(b), key=lambda f: a[f] - b[f]):
                d = (b[fn] - a[fn]) / 100_000
                total += d
                if abs(d) >= 0.01:
                    print(f"{d:7.2f}  {fn[:140]}")
            print(f"{total:7.2f}  total")


if __name__ == "__main__":
    main()
