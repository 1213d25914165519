"""Reproduce the accuracy table: train a recipe on real drawings and report held-out top-1.

One run per call, so runs can go side by side (``--threads 1`` each) or one after another
(run from the repository root with ``PYTHONPATH=.``)::

    python scripts/accuracy_runs.py --recipe original    --classes ten --epochs 20 --out /tmp/acc/orig10.pt
    python scripts/accuracy_runs.py --recipe quicksketch --classes ten --epochs 20 --out /tmp/acc/qs10.pt
    python scripts/accuracy_runs.py --recipe quicksketch --classes all --epochs 20 --out /tmp/acc/qs54.pt
    python scripts/accuracy_runs.py --table                      # the rows so far, as Markdown

Ablations override single knobs of a recipe (4 epochs keeps them affordable on 2 cores)::

    python scripts/accuracy_runs.py --recipe quicksketch --epochs 4 --set augment=0 --label "- augmentation"
    python scripts/accuracy_runs.py --recipe quicksketch --epochs 4 --set label_smoothing=0 --label "- smoothing"
    python scripts/accuracy_runs.py --recipe quicksketch --epochs 4 --set optimizer=adam \
        --set lr=0.001 --set weight_decay=0.0001 --set schedule=step --label "- AdamW/onecycle"
    python scripts/accuracy_runs.py --recipe quicksketch --epochs 4 --set ema_decay=0.995 --label "+ EMA"

Each run appends one JSON line (data, recipe, epochs, overrides, held-out top-1 with and
without test-time flip, and for EMA runs the raw weights' too, training seconds, machine)
to ``--results`` (default /tmp/acc/results.jsonl). EMA and test-time flip never change
training, so one run measures them exactly. ``--evaluate CKPT`` re-measures a checkpoint;
``--resume`` continues an interrupted run. Checkpoints and logs belong outside the
repository, and the data is read in place, never copied into it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.cli import config_override
from quicksketch_lib.data import BatchLoader, load_folder, stratified_split
from quicksketch_lib.device import pick_device, resolve_precision
from quicksketch_lib.evaluation import evaluate_loader, evaluation_set, load_for_checkpoint
from quicksketch_lib.data import find_data
from quicksketch_lib.model import ModelConfig, SketchCNN, build_model
from quicksketch_lib.recipes import recipe_config
from quicksketch_lib.training import fit

def held_out_accuracy(model: SketchCNN, images, labels, flip: bool, precision: str = "auto") -> float:
    """Top-1 on held-out uint8 rows; with ``flip`` average softmax over the drawing and its mirror."""
    device = next(model.parameters()).device
    loader = BatchLoader(images, labels, 1024, device=device, channels_last=True)
    return evaluate_loader(model, loader, resolve_precision(precision, device), flip=flip)["accuracy"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="data folder (default: $QUICKSKETCH_DATA, else data/quickdraw)")
    p.add_argument("--classes", default="ten", help="'ten' (the README's ten), 'all', or a comma list")
    p.add_argument("--recipe", default="original")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-per-class", type=int, default=None, metavar="N",
                   help="cheap ablations: train on N drawings per class of the training split "
                        "(fit holds out 10%% of those), still report the full held-out split")
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 each for parallel runs)")
    p.add_argument("--set", action="append", default=[], type=config_override, metavar="KEY=VALUE",
                   help="override a TrainConfig field of the recipe (ablations), as quicksketch train --set")
    p.add_argument("--out", default="/tmp/acc/run.pt")
    p.add_argument("--results", default="/tmp/acc/results.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from --out (same result as uninterrupted)")
    p.add_argument("--label", default="", help="name of the row in the table")
    p.add_argument("--table", action="store_true", help="print --results as a table and exit")
    p.add_argument("--evaluate", metavar="CKPT",
                   help="re-evaluate a checkpoint: EMA and raw weights, with and without flip")
    args = p.parse_args(argv)
    args.data = find_data(args.data, generate=False).path
    if args.table:
        print_table(Path(args.results))
        return {}
    if args.evaluate:
        return evaluate_checkpoint(args.evaluate, args.data, args.threads)

    torch.set_num_threads(args.threads)
    classes = None if args.classes == "all" else THE_TEN if args.classes == "ten" else args.classes.split(",")
    data = load_folder(args.data, classes=classes)
    overrides = dict(args.set)
    config = recipe_config(args.recipe, epochs=args.epochs, seed=args.seed,
                           num_threads=args.threads, **overrides)
    print(f"{len(data):,} drawings, {len(data.classes)} classes; {config}", flush=True)
    model = build_model(ModelConfig(), data.classes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    train_idx, val_idx = stratified_split(data.labels, config.val_fraction, config.seed)
    train_data = data
    if args.train_per_class:
        train_data = data.subset(per_class_subset(train_idx, data.labels, args.train_per_class, args.seed))
    t0 = time.perf_counter()
    result = fit(model, train_data, config, out=args.out, progress=False, resume=args.resume,
                 callbacks=[lambda r: print(json.dumps(r), flush=True)])
    wall = time.perf_counter() - t0

    images, labels = data.images[val_idx], data.labels[val_idx]
    name = f"{args.classes} ({len(data.classes)} classes)"
    if args.train_per_class:
        name += f", {args.train_per_class}/class subset"
    row = {
        "label": args.label or args.recipe, "data": name,
        "recipe": args.recipe, "epochs": args.epochs, "overrides": overrides, "seed": args.seed,
        "top1": held_out_accuracy(result.model, images, labels, flip=False),
        "top1_flip": held_out_accuracy(result.model, images, labels, flip=True),
        **raw_weights_accuracy(result, images, labels),
        "fit_val_accuracy": result.val_accuracy, "held_out": int(len(val_idx)),
        "train_seconds": sum(h["seconds"] for h in result.history), "wall_seconds": wall,
        "threads": args.threads, "machine": machine_name(config),
    }
    print(json.dumps(row), flush=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def machine_name(config) -> str:
    dtype = resolve_precision(config.precision, pick_device(config.device))
    precision = "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    return f"{platform.machine()} CPU ({os.cpu_count()} cores), {precision}, {config.num_threads} thread(s)"


def raw_weights_accuracy(result, images, labels) -> dict:
    """With EMA on, also the top-1 of the raw weights (EMA never changes training itself)."""
    state = (result.checkpoint.train_state or {}).get("model_state")
    if state is None:
        return {}
    model = result.checkpoint.build_model()
    model.load_state_dict(state)
    return {"top1_raw": held_out_accuracy(model, images, labels, flip=False),
            "top1_raw_flip": held_out_accuracy(model, images, labels, flip=True)}


def per_class_subset(indices: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded choice of at most ``n`` of ``indices`` per class."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(indices[labels[indices] == c])[:n] for c in np.unique(labels[indices])]
    return np.sort(np.concatenate(picked))


def evaluate_checkpoint(path: str, data_dir: str, threads: int) -> dict:
    """Held-out top-1 of a checkpoint's weights and, when it kept them, its raw (non-EMA) ones.

    EMA never changes the training trajectory and test-time flip is evaluation only, so
    these four numbers are an exact ablation of both from one run.
    """
    torch.set_num_threads(threads)
    ckpt = load_checkpoint(path)
    images, labels, subset = evaluation_set(ckpt, load_for_checkpoint(ckpt, data_dir))
    print(f"{len(labels):,} drawings: {subset}")
    weights = {"checkpoint": ckpt.model_state}
    if ckpt.train_state and "model_state" in ckpt.train_state:
        weights["raw (no EMA)"] = ckpt.train_state["model_state"]
    rows = {}
    for name, state in weights.items():
        model = ckpt.build_model()
        model.load_state_dict(state)
        for flip in (False, True):
            rows[f"{name}{' + flip' if flip else ''}"] = held_out_accuracy(model, images, labels, flip)
    for k, v in rows.items():
        print(f"{k:>24}: {v:.2%}")
    return rows


def print_table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("| run | data | recipe | epochs | overrides | top-1 | top-1 + flip | raw (no EMA) | raw + flip | train time |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        print(f"| {r['label']} | {r['data']} | {r['recipe']} | {r['epochs']} | {ov} | "
              f"{r['top1']:.2%} | {r['top1_flip']:.2%} | {_pct(r.get('top1_raw'))} | "
              f"{_pct(r.get('top1_raw_flip'))} | {r['train_seconds'] / 60:.1f} min "
              f"({r['threads']} thr) |")


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2%}"


if __name__ == "__main__":
    main(sys.argv[1:])
