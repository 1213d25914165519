"""Inference: top-k class guesses for drawings, arrays, ``.npy`` files and images.

``Predictor`` wraps a checkpoint (PyTorch) or its exported ONNX file
(onnxruntime, through :class:`OnnxModel`) behind one call::

    predictor = Predictor.from_checkpoint("models/sketchcnn.pt")
    predictor.predict(drawing_28x28_uint8, top_k=5)   # [("cat", 0.91), ("dog", 0.05), ...]

Images of drawings (PNG/JPEG of any size, dark-on-light or light-on-dark) are
converted the Quick Draw way by :func:`preprocess_image`: white ink on black,
cropped to the drawing, centred with a margin, reduced to 28x28.

Serving needs no torch: importing this module imports none, and a checkpoint with an ONNX
export at hand (beside it, or for the shipped models in the user's cache, see
:meth:`Predictor.from_checkpoint`) answers through onnxruntime with numpy and Pillow alone.
Only a PyTorch answer (``from_model``, or a checkpoint without an export) imports torch, and
only the caller's ``exporter`` writes an export (this module never imports ``export``).
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .data import IMAGE_SIZE, PIXELS, normalize_rows, read_npy_header
from .errors import CheckpointError, DataError, InputError, QuickSketchError, first_line
from .files import file_sha256
from .locations import cached_onnx, pretrained_name, resolve_checkpoint
from .rasterize import FRAME, LINE_DIAMETER, PADDING, as_image_batch

if TYPE_CHECKING:
    import torch

Prediction = list[tuple[str, float]]
Exporter = Callable[[Path, Path], object]  # (checkpoint, out.onnx) -> writes the export (export.export_onnx)
SMALL_BATCH = 8  # up to this many drawings run on one thread (lower latency, see device.torch_threads)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# In a Quick Draw bitmap the ink (a 255-unit drawing plus the 16-unit line) spans 271 of the
# 304-unit frame that is reduced to 28x28 (see rasterize.py): about 25 of 28 pixels.
CONTENT_FRACTION = (FRAME - 1 + LINE_DIAMETER) / (FRAME + 2 * PADDING + LINE_DIAMETER)
MIN_CONTRAST = 64  # ink weaker than this (of 255) against the paper is not a drawing (paper noise)
MIN_INK_PIXELS = 4  # fewer pixels of ink than this is a blank drawing
MAX_SIDE = 1024  # pictures are reduced to at most this many pixels a side before any float work
BLANK = "blank drawing (no ink found); draw something"
CHECKPOINT_SHA_KEY = "quicksketch_checkpoint_sha256"  # an export's record of the checkpoint it came from


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
        raise InputError(f"{path}: picture too large ({first_line(exc)}); QuickSketch reads pictures up to "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (Pillow's limit) -- scale it down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}); "
                         "expected a PNG/JPEG drawing or a .npy of (N, 784) uint8 rows") from None
    try:
        return preprocess_image(gray)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


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
                read_npy_header(path)  # the shared check: a .npy whose size fits its header
                arr = np.load(path, allow_pickle=False)
            except DataError as exc:
                raise InputError(f"{exc}".replace("one <class>.npy per class", "drawings to predict")) from None
            except (ValueError, OSError, EOFError) as exc:
                raise InputError(f"{path}: not a readable .npy file ({first_line(exc)}); "
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


# --------------------------------------------------------------------------- the models
class OnnxModel:
    """An exported model in onnxruntime, with the class names from its metadata."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{path}: ONNX model not found; write one with `quicksketch export`")
        if self.path.stat().st_size == 0:
            raise CheckpointError(f"{path}: is empty (0 bytes), not an ONNX model; re-export it")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for damaged files
            raise CheckpointError(f"{path}: not a readable ONNX model ({first_line(exc, 120)}); "
                                  "re-export it with `quicksketch export`") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.classes = self._checked_classes(meta.get("quicksketch_classes"))
        self.metadata = meta

    def _checked_classes(self, text: str | None) -> list[str]:
        """The class list of the metadata, checked like a checkpoint's: a JSON list of distinct
        names, one per output of the model (never cut, padded or read letter by letter)."""
        redo = "re-export it with `quicksketch export`"
        try:
            classes = json.loads(text) if text is not None else None
        except ValueError:
            classes = None
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
            found = "none" if text is None else repr(text[:40])
            raise CheckpointError(f"{self.path}: not a QuickSketch ONNX model: its metadata has no class list "
                                  f"(a JSON list of names; found {found}); {redo}")
        if len(set(classes)) != len(classes):
            raise CheckpointError(f"{self.path}: its class list names a class more than once; {redo}")
        inputs, outputs = [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        if "image" not in inputs or "logits" not in outputs:
            raise CheckpointError(f"{self.path}: not a QuickSketch ONNX model (inputs {inputs}, outputs "
                                  f"{outputs}; expected 'image' and 'logits'); {redo}")
        try:
            width = self.logits(np.zeros((1, 1, IMAGE_SIZE, IMAGE_SIZE), np.float32)).shape[-1]
        except Exception as exc:  # onnxruntime's own types: not a (B, 1, 28, 28) -> (B, C) model
            raise CheckpointError(f"{self.path}: does not take a (B, 1, 28, 28) drawing as QuickSketch's models do "
                                  f"({first_line(exc, 100)}); {redo}") from None
        if width != len(classes):
            raise CheckpointError(f"{self.path}: its metadata lists {len(classes)} class names but the model has "
                                  f"{width} outputs; labels would be wrong; {redo}")
        return classes

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"image": np.ascontiguousarray(x, dtype=np.float32)})[0]


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
        import torch

        from .device import torch_threads

        model = model.eval().cpu()

        @torch.no_grad()
        def logits(x: np.ndarray) -> np.ndarray:
            with torch_threads(1) if len(x) <= SMALL_BATCH else nullcontext():
                return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()
        return cls(classes, logits, "torch", tta_flip)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike | OnnxModel, tta_flip: bool | None = None) -> "Predictor":
        """``path``: an exported ``.onnx`` file (or an :class:`OnnxModel` already open)."""
        onnx_model = path if isinstance(path, OnnxModel) else OnnxModel(path)
        if tta_flip is None:
            tta_flip = onnx_model.metadata.get("quicksketch_tta_flip") == "true"
        return cls(onnx_model.classes, onnx_model.logits, "onnxruntime", tta_flip)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, backend: str = "auto", tta_flip: bool | None = None,
                        exporter: Exporter | None = None) -> "Predictor":
        """``backend``: ``torch``, ``onnx``, or ``auto``: onnxruntime when an ONNX export of
        exactly this checkpoint is at hand (:func:`onnx_export_of`: beside it, or for a shipped
        model in the user's cache), else PyTorch. ``exporter`` (``export.export_onnx``; the
        command line's ``predict`` passes it) writes a shipped model's export into the cache
        when it is not there yet. ``tta_flip``: None = as the checkpoint was trained to be
        evaluated."""
        path = resolve_checkpoint(path)  # "pretrained": the shipped model
        if path.suffix == ".onnx":
            return cls.from_onnx(path, tta_flip)
        if backend != "torch":
            onnx_model = onnx_export_of(path, required=backend == "onnx", exporter=exporter)
            if onnx_model is not None:
                return cls.from_onnx(onnx_model, tta_flip)
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        return cls.from_model(ckpt.build_model("cpu"), ckpt.classes,
                              ckpt.tta_flip if tta_flip is None else tta_flip)

    def predict_proba(self, drawings) -> np.ndarray:
        """Probabilities ``(N, C)`` for uint8 drawings in any shape ``as_drawings`` takes."""
        x = normalize_rows(as_drawings(drawings))
        proba = softmax(self._logits(x).astype(np.float64))
        if self.tta_flip:  # the mean with the mirror image's, as model.flip_averaged_proba
            proba = (proba + softmax(self._logits(x[..., ::-1]).astype(np.float64))) / 2
        if not np.isfinite(proba).all():
            raise CheckpointError(f"the {self.backend} model gave non-finite probabilities (NaN or "
                                  "infinite weights?); retrain or re-export it")
        return proba

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


