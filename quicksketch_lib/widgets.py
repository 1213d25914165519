"""The SketchPad: draw in JupyterLab and watch SketchCNN's top-5 guesses update; the Game:
play Quick, Draw! against it.

::

    from quicksketch_lib.widgets import Game, SketchPad
    SketchPad()                               # your trained model, else the shipped pretrained one
    SketchPad("models/sketchcnn.pt")          # or "pretrained", a Predictor, or (model, classes)
    SketchPad(teach_mode=True)                # with the panel that teaches it a class of your own
    Game()                                    # six rounds of 20 s against the 54-class model

The browser side (``static/sketchpad.js``, an anywidget module) only collects
pointer strokes and draws what Python sends back. Every finished stroke is
sent to the kernel in one message (the ``strokes`` trait); while a stroke is
being drawn, throttled ``preview`` messages carry the unfinished stroke. Python
turns strokes into the model's 28x28 input with exactly
:func:`~quicksketch_lib.rasterize.rasterize_strokes` (the widget does no image
maths of its own), predicts with the :class:`~quicksketch_lib.inference.Predictor`
and sends back the input image (784 bytes), the top-k and, when the explanation
view is on, a saliency map (784 bytes).

Teach mode adds a class of your own: each example is the current drawing put
through the same ``rasterize_strokes``; "Teach" hands the examples to
:func:`~quicksketch_lib.teach.teach_class` and swaps in the checkpoint it returns,
so the next drawing is already judged by the new model. "Forget" and "Save" call
:func:`~quicksketch_lib.teach.forget_class` and
:func:`~quicksketch_lib.checkpoint.save_checkpoint`. The browser sends each of
these as a small message (``{"kind": "teach"}``, ...); Python holds the
examples and sends back only their pixels, for the thumbnails.

Without a browser, :meth:`SketchPad.update_from_strokes`, :meth:`SketchPad.add_example`,
:meth:`SketchPad.teach` and friends do the same work, so tests and notebooks can
feed recorded drawings.

The :class:`Game` (``static/game.js``) wires the same kind of canvas to a
:class:`~quicksketch_lib.game.GameSession`, which holds the rules: Python decides
prompts, guesses, wins and time-outs (the browser's countdown only shows the
time); at the end it sends a summary of every round, explained with
:func:`saliency_map` and :func:`~quicksketch_lib.game.why_lost`.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import anywidget
import ipywidgets
import numpy as np
import torch
import traitlets

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import normalize_batch
from .drawing import FRAME, IMAGE_SIZE, LINE_DIAMETER, PADDING, PIXELS, clean_strokes, is_blank
from .errors import CheckpointError, InputError, QuickSketchError
from .game import GameConfig, GameSession, RoundResult, replay_drawings, why_lost
from .inference import Prediction, Predictor
from . import locations
from .locations import PRETRAINED_54, PRETRAINED_PATH, find_checkpoint, pretrained_name, resolve_checkpoint
from .model import SketchCNN
from .rasterize import rasterize_strokes
from .teach import TeachConfig, forget_class, taught_classes, teach_class

STATIC = Path(__file__).parent / "static"


def widget_module(name: str) -> str:
    """A widget's browser module: ``static/common.js`` (the helpers both widgets use) followed by
    ``static/<name>`` (anywidget loads one module per widget; it cannot import a second file)."""
    return (STATIC / "common.js").read_text(encoding="utf-8") + "\n" + (STATIC / name).read_text(encoding="utf-8")

BLANK_TEXT = "draw something"
# Quick Draw's line is 16 units wide in a 256-unit drawing plus 16 units of padding on each
# side; drawn on a square canvas the same proportion is this fraction of the canvas side.
LINE_FRACTION = LINE_DIAMETER / (FRAME + 2 * PADDING)


# --------------------------------------------------------------------------- pure functions
def predict_strokes(predictor: Predictor, strokes, top_k: int = 5) -> tuple[np.ndarray, Prediction]:
    """Strokes -> (the 28x28 uint8 model input, top-k guesses); no guesses for a blank drawing."""
    image = rasterize_strokes(strokes)
    if is_blank(image):
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
    if is_blank(image):
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
def drawing_checkpoint() -> tuple[Path, str]:
    """The checkpoint the SketchPad draws with when given none, and why:
    :func:`~quicksketch_lib.locations.find_checkpoint` (a model trained here, else the
    shipped pretrained one). Nothing is trained here."""
    path, why = find_checkpoint()
    if path is None:
        raise CheckpointError(f"{PRETRAINED_PATH}: the shipped pretrained model is missing; "
                              "reinstall QuickSketch or train one with `quicksketch train`")
    return path, why


def checkpoint_for_drawing() -> Path:
    """:func:`drawing_checkpoint`, printed (nothing is trained: a model trained here, else the
    pretrained one, answers)."""
    path, why = drawing_checkpoint()
    print(f"Drawing with {path} ({why})")
    return path


# --------------------------------------------------------------------------- teaching helpers
def default_save_path(base: str, taught: Sequence[str], folder: Path | None = None) -> Path:
    """Where "Save" writes: ``models/<base>+<taught classes>.pt`` in the project, never in
    the package (``base``: the stem of the checkpoint the pad started from)."""
    names = "+".join(n.replace(" ", "_").replace("/", "_") for n in taught) or "copy"
    return (folder or locations.project_root() / "models") / f"{base}+{names}.pt"


def examples_bytes(examples: Sequence[np.ndarray]) -> bytes:
    """Teaching examples (28x28 uint8 each) as the ``K * 784`` bytes the thumbnails draw."""
    return np.stack(examples).astype(np.uint8).tobytes() if len(examples) else b""


def _checkpoint_of(model: torch.nn.Module, classes: Sequence[str]) -> Checkpoint | None:
    """An in-memory checkpoint of a SketchCNN (what teaching starts from); None for other models."""
    if not isinstance(model, SketchCNN):
        return None
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(model_state=state, model_config=model.config, classes=list(classes))


def _load(model_or_checkpoint, backend: str) -> tuple[Predictor, torch.nn.Module | None, Checkpoint | None, str]:
    """(predictor, torch model for explanations, checkpoint for teaching, what it is in words);
    the model and checkpoint are None where the source has none (a Predictor, an ONNX file)."""
    m = model_or_checkpoint
    if isinstance(m, Predictor):
        return m, None, None, "a Predictor"
    if isinstance(m, Checkpoint):  # e.g. a taught one, from SketchPad.teach
        model = m.build_model("cpu")
        return Predictor.from_model(model, m.classes, m.tta_flip), model, m, "a checkpoint"
    if isinstance(m, (str, os.PathLike)):
        path = resolve_checkpoint(m)
        name = pretrained_name(path) or str(m)
        predictor = Predictor.from_checkpoint(path, backend)
        if path.suffix == ".onnx":
            return predictor, None, None, name
        ckpt = load_checkpoint(path)
        return predictor, ckpt.build_model("cpu"), ckpt, name
    if isinstance(m, (tuple, list)) and len(m) == 2 and isinstance(m[0], torch.nn.Module):
        model, classes = m
        return Predictor.from_model(model, classes), model.eval(), _checkpoint_of(model, classes), "a model"
    raise InputError(f"got {type(m).__name__} as the model; expected a checkpoint path, a Checkpoint, "
                     "a Predictor or a (model, classes) pair")


def _json_strokes(strokes) -> list[list[list[float]]]:
    """Strokes checked by :func:`~quicksketch_lib.drawing.clean_strokes`, as the plain
    JSON-able lists ``[[xs, ys(, ts)], ...]`` the ``strokes`` trait holds."""
    return [points.tolist() for points in clean_strokes(strokes)]


# --------------------------------------------------------------------------- the widgets
class _BrowserEvents:
    """What both widgets do with the browser: errors in event handlers are shown in the widget
    (its ``_error`` trait) and in ``output``, an ``ipywidgets.Output`` displayed below it; the
    notebook shows a fixed text for the widget (what nbval compares)."""

    def _guarded(self, fn, *args):
        """Run an event handler; show its error in the widget and in ``output`` (a user's mistake
        as its one-line message, anything else with its traceback)."""
        try:
            return fn(*args)
        except QuickSketchError as exc:  # something the user can fix: the message says what
            self._error = f"error: {exc}"
            self.output.append_stderr(f"error: {exc}\n")
        except Exception as exc:  # an event handler must never die silently
            self._error = f"{type(exc).__name__}: {exc}"
            self.output.append_stderr(traceback.format_exc())

    def _bundle(self, text: str, **kwargs) -> dict:
        bundle = ipywidgets.VBox([self, self.output])._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = text
        return bundle


class SketchPad(_BrowserEvents, anywidget.AnyWidget):
    """A square drawing area, the 28x28 the model sees, a live top-k bar chart.

    ``model_or_checkpoint``: a checkpoint path (``.pt``; its ``.onnx`` export is
    used for predictions when ``backend`` allows), ``"pretrained"`` (the shipped
    model of the ten), a :class:`Predictor`, or a ``(model, classes)`` pair; by
    default :func:`drawing_checkpoint` (a model trained here, else the pretrained
    one). The explanation view (gradient saliency) and teaching need a torch
    model, so they are off for a bare Predictor or an ONNX file. ``replay`` and
    ``teach_config`` go to :func:`~quicksketch_lib.teach.teach_class` (the
    pretrained model carries its own replay drawings).

    Python-side state: ``strokes`` (list of ``[xs, ys, ts]``), ``image``
    (28x28 uint8), ``predictions`` (``[(class, p), ...]``, empty for a blank
    canvas) and ``headline`` (``"draw something"`` or the top class in words);
    in teach mode (``teach_mode=True``) also ``examples`` (28x28 uint8 each),
    ``class_name`` and ``checkpoint`` (the model that answers, taught classes
    included). Errors raised while handling browser events show in the pad and
    go to ``output`` (an ``ipywidgets.Output`` displayed below the pad).
    """

    _esm = widget_module("sketchpad.js")
    _css = STATIC / "sketchpad.css"

    strokes = traitlets.List([]).tag(sync=True)
    explain = traitlets.Bool(False).tag(sync=True)
    teach_mode = traitlets.Bool(False).tag(sync=True)
    class_name = traitlets.Unicode("").tag(sync=True)
    _input = traitlets.Bytes(bytes(PIXELS)).tag(sync=True)
    _heat = traitlets.Bytes(b"").tag(sync=True)
    _predictions = traitlets.List([]).tag(sync=True)
    _headline = traitlets.Unicode(BLANK_TEXT).tag(sync=True)
    _latency_ms = traitlets.Float(0.0).tag(sync=True)
    _preview_ack = traitlets.Int(0).tag(sync=True)
    _can_explain = traitlets.Bool(False).tag(sync=True)
    _can_teach = traitlets.Bool(False).tag(sync=True)
    _line_fraction = traitlets.Float(LINE_FRACTION).tag(sync=True)
    _error = traitlets.Unicode("").tag(sync=True)
    _shown_strokes = traitlets.Int(0).tag(sync=True)  # strokes in the last full update (a test hook)
    _model_info = traitlets.Unicode("").tag(sync=True)  # which model answers, in words
    _examples = traitlets.Bytes(b"").tag(sync=True)  # K x 784 uint8: the thumbnails
    _examples_of = traitlets.Unicode("").tag(sync=True)  # "" while collecting; after Teach, the class shown
    _taught = traitlets.List([]).tag(sync=True)  # classes taught to the model that answers
    _status = traitlets.Unicode("").tag(sync=True)  # what the last teach/forget/save did
    _busy = traitlets.Unicode("").tag(sync=True)  # non-empty while teaching
    _min_examples = traitlets.Int(5).tag(sync=True)

    def __init__(self, model_or_checkpoint=None, top_k: int = 5, backend: str = "auto",
                 teach_mode: bool = False, replay=None, teach_config: TeachConfig | None = None, **kwargs):
        if model_or_checkpoint is None:
            model_or_checkpoint, self.why = drawing_checkpoint()
        else:
            self.why = "given"
        self.predictor, self.model, self.checkpoint, self.source = _load(model_or_checkpoint, backend)
        self.top_k = top_k
        self.image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.predictions: Prediction = []
        self.examples: list[np.ndarray] = []
        self.replay, self.teach_config = replay, teach_config or TeachConfig()
        self.output = ipywidgets.Output()
        self._updating = False
        m = model_or_checkpoint  # "Save" names the new file after it: models/<stem>+<taught>.pt
        self._base = resolve_checkpoint(m).stem.split("+")[0] if isinstance(m, (str, os.PathLike)) else "sketchpad"
        super().__init__(_can_explain=self.model is not None, _can_teach=self.checkpoint is not None,
                         teach_mode=teach_mode, _min_examples=self.teach_config.min_drawings, **kwargs)
        self._describe_model()
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

    @property
    def taught(self) -> list[str]:
        """Classes taught to the model that answers (in this pad or before it was saved)."""
        return list(self._taught)

    def update_from_strokes(self, strokes) -> Prediction:
        """Show ``strokes`` (``[[xs, ys(, ts)], ...]``, screen pixels): rasterise, predict, send."""
        strokes = _json_strokes(strokes)
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

    # ------------------------------------------------------------------ teach mode
    def add_example(self, strokes=None) -> np.ndarray:
        """Keep a drawing (default: the one on the canvas) as an example of the class being
        taught, as the 28x28 the model sees, and clear the canvas for the next one."""
        strokes = self.strokes if strokes is None else _json_strokes(strokes)
        image = rasterize_strokes(strokes)
        if is_blank(image):
            raise InputError("the canvas is blank: draw an example first, then press 'Add example'")
        self.examples.append(image)
        self._show_examples(self.examples)
        self.clear()
        return image

    def undo_example(self) -> None:
        """Drop the last example."""
        if not self.examples:
            raise InputError("there is no example to remove")
        self.examples.pop()
        self._show_examples(self.examples)

    def teach(self, name: str | None = None) -> Checkpoint:
        """Teach the model the class ``name`` (default: the name box) from the examples;
        the new model answers from the next drawing on. Returns its checkpoint."""
        name, k = self._name(name), len(self.examples)
        drawings = np.stack(self.examples) if k else np.zeros((0, PIXELS), np.uint8)
        t0 = time.perf_counter()
        self._busy = f"teaching '{name}' from {k} drawings ..."
        try:
            ckpt = teach_class(self._teachable(), name, drawings, replay=self.replay, config=self.teach_config)
        finally:
            self._busy = ""
        seconds = time.perf_counter() - t0
        self.examples = []
        self._show_examples(drawings, of=name)  # what it was taught from, until the next example
        self._use(ckpt)
        self._status = (f"taught '{name}' from {k} drawings in {seconds:.1f} s: "
                        f"the model knows {len(ckpt.classes)} classes")
        return ckpt

    def forget(self, name: str | None = None) -> Checkpoint:
        """Remove the taught class ``name`` (default: the name box) from the model."""
        name = self._name(name)
        ckpt = forget_class(self._teachable(), name)
        if self._examples_of == name:
            self._show_examples(self.examples)
        self._use(ckpt)
        self._status = f"forgot '{name}': the model knows {len(ckpt.classes)} classes"
        return ckpt

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the model that answers, taught classes included, as a checkpoint
        (default :func:`default_save_path`, under ``models/``). Returns the path."""
        path = Path(path) if path is not None else default_save_path(self._base, self.taught)
        if Path(__file__).resolve().parent in path.resolve().parents:
            raise InputError(f"{path} is inside the installed package; save under models/ or elsewhere")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self._teachable(), path)
        self._status = f"saved {_shown_path(path)}"
        return path

    def _show_examples(self, images, of: str = "") -> None:
        """Thumbnails: the examples being collected, or (``of``) those a class was taught from."""
        with self.hold_sync():
            self._examples = examples_bytes(images)
            self._examples_of = of

    def _name(self, name: str | None) -> str:
        name = (self.class_name if name is None else name).strip()
        if not name:
            raise InputError("type the name of the class in the name box first")
        self.class_name = name
        return name

    def _teachable(self) -> Checkpoint:
        if self.checkpoint is None:
            raise InputError(f"this pad draws with {self.source}, which cannot learn: give SketchPad "
                             "a checkpoint (.pt), 'pretrained' or a (SketchCNN, classes) pair to teach it")
        return self.checkpoint

    def _use(self, ckpt: Checkpoint) -> None:
        """Answer with ``ckpt`` from now on (PyTorch: an ONNX export would not know taught classes)."""
        self.checkpoint = ckpt
        self.model = ckpt.build_model("cpu")
        self.predictor = Predictor.from_model(self.model, ckpt.classes, ckpt.tta_flip)
        self._describe_model()
        self._refresh(self.strokes, preview=False)

    def _describe_model(self) -> None:
        taught = taught_classes(self.checkpoint) if self.checkpoint is not None else []
        words = self.source if self.why == "given" else f"{self.source} ({self.why})"
        words += f" · {len(self.classes)} classes"
        if taught:
            words += f" · taught: {', '.join(taught)}"
        self._taught = taught
        self._model_info = words

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
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "preview":
            stroke = content.get("stroke") or []
            self._guarded(lambda: self._refresh(_json_strokes(list(self.strokes) + [stroke])))
            self._preview_ack = int(content.get("seq", 0))
        actions = {"add_example": self.add_example, "undo_example": self.undo_example,
                   "teach": self.teach, "forget": self.forget, "save": self.save}
        if kind in actions:
            self._guarded(actions[kind])

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs):
        return self._bundle(f"SketchPad: draw in the square; top-{self.top_k} guesses update while you draw",
                            **kwargs)


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- the game
def outcome_words(result: RoundResult) -> str:
    """How a round ended, in a few words: "recognised in 4.2 s", "not recognised: time's up"."""
    if result.won:
        return f"recognised in {result.seconds:.1f} s"
    return {"time": "not recognised: time's up", "skipped": "skipped",
            "ended": "not recognised: the game was ended"}.get(result.reason, result.reason)


