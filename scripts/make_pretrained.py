"""Package a trained checkpoint as QuickSketch's shipped ``pretrained`` model.

The shipped model was made with (README "Pretrained model", seed 0, any CUDA GPU or CPU)::

    quicksketch train --data data/quickdraw --classes airplane banana bicycle bird book cat \\
        clock dog flower house --recipe quicksketch --epochs 20 --seed 0 --out models/ten.pt
    python scripts/make_pretrained.py models/ten.pt

It drops the resume state (optimizer, scheduler, RNG), stores the weights as float16
(half the size; held-out accuracy unchanged, checked by tests/test_checkpoint.py), adds
``REPLAY_PER_CLASS`` seeded drawings per class from the TRAINING part of ``--data`` (never
the recorded held-out split) so that ``quicksketch teach`` needs no data folder, and
writes ``quicksketch_lib/pretrained/sketchcnn_ten.pt``. ``load_checkpoint`` casts the
weights back to float32. It records the fingerprint (SHA-256 per class) of the training
drawings, read from ``--data`` (default ``data/quickdraw``; the ten's files there are the
ones it was trained on), so ``quicksketch evaluate pretrained --data DIR`` recognises
them in any folder and uses the recorded held-out split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from quicksketch_lib.checkpoint import load_checkpoint, save_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.locations import PRETRAINED_PATH
from quicksketch_lib.teach import attach_replay, replay_from_training_data

REPLAY_PER_CLASS = 50  # drawings per class kept for teach_class's replay (~0.4 MB)


def training_digests(ckpt, data) -> list[str]:
    """The SHA-256 of each class's training drawings (data.rows_digest), from ``data`` read
    as the checkpoint saw it: a checkpoint trained before fingerprints were recorded gets
    them from the same drawings (checked by their counts)."""
    if ckpt.data.get("sha256"):
        if ckpt.data["sha256"] != data.digests:
            raise SystemExit(f"error: {data.root} does not hold the drawings the checkpoint was trained on")
    elif data.counts != ckpt.data.get("counts"):
        raise SystemExit(f"error: {data.root} has {data.counts} drawings per class; the checkpoint was "
                         f"trained on {ckpt.data.get('counts')}")
    return data.digests


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="the checkpoint written by the training command above")
    p.add_argument("--out", default=str(PRETRAINED_PATH), help=f"where to write (default {PRETRAINED_PATH})")
    p.add_argument("--data", default="data/quickdraw",
                   help="the folder it was trained on (default data/quickdraw): for the replay drawings "
                        "and the fingerprint of its training drawings")
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = load_folder(args.data, classes=ckpt.classes, per_class=ckpt.data.get("per_class"))
    attach_replay(ckpt, replay_from_training_data(ckpt, data, REPLAY_PER_CLASS),
                  f"{REPLAY_PER_CLASS} per class, seed 0, from the training part of {args.data}")
    ckpt.train_state = None
    ckpt.model_state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.model_state.items()}
    ckpt.data = {**ckpt.data, "root": "data/quickdraw",  # where the README's download puts the ten
                 "sha256": training_digests(ckpt, data)}
    path = save_checkpoint(ckpt, args.out)
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB, "
          f"held-out accuracy at training {ckpt.metrics.get('val_accuracy', float('nan')):.2%})")


if __name__ == "__main__":
    main()
