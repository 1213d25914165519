"""Evaluation: accuracy, top-3, per-class precision/recall, confusion matrix, calibration.

``evaluate`` works on uint8 drawings and a model; ``load_for_checkpoint`` reads a
folder as the checkpoint saw it and ``evaluation_set`` picks which drawings to use:
exactly its recorded held-out split when given the folder it was trained on, every
drawing when given another folder.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import Checkpoint
from .data import BatchLoader, SketchData, load_folder, normalize_batch, open_class_file, rows_digest
from .device import autocast, dist_info
from .errors import DataError
from .files import atomic_write, shown_path
from .model import flip_averaged_proba
from .train_step import mean_metrics


@dataclass
class EvalReport:
    classes: list[str]
    n: int
    accuracy: float
    top3_accuracy: float
    ece: float
    precision: list[float]
    recall: list[float]
    support: list[int]
    confusion: list[list[int]]
    subset: str = ""
    data: str = ""  # the folder evaluated (absolute path)

    def to_dict(self) -> dict:
        return asdict(self)

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_write(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    def format_text(self) -> str:
        width = max(8, *(len(c) for c in self.classes))
        lines = [f"{self.n:,} drawings ({self.subset})" + (f" from {shown_path(self.data)}" if self.data else ""),
                 f"accuracy        {self.accuracy:.2%}",
                 f"top-3 accuracy  {self.top3_accuracy:.2%}",
                 f"calibration ECE {self.ece:.4f}", "",
                 f"{'class':<{width}}  precision  recall  support"]
        for c, p, r, s in zip(self.classes, self.precision, self.recall, self.support):
            lines.append(f"{c:<{width}}  {p:>9.2%}  {r:>6.2%}  {s:>7,}")
        lines += ["", "confusion matrix (rows: true, columns: predicted)", format_confusion(self)]
        return "\n".join(lines)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images_u8: np.ndarray, batch_size: int = 1024,
                  device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                  tta_flip: bool = False) -> np.ndarray:
    """Class probabilities ``(N, C)`` for uint8 drawings ``(N, 784)``.

    ``tta_flip`` averages the probabilities of each drawing and its mirror image.
    """
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(images_u8), batch_size):
        x = normalize_batch(torch.as_tensor(np.asarray(images_u8[start:start + batch_size]))).to(device)
        with autocast(device, dtype):
            p = flip_averaged_proba(model, x) if tta_flip else model(x).float().softmax(1)
        out.append(p.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: BatchLoader, dtype: torch.dtype | None,
                    flip: bool = False) -> dict:
    """Loss, accuracy and total over a loader (all ranks summed); ``flip`` averages the
    probabilities of each drawing and its mirror image (test-time augmentation)."""
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        with autocast(device, dtype):
            if flip:  # log-probabilities: cross-entropy is their NLL
                logits = flip_averaged_proba(model, x).clamp_min(1e-12).log()
            else:
                logits = model(x)
        sums[0] += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
    if dist_info()[1] > 1:
        dist.all_reduce(sums)
    loss, accuracy, total = mean_metrics(sums)
    return {"loss": loss, "accuracy": accuracy, "total": total}


def metrics_from_proba(proba: np.ndarray, labels: np.ndarray, classes: list[str],
                       subset: str = "", n_bins: int = 15) -> EvalReport:
    """All the numbers of an EvalReport from probabilities and true labels."""
    labels = np.asarray(labels)
    k = len(classes)
    pred = proba.argmax(1)
    top3 = np.argsort(-proba, axis=1)[:, :3]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(k), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(k), where=confusion.sum(1) > 0)
    return EvalReport(classes=list(classes), n=len(labels), accuracy=float((pred == labels).mean()),
                      top3_accuracy=float((top3 == labels[:, None]).any(1).mean()),
                      ece=expected_calibration_error(proba, labels, n_bins),
                      precision=precision.tolist(), recall=recall.tolist(),
                      support=confusion.sum(1).tolist(), confusion=confusion.tolist(), subset=subset)


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the |accuracy - confidence| gap, averaged over equal-width confidence bins."""
    conf = proba.max(1)
    correct = proba.argmax(1) == labels
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


class Subset(enum.StrEnum):
    """Which drawings an evaluation used: a description (a str) that code tests by identity.
    A mix (fewer or more drawings than trained on) is described by a plain str instead."""

    HELD_OUT = "held-out split recorded in the checkpoint"
    ALL = "all drawings (not the checkpoint's training data: their fingerprint differs)"
    # a checkpoint from before fingerprints, judged from its per-class counts
    HELD_OUT_UNVERIFIED = ("held-out split recorded in the checkpoint; could not verify: the checkpoint "
                           "records no data fingerprint (trained by an older QuickSketch), so this was "
                           "decided from the per-class counts")
    ALL_UNVERIFIED = ("all drawings (not the checkpoint's training data, judged from the per-class "
                      "counts: it records no data fingerprint, so this could not be verified)")


HELD_OUT = Subset.HELD_OUT


def held_out_only(subset) -> bool:
    """Whether ``subset`` is exactly the checkpoint's recorded held-out split."""
    return subset in (Subset.HELD_OUT, Subset.HELD_OUT_UNVERIFIED)


def trained_rows_match(ckpt: Checkpoint, data_dir: str | os.PathLike) -> list[bool] | None:
    """Per class of ``ckpt``, whether ``data_dir``'s file starts with exactly the drawings it
    was trained on (their SHA-256 in the checkpoint); None for a checkpoint without one."""
    digests, counts = ckpt.data.get("sha256"), ckpt.data.get("counts")
    if not digests or not counts or len(digests) != len(ckpt.classes):
        return None
    return [_file_starts_with(Path(data_dir) / f"{name}.npy", n, digest)
            for name, n, digest in zip(ckpt.classes, counts, digests)]


