"""Self-describing checkpoints: weights plus everything needed to use them.

A checkpoint is a plain dict of tensors, strings and numbers (so it loads with
``torch.load(weights_only=True)``)::

    format            "quicksketch-checkpoint"
    format_version    1
    model_state       SketchCNN state_dict (EMA weights when EMA was used)
    model_config      ModelConfig as a dict
    classes           class names, index = label
    normalization     {"mean": 0.5, "std": 0.5, "input": "uint8 (N, 784), 0 = background"}
    train_config      TrainConfig as a dict
    metrics           final metrics (val_accuracy, ...)
    history           per-epoch list of dicts
    data              {"classes", "counts", "per_class", "root", "synthetic"}
    split             {"val_indices": int tensor, "seed", "val_fraction"}
    train_state       optional: optimizer, scheduler, RNG, epoch -- for --resume

Writes go to a temporary file in the same folder, then ``os.replace`` it, so an
interrupted save never leaves a broken checkpoint.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import NORM_MEAN, NORM_STD, RowFingerprints
from .errors import CheckpointError, first_line
from .files import atomic_write
from .locations import resolve_checkpoint
from .model import ModelConfig, SketchCNN

FORMAT = "quicksketch-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``build_model()`` gives a ready SketchCNN in eval mode."""

    model_state: dict
    model_config: ModelConfig
    classes: list[str]
    normalization: dict = field(default_factory=lambda: {"mean": NORM_MEAN, "std": NORM_STD})
    train_config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    train_state: dict | None = None
    path: Path | None = None

    def build_model(self, device: str | torch.device = "cpu") -> SketchCNN:
        model = SketchCNN(self.model_config)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.path}: weights do not fit the recorded model config "
                                  f"({first_line(exc)})") from None
        return model.to(device).eval()

    @property
    def tta_flip(self) -> bool:
        """Whether it is meant to be used with test-time flip (averaging each drawing and its
        mirror image), as its recipe evaluated it during training."""
        return bool((self.train_config or {}).get("tta_flip", False))

    @property
    def trained_on(self) -> list[str]:
        """The classes it was trained on, in training order (classes taught later excluded)."""
        taught = {t["name"] for t in self.data.get("taught", [])}
        return list(self.data.get("classes") or [c for c in self.classes if c not in taught])

    def to_dict(self) -> dict:
        d = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model_state": self.model_state, "model_config": self.model_config.to_dict(),
            "classes": list(self.classes), "normalization": dict(self.normalization),
            "train_config": dict(self.train_config), "metrics": dict(self.metrics),
            "history": list(self.history), "data": dict(self.data), "split": dict(self.split),
        }
        if self.train_state is not None:
            d["train_state"] = self.train_state
        return d

    def check_classes(self, classes: list[str], source: str = "the data") -> None:
        """Raise CheckpointError unless ``classes`` equal the checkpoint's, in order."""
        if list(classes) != list(self.classes):
            extra = sorted(set(classes) - set(self.classes))
            missing = sorted(set(self.classes) - set(classes))
            raise CheckpointError(
                f"{self.path}: the model knows {len(self.classes)} classes but {source} has "
                f"{len(classes)}; not in model: {extra or 'none'}; missing from data: {missing or 'none'}")


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` atomically (temporary file in the same folder, then rename).

    It is serialised in memory first, so a full disk is one ``OSError`` from the write
    (said in one line by :func:`files.atomic_write`), not an error inside torch's writer.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(ckpt.to_dict(), buffer)
    with atomic_write(path) as f:
        f.write(buffer.getbuffer())
    return path


TRAIN_HINT = "train one with `quicksketch train` or use `pretrained`"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a QuickSketch checkpoint with ``weights_only=True``; refuse anything else.

    ``path`` may be ``"pretrained"``, the shipped model of the ten classes. Weights stored
    as float16 (the shipped model) are cast back to float32. Everything is checked on load
    (:func:`validate_checkpoint`): a file that is not a QuickSketch checkpoint, or one whose
    class list does not fit its output layer, has duplicate class names or non-finite
    weights, is refused with one line.
    """
    path = resolve_checkpoint(path)
    d = _read_checkpoint_file(path, map_location)
    return validate_checkpoint(d, path)


def _read_checkpoint_file(path: Path, map_location) -> dict:
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected a checkpoint file (.pt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; {TRAIN_HINT}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes), not a QuickSketch checkpoint; {TRAIN_HINT}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            start = f.read(8)
        if start.startswith(b"PK\x03\x04"):
            raise CheckpointError(f"{path}: damaged checkpoint: an incomplete zip archive ({size:,} bytes; "
                                  f"truncated?); {TRAIN_HINT}")
        kind = "a Python pickle" if start[:1] == b"\x80" else f"a file starting with {start!r}"
        raise CheckpointError(f"{path}: not a QuickSketch checkpoint: it is {kind}, not a PyTorch "
                              f"zip archive as `quicksketch train` writes; {TRAIN_HINT}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: not a QuickSketch checkpoint: it holds Python objects other than "
                              "tensors, numbers and strings, which QuickSketch refuses to load (loading "
                              f"them could run code); {TRAIN_HINT}") from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: damaged checkpoint, cannot be read ({first_line(exc)}); "
                              f"{TRAIN_HINT}") from None


def validate_checkpoint(d, path: Path | None = None) -> Checkpoint:
    """A :class:`Checkpoint` from a loaded dict, after checking everything inference relies on."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a QuickSketch checkpoint (no '{FORMAT}' header); "
                              "a bare state_dict cannot be used: it lacks class names and config")
    if d.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {d.get('format_version')} "
                              f"is not supported (this QuickSketch reads version {FORMAT_VERSION})")
    missing = [k for k in ("model_state", "model_config", "classes") if k not in d]
    if missing:
        raise CheckpointError(f"{path}: incomplete QuickSketch checkpoint: no {', '.join(missing)}; "
                              f"it may be damaged; {TRAIN_HINT}")
    state, classes = d["model_state"], d["classes"]
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: its model_state is not a dict of named tensors; it is damaged")
    if not isinstance(classes, (list, tuple)) or len(classes) < 2 or \
            not all(isinstance(c, str) and c for c in classes):
        raise CheckpointError(f"{path}: its class list is not a list of 2 or more names; it is damaged")
    twins = sorted({c for c in classes if list(classes).count(c) > 1})
    if twins:
        raise CheckpointError(f"{path}: class name(s) {', '.join(map(repr, twins))} appear more than once; "
                              "labels would be ambiguous")
    try:
        config = ModelConfig.from_dict(d["model_config"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its model_config cannot be read ({first_line(exc)})") from None
    out_weight = [k for k in state if k.endswith(".weight")][-1:]
    outputs = state[out_weight[0]].shape[0] if out_weight else None
    if config.num_classes != len(classes) or outputs != len(classes):
        raise CheckpointError(f"{path}: lists {len(classes)} classes but its output layer has {outputs} "
                              f"outputs (model_config says {config.num_classes}); labels would be wrong")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} hold "
                              "NaN or infinite values (a diverged training run?); retrain, e.g. with a lower --lr")
    data, split = _checked_data(d.get("data", {}), list(classes), path), _checked_split(d.get("split", {}), path)
    _check_split_fits(split, data, path)
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
    return Checkpoint(
        model_state=state, model_config=config,
        classes=list(classes), normalization=d.get("normalization", {}),
        train_config=d.get("train_config", {}), metrics=d.get("metrics", {}),
        history=d.get("history", []), data=data, split=split,
        train_state=d.get("train_state"), path=path)


# --------------------------------------------------------------------------- metadata
# What teach, evaluate and export read from ``data`` and ``split`` is checked on load like the
# weights: a malformed entry is one line naming it (exit 3), never a traceback or a guess.
def _damaged(path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: its {what}; it is damaged or was edited by hand -- "
                           "use the checkpoint as QuickSketch wrote it")


def _drawing_tensor(value) -> bool:
    """uint8 drawings ``(n, 784)`` or ``(n, 28, 28)``, n >= 1."""
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and len(value) > 0 and \
        tuple(value.shape[1:]) in ((784,), (28, 28))


def _names(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(c, str) and c for c in value)


def _checked_data(data, classes: list[str], path) -> dict:
    """``data`` after checking the recorded training data (classes, counts, SHA-256, per-drawing
    fingerprints), the taught classes and the replay drawings."""
    if not isinstance(data, dict):
        raise _damaged(path, f"data record is a {type(data).__name__}, not a dict")
    trained = data.get("classes")
    if trained is not None and (not _names(trained) or not set(trained) <= set(classes)):
        raise _damaged(path, "recorded training classes are not names of its own classes")
    counts, digests = data.get("counts"), data.get("sha256")
    if counts is not None and (not isinstance(counts, (list, tuple)) or
                               not all(isinstance(n, int) and n >= 0 for n in counts) or
                               (trained is not None and len(counts) != len(trained))):
        raise _damaged(path, "recorded per-class counts are not one whole number per training class")
    if digests is not None and (not isinstance(digests, (list, tuple)) or len(digests) != len(counts or ()) or
                                not all(isinstance(h, str) and len(h) == 64 for h in digests)):
        raise _damaged(path, "recorded data fingerprint is not one SHA-256 per training class")
    per_class = data.get("per_class")
    if per_class is not None and not (isinstance(per_class, int) and per_class >= 1):
        raise _damaged(path, f"recorded per_class {per_class!r} is not a whole number of at least 1")
    if data.get("train_rows") is not None:
        try:
            RowFingerprints.from_dict(data["train_rows"])
        except ValueError as exc:
            raise _damaged(path, str(exc)) from None
    _check_taught(data.get("taught", []), classes, path)
    _check_replay(data.get("replay"), classes, path)
    return data


def _check_taught(taught, classes: list[str], path) -> None:
    if not isinstance(taught, (list, tuple)):
        raise _damaged(path, f"taught-class record is a {type(taught).__name__}, not a list")
    names = []
    for i, entry in enumerate(taught, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not _drawing_tensor(entry.get("drawings")):
            raise _damaged(path, f"taught class number {i} lacks a name or its example drawings "
                                 "(uint8, 784 pixels each)")
        if entry["name"] not in classes:
            raise _damaged(path, f"taught class {entry['name']!r} is not one of its classes")
        if not isinstance(entry.get("config", {}), dict):
            raise _damaged(path, f"taught class {entry['name']!r} has settings that are not a dict")
        names.append(entry["name"])
    if len(set(names)) != len(names):
        raise _damaged(path, "taught-class record names a class twice")


def _check_replay(replay, classes: list[str], path) -> None:
    if replay is None:
        return
    drawings = replay.get("drawings") if isinstance(replay, dict) else None
    if not isinstance(drawings, dict) or not drawings:
        raise _damaged(path, "replay record has no drawings per class")
    for name, rows in drawings.items():
        if name not in classes:
            raise _damaged(path, f"replay drawings are for {name!r}, not one of its classes")
        if not _drawing_tensor(rows):
            raise _damaged(path, f"replay drawings of {name!r} are not uint8 drawings of 784 pixels")


def _checked_split(split, path) -> dict:
    if not isinstance(split, dict):
        raise _damaged(path, f"held-out split record is a {type(split).__name__}, not a dict")
    val = split.get("val_indices")
    if val is not None and not (isinstance(val, torch.Tensor) and val.dim() == 1 and
                                val.dtype in (torch.int32, torch.int64)):
        raise _damaged(path, "held-out split is not a list of drawing numbers (a 1-D integer tensor)")
    return split


def _check_split_fits(split: dict, data: dict, path) -> None:
    val, counts = split.get("val_indices"), data.get("counts")
    if val is None or counts is None or not len(val):
        return
    if int(val.min()) < 0 or int(val.max()) >= sum(counts) or len(torch.unique(val)) != len(val):
        raise _damaged(path, f"held-out split names drawings outside the {sum(counts):,} it was trained with")