@dataclass
class RoundSummary:
    """One round of the game's summary: its result, the prompt's probability at the end
    (``p_prompt``: the rule's number, shown even when the prompt is not in the top-3), what the
    model looked at (``heat``: the saliency of its top guess, 28x28 in 0..1; None without a
    torch model) and, for a lost round, ``why`` (:func:`~quicksketch_lib.game.why_lost`: the
    drawings of its guess and of the prompt nearest to the player's)."""

    result: RoundResult
    p_prompt: float
    heat: np.ndarray | None
    why: dict | None

    @property
    def outcome(self) -> str:
        return outcome_words(self.result)


def summarise_round(result: RoundResult, predictor: Predictor, model: torch.nn.Module | None = None,
                    replay=None, k: int = 3) -> RoundSummary:
    """Explain one round (``model`` None: no saliency; no ``replay`` drawings: no nearest ones)."""
    classes = predictor.classes
    p_prompt = float(predictor.predict_proba(result.image)[0, classes.index(result.prompt)]) if result.top3 else 0.0
    if model is None:
        return RoundSummary(result, p_prompt, None, None)
    top = classes.index(result.top3[0][0]) if result.top3 else None
    why = why_lost(model, replay, result, k) if replay else None
    return RoundSummary(result, p_prompt, saliency_map(model, result.image, top), why)