def _file_starts_with(path: Path, rows: int, digest: str) -> bool:
    try:
        arr = open_class_file(path)
    except DataError:
        return False
    return len(arr) >= rows and rows_digest(arr[:rows]) == digest


def load_for_checkpoint(ckpt: Checkpoint, data_dir: str | os.PathLike,
                        per_class: int | None = None) -> SketchData:
    """The checkpoint's classes from ``data_dir``; from a folder holding the drawings it was
    trained on (same fingerprint, wherever the folder is), as many drawings per class as it
    was trained with (so its recorded split applies), else every drawing."""
    if per_class is None:
        match = trained_rows_match(ckpt, data_dir)
        if match is None:  # an older checkpoint: its recorded folder, compared as written
            same = Path(ckpt.data.get("root") or "\0").resolve() == Path(data_dir).resolve()
        else:
            same = all(match)
        per_class = ckpt.data.get("per_class") if same else None
    return load_folder(data_dir, classes=ckpt.classes, per_class=per_class)


def evaluation_set(ckpt: Checkpoint, data: SketchData) -> tuple[np.ndarray, np.ndarray, Subset | str]:
    """The drawings to evaluate ``ckpt`` on, and which they are.

    Per class, when ``data`` starts with the drawings the checkpoint was trained on (their
    recorded SHA-256, :func:`data.rows_digest`): its recorded held-out drawings among them,
    plus any drawings after them (never seen in training); otherwise every drawing. The
    description is ``Subset.HELD_OUT`` when that is exactly the recorded split. A checkpoint
    without a fingerprint is judged from its per-class counts, and the description says so.
    """
    ckpt.check_classes(data.classes, str(data.root))
    labels = np.asarray(data.labels)
    if "val_indices" not in ckpt.split:
        return data.images, data.labels, "all drawings (the checkpoint records no held-out split)"
    trained = _trained_classes(ckpt, data)
    if trained is None:  # an older checkpoint
        if ckpt.data.get("counts") == data.counts:
            idx = ckpt.split["val_indices"].numpy()
            return data.images[idx], data.labels[idx], Subset.HELD_OUT_UNVERIFIED
        return data.images, data.labels, Subset.ALL_UNVERIFIED
    counts = ckpt.data["counts"]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    val = ckpt.split["val_indices"].numpy()
    val_class = np.searchsorted(offsets, val, side="right") - 1
    picks, held, unseen, other = [], 0, 0, 0
    for c in range(len(data.classes)):
        rows = np.flatnonzero(labels == c)
        if trained[c]:
            within = val[val_class == c] - offsets[c]
            within = within[within < len(rows)]
            beyond = np.arange(counts[c], len(rows))
            picks += [rows[within], rows[beyond]]
            held, unseen = held + len(within), unseen + len(beyond)
        else:
            picks.append(rows)
            other += len(rows)
    idx = np.sort(np.concatenate(picks))
    return data.images[idx], data.labels[idx], _describe(held, unseen, other, all(trained), val, len(idx))


def _trained_classes(ckpt: Checkpoint, data: SketchData) -> list[bool] | None:
    digests, counts = ckpt.data.get("sha256"), ckpt.data.get("counts")
    if not digests or not counts or len(digests) != len(data.classes):
        return None
    labels = np.asarray(data.labels)
    out = []
    for c, (name, n, digest) in enumerate(zip(data.classes, counts, digests)):
        rows = np.flatnonzero(labels == c)
        if len(rows) >= n:
            out.append(rows_digest(data.images[rows[:n]]) == digest)
        else:  # fewer drawings read than trained on: check the file they came from
            out.append(data.root is not None and _file_starts_with(Path(data.root) / f"{name}.npy", n, digest))
    return out


def _describe(held: int, unseen: int, other: int, all_trained: bool, val: np.ndarray, n: int) -> Subset | str:
    if all_trained and unseen == 0 and held == len(val):
        return Subset.HELD_OUT
    if held == unseen == 0:
        return Subset.ALL
    parts = [f"{held:,} of the {len(val):,} held-out drawings recorded in the checkpoint"]
    if unseen:
        parts.append(f"{unseen:,} drawings after the ones it was trained on")
    if other:
        parts.append(f"{other:,} drawings of classes whose training drawings are not in this folder")
    return " + ".join(parts) + "; none of them seen in training"


def evaluate(ckpt: Checkpoint, data: SketchData, batch_size: int = 1024,
             device: str | torch.device = "cpu", tta_flip: bool | None = None) -> EvalReport:
    """Evaluate a checkpoint on ``data`` (held-out split or all drawings, see above)."""
    images, labels, subset = evaluation_set(ckpt, data)
    if len(labels) == 0:
        raise DataError(f"{data.root}: no drawings left to evaluate ({subset}); "
                        "raise --per-class or evaluate on another folder")
    if tta_flip is None:
        tta_flip = ckpt.tta_flip
    proba = predict_proba(ckpt.build_model(device), images, batch_size, device, tta_flip=tta_flip)
    report = metrics_from_proba(proba, labels, ckpt.classes, subset)
    report.data = str(Path(data.root).resolve()) if data.root else ""
    return report


def format_confusion(report: EvalReport, width: int = 6) -> str:
    """The confusion matrix as text, classes abbreviated to ``width`` characters."""
    names = [c[:width] for c in report.classes]
    head = " " * (width + 1) + " ".join(f"{n:>{width}}" for n in names)
    rows = [f"{n:<{width}} " + " ".join(f"{v:>{width}}" for v in row)
            for n, row in zip(names, report.confusion)]
    return "\n".join([head, *rows])
