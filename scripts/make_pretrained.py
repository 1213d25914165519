"""Package a trained checkpoint as one of QuickSketch's shipped models (``pretrained``, ``pretrained-54``).

The shipped models were made with (README "Pretrained model", seed 0, any CUDA GPU or CPU)::

    quicksketch train --data data/quickdraw --classes airplane banana bicycle bird book cat \\
        clock dog flower house --recipe quicksketch --epochs 20 --seed 0 --out models/ten.pt
    python scripts/make_pretrained.py models/ten.pt --data data/quickdraw --max-mb 8       # -> sketchcnn_ten.pt

    quicksketch train --data data/quickdraw --recipe game --epochs 15 --seed 0 --out models/sketchcnn_54.pt
    python scripts/make_pretrained.py models/sketchcnn_54.pt --name pretrained-54 --data data/quickdraw \\
        --replay-per-class 25                                                             # -> sketchcnn_54.pt

It drops the resume state (optimizer, scheduler, RNG), stores the weights as float16 (half
the size; held-out accuracy unchanged, checked by tests/test_checkpoint.py; ``load_checkpoint``
casts them back to float32), and records what evaluation needs to recognise the training
drawings anywhere, read from ``--data`` (the folder it was trained on; its files must hold
exactly the drawings it was trained on, checked by their SHA-256):

* the SHA-256 of each class's drawings (``data["sha256"]``: the recorded held-out split is used
  on that folder), and
* a 32-bit fingerprint of every TRAINING drawing (``data["train_rows"]``, ``data.RowFingerprints``:
  4 bytes a drawing), so a copy or a subset of them in any folder is left out of an evaluation.

It adds ``--replay-per-class`` seeded drawings per class from the TRAINING part of the folder
(never the recorded held-out split) so that ``quicksketch teach`` needs no data folder (400, as
many as ``TeachConfig`` fits and calibrates on: README "Teach it your own class"); a
checkpoint that already carries replay drawings (re-packaging a shipped model) keeps them
unchanged unless ``--new-replay`` is given. The file must fit in ``--max-mb`` (default 6 MB), or nothing is written and the
sizes of its parts are printed. Re-packaging the shipped model of the ten changes nothing
but the new records::

    python scripts/make_pretrained.py pretrained --data DIR_OF_THE_TEN      # DIR: the ten class files

The ten's 400 replay drawings per class were added that way, to the model that carried 50::

    python scripts/make_pretrained.py pretrained --data data/quickdraw --new-replay --max-mb 8
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from quicksketch_lib.data import RowFingerprints, SketchData, load_folder
from quicksketch_lib.locations import PRETRAINED, PRETRAINED_MODELS
from quicksketch_lib.teach import TeachConfig, attach_replay, replay_from_training_data

REPLAY_PER_CLASS = TeachConfig().pool_per_class  # replay drawings per class (400; the ten: 3.1 MB)
MAX_MB = 6.0  # the most a shipped model may weigh (issue 19: at most 6 MB)


def check_training_data(ckpt: Checkpoint, data: SketchData) -> None:
    """Stop unless ``data`` holds exactly the drawings ``ckpt`` was trained on: the same
    SHA-256 per class when recorded, else (a checkpoint from before fingerprints) the same
    per-class counts."""
    if ckpt.data.get("sha256"):
        if ckpt.data["sha256"] != data.digests:
            differ = [c for c, a, b in zip(data.classes, ckpt.data["sha256"], data.digests) if a != b]
            raise SystemExit(f"error: {data.root} does not hold the drawings the checkpoint was trained on "
                             f"(class files that differ: {', '.join(differ)})")
    elif data.counts != ckpt.data.get("counts"):
        raise SystemExit(f"error: {data.root} has {data.counts} drawings per class; the checkpoint was "
                         f"trained on {ckpt.data.get('counts')}")


def training_fingerprints(ckpt: Checkpoint, data: SketchData) -> RowFingerprints:
    """The fingerprints of the drawings ``ckpt`` trained on: every row of ``data`` (read as it
    saw them) outside its recorded held-out split. One already recorded must agree."""
    train_idx = np.setdiff1d(np.arange(len(data)), ckpt.split["val_indices"].numpy())
    rows = RowFingerprints.of(data.images, train_idx)
    recorded = ckpt.data.get("train_rows")
    if recorded is not None and not np.array_equal(RowFingerprints.from_dict(recorded).values, rows.values):
        raise SystemExit(f"error: the training-drawing fingerprints recorded in the checkpoint differ from "
                         f"those of {data.root}'s training rows")
    return rows


def drop_resume_state_and_halve(ckpt: Checkpoint) -> None:
    """In place: no optimizer, scheduler or RNG state, float weights as float16 (the shipped form's
    weights; ``load_checkpoint`` casts them back to float32)."""
    ckpt.train_state = None
    ckpt.model_state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.model_state.items()}


def package(ckpt: Checkpoint, data: SketchData, replay_per_class: int,
            new_replay: bool = False) -> tuple[Checkpoint, str]:
    """The shipped form of ``ckpt`` and what was done to its replay drawings."""
    check_training_data(ckpt, data)
    rows = training_fingerprints(ckpt, data)
    had = bool(ckpt.data.get("replay"))
    if had and not new_replay:
        kept = "kept the replay drawings it carries"
    else:
        attach_replay(ckpt, replay_from_training_data(ckpt, data, replay_per_class),
                      f"{replay_per_class} per class, seed 0, from the training part of data/quickdraw")
        kept = f"{'replaced its replay drawings with' if had else 'added'} {replay_per_class} replay drawings per class"
    drop_resume_state_and_halve(ckpt)
    ckpt.data = {**ckpt.data, "root": "data/quickdraw",  # where the README's download puts the data
                 "sha256": data.digests, "train_rows": rows.to_dict()}
    return ckpt, kept


def sizes(ckpt: Checkpoint) -> dict[str, int]:
    """Bytes of the serialised checkpoint and of its three big parts."""
    nbytes = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    buffer = io.BytesIO()
    torch.save(ckpt.to_dict(), buffer)
    return {"file": buffer.getbuffer().nbytes, "weights": nbytes(ckpt.model_state.values()),
            "replay": nbytes(ckpt.data.get("replay", {}).get("drawings", {}).values()),
            "fingerprints": nbytes([ckpt.data["train_rows"]["values"]])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="the checkpoint written by the training command above (or a shipped "
                                      "model's name, to re-package it)")
    p.add_argument("--name", default=PRETRAINED, choices=list(PRETRAINED_MODELS),
                   help=f"which shipped model it becomes (default {PRETRAINED}); sets the default --out")
    p.add_argument("--out", help="where to write (default: the shipped model's file in the package)")
    p.add_argument("--data", default="data/quickdraw",
                   help="the folder it was trained on (default data/quickdraw): for the fingerprints of "
                        "its training drawings and the replay drawings; only the checkpoint's classes are read")
    p.add_argument("--replay-per-class", type=int, default=REPLAY_PER_CLASS,
                   help=f"replay drawings per class to add (default {REPLAY_PER_CLASS}; 784 bytes each)")
    p.add_argument("--new-replay", action="store_true",
                   help="replace the replay drawings the checkpoint carries (default: keep them)")
    p.add_argument("--max-mb", type=float, default=MAX_MB, help=f"refuse a file above this size (default {MAX_MB:g} MB)")
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = load_folder(args.data, classes=ckpt.trained_on, per_class=ckpt.data.get("per_class"))
    ckpt, kept = package(ckpt, data, args.replay_per_class, args.new_replay)
    size = sizes(ckpt)
    parts = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in size.items() if k != "file")
    if size["file"] > args.max_mb * 1e6:
        raise SystemExit(f"error: the packaged model would be {size['file'] / 1e6:.2f} MB ({parts}), over "
                         f"--max-mb {args.max_mb:g}; lower --replay-per-class. Nothing was written.")
    out = Path(args.out) if args.out else PRETRAINED_MODELS[args.name]
    save_checkpoint(ckpt, out)
    rows = RowFingerprints.from_dict(ckpt.data["train_rows"])
    accuracy = ckpt.metrics.get("val_accuracy")
    print(f"wrote {out} ({size['file'] / 1e6:.2f} MB: {parts}; {kept}); {len(rows):,} training drawings "
          f"fingerprinted (a new drawing matches one by chance with probability {rows.false_match_rate():.1e}); "
          f"held-out accuracy at training {'not measured' if accuracy is None else f'{accuracy:.2%}'}")


if __name__ == "__main__":
    main()
