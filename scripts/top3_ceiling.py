"""How far several pretrained-54 candidates get on top-3 together: a ceiling for issue 19's 98 %.

::

    python scripts/top3_ceiling.py --data data/quickdraw pretrained-54 gpu_54/game80.pt ... \\
        --json notebooks/runs/top3_ceiling.json

Every checkpoint must hold the same recorded held-out split (trained with the same seed on the
same folder); each is evaluated as ``quicksketch evaluate CHECKPOINT --data DATA`` does (its own
test-time flip). Then, on those drawings:

- **ensembles**: the mean of the probabilities of every subset of 2 or more checkpoints: top-1
  and top-3, the best and the median subset of each size. An ensemble is what a longer run, another
  seed or a wider model would at best approach; the best subset is picked on the very drawings it
  is scored on, so it is an upper bound, not a result;
- **oracle**: a drawing counts when ANY checkpoint has its class in its top 3. No single model
  of these can do better, except by being right where all of them are wrong;
- **missed by all**: the drawings no checkpoint ranks in its top 3: how many per class, and what
  the first checkpoint answers for them.

Figures: ``notebooks/runs/top3_ceiling.json`` and README "The 54-class model".
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.evaluation import class_probabilities, select_unseen
from quicksketch_lib.files import shown_path


def in_top(proba: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per drawing: is its label among the k most probable classes?"""
    return (np.argsort(-proba, axis=1, kind="stable")[:, :k] == labels[:, None]).any(axis=1)


def scores(proba: np.ndarray, labels: np.ndarray) -> dict:
    return {"top1": round(float(in_top(proba, labels, 1).mean()), 5),
            "top3": round(float(in_top(proba, labels, 3).mean()), 5)}


def ensembles(probas: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    """Every subset of 2 or more checkpoints, scored on the mean of their probabilities."""
    rows = []
    for size in range(2, len(probas) + 1):
        for combo in itertools.combinations(probas, size):
            mean = sum(probas[n] for n in combo) / size
            rows.append({"models": list(combo), **scores(mean, labels)})
    return rows


def by_size(rows: list[dict]) -> dict:
    """Per ensemble size: the median subset's top-3 and the best subset (by top-3)."""
    out = {}
    for size in sorted({len(r["models"]) for r in rows}):
        same = [r for r in rows if len(r["models"]) == size]
        best = max(same, key=lambda r: (r["top3"], r["top1"]))
        out[str(size)] = {"subsets": len(same), "median_top3": round(float(np.median([r["top3"] for r in same])), 5),
                          "median_top1": round(float(np.median([r["top1"] for r in same])), 5), "best": best}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoints (or pretrained-54) with one held-out split")
    p.add_argument("--data", required=True, help="the folder they were trained on")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error("give two or more checkpoints")
    torch.set_num_threads(args.threads)
    data = load_folder(args.data)
    probas, index, labels, classes = {}, None, None, None
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        chosen = select_unseen(ckpt, data)
        if index is None:
            index, labels, classes = chosen.index, chosen.labels, ckpt.classes
        elif ckpt.classes != classes or not np.array_equal(chosen.index, index):
            sys.exit(f"error: {path} does not hold the same classes and held-out split as {args.checkpoints[0]} "
                     "(train with the same --seed on the same folder)")
        name = Path(path).stem if Path(path).suffix else path
        if name in probas:  # the same file name twice (from two folders): keep both
            name = f"{name} ({len(probas) + 1})"
        probas[name] = class_probabilities(ckpt.build_model("cpu"), data.images[index], tta_flip=ckpt.tta_flip)
        print(f"{name:15s} {scores(probas[name], labels)}", flush=True)

    hits = np.stack([in_top(pr, labels, 3) for pr in probas.values()])
    missed = ~hits.any(axis=0)
    first = next(iter(probas.values()))
    answered = Counter(classes[i] for i in first[missed].argmax(axis=1))
    record = {
        "command": shlex.join(["python", "scripts/top3_ceiling.py", "--data", shown_path(args.data), *args.checkpoints]),
        "drawings": int(len(index)), "subset": str(chosen.subset),
        "single": {n: scores(pr, labels) for n, pr in probas.items()},
        "ensembles_by_size": by_size(ensembles(probas, labels)),
        "oracle_top3": round(float(hits.any(axis=0).mean()), 5),
        "every_model_top3": round(float(hits.all(axis=0).mean()), 5),
        "missed_by_all": {"drawings": int(missed.sum()), "share": round(float(missed.mean()), 5),
                          "per_class": dict(Counter(classes[i] for i in labels[missed]).most_common()),
                          "first_model_answers": dict(answered.most_common(10))},
    }
    for size, row in record["ensembles_by_size"].items():
        print(f"{size} together: median top-3 {row['median_top3']:.4f}; best {row['best']['top3']:.4f} "
              f"({' + '.join(row['best']['models'])})")
    print(f"oracle top-3 (any of {len(probas)}): {record['oracle_top3']:.4f}; "
          f"missed by all: {record['missed_by_all']['drawings']} drawings")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")
    return record


if __name__ == "__main__":
    main()
