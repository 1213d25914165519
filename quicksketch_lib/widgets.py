"""The SketchPad: draw in JupyterLab and watch SketchCNN's top-5 guesses update.

::

    from quicksketch_lib.widgets import SketchPad
    SketchPad("models/sketchcnn.pt")          # or a Predictor, or (model, classes)

The browser side (``static/sketchpad.js``, an anywidget module) only collects
pointer strokes and draws what Python sends back. Every finished stroke is
sent to the kernel in one message (the ``strokes`` trait); while a stroke is
being drawn, throttled ``preview`` messages carry the unfinished stroke. Python
turns strokes into the model's 28x28 input with exactly
:func:`~quicksketch_lib.rasterize.rasterize_strokes` (the widget does no image
maths of its own), predicts with the :class:`~quicksketch_lib.inference.Predictor`
and sends back the input image (784 bytes), the top-k and, when the explanation
view is on, a saliency map (784 bytes).

Without a browser, :meth:`SketchPad.update_from_strokes` does the same work, so
tests and notebooks can feed recorded drawings.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import anywidget
import ipywidgets
import numpy as np
import torch
import traitlets

from .data import IMAGE_SIZE, normalize_batch
from .errors import InputError
from .inference import Prediction, Predictor
from . import locations
from .locations import find_checkpoint
from .rasterize import FRAME, LINE_DIAMETER, PADDING, rasterize_strokes

STATIC = Path(__file__).parent / "static"
BLANK_TEXT = "draw something"
# Quick Draw's line is 16 units wide in a 256-unit drawing plus 16 units of padding on each
# side; drawn on a square canvas the same proportion is this fraction of the canvas side.
LINE_FRACTION = LINE_DIAMETER / (FRAME + 2 * PADDING)


# --------------------------------------------------------------------------- pure functions
def predict_strokes(predictor: Predictor, strokes, top_k: int = 5) -> tuple[np.ndarray, Prediction]:
    """Strokes -> (the 28x28 uint8 model input, top-k guesses); no guesses for a blank drawing."""
    image = rasterize_strokes(strokes)
    if not image.any():
        return image, []
    return image, predictor.predict(image, top_k=top_k)


def saliency_map(model: torch.nn.Module, image: np.ndarray, target: int | None = None) -> np.ndarray:
    """Gradient saliency: how strongly each input pixel moves the ``target`` class score.

    ``image`` is a 28x28 uint8 drawing; ``target`` defaults to the top class.
    Returns a (28, 28) float32 map scaled to 0..1 (all zeros for a blank drawing):
    the absolute gradient of the class logit with respect to the normalised
    input, lightly smoothed with a 3x3 box so it reads as a heat map.
    """
    image = np.asarray(image, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    if not image.any():
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    model = model.eval()
    param = next(model.parameters())
    x = normalize_batch(torch.from_numpy(image.reshape(1, -1))).to(param.device, param.dtype)
    x.requires_grad_(True)
    logits = model(x)
    target = int(logits.argmax(1)) if target is None else int(target)
    (grad,) = torch.autograd.grad(logits[0, target], x)
    heat = torch.nn.functional.avg_pool2d(grad.abs(), 3, stride=1, padding=1)[0, 0]
    heat = heat.float().cpu().numpy()
    return (heat / max(float(heat.max()), 1e-12)).astype(np.float32)


@dataclass
class UpdateTiming:
    """Latency of one stroke-to-prediction update (rasterise + predict), in milliseconds."""

    median_ms: float
    p90_ms: float
    rasterize_ms: float
    predict_ms: float
    repeats: int
    backend: str

    def describe(self) -> str:
        return (f"one update: {self.median_ms:.1f} ms median, {self.p90_ms:.1f} ms p90 "
                f"(rasterise {self.rasterize_ms:.1f} ms + predict {self.predict_ms:.1f} ms; "
                f"{self.backend}, {self.repeats} repeats)")


def time_update(predictor: Predictor, strokes, repeats: int = 50, top_k: int = 5) -> UpdateTiming:
    """Time what the widget does after every stroke: ``rasterize_strokes`` then ``predict``."""
    predict_strokes(predictor, strokes, top_k)  # warm-up: first calls allocate
    raster, pred, total = [], [], []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        image = rasterize_strokes(strokes)
        t1 = time.perf_counter()
        predictor.predict(image, top_k=top_k)
        t2 = time.perf_counter()
        raster.append(t1 - t0)
        pred.append(t2 - t1)
        total.append(t2 - t0)
    ms = lambda xs, q=50: float(np.percentile(xs, q) * 1000)  # noqa: E731
    return UpdateTiming(ms(total), ms(total, 90), ms(raster), ms(pred), len(total), predictor.backend)


# --------------------------------------------------------------------------- finding a model
QUICK_MODEL = {"channels": (32, 64, 128), "hidden": 128}  # a compact SketchCNN: trains in minutes on a CPU


def checkpoint_for_drawing(epochs: int = 3, per_class: int = 1000, max_batches: int | None = None) -> Path:
    """A checkpoint for the SketchPad (see :func:`find_checkpoint`); when there is none, trains
    a compact SketchCNN for ``epochs`` on the ten classes (or every class of the data found by
    :func:`~quicksketch_lib.locations.find_data`) into ``models/sketchpad.pt``. Prints what it uses."""
    path, why = find_checkpoint()
    if path is None:
        from .data import load_folder, walkthrough_classes
        from .model import ModelConfig, SketchCNN
        from .training import TrainConfig, fit

        source = locations.find_data()
        data = load_folder(source.path, classes=walkthrough_classes(source.path), per_class=per_class)
        print(f"No checkpoint yet: training a compact SketchCNN for {epochs} epoch(s) on {data.describe()}")
        path = locations.project_root() / locations.QUICK_CHECKPOINT
        model = SketchCNN(ModelConfig(num_classes=len(data.classes), **QUICK_MODEL))
        fit(model, data, TrainConfig(epochs=epochs, max_batches=max_batches), out=path, progress=False)
        why = "just trained: a short run"
    print(f"Drawing with {path} ({why})")
    return path


# --------------------------------------------------------------------------- the widget
def _as_predictor(model_or_checkpoint, backend: str) -> tuple[Predictor, torch.nn.Module | None]:
    """A Predictor for predictions and, when available, a torch model for explanations."""
    from .checkpoint import load_checkpoint

    m = model_or_checkpoint
    if isinstance(m, Predictor):
        return m, None
    if isinstance(m, (str, os.PathLike)):
        path = Path(m)
        predictor = Predictor.from_checkpoint(path, backend)
        model = load_checkpoint(path).build_model("cpu") if path.suffix != ".onnx" else None
        return predictor, model
    if isinstance(m, (tuple, list)) and len(m) == 2 and isinstance(m[0], torch.nn.Module):
        model, classes = m
        return Predictor.from_model(model, classes), model.eval()
    raise InputError(f"SketchPad got {type(m).__name__}; expected a checkpoint path, "
                     "a Predictor or a (model, classes) pair")


def _clean_strokes(strokes) -> list[list[list[float]]]:
    """Strokes as plain JSON-able lists ``[[xs, ys(, ts)], ...]``; empty strokes dropped."""
    out = []
    for i, stroke in enumerate(strokes or []):
        if len(stroke) < 2:
            raise InputError(f"stroke {i} has {len(stroke)} coordinate lists; expected [xs, ys] or [xs, ys, ts]")
        lists = [np.asarray(c, dtype=float).reshape(-1).tolist() for c in stroke]
        if lists[0]:
            out.append(lists)
    return out


class SketchPad(anywidget.AnyWidget):
    """A square drawing area, the 28x28 the model sees, a live top-k bar chart.

    ``model_or_checkpoint``: a checkpoint path (``.pt``; its ``.onnx`` export is
    used for predictions when ``backend`` allows), a :class:`Predictor`, or a
    ``(model, classes)`` pair. The explanation view (gradient saliency) needs a
    torch model, so it is off for a bare Predictor.

    Python-side state: ``strokes`` (list of ``[xs, ys, ts]``), ``image``
    (28x28 uint8), ``predictions`` (``[(class, p), ...]``, empty for a blank
    canvas) and ``headline`` (``"draw something"`` or the top class in words).
    Errors raised while handling browser events go to ``output`` (an
    ``ipywidgets.Output`` displayed below the pad).
    """

    _esm = STATIC / "sketchpad.js"
    _css = STATIC / "sketchpad.css"

    strokes = traitlets.List([]).tag(sync=True)
    explain = traitlets.Bool(False).tag(sync=True)
    _input = traitlets.Bytes(bytes(IMAGE_SIZE * IMAGE_SIZE)).tag(sync=True)
    _heat = traitlets.Bytes(b"").tag(sync=True)
    _predictions = traitlets.List([]).tag(sync=True)
    _headline = traitlets.Unicode(BLANK_TEXT).tag(sync=True)
    _latency_ms = traitlets.Float(0.0).tag(sync=True)
    _preview_ack = traitlets.Int(0).tag(sync=True)
    _can_explain = traitlets.Bool(False).tag(sync=True)
    _line_fraction = traitlets.Float(LINE_FRACTION).tag(sync=True)
    _error = traitlets.Unicode("").tag(sync=True)
    _shown_strokes = traitlets.Int(0).tag(sync=True)  # strokes in the last full update (a test hook)

    def __init__(self, model_or_checkpoint, top_k: int = 5, backend: str = "auto", **kwargs):
        self.predictor, self.model = _as_predictor(model_or_checkpoint, backend)
        self.top_k = top_k
        self.image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.predictions: Prediction = []
        self.output = ipywidgets.Output()
        self._updating = False
        super().__init__(_can_explain=self.model is not None, **kwargs)
        self.observe(self._on_strokes, names="strokes")
        self.observe(self._on_explain, names="explain")
        self.on_msg(self._on_message)

    # ------------------------------------------------------------------ pure Python API
    @property
    def headline(self) -> str:
        return self._headline

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    def update_from_strokes(self, strokes) -> Prediction:
        """Show ``strokes`` (``[[xs, ys(, ts)], ...]``, screen pixels): rasterise, predict, send."""
        strokes = _clean_strokes(strokes)
        self._updating = True
        try:
            self.strokes = strokes
        finally:
            self._updating = False
        return self._refresh(strokes, preview=False)

    def undo(self) -> Prediction:
        """Remove the last stroke."""
        return self.update_from_strokes(self.strokes[:-1])

    def clear(self) -> Prediction:
        """Remove every stroke: back to "draw something"."""
        return self.update_from_strokes([])

    def explanation(self) -> np.ndarray | None:
        """The saliency map of the current drawing (None without a torch model)."""
        return None if self.model is None else saliency_map(self.model, self.image)

    def _refresh(self, strokes, preview: bool = True) -> Prediction:
        t0 = time.perf_counter()
        image, predictions = predict_strokes(self.predictor, strokes, self.top_k)
        latency = (time.perf_counter() - t0) * 1000
        self.image, self.predictions = image, predictions
        top = predictions[0] if predictions else None
        with self.hold_sync():
            self._input = image.tobytes()
            self._predictions = [[c, round(p, 4)] for c, p in predictions]
            self._headline = f"{top[0]} ({top[1]:.0%})" if top else BLANK_TEXT
            self._latency_ms = round(latency, 1)
            self._heat = self._heat_bytes() if self.explain else b""
            self._error = ""
            if not preview:
                self._shown_strokes = len(strokes)
        return predictions

    def _heat_bytes(self) -> bytes:
        heat = self.explanation()
        return b"" if heat is None else np.round(heat * 255).astype(np.uint8).tobytes()

    # ------------------------------------------------------------------ browser events
    def _on_strokes(self, change) -> None:
        if not self._updating:
            self._guarded(self.update_from_strokes, change["new"])

    def _on_explain(self, change) -> None:
        self._guarded(lambda: setattr(self, "_heat", self._heat_bytes() if change["new"] else b""))

    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("kind") == "preview":
            stroke = content.get("stroke") or []
            self._guarded(lambda: self._refresh(_clean_strokes(list(self.strokes) + [stroke])))
            self._preview_ack = int(content.get("seq", 0))

    def _guarded(self, fn, *args) -> None:
        """Run an event handler; show its error in the pad and its traceback in ``output``."""
        try:
            fn(*args)
        except Exception as exc:  # an event handler must never die silently
            self._error = f"{type(exc).__name__}: {exc}"
            self.output.append_stderr(traceback.format_exc())

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs):
        bundle = ipywidgets.VBox([self, self.output])._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = (f"SketchPad: draw in the square; top-{self.top_k} guesses "
                                "update while you draw")
        return bundle
