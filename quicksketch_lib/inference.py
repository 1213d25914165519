"""Inference: top-k class guesses for drawings, arrays, ``.npy`` files and images.

``Predictor`` wraps a checkpoint (PyTorch) or its exported ONNX file
(onnxruntime, through :class:`OnnxModel`) behind one call::

    predictor = Predictor.from_checkpoint("models/sketchcnn.pt")
    predictor.predict(drawing_28x28_uint8, top_k=5)   # [("cat", 0.91), ("dog", 0.05), ...]

Inputs are read by :mod:`~quicksketch_lib.drawing` (``.npy`` rows, and pictures of any
size converted the Quick Draw way by :func:`~quicksketch_lib.drawing.preprocess_image`).

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

from .data import normalize_rows
from .drawing import IMAGE_SIZE, PIXELS, as_drawings, is_blank, load_inputs
from .errors import CheckpointError, InputError, QuickSketchError, first_line
from .files import file_sha256
from .locations import cached_onnx, pretrained_name, resolve_checkpoint

if TYPE_CHECKING:
    import torch

Prediction = list[tuple[str, float]]
Exporter = Callable[[Path, Path], object]  # (checkpoint, out.onnx) -> writes the export (export.export_onnx)
SMALL_BATCH = 8  # up to this many drawings run on one thread (lower latency, see device.torch_threads)
CHUNK = 256  # drawings per forward pass: 4,000 at once made onnxruntime allocate ~1 GB and run 4x slower
CHECKPOINT_SHA_KEY = "quicksketch_checkpoint_sha256"  # an export's record of the checkpoint it came from


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
        """Logits ``(N, C)`` for normalised ``(N, 1, 28, 28)`` input, :data:`CHUNK` drawings per run."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        runs = [self.session.run(["logits"], {"image": x[i:i + CHUNK]})[0] for i in range(0, max(len(x), 1), CHUNK)]
        return runs[0] if len(runs) == 1 else np.concatenate(runs)


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
        proba = softmax(self._chunked_logits(x))
        if self.tta_flip:  # the mean with the mirror image's, as model.flip_averaged_proba
            proba = (proba + softmax(self._chunked_logits(x[..., ::-1]))) / 2
        if not np.isfinite(proba).all():
            raise CheckpointError(f"the {self.backend} model gave non-finite probabilities (NaN or "
                                  "infinite weights?); retrain or re-export it")
        return proba

    def _chunked_logits(self, x: np.ndarray) -> np.ndarray:
        """float64 logits, :data:`CHUNK` drawings per forward pass (memory stays flat for any N)."""
        if len(x) <= CHUNK:
            return self._logits(x).astype(np.float64)
        return np.concatenate([self._logits(x[i:i + CHUNK]).astype(np.float64) for i in range(0, len(x), CHUNK)])

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
