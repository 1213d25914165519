"""Inference: top-k class guesses for drawings, arrays, ``.npy`` files and images.

``Predictor`` wraps a checkpoint (PyTorch) or its exported ONNX file
(onnxruntime) behind one call::

    predictor = Predictor.from_checkpoint("models/sketchcnn.pt")
    predictor.predict(drawing_28x28_uint8, top_k=5)   # [("cat", 0.91), ("dog", 0.05), ...]

Inputs are read by :mod:`~quicksketch_lib.drawing` (``.npy`` rows, and pictures of any
size converted the Quick Draw way by :func:`~quicksketch_lib.drawing.preprocess_image`).
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checkpoint import CHECKPOINT_SHA_KEY, file_sha256, load_checkpoint
from .locations import resolve_checkpoint
from .data import normalize_batch
from .device import torch_threads
from .drawing import IMAGE_SIZE, PIXELS, as_drawings, is_blank, load_inputs
from .errors import CheckpointError, InputError
from .model import flip_averaged_proba
from .rasterize import rasterize_strokes

Prediction = list[tuple[str, float]]
SMALL_BATCH = 8  # up to this many drawings run on one thread (lower latency, see device.torch_threads)


# --------------------------------------------------------------------------- probabilities
def top_k_classes(proba: np.ndarray, classes: Sequence[str], k: int = 5) -> list[Prediction]:
    """Per row, the ``k`` most probable classes with their probabilities."""
    if k < 1:
        raise InputError(f"top_k must be at least 1, got {k}")
    k = min(k, len(classes))
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(classes[j], float(p[j])) for j in row] for p, row in zip(proba, order)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- the predictor
class Predictor:
    """Top-k guesses from a checkpoint (PyTorch) or its ONNX export (onnxruntime).

    ``tta_flip``: average the probabilities of each drawing and its mirror image, as
    ``evaluate`` does for checkpoints trained with it (``--recipe quicksketch``); by
    default taken from the checkpoint (or the ONNX file's metadata). Costs a second
    forward pass.
    """

    def __init__(self, classes: Sequence[str], logits_fn: Callable[[np.ndarray], np.ndarray],
                 backend: str, tta_flip: bool = False):
        self.classes = list(classes)
        self._logits = logits_fn
        self.backend = backend
        self.tta_flip = tta_flip

    @classmethod
    def from_model(cls, model: torch.nn.Module, classes: Sequence[str], tta_flip: bool = False) -> "Predictor":
        model = model.eval().cpu()

        @torch.no_grad()
        def logits(x: np.ndarray) -> np.ndarray:
            with torch_threads(1) if len(x) <= SMALL_BATCH else nullcontext():
                return model(torch.from_numpy(x)).float().numpy()
        return cls(classes, logits, "torch", tta_flip)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, tta_flip: bool | None = None) -> "Predictor":
        from .export import OnnxModel

        onnx_model = OnnxModel(path)
        if tta_flip is None:
            tta_flip = onnx_model.metadata.get("quicksketch_tta_flip") == "true"
        return cls(onnx_model.classes, onnx_model.logits, "onnxruntime", tta_flip)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, backend: str = "auto",
                        tta_flip: bool | None = None) -> "Predictor":
        """``backend``: ``torch``, ``onnx``, or ``auto`` (the ``.onnx`` next to the
        checkpoint when it exists, is newer and onnxruntime is installed; else torch).
        ``tta_flip``: None = as the checkpoint was trained to be evaluated."""
        path = resolve_checkpoint(path)  # "pretrained": the shipped model
        onnx_path = path.with_suffix(".onnx")
        if backend == "onnx" or (backend == "auto" and _usable_onnx(path, onnx_path)):
            return cls.from_onnx(onnx_path if path.suffix != ".onnx" else path, tta_flip)
        ckpt = load_checkpoint(path)
        return cls.from_model(ckpt.build_model("cpu"), ckpt.classes,
                              ckpt.tta_flip if tta_flip is None else tta_flip)

    def predict_proba(self, drawings) -> np.ndarray:
        """Probabilities ``(N, C)`` for uint8 drawings in any shape ``as_drawings`` takes."""
        rows = as_drawings(drawings)
        x = normalize_batch(torch.from_numpy(rows)).numpy()
        if self.tta_flip:  # the mean with the mirror image's (one definition, beside the model)
            logits = lambda t: torch.from_numpy(self._logits(t.numpy()).astype(np.float64))  # noqa: E731
            proba = flip_averaged_proba(logits, torch.from_numpy(x)).numpy()
        else:
            proba = softmax(self._logits(x).astype(np.float64))
        if not np.isfinite(proba).all():
            raise CheckpointError(f"the {self.backend} model gave non-finite probabilities (NaN or "
                                  "infinite weights?); retrain or re-export it")
        return proba

    def predict_strokes(self, strokes, top_k: int = 5) -> Prediction:
        """Top-k for a drawing given as strokes (``[xs, ys]`` per stroke, screen coordinates)."""
        return self.predict(rasterize_strokes(strokes), top_k)

    def predict_or_blank(self, drawings, top_k: int = 5) -> list[Prediction]:
        """Top-k per drawing, and no guesses (``[]``) for a blank one (:func:`~quicksketch_lib.drawing.is_blank`)."""
        rows = as_drawings(drawings)
        blank = is_blank(rows)
        guesses = iter(top_k_classes(self.predict_proba(rows[~blank]), self.classes, top_k)
                       if (~blank).any() else [])
        return [[] if b else next(guesses) for b in blank]

    def predict(self, drawings, top_k: int = 5) -> list[Prediction] | Prediction:
        """Top-k ``(class, probability)``; one list for one drawing, a list per drawing otherwise."""
        single = np.asarray(drawings).shape in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS,))
        result = top_k_classes(self.predict_proba(drawings), self.classes, top_k)
        return result[0] if single else result


def _usable_onnx(ckpt_path: Path, onnx_path: Path) -> bool:
    """Whether ``--backend auto`` may answer with ``onnx_path``: it exists, onnxruntime is
    installed, and it was exported from exactly this checkpoint (the checkpoint's SHA-256
    recorded in its metadata). Another model's file beside it is ignored with a warning."""
    if ckpt_path.suffix == ".onnx":
        return True
    if not onnx_path.is_file() or not ckpt_path.is_file():
        return False
    try:
        import onnxruntime  # noqa: F401
        from .export import OnnxModel
        recorded = OnnxModel(onnx_path).metadata.get(CHECKPOINT_SHA_KEY)
    except ImportError:
        return False
    except Exception:  # an unreadable .onnx: the checkpoint answers instead
        recorded = None
    if recorded != file_sha256(ckpt_path):
        warnings.warn(f"{onnx_path}: not exported from {ckpt_path} (its recorded checkpoint differs or is "
                      "missing); using PyTorch -- re-export with `quicksketch export` to use ONNX")
        return False
    return True


def predict(checkpoint: str | os.PathLike, inputs, top_k: int = 5, backend: str = "auto",
            tta_flip: bool | None = None):
    """Top-k guesses for ``inputs``: paths (.npy / images) or a drawing array."""
    predictor = Predictor.from_checkpoint(checkpoint, backend, tta_flip)
    if isinstance(inputs, (str, os.PathLike)) or (isinstance(inputs, (list, tuple)) and inputs
                                                   and isinstance(inputs[0], (str, os.PathLike))):
        names, rows = load_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
        return list(zip(names, predictor.predict_or_blank(rows, top_k)))
    single = np.asarray(inputs).shape in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS,))
    result = predictor.predict_or_blank(inputs, top_k)
    return result[0] if single else result
