"""Measure ``teach_class`` on real drawings: the README "Teach it your own class" table.

Starting from the shipped pretrained model of the ten, every new class (default: 12 of the
44 other classes in data/quickdraw) is taught from K = 5, 10 and 20 drawings taken from its
training part (a seeded half of its drawings); then::

    recall   the new class's recall on its held-out drawings (the other half, up to --held-out)
    ten      the ten's accuracy on the pretrained model's recorded held-out split (4,000
             drawings, test-time flip as the model's recipe says), before -> after
    wall s   wall time of one teach_class call (--threads, default TeachConfig's: 1); on a shared, loaded
             machine this is inflated by the load: the load average is printed beside it
    CPU s    CPU time the call used, all its threads; with --threads 1 about the wall time on
             one idle core (with 2 threads on a loaded machine, threads waiting for each other
             count too)

and three classes are taught one after another. Run (about 4 minutes of CPU time; wall time
grows with the load of a shared machine)::

    .venv/bin/python scripts/teach_bench.py --data data/quickdraw

Teaching changes only the new output row, so the ten's accuracy after teaching is computed
from the frozen body's cached features (checked: every other weight is unchanged).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.categories import THE_TEN
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder, normalize_batch, open_class_file, select_class_files
from quicksketch_lib.evaluation import evaluation_set
from quicksketch_lib.model import HEAD_KEY
from quicksketch_lib.teach import TeachConfig, penultimate_features, teach_class

CLASSES = ["apple", "car", "eye", "fish", "guitar", "house plant", "moon", "rainbow", "smiley face",
           "snowman", "train", "umbrella"]
SEQUENCE = ["apple", "fish", "umbrella"]


def flip_features(model, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = normalize_batch(torch.from_numpy(np.ascontiguousarray(rows)))
    return penultimate_features(model, x), penultimate_features(model, x.flip(-1))


def predictions(feats, state, tta_flip: bool) -> np.ndarray:
    w, b = state[f"{HEAD_KEY}.weight"].float(), state[f"{HEAD_KEY}.bias"].float()
    proba = (feats[0] @ w.T + b).softmax(1)
    if tta_flip:
        proba = (proba + (feats[1] @ w.T + b).softmax(1)) / 2
    return proba.argmax(1).numpy()


def cached(folder, name: str, compute):
    if not folder:
        return compute()
    path = Path(folder) / f"{name}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = compute()
    torch.save(value, path)
    return value


def check_only_head_changed(before: dict, after: dict) -> None:
    for k, v in before.items():
        if not k.startswith(HEAD_KEY) and not torch.equal(v, after[k]):
            raise AssertionError(f"teach_class changed {k}; cached features would be wrong")


def class_split(path, held_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training part, held-out part) of one class file: a seeded half each."""
    arr = open_class_file(path)
    order = np.random.default_rng(seed).permutation(len(arr))
    half = len(arr) // 2
    return np.asarray(arr[np.sort(order[:half])]), np.asarray(arr[np.sort(order[half:][:held_out])])


def teach_timed(ckpt, name, rows, config):
    """The taught checkpoint, wall seconds, and CPU seconds (all threads of this process)."""
    t0, c0 = time.perf_counter(), time.process_time()
    taught = teach_class(ckpt, name, rows, config=config)
    return taught, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/quickdraw")
    p.add_argument("--classes", nargs="+", default=CLASSES)
    p.add_argument("--ks", nargs="+", type=int, default=[5, 10, 20])
    p.add_argument("--held-out", type=int, default=400, help="held-out drawings per new class")
    p.add_argument("--threads", type=int, default=TeachConfig.num_threads,
                   help="threads for teach_class (default %(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="TeachConfig overrides")
    p.add_argument("--no-sequence", action="store_true")
    p.add_argument("--cache", metavar="DIR", help="keep the frozen body's features of the held-out "
                                                  "drawings here between runs (they never change)")
    args = p.parse_args()
    overrides = {k: type(getattr(TeachConfig(), k))(v) for k, v in (s.split("=") for s in args.set)}
    config = TeachConfig(**{"num_threads": args.threads, **overrides})
    print(f"TeachConfig: {config}")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; threads {args.threads}")

    ckpt = load_checkpoint("pretrained")
    model = ckpt.build_model()
    ten = load_folder(args.data, classes=list(THE_TEN))
    images, labels, subset = evaluation_set(ckpt, ten)
    ten_feats = cached(args.cache, "ten", lambda: flip_features(model, images))
    before = (predictions(ten_feats, ckpt.model_state, ckpt.tta_flip) == labels).mean()
    print(f"the ten, {len(labels):,} drawings ({subset}): {before:.2%}")
    files = select_class_files(args.data)
    splits = {c: class_split(files[c], args.held_out) for c in args.classes}
    held = {c: cached(args.cache, c, lambda: flip_features(model, s[1])) for c, s in splits.items()}

    rows = []
    print(f"\n{'class':<12} {'K':>3} {'recall':>7} {'ten after':>9} {'change':>7} {'wall s':>7} {'CPU s':>7}")
    for name in args.classes:
        for k in args.ks:
            taught, seconds, cpu = teach_timed(ckpt, name, splits[name][0][:k], config)
            check_only_head_changed(ckpt.model_state, taught.model_state)
            recall = (predictions(held[name], taught.model_state, ckpt.tta_flip) == len(ckpt.classes)).mean()
            after = (predictions(ten_feats, taught.model_state, ckpt.tta_flip) == labels).mean()
            rows.append((name, k, recall, after, seconds, cpu))
            print(f"{name:<12} {k:>3} {recall:>7.1%} {after:>9.2%} {100 * (after - before):>+7.2f} "
                  f"{seconds:>7.2f} {cpu:>7.2f}  (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nmedian over {len(args.classes)} classes (the ten before: {before:.2%})")
    print(f"{'K':>3} {'recall':>7} {'ten after':>9} {'change':>7} {'wall s':>7} {'CPU s':>7}"
          f"  (load {os.getloadavg()[0]:.2f})")
    for k in args.ks:
        sel = [r for r in rows if r[1] == k]
        med = [statistics.median(r[i] for r in sel) for i in (2, 3, 4, 5)]
        print(f"{k:>3} {med[0]:>7.1%} {med[1]:>9.2%} {100 * (med[1] - before):>+7.2f} {med[2]:>7.2f} {med[3]:>7.2f}")
    if not args.no_sequence:
        teach_sequence(ckpt, splits, held, ten_feats, labels, before, config)


def teach_sequence(ckpt, splits, held, ten_feats, labels, before, config, k: int = 10) -> None:
    names = [c for c in SEQUENCE if c in splits]
    print(f"\n{' -> '.join(names)} taught one after another, K = {k}")
    current = ckpt
    for name in names:
        current, seconds, cpu = teach_timed(current, name, splits[name][0][:k], config)
        after = (predictions(ten_feats, current.model_state, ckpt.tta_flip) == labels).mean()
        recalls = ", ".join(
            f"{c} {(predictions(held[c], current.model_state, ckpt.tta_flip) == current.classes.index(c)).mean():.1%}"
            for c in current.classes[len(ckpt.classes):])
        print(f"+ {name:<10} ten {before:.2%} -> {after:.2%} ({100 * (after - before):+.2f}); "
              f"recall {recalls}; {seconds:.2f} s wall, {cpu:.2f} s CPU (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