def onnx_export_of(ckpt_path: Path, required: bool = False, exporter: Exporter | None = None) -> OnnxModel | None:
    """The ONNX export that answers for the checkpoint at ``ckpt_path``, or None (PyTorch answers):

    * ``m.onnx`` beside ``m.pt`` when it was exported from exactly this checkpoint (the
      checkpoint's SHA-256 recorded in its metadata; another model's file is ignored with a
      warning);
    * for a shipped model (``pretrained``, ``pretrained-54``), its export in the user's cache
      (:func:`~quicksketch_lib.locations.cached_onnx`); when it is not there, ``exporter``
      writes it (the one time torch is imported); a cache that cannot be written is a
      warning, and PyTorch answers.

    ``required`` (``--backend onnx``): the file beside the checkpoint, or the cached export of a
    shipped model, must be there; a missing one is a :class:`CheckpointError`.
    """
    beside = ckpt_path.with_suffix(".onnx")
    name = pretrained_name(ckpt_path)
    if required and (name is None or beside.is_file()):
        return OnnxModel(beside)  # as asked, whatever it was exported from
    if not ckpt_path.is_file() or not (required or _has_onnxruntime()):
        return None  # PyTorch answers (or says what is wrong with the checkpoint)
    sha = file_sha256(ckpt_path)
    if beside.is_file():
        found = _exported_from(beside, sha)
        if found is not None:
            return found
        warnings.warn(f"{beside}: not exported from {ckpt_path} (its recorded checkpoint differs or is "
                      "missing); using PyTorch -- re-export with `quicksketch export` to use ONNX")
    found = _cached_export(name, ckpt_path, sha, exporter) if name is not None else None
    if found is None and required:
        raise CheckpointError(f"no ONNX export of {name} could be made in {cached_onnx(name, sha).parent}; "
                              "use --backend auto or torch")
    return found


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _exported_from(onnx_path: Path, sha: str) -> OnnxModel | None:
    """The ONNX model at ``onnx_path`` when it records checkpoint ``sha``, else None."""
    try:
        model = OnnxModel(onnx_path)
    except CheckpointError:  # unreadable: the checkpoint answers instead
        return None
    return model if model.metadata.get(CHECKPOINT_SHA_KEY) == sha else None


def _cached_export(name: str, ckpt_path: Path, sha: str, exporter: Exporter | None) -> OnnxModel | None:
    """The shipped model ``name``'s export in the user's cache; when missing, written there by
    ``exporter`` (older versions' exports are removed), else None (with a warning when it cannot
    be written)."""
    cached = cached_onnx(name, sha)
    found = _exported_from(cached, sha) if cached.is_file() else None
    if found is not None or exporter is None:
        return found
    try:
        exporter(ckpt_path, cached)
    except (QuickSketchError, OSError, ImportError) as exc:
        warnings.warn(f"cannot keep an ONNX export of {name} in {cached.parent} ({exc}); using PyTorch")
        return None
    for old in cached.parent.glob(f"{name}-*.onnx"):
        if old != cached:
            old.unlink(missing_ok=True)
    return _exported_from(cached, sha)


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
