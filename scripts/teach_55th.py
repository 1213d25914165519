"""What teaching a 55th class costs `pretrained-54` (issue 20: at most 1 point).

Every class of ../shared/data/quickdraw is already one of the 54, so the 55th here is one of the
offline default's synthetic doodles (``doodles.py``: star, spiral, ...), taught from K = 10 and
K = 20 of them (seed 0) and recalled on 500 others (seed 1). The cost is the points of held-out
accuracy the 54 lose on pretrained-54's recorded split (test-time flip, as its recipe). ::

    .venv/bin/python scripts/teach_55th.py --data data/quickdraw star spiral --json notebooks/runs/teach_55th.json

Synthetic doodles look like no real class: this is the easy case, not a bound for a real one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from quicksketch_lib.bench import machine_info
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.doodles import doodle_bitmaps
from quicksketch_lib.evaluation import class_probabilities, evaluation_set, load_for_checkpoint
from quicksketch_lib.teach import teach_class


def accuracy(ckpt, images, labels) -> float:
    proba = class_probabilities(ckpt.build_model(), images, tta_flip=ckpt.tta_flip)
    return float((proba.argmax(1) == labels).mean())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("doodles", nargs="+", help="synthetic doodle classes to teach, one at a time")
    p.add_argument("--data", default="data/quickdraw", help="pretrained-54's data folder (its held-out split)")
    p.add_argument("--ks", nargs="+", type=int, default=[10, 20])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    ckpt = load_checkpoint("pretrained-54")
    images, labels, _ = evaluation_set(ckpt, load_for_checkpoint(ckpt, args.data))
    before = accuracy(ckpt, images, labels)
    print(f"the 54 before: {before:.2%} on {len(labels):,} held-out drawings")
    rows = []
    for name in args.doodles:
        held = doodle_bitmaps(name, 500, np.random.default_rng(1))
        for k in args.ks:
            t = time.perf_counter()
            taught = teach_class(ckpt, name, doodle_bitmaps(name, k, np.random.default_rng(0)))
            seconds = time.perf_counter() - t
            recall = float((class_probabilities(taught.build_model(), held, tta_flip=taught.tta_flip)
                            .argmax(1) == len(ckpt.classes)).mean())
            row = {"class": name, "k": k, "cost": 100 * (before - accuracy(taught, images, labels)),
                   "recall": recall, "teach_seconds": round(seconds, 1)}
            rows.append(row)
            print(f"{name:<8} K={k:<3} the 54 lose {row['cost']:.2f} points; recall {recall:.1%}; taught in {seconds:.1f} s")
    if args.json:
        record = {"command": "python scripts/teach_55th.py " + " ".join(argv or sys.argv[1:]),
                  "before": before, "held_out": int(len(labels)), "rows": rows,
                  "machine": {**machine_info(torch.device("cpu")), "threads": args.threads, "load_start": round(load0, 1),
                              "load_end": round(os.getloadavg()[0], 1), "seconds": round(time.perf_counter() - t0)}}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
