"""How long teaching takes: README "Teach it your own class", "Seconds".

Teaches the shipped model of the ten three classes of the data folder at K = 10, with 1 and with 2
threads for the body's forward pass, each class first with an empty replay-feature cache (what a
command-line ``quicksketch teach`` pays) and then again with it filled (what the widget or a
notebook pays from the second teaching on: ``teach.cached_body_features``)::

    .venv/bin/python scripts/teach_seconds.py --data data/quickdraw

It prints one line per teaching and the machine (CPU, load before and after).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from quicksketch_lib import teach
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import open_class_file, select_class_files
from quicksketch_lib.device import hardware_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/quickdraw")
    p.add_argument("--classes", nargs="+", default=["apple", "horse", "fish"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = p.parse_args()
    ckpt = load_checkpoint("pretrained")
    files = select_class_files(args.data)
    print(f"{hardware_name('cpu')}; load {os.getloadavg()[0]:.2f}")
    for threads in args.threads:
        for name in args.classes:
            rows = np.asarray(open_class_file(files[name]))[:10]
            for cache in ("empty", "filled"):
                if cache == "empty":
                    teach._BODY_CACHE.clear()
                t0 = time.perf_counter()
                teach.teach_class(ckpt, name, rows, config=teach.TeachConfig(num_threads=threads))
                print(f"{threads} thread(s)  {name:<8} K=10  cache {cache:<6}  {time.perf_counter() - t0:5.1f} s",
                      flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
