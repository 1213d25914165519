"""Which class should the browser test teach? Measure how robustly each candidate is learned.

The browser test (tests/test_browser.py) teaches the shipped pretrained model a class it does
not know from 10 recorded drawings replayed on the SketchPad, then replays an 11th and wants it
in the top-3. This script does the same without a browser, for every class of the recorded
strokes with at least 11 drawings that the model does not know: the drawings go through the
pad's own path (Google's simplification, then ``rasterize_strokes``) and
:func:`~quicksketch_lib.teach.teach_class`. Run from the repository root::

    PYTHONPATH=. .venv/bin/python scripts/teach_replay_classes.py --strokes ../shared/data/strokes [--splits 4]

Per class it prints: the test's own case (examples = the file's first 10 drawings, the 11th
unseen: its rank after teaching), how often the unseen drawings are in the top-3 for that
split, and the same over ``--splits`` random choices of the 10 examples (mean and worst).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.locations import PRETRAINED, strokes_dir
from quicksketch_lib.inference import Predictor
from quicksketch_lib.rasterize import rasterize_strokes, read_ndjson, simplify_strokes
from quicksketch_lib.teach import teach_class

EXAMPLES = 10
TOP = 3


def pad_images(drawings) -> np.ndarray:
    """What the SketchPad sees of replayed drawings: simplified strokes, rasterised."""
    return np.stack([rasterize_strokes([p.T.tolist() for p in simplify_strokes(d)]) for d in drawings])


def ranks(ckpt, name: str, images: np.ndarray) -> list[int]:
    """1-based rank of ``name`` among the taught model's guesses for each image."""
    proba = Predictor.from_model(ckpt.build_model(), ckpt.classes, ckpt.tta_flip).predict_proba(images)
    order = np.argsort(-proba, axis=1)
    target = ckpt.classes.index(name)
    return [int(np.flatnonzero(row == target)[0]) + 1 for row in order]


def split_result(base, name: str, images: np.ndarray, teach_idx, unseen_idx) -> tuple[list[int], float]:
    t0 = time.perf_counter()
    taught = teach_class(base, name, images[teach_idx])
    return ranks(taught, name, images[unseen_idx]), time.perf_counter() - t0


def measure(base, name: str, drawings, splits: int) -> dict:
    images = pad_images(drawings)
    n = len(images)
    test_ranks, seconds = split_result(base, name, images, np.arange(EXAMPLES), np.arange(EXAMPLES, n))
    rates = []
    for seed in range(1, splits + 1):
        order = np.random.default_rng(seed).permutation(n)
        r, _ = split_result(base, name, images, order[:EXAMPLES], order[EXAMPLES:])
        rates.append(np.mean(np.asarray(r) <= TOP))
    return {"class": name, "n": n, "test_rank": test_ranks[0],
            "test_split": float(np.mean(np.asarray(test_ranks) <= TOP)),
            "mean": float(np.mean(rates)), "worst": float(np.min(rates)), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=Path, default=strokes_dir(),
                        help="folder of <class>.ndjson raw drawings (default: $QUICKSKETCH_STROKES, else data/strokes)")
    parser.add_argument("--splits", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_checkpoint(PRETRAINED)
    rows = []
    for path in sorted(args.strokes.glob("*.ndjson")):
        drawings = [r["drawing"] for r in read_ndjson(path)]
        if path.stem in base.classes or len(drawings) <= EXAMPLES:
            continue
        rows.append(measure(base, path.stem, drawings, args.splits))
        r = rows[-1]
        print(f"| {r['class']} | {r['n']} | {r['test_rank']} | {r['test_split']:.0%} | {r['mean']:.0%} | "
              f"{r['worst']:.0%} | {r['seconds']:.1f} |", flush=True)
    print(f"\nmedian top-{TOP} over random splits: {statistics.median(r['mean'] for r in rows):.0%}")


if __name__ == "__main__":
    print("| class | drawings | test drawing's rank | top-3, test split | top-3, random splits (mean) | (worst) | teach s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    main()
