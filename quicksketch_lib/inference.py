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
from .drawing import IMAGE_SIZE, PIXELS, as_drawings, read_npy_header
from .errors import CheckpointError, DataError, InputError
from .model import flip_averaged_proba
from .rasterize import FRAME, LINE_DIAMETER, PADDING, rasterize_strokes

Prediction = list[tuple[str, float]]
SMALL_BATCH = 8  # up to this many drawings run on one thread (lower latency, see device.torch_threads)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# In a Quick Draw bitmap the ink (a 255-unit drawing plus the 16-unit line) spans 271 of the
# 304-unit frame that is reduced to 28x28 (see rasterize.py): about 25 of 28 pixels.
CONTENT_FRACTION = (FRAME - 1 + LINE_DIAMETER) / (FRAME + 2 * PADDING + LINE_DIAMETER)
MIN_CONTRAST = 64  # ink weaker than this (of 255) against the paper is not a drawing (paper noise)
MIN_INK_PIXELS = 4  # fewer pixels of ink than this is a blank drawing
MAX_SIDE = 1024  # pictures are reduced to at most this many pixels a side before any float work
BLANK = "blank drawing (no ink found); draw something"
PREDICT_HINT = "expected (N, 784) uint8, drawings to predict -- see README 'Data format'"


# --------------------------------------------------------------------------- pure preprocessing
def preprocess_image(pixels: np.ndarray, content_fraction: float = CONTENT_FRACTION) -> np.ndarray:
    """A grayscale picture of a drawing -> 28x28 uint8 the Quick Draw way.

    Dark-on-light pictures are inverted (decided by the border, which is
    background), faint noise is dropped, the drawing is cropped to its bounding
    box, centred in a square frame so it spans ``content_fraction`` of it, and
    area-averaged down to 28x28 with its brightest pixel at 255. A blank or
    near-blank picture (no ink at least :data:`MIN_CONTRAST` levels from the paper,
    or ink on fewer than :data:`MIN_INK_PIXELS` pixels, as paper noise) gives all
    zeros: :func:`blank_rows` says so instead of guessing a class.
    """
    from PIL import Image

    g = np.asarray(pixels, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 2:
        raise InputError(f"picture has shape {g.shape}; expected a 2-D grayscale image at least 2x2")
    g = g / max(float(g.max()), 1.0) * 255.0 if g.max() > 255 else g
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    ink = 255.0 - g if np.median(border) > 127 else g
    ink = ink - np.median(border if np.median(border) <= 127 else 255.0 - border)  # the paper is 0
    strongest = float(ink.max())
    ink = np.where(ink > max(0.1 * strongest, MIN_CONTRAST / 2), ink, 0.0)
    ys, xs = np.nonzero(ink)
    if strongest < MIN_CONTRAST or len(xs) < max(MIN_INK_PIXELS, int(2e-5 * ink.size)):
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


def blank_rows(drawings) -> np.ndarray:
    """Per drawing, whether it is blank: fewer than :data:`MIN_INK_PIXELS` pixels of ink at
    least :data:`MIN_CONTRAST` strong. A blank drawing gets "draw something", not a class."""
    rows = as_drawings(drawings)
    return (rows >= MIN_CONTRAST).sum(axis=1) < MIN_INK_PIXELS


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


# --------------------------------------------------------------------------- reading inputs
def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/... drawing and preprocess it to 28x28 uint8 (zeros when blank).

    Memory stays bounded: JPEGs are decoded at a reduced scale, other pictures are
    reduced to at most :data:`MAX_SIDE` a side right after decoding (one byte per pixel
    for 1-bit, grayscale and palette pictures, up to five for colour and 16-bit ones),
    and pictures above Pillow's limit (``Image.MAX_IMAGE_PIXELS``, 89 megapixels) are
    refused before decoding. Transparency is read as the drawing's paper: strokes of any
    colour on a transparent background are ink; 16-bit pictures keep their full range.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_picture_size(path, im)
                im.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                gray = _gray_picture(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: picture too large ({_short(exc)}); QuickSketch reads pictures up to "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (Pillow's limit) -- scale it down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}); "
                         "expected a PNG/JPEG drawing or a .npy of (N, 784) uint8 rows") from None
    try:
        return preprocess_image(gray)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _check_picture_size(path, im) -> None:
    from PIL import Image

    pixels = im.width * im.height
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        raise InputError(f"{path}: picture is {im.width}x{im.height} ({pixels / 1e6:.0f} megapixels); "
                         f"QuickSketch reads pictures up to {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                         "(Pillow's limit) -- scale it down")
    if min(im.width, im.height) < 2:
        raise InputError(f"{path}: picture is {im.width}x{im.height}; expected a drawing at least 2x2 pixels")


def _gray_picture(im) -> np.ndarray:
    """A decoded picture -> uint8 grayscale of at most MAX_SIDE a side, light or dark paper.

    With transparency, the opacity is the picture (ink = opaque, paper = transparent)
    when the border is mostly transparent; otherwise it is laid on white paper.
    """
    from PIL import Image

    if im.mode == "P":
        im = im.convert("LA" if "transparency" in im.info else "L")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    factor = -(-max(im.size) // MAX_SIDE)
    if factor > 1:
        im = im.reduce(factor)
    if im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = max(float(a.max()), 1.0)
        return np.clip(np.rint(a * (255.0 / top if top > 255 else 1.0)), 0, 255).astype(np.uint8)
    if "A" not in im.mode:
        return np.asarray(im.convert("L"))
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() == 255:
        return np.asarray(im.convert("L"))
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    if np.median(border) < 128:  # strokes on a transparent background: opacity is the ink
        return alpha
    paper = Image.new(im.mode, im.size, (255,) * len(im.mode))
    return np.asarray(Image.alpha_composite(paper.convert("RGBA"), im.convert("RGBA")).convert("L"))


def load_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[str], np.ndarray]:
    """Names and uint8 ``(N, 784)`` drawings from ``.npy`` files and images."""
    names, rows = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        if path.suffix.lower() == ".npy":
            try:
                read_npy_header(path, PREDICT_HINT)  # the shared check: a .npy whose size fits its header
                arr = np.load(path, allow_pickle=False)
            except DataError as exc:
                raise InputError(str(exc)) from None
            except (ValueError, OSError, EOFError) as exc:
                raise InputError(f"{path}: not a readable .npy file ({_short(exc)}); "
                                 "expected (N, 784) uint8 rows") from None
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
        """Top-k per drawing, and no guesses (``[]``) for a blank one (:func:`blank_rows`)."""
        rows = as_drawings(drawings)
        blank = blank_rows(rows)
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
