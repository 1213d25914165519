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

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import NORM_MEAN, NORM_STD
from .errors import CheckpointError
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
                                  f"({str(exc).splitlines()[0]})") from None
        return model.to(device).eval()

    @property
    def tta_flip(self) -> bool:
        """Whether it is meant to be used with test-time flip (averaging each drawing and its
        mirror image), as its recipe evaluated it during training."""
        return bool((self.train_config or {}).get("tta_flip", False))

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
    """Write ``ckpt`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(ckpt.to_dict(), f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a QuickSketch checkpoint with ``weights_only=True``; refuse anything else.

    ``path`` may be ``"pretrained"``, the shipped model of the ten classes. Weights stored
    as float16 (the shipped model) are cast back to float32.
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one with `quicksketch train`")
    try:
        d = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / unsafe files
        raise CheckpointError(f"{path}: not a loadable QuickSketch checkpoint "
                              f"({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a QuickSketch checkpoint (no '{FORMAT}' header); "
                              "a bare state_dict cannot be used: it lacks class names and config")
    if d.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {d.get('format_version')} "
                              f"is not supported (this QuickSketch reads version {FORMAT_VERSION})")
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in d["model_state"].items()}
    return Checkpoint(
        model_state=state, model_config=ModelConfig.from_dict(d["model_config"]),
        classes=list(d["classes"]), normalization=d.get("normalization", {}),
        train_config=d.get("train_config", {}), metrics=d.get("metrics", {}),
        history=d.get("history", []), data=d.get("data", {}), split=d.get("split", {}),
        train_state=d.get("train_state"), path=path)
