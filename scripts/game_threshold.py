"""Measure the game's threshold for a model: the probability that best separates finished
held-out drawings of each class from drawings of the other classes (quicksketch_lib.game.CRITERION).

    python scripts/game_threshold.py pretrained --data ../shared/data/quickdraw
    python scripts/game_threshold.py models/sketchcnn_54.pt --data ../shared/data/quickdraw --record

The held-out drawings are the checkpoint's recorded split, read from ``--data`` (default:
$QUICKSKETCH_DATA, else data/quickdraw). ``--record`` writes the threshold into the
checkpoint's metrics (``game_threshold``; do it before ``scripts/make_pretrained.py``
packages the model, which keeps the metrics); ``--json`` adds the report (with the
Youden's J curve, the command, CPU, threads and load) to a JSON file under "models".
"""

from __future__ import annotations

import argparse
import sys
import os
import time
from pathlib import Path

import torch

from quicksketch_lib.checkpoint import load_checkpoint, save_checkpoint
from quicksketch_lib.data import find_data
from quicksketch_lib.game import record_threshold, threshold_for_checkpoint
from quicksketch_lib.locations import pretrained_name

from how_early import add_entry, machine  # noqa: E402  (scripts/ is on sys.path when run as a script)

ABOUT = ("scripts/game_threshold.py: the game's threshold per model, the largest macro-averaged Youden's J on "
         "its recorded held-out drawings (criterion in each entry); curve = J at every candidate threshold")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint, or the name of a shipped model (pretrained, pretrained-54)")
    p.add_argument("--data", help="the folder it was trained on (default: $QUICKSKETCH_DATA, else data/quickdraw)")
    p.add_argument("--record", action="store_true", help="write the threshold into the checkpoint's metrics")
    p.add_argument("--json", metavar="PATH", help="add the report (with the Youden's J curve) to this JSON file")
    p.add_argument("--name", help="the model's key in the JSON (default: the checkpoint argument)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    data = args.data or find_data(generate=False).path
    start, load = time.perf_counter(), os.getloadavg()[0]
    report = threshold_for_checkpoint(ckpt, data)
    print(f"{args.checkpoint}: {report.describe()}")
    print(f"criterion: {report.criterion}")
    print(f"{time.perf_counter() - start:.0f} s, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    if args.json:
        entry = {"checkpoint": str(args.checkpoint), **report.to_dict(),
                 "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                 "machine": machine(load, time.perf_counter() - start) | {"threads": args.threads}}
        add_entry(args.json, args.name or args.checkpoint, entry, ABOUT)
        print(f"wrote {args.json}")
    if args.record:
        if pretrained_name(ckpt.path):
            raise SystemExit("error: record into the checkpoint before packaging it (make_pretrained.py keeps "
                             "the metrics); the shipped file stores float16 weights this script would widen")
        record_threshold(ckpt, report)
        save_checkpoint(ckpt, ckpt.path)
        print(f"recorded game_threshold={report.threshold} in {ckpt.path}")


if __name__ == "__main__":
    main()
