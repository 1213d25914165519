"""Measure load time and peak memory of `load_folder` on full-size class files.

Synthesises folders of 10, 100 and 345 class files, each (ROWS, 784) uint8 like
Google's full numpy_bitmap files (100k+ drawings per class). Only the first
--per-class rows of each file are filled; the rest is left sparse on disk, so
the 345-class folder takes ~27 GB of *apparent* size but little real disk.
A reader that touched every row would still read 27 GB (of zeros) and run out
of memory; `load_folder(per_class=N)` memory-maps and reads only N rows each.

    .venv/bin/python scripts/measure_loading.py [--per-class 5000] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MEASURE = """
import json, resource, sys, time
from quicksketch_lib.data import load_folder
t = time.perf_counter()
data = load_folder(sys.argv[1], per_class=int(sys.argv[2]))
seconds = time.perf_counter() - t
print(json.dumps({"drawings": len(data), "seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_folder(root: Path, n_classes: int, rows: int, filled: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_classes):
        arr = np.lib.format.open_memmap(root / f"class{i:03d}.npy", mode="w+", dtype=np.uint8, shape=(rows, 784))
        arr[:filled] = rng.integers(0, 256, (filled, 784), dtype=np.uint8)
        arr.flush()
        del arr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=5000)
    p.add_argument("--rows", type=int, default=100_000, help="drawings per synthesised class file")
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100, 345])
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.classes:
            folder = Path(tmp) / f"c{n}"
            make_folder(folder, n, args.rows, args.per_class)
            subprocess.run(["sync"], check=False)
            out = subprocess.run([sys.executable, "-c", MEASURE, str(folder), str(args.per_class)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            r.update(classes=n, file_gib=n * args.rows * 784 / 2**30)
            rows.append(r)
            print(f"{n} classes: {r}", file=sys.stderr)
    print("| classes | drawings on disk | --per-class | drawings loaded | load time | peak memory |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['classes']} | {r['classes'] * args.rows:,} ({r['file_gib']:.1f} GiB) | {args.per_class:,} "
              f"| {r['drawings']:,} | {r['seconds']:.2f} s | {r['peak_rss_mib']:,.0f} MiB |")


if __name__ == "__main__":
    main()
