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
from .data import BatchLoader, SketchData, load_folder, normalize_batch
from .device import autocast, dist_info
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

    def to_dict(self) -> dict:
        return asdict(self)

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    def format_text(self) -> str:
        width = max(8, *(len(c) for c in self.classes))
        lines = [f"{self.n:,} drawings ({self.subset})",
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
    """Which drawings an evaluation used: a description (a str) that code tests by identity."""

    HELD_OUT = "held-out split recorded in the checkpoint"
    ALL = "all drawings (not the checkpoint's training data)"


def load_for_checkpoint(ckpt: Checkpoint, data_dir: str | os.PathLike,
                        per_class: int | None = None) -> SketchData:
    """The checkpoint's classes from ``data_dir``; from the folder it was trained on, as
    many drawings per class as it was trained with (so its recorded split applies)."""
    same_root = Path(ckpt.data.get("root") or "\0").resolve() == Path(data_dir).resolve()
    per_class = per_class or (ckpt.data.get("per_class") if same_root else None)
    return load_folder(data_dir, classes=ckpt.classes, per_class=per_class)


def evaluation_set(ckpt: Checkpoint, data: SketchData) -> tuple[np.ndarray, np.ndarray, Subset]:
    """The drawings to evaluate ``ckpt`` on: its held-out split if ``data`` is its training
    data (``Subset.HELD_OUT``), else every drawing (``Subset.ALL``)."""
    ckpt.check_classes(data.classes, str(data.root))
    same = ckpt.data.get("counts") == data.counts and "val_indices" in ckpt.split
    if same:
        idx = ckpt.split["val_indices"].numpy()
        return data.images[idx], data.labels[idx], Subset.HELD_OUT
    return data.images, data.labels, Subset.ALL


def evaluate(ckpt: Checkpoint, data: SketchData, batch_size: int = 1024,
             device: str | torch.device = "cpu", tta_flip: bool | None = None) -> EvalReport:
    """Evaluate a checkpoint on ``data`` (held-out split or all drawings, see above)."""
    images, labels, subset = evaluation_set(ckpt, data)
    if tta_flip is None:
        tta_flip = ckpt.tta_flip
    proba = predict_proba(ckpt.build_model(device), images, batch_size, device, tta_flip=tta_flip)
    return metrics_from_proba(proba, labels, ckpt.classes, subset)


def format_confusion(report: EvalReport, width: int = 6) -> str:
    """The confusion matrix as text, classes abbreviated to ``width`` characters."""
    names = [c[:width] for c in report.classes]
    head = " " * (width + 1) + " ".join(f"{n:>{width}}" for n in names)
    rows = [f"{n:<{width}} " + " ".join(f"{v:>{width}}" for v in row)
            for n, row in zip(names, report.confusion)]
    return "\n".join([head, *rows])
