"""Evaluation: accuracy, top-3, per-class precision/recall, confusion matrix, calibration.

``evaluate`` works on uint8 drawings and a model. Classes are matched by NAME: a folder
may hold the model's classes in any order, or only some of them (a drawing is still
right only when the model's top-1 over all its outputs is its class); a class the model
does not know is refused. ``load_for_checkpoint`` reads a folder as the checkpoint saw it
and ``select_unseen`` picks which drawings to use: exactly its recorded held-out split
when given the folder it was trained on, and everywhere else every drawing it was not
trained on -- each drawing is looked up among the fingerprints of its training drawings
(``data.RowFingerprints``), so a copy or a subset of them is left out, and counted.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import Checkpoint
from .data import (BatchLoader, RowFingerprints, SketchData, list_class_files, load_folder, normalize_batch,
                   open_class_file, rows_digest)
from .device import autocast, dist_info
from .errors import DataError
from .files import atomic_write, shown_path
from .model import flip_averaged_proba
from .train_step import mean_metrics


@dataclass
class EvalReport:
    """What ``evaluate`` measured. ``classes``: the classes evaluated (the per-class table and
    the confusion matrix's rows and columns); ``not_in_data``: the model's other classes,
    still answered (``other``: per evaluated class, drawings answered with one of them);
    ``excluded``: drawings left out because the model was trained on them (``excluded_why``)."""

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
    data: str = ""  # the folder evaluated, as files.shown_path shows it (no machine path in a saved JSON)
    not_in_data: list[str] = field(default_factory=list)
    other: list[int] = field(default_factory=list)
    excluded: int = 0
    excluded_why: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_write(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    def format_text(self) -> str:
        width = max(8, *(len(c) for c in self.classes))
        lines = [f"{self.n:,} drawings ({self.subset})" + (f" from {shown_path(self.data)}" if self.data else "")]
        if self.excluded:
            lines.append(f"left out {self.excluded:,} drawings the model was trained on: {self.excluded_why}")
        if self.not_in_data:
            lines.append(f"not in the data: {len(self.not_in_data)} of the model's {len(self.not_in_data) + len(self.classes)} "
                         f"classes ({', '.join(self.not_in_data)}); still answered, so counted as wrong when picked")
        lines += [f"accuracy        {self.accuracy:.2%}",
                  f"top-3 accuracy  {self.top3_accuracy:.2%}",
                  f"calibration ECE {self.ece:.4f}", "",
                  f"{'class':<{width}}  precision  recall  support"]
        for c, p, r, s in zip(self.classes, self.precision, self.recall, self.support):
            lines.append(f"{c:<{width}}  {p:>9.2%}  {r:>6.2%}  {s:>7,}")
        lines += ["", "confusion matrix (rows: true, columns: predicted)", format_confusion(self)]
        return "\n".join(lines)


@torch.no_grad()
def class_probabilities(model: torch.nn.Module, images_u8: np.ndarray, batch_size: int = 1024,
                        device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                        tta_flip: bool = False) -> np.ndarray:
    """Class probabilities ``(N, C)`` of a torch model for uint8 drawings ``(N, 784)``, in batches
    on ``device`` (what ``evaluate`` scores; ``Predictor.predict_proba`` is the serving side's).

    ``tta_flip`` averages the probabilities of each drawing and its mirror image. The model is
    switched to channels_last (in place), as training runs it: on the 2-core AVX2 CPU 4,000 held-out
    drawings took 18 s instead of 26 s, with the same answers (probabilities within 1e-6).
    """
    model.eval().to(memory_format=torch.channels_last)
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
    probabilities of each drawing and its mirror image (test-time augmentation). An empty
    loader gives loss and accuracy None: not measured."""
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
    if total == 0:  # nothing held out: not measured (never a 0 % that was not measured)
        return {"loss": None, "accuracy": None, "total": 0}
    return {"loss": loss, "accuracy": accuracy, "total": total}


def metrics_from_proba(proba: np.ndarray, labels: np.ndarray, classes: list[str],
                       subset: str = "", n_bins: int = 15, evaluated: list[int] | None = None) -> EvalReport:
    """All the numbers of an EvalReport from probabilities ``(N, len(classes))`` and true
    labels. Accuracy, top-3 and calibration are over all of ``classes``; with ``evaluated``
    (indices into ``classes``) the per-class table and confusion matrix keep those classes,
    and the others are listed as ``not_in_data`` (their column summed in ``other``)."""
    report = _all_metrics(proba, labels, classes, subset, n_bins)
    return report if evaluated is None else _restricted(report, list(evaluated))


def _restricted(report: EvalReport, rows: list[int]) -> EvalReport:
    cm = np.asarray(report.confusion)
    kept = cm[np.ix_(rows, rows)]
    pick = lambda values: [values[i] for i in rows]  # noqa: E731
    return replace(report, classes=pick(report.classes), precision=pick(report.precision),
                   recall=pick(report.recall), support=pick(report.support), confusion=kept.tolist(),
                   not_in_data=[c for i, c in enumerate(report.classes) if i not in rows],
                   other=(cm[rows].sum(1) - kept.sum(1)).tolist())


def _all_metrics(proba: np.ndarray, labels: np.ndarray, classes: list[str], subset: str, n_bins: int) -> EvalReport:
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
    ALL = "all drawings (none of them is one the model was trained on: checked drawing by drawing)"
    # a checkpoint from before fingerprints, judged from its per-class counts
    HELD_OUT_UNVERIFIED = ("held-out split recorded in the checkpoint; could not verify: the checkpoint "
                           "records no data fingerprint (trained by an older QuickSketch), so this was "
                           "decided from the per-class counts")
    ALL_UNVERIFIED = ("all drawings (not the checkpoint's training data, judged from the per-class "
                      "counts: it records no data fingerprint, so this could not be verified)")


HELD_OUT = Subset.HELD_OUT
# said of a checkpoint with per-class but no per-drawing fingerprints (trained before them)
PER_FILE_ONLY = ("; checked per class file only: the checkpoint records no per-drawing fingerprints (made "
                 "before them), so copies of its training drawings in other files are not recognised")


def held_out_only(subset) -> bool:
    """Whether ``subset`` is exactly the checkpoint's recorded held-out split."""
    return subset in (Subset.HELD_OUT, Subset.HELD_OUT_UNVERIFIED)


# --------------------------------------------------------------------------- classes by name
def model_labels(ckpt: Checkpoint, classes, where="the data", hint: str = "") -> np.ndarray:
    """The model's output index of each class name in ``classes`` (matched by name, so the
    order of a folder's files never matters); a class the model does not know is a
    :class:`DataError`, never skipped or guessed."""
    unknown = [c for c in classes if c not in ckpt.classes]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        known = ", ".join(ckpt.classes[:12]) + (" ..." if len(ckpt.classes) > 12 else "")
        raise DataError(f"{where}: class(es) {shown} not known to the model {ckpt.path or ''} (it knows "
                        f"{len(ckpt.classes)}: {known}){hint or '; evaluate it on drawings of its own classes'}")
    index = {c: i for i, c in enumerate(ckpt.classes)}
    return np.array([index[c] for c in classes], dtype=np.int64)


def classes_to_evaluate(ckpt: Checkpoint, data_dir: str | os.PathLike, classes=None) -> list[str]:
    """What ``quicksketch evaluate`` uses: ``classes`` when given, else every class file of
    ``data_dir``. Each must be a class the model knows (a subset of them is fine): a class
    file of another class is refused in one line, not skipped in silence."""
    chosen = list(classes) if classes else list(list_class_files(data_dir))
    model_labels(ckpt, chosen, data_dir, "" if classes else
                 "; pick the classes to evaluate with --classes NAME..., or use a folder of the model's classes")
    return chosen


# --------------------------------------------------------------------------- which drawings were trained on
def trained_fingerprints(ckpt: Checkpoint) -> tuple[RowFingerprints, bool]:
    """The fingerprints (:class:`data.RowFingerprints`) of the drawings ``ckpt`` learned from:
    its recorded training rows (``data["train_rows"]``, written by ``fit``), its taught
    classes' examples and the replay drawings it carries (both training rows too). The
    second value says whether the training rows were recorded (False: a checkpoint from
    before per-drawing fingerprints; only the taught and replay drawings are known)."""
    known = RowFingerprints(np.zeros(0, np.uint32))
    for t in ckpt.data.get("taught", []):
        known = known.union(RowFingerprints.of(np.asarray(t["drawings"])))
    for rows in (ckpt.data.get("replay") or {}).get("drawings", {}).values():
        known = known.union(RowFingerprints.of(np.asarray(rows)))
    recorded = ckpt.data.get("train_rows")
    if recorded is not None:
        known = known.union(RowFingerprints.from_dict(recorded))
    return known, recorded is not None


def trained_rows_match(ckpt: Checkpoint, data_dir: str | os.PathLike, classes=None) -> list[bool] | None:
    """Per class the checkpoint was trained on (of ``classes`` when given), whether
    ``data_dir``'s file starts with exactly the drawings it was trained on (their SHA-256 in
    the checkpoint); None for a checkpoint without them."""
    digests, counts = ckpt.data.get("sha256"), ckpt.data.get("counts")
    trained = ckpt.trained_on
    if not digests or not counts or len(digests) != len(trained):
        return None
    return [_file_starts_with(Path(data_dir) / f"{name}.npy", n, digest)
            for name, n, digest in zip(trained, counts, digests) if classes is None or name in classes]


def _file_starts_with(path: Path, rows: int, digest: str) -> bool:
    try:
        arr = open_class_file(path)
    except DataError:
        return False
    return len(arr) >= rows and rows_digest(arr[:rows]) == digest


def load_for_checkpoint(ckpt: Checkpoint, data_dir: str | os.PathLike,
                        per_class: int | None = None, classes=None) -> SketchData:
    """``classes`` of ``data_dir`` (default: all the model's classes, each of which must have a
    file there; given, any of its classes in any order -- one it does not know is refused).
    From a folder holding the drawings it was trained on (same fingerprint, wherever the
    folder is), as many drawings per class as it was trained with (so its recorded split
    applies), else every drawing."""
    classes = list(ckpt.classes) if classes is None else list(classes)
    model_labels(ckpt, classes, data_dir)
    if per_class is None:
        match = trained_rows_match(ckpt, data_dir, classes)
        if match is None:  # an older checkpoint: its recorded folder, compared as written
            same = Path(ckpt.data.get("root") or "\0").resolve() == Path(data_dir).resolve()
        else:
            same = bool(match) and all(match)
        per_class = ckpt.data.get("per_class") if same else None
    return load_folder(data_dir, classes=classes, per_class=per_class, min_classes=1)


@dataclass
class Selection:
    """The drawings of a SketchData an evaluation uses: ``index`` (its rows), ``labels`` (the
    model's output index of each, matched by class name), which they are (``subset``) and
    the drawings left out because the model was trained on them (``excluded``, and why)."""

    index: np.ndarray
    labels: np.ndarray
    subset: Subset | str
    excluded: int = 0
    excluded_why: str = ""


def select_unseen(ckpt: Checkpoint, data: SketchData) -> Selection:
    """The drawings of ``data`` to evaluate ``ckpt`` on: every drawing it was not trained on.

    Per class, when ``data`` starts with the drawings it was trained on (their recorded
    SHA-256, :func:`data.rows_digest`): its recorded held-out drawings among them, plus the
    drawings after them. Everywhere else (other folders, other files, more rows), each
    drawing is looked up among the fingerprints of the drawings it learned from
    (:func:`trained_fingerprints`) and left out when found: a copy or a subset of its
    training rows is never taken for new drawings. A checkpoint without per-drawing
    fingerprints falls back to the per-file rule and says so; one without any fingerprint
    is judged from its per-class counts.
    """
    to_model = model_labels(ckpt, data.classes, data.root or "the data")
    labels = np.asarray(data.labels)
    known, per_drawing = trained_fingerprints(ckpt)
    if "val_indices" not in ckpt.split:
        keep = ~known.contains(data.images) if len(known) else np.ones(len(labels), bool)
        return _selection(to_model, labels, keep, "all drawings (the checkpoint records no held-out split)",
                          split=0, copies=int((~keep).sum()))
    trained = ckpt.trained_on
    digests, counts = ckpt.data.get("sha256"), ckpt.data.get("counts")
    if not digests or not counts or len(digests) != len(trained):
        return _by_counts(ckpt, data, to_model, labels, trained)
    val = ckpt.split["val_indices"].numpy()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    val_class = np.searchsorted(offsets, val, side="right") - 1
    held, check = np.zeros(len(labels), bool), np.zeros(len(labels), bool)
    split, verified = 0, []
    for c, name in enumerate(data.classes):
        rows = np.flatnonzero(labels == c)
        k = trained.index(name) if name in trained else None
        if k is not None and _starts_with_training(data, rows, name, counts[k], digests[k]):
            within = val[val_class == k] - offsets[k]
            within = within[within < len(rows)]
            held[rows[within]] = True
            check[rows[counts[k]:]] = True
            split += min(len(rows), counts[k]) - len(within)
            verified.append(name)
        else:
            check[rows] = True
    copies = np.zeros(len(labels), bool)
    if len(known) and check.any():
        copies[check] = known.contains(data.images[np.flatnonzero(check)])
    keep = held | (check & ~copies)
    exact = verified == trained and held.sum() == len(val) and not (check & ~copies).any()
    subset = Subset.HELD_OUT if exact else \
        _describe(int(held.sum()), int((check & ~copies).sum()), len(val), split + int(copies.sum()))
    if not per_drawing and not exact:
        subset = str(subset) + PER_FILE_ONLY
    return _selection(to_model, labels, keep, subset, split=split, copies=int(copies.sum()))


def _starts_with_training(data: SketchData, rows: np.ndarray, name: str, n: int, digest: str) -> bool:
    if len(rows) >= n:
        return rows_digest(data.images[rows[:n]]) == digest
    # fewer drawings read than trained on: check the file they came from
    return data.root is not None and _file_starts_with(Path(data.root) / f"{name}.npy", n, digest)


def _by_counts(ckpt: Checkpoint, data: SketchData, to_model, labels, trained) -> Selection:
    """A checkpoint from before fingerprints: its recorded split when the folder has its classes
    and per-class counts, else every drawing (said to be unverified)."""
    if data.classes == trained and ckpt.data.get("counts") == data.counts:
        keep = np.zeros(len(labels), bool)
        keep[ckpt.split["val_indices"].numpy()] = True
        return _selection(to_model, labels, keep, Subset.HELD_OUT_UNVERIFIED, split=int((~keep).sum()), copies=0)
    return _selection(to_model, labels, np.ones(len(labels), bool), Subset.ALL_UNVERIFIED, split=0, copies=0)


def _selection(to_model: np.ndarray, labels: np.ndarray, keep: np.ndarray, subset, *, split: int,
               copies: int) -> Selection:
    reasons = {"rows of its training files outside the recorded held-out split": split,
               "found elsewhere, recognised by their fingerprints": copies}
    given = {why: n for why, n in reasons.items() if n}
    why = ", ".join(f"{n:,} {why}" if len(given) > 1 else why for why, n in given.items())
    index = np.flatnonzero(keep)
    return Selection(index, to_model[labels[index]], subset, split + copies, why)


def _describe(held: int, unseen: int, n_val: int, excluded: int) -> Subset | str:
    if held == 0:
        return Subset.ALL if excluded == 0 else "every drawing the model was not trained on, checked drawing by drawing"
    parts = [f"{held:,} of the {n_val:,} held-out drawings recorded in the checkpoint"]
    if unseen:
        parts.append(f"{unseen:,} other drawings it was not trained on")
    return " + ".join(parts) + "; none of them seen in training"


def evaluation_set(ckpt: Checkpoint, data: SketchData) -> tuple[np.ndarray, np.ndarray, Subset | str]:
    """The drawings to evaluate ``ckpt`` on (:func:`select_unseen`), their labels as the
    model's output indices, and which drawings they are."""
    chosen = select_unseen(ckpt, data)
    return data.images[chosen.index], chosen.labels, chosen.subset


def evaluate(ckpt: Checkpoint, data: SketchData, batch_size: int = 1024,
             device: str | torch.device = "cpu", tta_flip: bool | None = None) -> EvalReport:
    """Evaluate a checkpoint on ``data`` (:func:`select_unseen`): classes matched by name, a
    drawing right when the model's top-1 over ALL its outputs is its class (top-3 likewise);
    the per-class table covers the classes of ``data``."""
    chosen = select_unseen(ckpt, data)
    if len(chosen.index) == 0:
        raise DataError(f"{data.root}: no drawings left to evaluate ({chosen.subset}; left out "
                        f"{chosen.excluded:,} the model was trained on); raise --per-class or evaluate on "
                        "another folder")
    if tta_flip is None:
        tta_flip = ckpt.tta_flip
    images = data.images[chosen.index]
    proba = class_probabilities(ckpt.build_model(device), images, batch_size, device, tta_flip=tta_flip)
    evaluated = sorted(set(model_labels(ckpt, data.classes).tolist()))
    report = metrics_from_proba(proba, chosen.labels, ckpt.classes, chosen.subset, evaluated=evaluated)
    report.data = shown_path(data.root) if data.root else ""
    report.excluded, report.excluded_why = chosen.excluded, chosen.excluded_why
    return report


def format_confusion(report: EvalReport, width: int = 6) -> str:
    """The confusion matrix as text, classes abbreviated to ``width`` characters; with a
    column "other" when the model knows classes that were not evaluated."""
    names = [c[:width] for c in report.classes]
    other = bool(report.not_in_data)
    head = " " * (width + 1) + " ".join(f"{n:>{width}}" for n in names) + (f" {'other':>{width}}" if other else "")
    rows = [f"{n:<{width}} " + " ".join(f"{v:>{width}}" for v in row) + (f" {o:>{width}}" if other else "")
            for n, row, o in zip(names, report.confusion, report.other or [0] * len(names))]
    return "\n".join([head, *rows])
