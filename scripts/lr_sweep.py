"""Learning-rate range test (fastai's ``lr_find``) for SketchCNN on the ten; notebook 03 plots it.

From one fresh model, train one batch at each learning rate of an exponentially increasing
series (``--start`` to ``--end`` over ``--steps`` batches) and record the loss after every
batch; stop once the smoothed loss is four times its lowest value (the run has diverged).
Everything else is the ``learner`` recipe's: its drawings (2,000 per class of the ten, the
training part of its seeded split), AdamW with its weight decay, label smoothing and
augmentation, batch 256, float32, seed 0::

    nice -n 5 python scripts/lr_sweep.py --data ../shared/data/quickdraw --threads 2 \\
        --out notebooks/runs/lr_sweep.json

Writes the learning rate, loss and smoothed loss of every batch, the settings, the CPU, the
thread count, the load average before and after, and the wall-clock and CPU seconds it took (the command, CPU and
load are also logged in notebooks/runs/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
from torch import nn

from quicksketch_lib.augment import seeded_augmenter
from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.data import BatchLoader, load_folder, stratified_split
from quicksketch_lib.device import cpu_name, set_seed
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.recipes import recipe_config, recipe_per_class
from quicksketch_lib.train_step import build_optimizer

SMOOTHING = 0.98  # fastai's: an exponential moving average of the loss, bias-corrected
DIVERGED = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum


def lr_range_test(model: nn.Module, loader: BatchLoader, config, start: float, end: float,
                  steps: int) -> list[dict]:
    """One batch per learning rate, ``start * (end / start) ** (i / (steps - 1))``; a record
    (lr, loss, smoothed loss) per batch, until ``steps`` or divergence."""
    optimizer = build_optimizer(model, config)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    augment = seeded_augmenter(config.augment, config.seed, config.partial)
    records, average, best, batches, epoch = [], 0.0, math.inf, iter(()), 0
    model.train()
    for i in range(steps):
        x_y = next(batches, None)
        if x_y is None:  # a new epoch of the training part
            loader.set_epoch(epoch)
            batches, epoch = iter(loader), epoch + 1
            x_y = next(batches)
        x, y = x_y
        lr = start * (end / start) ** (i / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = criterion(model(augment(x, i)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        average = SMOOTHING * average + (1 - SMOOTHING) * loss.item()
        smoothed = average / (1 - SMOOTHING ** (i + 1))
        records.append({"step": i, "lr": lr, "loss": loss.item(), "smoothed_loss": smoothed})
        best = min(best, smoothed)
        print(f"step {i:>3}  lr {lr:.2e}  loss {loss.item():.4f}  smoothed {smoothed:.4f}", flush=True)
        if not math.isfinite(smoothed) or smoothed > DIVERGED * best:
            break
    return records


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a folder with the ten classes' .npy files")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--start", type=float, default=1e-5, help="first learning rate (default 1e-5)")
    p.add_argument("--end", type=float, default=1.0, help="last learning rate (default 1)")
    p.add_argument("--steps", type=int, default=100, help="batches, at most (default 100, as fastai)")
    p.add_argument("--out", required=True, help="where to write the JSON record")
    args = p.parse_args()
    if args.steps < 2 or not 0 < args.start < args.end:
        print("lr_sweep: error: need --steps >= 2 and 0 < --start < --end", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    load_before, t0, cpu0 = os.getloadavg(), time.perf_counter(), time.process_time()
    config = recipe_config("learner", precision="fp32", device="cpu")
    data = load_folder(args.data, classes=THE_TEN, per_class=recipe_per_class("learner"))
    train_idx, _ = stratified_split(data.labels, config.val_fraction, config.seed)  # fit's split
    loader = BatchLoader(data.images[train_idx], data.labels[train_idx], config.batch_size,
                         shuffle=True, seed=config.seed, channels_last=True)
    set_seed(config.seed)
    model = SketchCNN(ModelConfig(num_classes=len(data.classes))).to(memory_format=torch.channels_last)
    records = lr_range_test(model, loader, config, args.start, args.end, args.steps)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    result = {
        "what": "learning-rate range test (fastai lr_find): one batch per learning rate, loss after it",
        "command": "python " + " ".join(sys.argv),
        "recipe": "learner", "optimizer": config.optimizer, "weight_decay": config.weight_decay,
        "label_smoothing": config.label_smoothing, "augment": config.augment,
        "batch_size": config.batch_size, "per_class": recipe_per_class("learner"),
        "training_drawings": len(train_idx), "seed": config.seed, "precision": "fp32",
        "start_lr": args.start, "end_lr": args.end, "max_steps": args.steps,
        "smoothing": SMOOTHING, "stop_at": f"smoothed loss > {DIVERGED:g} x its minimum",
        "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()], "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),  # CPU time of this process: what the load does not inflate
        "records": records,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{len(records)} steps in {seconds:.0f} s ({cpu_seconds:.0f} CPU-seconds) on {cpu_name()}, "
          f"{args.threads} threads; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
