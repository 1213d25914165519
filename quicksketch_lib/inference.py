"""Inference: top-k class guesses for drawings, arrays, ``.npy`` files and images.

``Predictor`` wraps a checkpoint (PyTorch) or its exported ONNX file
(onnxruntime) behind one call::

    predictor = Predictor.from_checkpoint("models/sketchcnn.pt")
    predictor.predict(drawing_28x28_uint8, top_k=5)   # [("cat", 0.91), ("dog", 0.05), ...]

Images of drawings (PNG/JPEG of any size, dark-on-light or light-on-dark) are
converted the Quick Draw way by :func:`preprocess_image`: white ink on black,
cropped to the drawing, centred with a margin, reduced to 28x28.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .locations import resolve_checkpoint
from .data import IMAGE_SIZE, PIXELS, normalize_batch
from .device import torch_threads
from .errors import InputError
from .model import flip_averaged_proba
from .rasterize import FRAME, LINE_DIAMETER, PADDING, as_image_batch, rasterize_strokes

Prediction = list[tuple[str, float]]
SMALL_BATCH = 8  # up to this many drawings run on one thread (lower latency, see device.torch_threads)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# In a Quick Draw bitmap the ink (a 255-unit drawing plus the 16-unit line) spans 271 of the
# 304-unit frame that is reduced to 28x28 (see rasterize.py): about 25 of 28 pixels.
CONTENT_FRACTION = (FRAME - 1 + LINE_DIAMETER) / (FRAME + 2 * PADDING + LINE_DIAMETER)


# --------------------------------------------------------------------------- pure preprocessing
def as_drawings(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any of (28,28), (N,28,28), (784,), (N,784) -> uint8 (N, 784), 0 = background."""
    a = np.asarray(as_image_batch(x)[0]).reshape(-1, PIXELS)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.isnan(a).any():
            raise InputError(f"drawing array of dtype {a.dtype} has non-numeric or NaN values")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] are scaled up
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    return a


def preprocess_image(pixels: np.ndarray, content_fraction: float = CONTENT_FRACTION) -> np.ndarray:
    """A grayscale picture of a drawing -> 28x28 uint8 the Quick Draw way.

    Dark-on-light pictures are inverted (decided by the border, which is
    background), faint noise is dropped, the drawing is cropped to its bounding
    box, centred in a square frame so it spans ``content_fraction`` of it, and
    area-averaged down to 28x28 with its brightest pixel at 255.
    """
    from PIL import Image

    g = np.asarray(pixels, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 2:
        raise InputError(f"picture has shape {g.shape}; expected a 2-D grayscale image")
    g = g / max(float(g.max()), 1.0) * 255.0 if g.max() > 255 else g
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    ink = 255.0 - g if np.median(border) > 127 else g
    ink = np.where(ink > 0.1 * max(float(ink.max()), 1.0), ink, 0.0)
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    # a square window around the ink's bounding box, centred on it, the ink spanning content_fraction
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / content_fraction
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    pad = int(np.ceil(side))
    padded = np.pad(ink, pad).astype(np.float32)
    box = (cx + pad - side / 2, cy + pad - side / 2, cx + pad + side / 2, cy + pad + side / 2)
    small = np.asarray(Image.fromarray(padded, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX, box=box))
    small = small / max(float(small.max()), 1e-6) * 255.0
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def top_k_classes(proba: np.ndarray, classes: Sequence[str], k: int = 5) -> list[Prediction]:
    """Per row, the ``k`` most probable classes with their probabilities."""
    k = min(k, len(classes))
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(classes[j], float(p[j])) for j in row] for p, row in zip(proba, order)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- reading inputs
def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/... drawing and preprocess it to 28x28 uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)  # transparent = white paper
            gray = np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}); "
                         "expected a PNG/JPEG drawing or a .npy of (N, 784) uint8 rows") from None
    return preprocess_image(gray)


def load_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[str], np.ndarray]:
    """Names and uint8 ``(N, 784)`` drawings from ``.npy`` files and images."""
    names, rows = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError):
                raise InputError(f"{path}: not a readable .npy file; expected (N, 784) uint8 rows") from None
            try:
                drawings = as_drawings(arr)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
            names += [f"{path.name}[{i}]" for i in range(len(drawings))]
            rows.append(drawings)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            names.append(path.name)
            rows.append(load_image(path).reshape(1, PIXELS))
        else:
            raise InputError(f"{path}: unsupported input '{path.suffix}'; "
                             "give .npy rows or a PNG/JPEG drawing")
    return names, np.concatenate(rows) if rows else np.zeros((0, PIXELS), np.uint8)


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
            return flip_averaged_proba(logits, torch.from_numpy(x)).numpy()
        return softmax(self._logits(x).astype(np.float64))

    def predict_strokes(self, strokes, top_k: int = 5) -> Prediction:
        """Top-k for a drawing given as strokes (``[xs, ys]`` per stroke, screen coordinates)."""
        return self.predict(rasterize_strokes(strokes), top_k)

    def predict(self, drawings, top_k: int = 5) -> list[Prediction] | Prediction:
        """Top-k ``(class, probability)``; one list for one drawing, a list per drawing otherwise."""
        single = np.asarray(drawings).shape in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS,))
        result = top_k_classes(self.predict_proba(drawings), self.classes, top_k)
        return result[0] if single else result


def _usable_onnx(ckpt_path: Path, onnx_path: Path) -> bool:
    if ckpt_path.suffix == ".onnx":
        return True
    if not onnx_path.exists() or (ckpt_path.exists() and onnx_path.stat().st_mtime < ckpt_path.stat().st_mtime):
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def predict(checkpoint: str | os.PathLike, inputs, top_k: int = 5, backend: str = "auto",
            tta_flip: bool | None = None):
    """Top-k guesses for ``inputs``: paths (.npy / images) or a drawing array."""
    predictor = Predictor.from_checkpoint(checkpoint, backend, tta_flip)
    if isinstance(inputs, (str, os.PathLike)) or (isinstance(inputs, (list, tuple)) and inputs
                                                   and isinstance(inputs[0], (str, os.PathLike))):
        names, rows = load_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
        return list(zip(names, predictor.predict(rows, top_k)))
    return predictor.predict(inputs, top_k)