def summary_payload(rounds: Sequence[RoundSummary]) -> tuple[list[dict], bytes]:
    """The summary as the browser draws it: one JSON-able dict per round, and the 28x28
    pictures it refers to by index (the model's input, the saliency, the nearest drawings)
    as ``N * 784`` bytes."""
    pictures: list[np.ndarray] = []

    def add(image) -> int:
        pictures.append(np.asarray(image, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
        return len(pictures) - 1

    cards = []
    for r in rounds:
        res = r.result
        heat = None if r.heat is None else add(np.round(r.heat * 255))
        nearest = []
        if r.why:
            nearest = [{"class": r.why["guessed"], "caption": f"{r.why['guessed']} drawings it knows that look like yours",
                        "pictures": [add(d) for d in r.why["guessed_nearest"]]},
                       {"class": res.prompt, "caption": f"{res.prompt} drawings nearest to yours",
                        "pictures": [add(d) for d in r.why["prompt_nearest"]]}]
        cards.append({"prompt": res.prompt, "won": res.won, "reason": res.reason, "seconds": res.seconds,
                      "outcome": r.outcome, "top3": [[c, round(p, 4)] for c, p in res.top3],
                      "p_prompt": round(r.p_prompt, 4),
                      "strokes": res.strokes, "input": add(res.image), "heat": heat, "nearest": nearest})
    return cards, b"".join(p.tobytes() for p in pictures)


class Game(_BrowserEvents, anywidget.AnyWidget):
    """Quick, Draw! against SketchCNN: ``rounds`` prompts ("Draw a camel") of ``seconds`` each.

    While you draw, the model guesses aloud after every stroke and several times a second while
    the pen moves ("I see a boomerang", "… or a banana", "Oh, I know, it's a camel!"). A round is
    won as soon as the prompt's probability reaches :attr:`threshold` (the game does not wait for
    it to be the top guess) and lost when the time runs out or you skip. At the end, a summary
    shows every drawing with its top-3, what the model looked at and, for a lost round, the
    drawings the model knows that are nearest to yours. Space starts a round and skips one, Esc
    ends the game.

    ``model_or_checkpoint``: ``"pretrained-54"`` (default), any checkpoint path or name the
    SketchPad takes, a :class:`~quicksketch_lib.checkpoint.Checkpoint` (a taught one: its taught
    classes are prompts too), a Predictor (no summary explanations) or a ``(model, classes)``
    pair. ``rounds``, ``seconds``, ``threshold`` (None: the model's measured one) and ``seed``
    make the :class:`~quicksketch_lib.game.GameConfig` (or pass ``config``); ``classes`` limits
    the prompts. ``clock`` (seconds) is what the rounds are timed with.

    The kernel is the referee: the browser sends strokes and button presses, :class:`GameSession`
    decides. Time-outs are decided by a timer on the kernel's event loop (so a round left blank
    is lost with no event from the browser), and also when the browser's countdown reaches zero
    or a drawing arrives late. Without a browser, :meth:`start`, :meth:`draw`, :meth:`tick`,
    :meth:`skip` and :meth:`end` play the same game (``now``: a time of your clock, default
    ``clock()``), and :attr:`summary` explains it.
    """

    _esm = widget_module("game.js")
    _css = STATIC / "game.css"

    _phase = traitlets.Unicode("ready").tag(sync=True)  # "ready" (before a round), "drawing", "over"
    _round = traitlets.Int(1).tag(sync=True)  # the round being played or next, from 1
    _rounds = traitlets.Int(6).tag(sync=True)
    _prompt = traitlets.Unicode("").tag(sync=True)
    _seconds = traitlets.Float(20.0).tag(sync=True)
    _remaining = traitlets.Float(20.0).tag(sync=True)  # seconds left when the kernel last looked
    _phrase = traitlets.Unicode("").tag(sync=True)
    _guesses = traitlets.List([]).tag(sync=True)  # the live top-3: [[class, p], ...]
    _target_p = traitlets.Float(0.0).tag(sync=True)
    _threshold = traitlets.Float(0.5).tag(sync=True)
    _updates = traitlets.Int(0).tag(sync=True)  # updates of this round so far (a test hook)
    _shown_strokes = traitlets.Int(0).tag(sync=True)  # strokes in the last update (a test hook)
    _ack = traitlets.Int(0).tag(sync=True)  # the last draw message handled
    _last = traitlets.Dict({}).tag(sync=True)  # how the last round ended
    _summary = traitlets.List([]).tag(sync=True)
    _pictures = traitlets.Bytes(b"").tag(sync=True)  # the summary's 28x28 pictures
    _line_fraction = traitlets.Float(LINE_FRACTION).tag(sync=True)
    _error = traitlets.Unicode("").tag(sync=True)
    _model_info = traitlets.Unicode("").tag(sync=True)

    def __init__(self, model_or_checkpoint=PRETRAINED_54, *, rounds: int = 6, seconds: float = 20.0,
                 threshold: float | None = None, seed: int = 0, config: GameConfig | None = None,
                 classes: Sequence[str] | None = None, clock=time.monotonic, **kwargs):
        predictor, self.model, self.checkpoint, self.source = _load(model_or_checkpoint, "torch")
        config = config or GameConfig(rounds=rounds, seconds=seconds, threshold=threshold, seed=seed)
        # with a checkpoint the session makes its fast live predictor and reads the model's threshold
        self.session = GameSession(predictor if self.checkpoint is None else self.checkpoint, config, classes)
        self.predictor = self.session.predictor
        self.config = replace(config, threshold=self.session.threshold)  # the next games reuse both
        self.classes_played, self.clock = classes, clock
        self.replay = replay_drawings(self.checkpoint) if self.checkpoint is not None else {}
        self.output = ipywidgets.Output()
        self.summary: list[RoundSummary] = []
        self._timer = None
        self._games = 0
        super().__init__(_rounds=config.rounds, _seconds=config.seconds, _threshold=self.threshold, **kwargs)
        self._show_new_game()
        self._model_info = f"{self.source} · {len(self.predictor.classes)} classes · wins at {self.threshold:.0%}"
        self.on_msg(self._on_message)

    # ------------------------------------------------------------------ pure Python API
    @property
    def threshold(self) -> float:
        """The prompt's probability at which a round is won."""
        return self.session.threshold

    @property
    def prompts(self) -> list[str]:
        return self.session.prompts

    @property
    def results(self) -> list[RoundResult]:
        return self.session.results

    def start(self, now: float | None = None) -> str:
        """Start the next round; returns its prompt."""
        prompt = self.session.start_round(self._now(now))
        with self.hold_sync():
            self._show_live("", [], 0.0, updates=0)
            self._shown_strokes = 0
            self._remaining = self.config.seconds
            self._phase = "drawing"
        return prompt

    def draw(self, strokes, now: float | None = None):
        """The round's drawing so far (``[[xs, ys(, ts)], ...]``): the model guesses; the round
        ends when the prompt is recognised (or its time is up). Returns the game's Update."""
        now, update_strokes = self._now(now), clean_strokes(strokes)
        update = self.session.update(update_strokes, now)
        with self.hold_sync():
            self._show_live(update.phrase, update.top3, update.p_target, updates=self._updates + 1)
            self._shown_strokes = len(update_strokes)
            self._remaining = self.session.time_left(now)
            if update.result is not None:
                self._finish(update.result)
        return update

    def tick(self, now: float | None = None) -> RoundResult | None:
        """End the round if its time is up (lost); returns its result, else None."""
        result = self.session.tick(self._now(now))
        if result is not None:
            self._finish(result)
        return result

    def skip(self, now: float | None = None) -> RoundResult:
        """Give up this round (lost)."""
        result = self.session.skip(self._now(now))
        self._finish(result)
        return result

    def end(self, now: float | None = None) -> list[RoundSummary]:
        """End the game (a round being played is lost) and show the summary."""
        self.session.end(self._now(now))
        self._show_summary()
        return self.summary

    def new_game(self) -> None:
        """Play again: new prompts (the next seed), no results."""
        self._games += 1
        config = replace(self.config, seed=self.config.seed + self._games)
        self.session = GameSession(self.predictor, config, self.classes_played)
        self._show_new_game()

    # ------------------------------------------------------------------ what the browser sees
    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _show_new_game(self) -> None:
        self.summary = []
        with self.hold_sync():
            self._summary, self._pictures, self._last = [], b"", {}
            self._show_next()

    def _show_live(self, phrase: str, top3, p_target: float, updates: int) -> None:
        self._phrase = phrase
        self._guesses = [[c, round(p, 4)] for c, p in top3]
        self._target_p = round(p_target, 4)
        self._updates = updates

    def _show_next(self) -> None:
        """Between rounds: the card of the next round."""
        self._round = len(self.results) + 1
        self._prompt = self.prompts[len(self.results)]
        self._phase = "ready"

    def _finish(self, result: RoundResult) -> None:
        self._cancel_timer()
        with self.hold_sync():
            self._last = {"prompt": result.prompt, "won": result.won, "reason": result.reason,
                          "seconds": result.seconds,
                          "outcome": f"{'✓' if result.won else '✗'} {result.prompt}: {outcome_words(result)}"}
            if self.session.over:
                self._show_summary()
            else:
                self._show_next()

    def _show_summary(self) -> None:
        self._cancel_timer()
        self.summary = [summarise_round(r, self.predictor, self.model, self.replay) for r in self.results]
        cards, pictures = summary_payload(self.summary)
        with self.hold_sync():
            self._summary, self._pictures = cards, pictures
            self._phase = "over"

    # ------------------------------------------------------------------ the kernel's timer
    def _start_timer(self) -> None:
        """Call :meth:`tick` when the round's time is up, on the kernel's event loop (none
        outside a kernel: then the browser's tick and late drawings end the round)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._cancel_timer()
        delay = self.session.time_left(self.clock()) + 0.02
        self._timer = loop.call_later(delay, lambda: self._guarded(self._on_timer))

    def _on_timer(self) -> None:
        self._timer = None
        if self.session.in_round and self.tick() is None:
            self._start_timer()  # not yet (a clock that runs slow): look again then

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ browser events
    def _on_message(self, _widget, content, _buffers) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "draw":
            if self.session.in_round:  # a message sent just before the round ended is late: ignore it
                self._guarded(self.draw, content.get("strokes") or [])
            self._ack = int(content.get("seq", 0))
        elif kind == "start" and self._phase == "ready":
            self._guarded(self.start)
            self._start_timer()
        elif kind == "tick" and self.session.in_round:
            self._guarded(self.tick)
        elif kind == "skip" and self.session.in_round:
            self._guarded(self.skip)
        elif kind == "end" and self._phase != "over":
            self._guarded(self.end)
        elif kind == "again" and self._phase == "over":
            self._guarded(self.new_game)

    def _repr_mimebundle_(self, **kwargs):
        return self._bundle(f"Game: {self.config.rounds} rounds of {self.config.seconds:g} s against "
                            f"{self.source}; press Go! (or space) to start", **kwargs)
