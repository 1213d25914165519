"""Which layers should teaching fine-tune? Compare, at K = 10, over the bench's classes:

    row         teach_class as shipped: only the new output row is trained
    head        then the whole output layer (old rows too) fine-tuned on the same examples + replay
    classifier  then the last two layers (Linear 4096->256 and the output layer) fine-tuned
    no-replay   the new row trained on the examples alone (no replayed old drawings)
    no-imprint  the new row started from zeros instead of imprinted
    no-calib    no bias calibration after fine-tuning
    classifier+cal  classifier, then the new row's bias calibrated again as teach_class does
                (margin and rates of TeachConfig) on the replay drawings' features from the tuned
                layer: can tuning the body's last layer lift the classes the frozen features
                cannot reach (frog, horse, moon: issue 20) while the cost stays under 1.5 points?

Each "then" variant continues from the shipped result with ``--steps`` Adam steps (lr
``--lr``) on the body's cached 4096-d features of the augmented examples and the replay
drawings, classes balanced. Run::

    .venv/bin/python scripts/teach_ablation.py --data data/quickdraw
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder, normalize_batch, open_class_file, select_class_files
from quicksketch_lib.evaluation import evaluation_set
from quicksketch_lib.teach import TeachConfig, augmented_copies, calibrate_bias, teach_class

from teach_bench import class_split, cpu_name

# six of the 44 classes the ten lack, the bench's hardest among them (README "What to fine-tune")
CLASSES = ["apple", "car", "eye", "moon", "smiley face", "train"]


@torch.no_grad()
def pooled(model, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(x[i:i + 512]).flatten(1) for i in range(0, len(x), 512)])


def accuracy(model, feats, labels) -> float:
    with torch.no_grad():
        proba = (model.classifier(feats[0]).softmax(1) + model.classifier(feats[1]).softmax(1)) / 2
    return float((proba.argmax(1).numpy() == labels).mean())


def finetune(model, feats, labels, which: str, steps: int, lr: float):
    model = copy.deepcopy(model)
    params = list(model.head.parameters())
    if which == "classifier":  # also the 4096 -> 256 layer before the head
        params += list(model.classifier[1].parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    weight = (1.0 / torch.bincount(labels).float())[labels]
    opt = torch.optim.Adam(params, lr=lr)
    model.classifier.train()
    for _ in range(steps):
        loss = (F.cross_entropy(model.classifier(feats), labels, reduction="none") * weight).sum() / weight.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def recalibrate(model, replay_feats: torch.Tensor, replay_labels: torch.Tensor, config: TeachConfig):
    """Calibrate the new (last) row's bias again, as teach_class does, on features from the tuned layers."""
    pen = model.classifier[:-1](replay_feats)
    weight, bias = model.head.weight, model.head.bias
    bias[-1] = calibrate_bias(weight[-1], bias[-1], pen, replay_labels, weight[:-1], bias[:-1],
                              config.false_positive_rate, config.per_class_rate, config.margin)
    return model


def variant_config(name: str) -> TeachConfig:
    base = TeachConfig()
    if name == "no-replay":
        return TeachConfig(replay_per_class=0, false_positive_rate=1.0, per_class_rate=1.0)
    if name == "no-calib":
        return TeachConfig(false_positive_rate=1.0, per_class_rate=1.0)
    if name == "no-imprint":
        return TeachConfig(imprint=False)
    return base


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/quickdraw")
    p.add_argument("--classes", nargs="+", default=CLASSES)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--variants", nargs="+", default=["row", "head", "classifier", "no-replay", "no-imprint",
                                                    "no-calib"])
    p.add_argument("--json", help="also write every result here (README table: notebooks/runs/teach_ablation.json)")
    args = p.parse_args()
    torch.set_num_threads(2)
    print(f"load {os.getloadavg()[0]:.2f}")
    ckpt = load_checkpoint("pretrained")
    model = ckpt.build_model()
    ten = load_folder(args.data, classes=list(THE_TEN))
    images, labels, _ = evaluation_set(ckpt, ten)
    x = normalize_batch(torch.from_numpy(images))
    ten_feats = (pooled(model, x), pooled(model, x.flip(-1)))
    before = accuracy(model, ten_feats, labels)
    replay = ckpt.data["replay"]["drawings"]
    per_class = TeachConfig().replay_per_class  # the shipped method's replay, for the "+" variants too
    rx = normalize_batch(torch.cat([replay[c][:per_class] for c in ckpt.classes]))
    ry = torch.arange(10).repeat_interleave(per_class)
    replay_feats = pooled(model, rx)
    files = select_class_files(args.data)
    rows_out, load_before = [], os.getloadavg()
    for name in args.classes:
        arr = open_class_file(files[name])
        examples, held_rows = class_split(len(arr), args.k, 400, seed=0)  # the bench's split, 400 rows
        held = np.asarray(arr[held_rows])
        hx = normalize_batch(torch.from_numpy(held))
        held_feats = (pooled(model, hx), pooled(model, hx.flip(-1)))
        rows = np.asarray(arr[np.sort(examples)])
        new_feats = pooled(model, augmented_copies(rows, 160, 1.0, torch.Generator().manual_seed(0)))
        feats = torch.cat([replay_feats, new_feats])
        y = torch.cat([ry, torch.full((len(new_feats),), 10)])
        for v in args.variants:
            t0 = time.perf_counter()
            taught = teach_class(ckpt, name, rows, config=variant_config(v))
            m = taught.build_model()
            if v in ("head", "classifier", "classifier+cal"):
                m = finetune(m, feats, y, v.removesuffix("+cal"), args.steps, args.lr)
            if v == "classifier+cal":
                m = recalibrate(m, replay_feats, ry, TeachConfig())
            seconds = time.perf_counter() - t0
            recall = accuracy(m, held_feats, np.full(len(held), 10))
            after = accuracy(m, ten_feats, labels)
            rows_out.append({"class": name, "variant": v, "recall": recall, "change": 100 * (after - before),
                             "seconds": seconds})
            print(f"{name:<12} {v:<11} recall {recall:6.1%}  ten {100 * (after - before):+6.2f}  {seconds:5.1f} s",
                  flush=True)
    print(f"\nmedian over {len(args.classes)} classes, K = {args.k} (the ten before {before:.2%}); "
          f"load {os.getloadavg()[0]:.2f}")
    for v in args.variants:
        med = {key: statistics.median(r[key] for r in rows_out if r["variant"] == v)
               for key in ("recall", "change", "seconds")}
        print(f"{v:<11} recall {med['recall']:6.1%}  ten {med['change']:+6.2f}  {med['seconds']:5.1f} s")
    if args.json:
        record = {"command": shlex.join(["python", "scripts/teach_ablation.py", *sys.argv[1:]]),
                  "config": TeachConfig().to_dict(), "k": args.k, "steps": args.steps, "lr": args.lr,
                  "the_ten_before": before, "results": rows_out,
                  "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                              "torch": torch.__version__, "load_before": load_before, "load_after": os.getloadavg()}}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
