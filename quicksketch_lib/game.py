"""The game: Quick, Draw! with a SketchCNN -- prompts, rounds, live guesses, the summary.

Pure logic, no widget code (the ``Game`` widget in widgets.py wires a canvas to it)::

    session = GameSession("pretrained-54", GameConfig(rounds=6))   # its live_predictor, its threshold
    prompt = session.start_round(now=time.monotonic())     # "camel"
    update = session.update(strokes, now=time.monotonic())  # after every stroke, >= 5 times a second
    update.phrase                                           # "I see a boomerang" ... "Oh, I know, it's a camel!"
    session.tick(now)                                       # the round's time-out (a RoundResult or None)

The clock is passed in (``now``, seconds), so the whole game is testable without sleeping.

The rule of Google's game: a round is won as soon as the target class's probability passes
a threshold -- the game does not wait for the target to be the top guess -- and lost when
the time runs out or the player skips. The threshold is measured per model
(:func:`measure_threshold`): the value that best separates finished held-out drawings of
each class from drawings of the other classes (criterion: the largest macro-averaged
Youden's J, i.e. balanced accuracy, over all classes). It is recorded in the checkpoint
when the shipped model is packaged (:func:`record_threshold`); :func:`model_threshold`
reads it, else the figure measured for the shipped model of that name
(:data:`MEASURED_THRESHOLDS`), else :data:`DEFAULT_THRESHOLD`.

How early a model knows a drawing: :func:`recognition_point` replays it stroke by stroke
and returns the share of the ink at which the target first passes the threshold
(``scripts/how_early.py`` runs it over the held-out stroke drawings of every class).
Why a round was lost: :func:`nearest_drawings` finds the drawings the model carries
(its replay drawings) nearest to the player's by the model's 256 features.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .data import IMAGE_SIZE, normalize_batch
from .device import torch_threads
from .errors import InputError
from .drawing import as_drawings, is_blank
from .inference import Predictor, top_k_classes
from .locations import pretrained_name
from .rasterize import rasterize_strokes, sample_along

Guess = tuple[str, float]

# --------------------------------------------------------------------------- the threshold
THRESHOLD_KEY = "game_threshold"  # in Checkpoint.metrics, written when a model is packaged
CRITERION = ("largest macro-averaged Youden's J (mean over classes of TPR - FPR, i.e. 2 x balanced "
             "accuracy - 1) on the recorded held-out drawings: positives are a class's own drawings "
             "(its probability), negatives every other class's drawings (their probability for it)")
THRESHOLD_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)  # candidate thresholds
# Measured on the recorded held-out split (`python scripts/game_threshold.py NAME`, figures and curve
# in notebooks/runs/game_threshold.json): used for a shipped model whose file records none.
MEASURED_THRESHOLDS: dict[str, float] = {"pretrained": 0.11}
DEFAULT_THRESHOLD = 0.5  # a model with no measurement: more likely than all others together
UNSURE = 0.2  # a top guess below this is "I'm not sure" (Doodle Dash's reject threshold)


@dataclass
class ThresholdReport:
    """The measured threshold and how well it separates: at ``threshold``, ``tpr`` of the
    classes' own drawings pass it (macro mean) and ``fpr`` of the other classes' drawings do."""

    threshold: float
    youden_j: float
    tpr: float
    fpr: float
    criterion: str = CRITERION
    drawings: int = 0
    classes: int = 0
    curve: dict = field(default_factory=dict)  # {"threshold": [...], "youden_j": [...]}

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"threshold {self.threshold:.2f}: {self.tpr:.1%} of each class's own drawings pass it, "
                f"{self.fpr:.2%} of other classes' drawings do (Youden's J {self.youden_j:.3f}; "
                f"{self.drawings:,} held-out drawings, {self.classes} classes)")


def measure_threshold(proba: np.ndarray, labels: np.ndarray,
                      grid: np.ndarray = THRESHOLD_GRID) -> ThresholdReport:
    """The threshold on a class's probability that best separates finished drawings of the
    class from drawings of other classes: the largest macro-averaged Youden's J over the
    candidate ``grid`` (:data:`CRITERION`). ``proba`` (N, C) held-out probabilities,
    ``labels`` (N,) their classes. Ties go to the higher threshold (fewer false wins)."""
    proba, labels = np.asarray(proba, dtype=np.float64), np.asarray(labels)
    if proba.ndim != 2 or len(proba) != len(labels) or len(proba) == 0:
        raise InputError(f"proba of shape {proba.shape} and {len(labels)} labels; expected (N, C) and N")
    present = np.unique(labels)
    own = proba[np.arange(len(labels)), labels]
    tpr = np.array([[np.mean(own[labels == c] >= t) for c in present] for t in grid])
    fpr = np.array([[np.mean(proba[labels != c, c] >= t) if (labels != c).any() else 0.0
                     for c in present] for t in grid])
    j = (tpr - fpr).mean(axis=1)
    best = len(j) - 1 - int(np.argmax(j[::-1]))
    return ThresholdReport(float(grid[best]), float(j[best]), float(tpr[best].mean()),
                           float(fpr[best].mean()), drawings=len(labels), classes=len(present),
                           curve={"threshold": [float(t) for t in grid],
                                  "youden_j": [round(float(v), 5) for v in j]})


def threshold_for_checkpoint(ckpt: Checkpoint, data_dir: str | os.PathLike) -> ThresholdReport:
    """:func:`measure_threshold` on the checkpoint's recorded held-out drawings in ``data_dir``
    (with the test-time flip it is evaluated with, as the game predicts)."""
    from .evaluation import evaluation_set, load_for_checkpoint, class_probabilities

    images, labels, _ = evaluation_set(ckpt, load_for_checkpoint(ckpt, data_dir))
    proba = class_probabilities(ckpt.build_model("cpu"), images, tta_flip=ckpt.tta_flip)
    return measure_threshold(proba, labels)


def record_threshold(ckpt: Checkpoint, report: ThresholdReport) -> None:
    """Write the measured threshold into the checkpoint's metrics (what :func:`model_threshold` reads)."""
    ckpt.metrics = {**ckpt.metrics, THRESHOLD_KEY: report.threshold,
                    f"{THRESHOLD_KEY}_youden_j": report.youden_j}


def model_threshold(ckpt_or_predictor) -> float:
    """The game's threshold for a model: recorded in its checkpoint (:func:`record_threshold`),
    else measured for the shipped model of that name (:data:`MEASURED_THRESHOLDS`), else
    :data:`DEFAULT_THRESHOLD`. Takes a Checkpoint, a path or shipped name, or a Predictor
    (which carries no record: the default)."""
    if isinstance(ckpt_or_predictor, Predictor):
        return DEFAULT_THRESHOLD
    ckpt = ckpt_or_predictor if isinstance(ckpt_or_predictor, Checkpoint) else load_checkpoint(ckpt_or_predictor)
    if THRESHOLD_KEY in ckpt.metrics:
        return float(ckpt.metrics[THRESHOLD_KEY])
    return MEASURED_THRESHOLDS.get(pretrained_name(ckpt.path) or "", DEFAULT_THRESHOLD)


# --------------------------------------------------------------------------- prompts and words
def choose_prompts(classes: Sequence[str], rounds: int, seed: int) -> list[str]:
    """``rounds`` prompts drawn at random (seeded) from ``classes``, no repeats while possible
    (after every class has come up once, a new shuffled pass starts)."""
    if rounds < 1:
        raise InputError(f"a game needs at least 1 round, got {rounds}")
    if not classes:
        raise InputError("no classes to draw prompts from")
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    while len(prompts) < rounds:
        prompts += [classes[i] for i in rng.permutation(len(classes))]
    return prompts[:rounds]


# Quick Draw names said without "a": plurals and things you do not count.
NO_ARTICLE = {"asparagus", "binoculars", "camouflage", "drums", "eyeglasses", "flip flops", "grapes", "grass",
              "headphones", "matches", "pants", "peas", "pliers", "rain", "rollerskates", "sand", "scissors",
              "shorts", "snow", "stairs", "stitches", "underwear"}


def spoken(name: str) -> str:
    """A class name as a person says it: "a boomerang", "an airplane", "scissors", "the Mona Lisa"."""
    if name.lower().startswith("the "):
        return "the " + name[4:]
    if name.lower() in NO_ARTICLE:
        return name
    vowel_sound = name[:1].lower() in "aeiou" and not name.lower().startswith(("uni", "use", "eu", "one")) \
        or name.lower().startswith(("hour", "honest"))
    return f"{'an' if vowel_sound else 'a'} {name}"


def guess_phrase(top: Sequence[Guess], target: str, threshold: float, *, done: bool = False,
                 before: str | None = None) -> str:
    """What the machine says, given its ``top`` guesses (most probable first), like a person:

    * nothing (``""``) before there is a drawing (``top`` empty);
    * "Oh, I know, it's a camel!" once the target's probability passes ``threshold``
      (whether or not it is the top guess);
    * "Sorry, I couldn't guess it." when the round is over (``done``) and it never did;
    * "I'm not sure what that is" while the top guess is below :data:`UNSURE`;
    * "… or a banana" when the top guess changed from ``before`` (the previous top guess);
    * "I see a boomerang, or a banana" when the second guess is at least half as likely;
    * else "I see a boomerang".
    """
    probs = dict(top)
    if not top:
        return "Sorry, I couldn't guess it." if done else ""
    if probs.get(target, 0.0) >= threshold:
        return f"Oh, I know, it's {spoken(target)}!"
    if done:
        return "Sorry, I couldn't guess it."
    (first, p1), second = top[0], (top[1] if len(top) > 1 else None)
    if p1 < UNSURE:
        return "I'm not sure what that is"
    if before is not None and before != first:
        return f"… or {spoken(first)}"
    if second is not None and second[1] >= p1 / 2:
        return f"I see {spoken(first)}, or {spoken(second[0])}"
    return f"I see {spoken(first)}"


# --------------------------------------------------------------------------- one live guess
def live_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a SketchCNN made for one drawing at a time on a CPU: each BatchNorm folded into
    the convolution before it (the same function: within 1e-5) and the weights in channels_last
    (``quicksketch bench --game`` measures what this buys)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    live = copy.deepcopy(model).eval().cpu()
    for block in live.features:
        layers = list(block) if isinstance(block, torch.nn.Sequential) else []
        for i, (layer, following) in enumerate(zip(layers, layers[1:])):
            if isinstance(layer, torch.nn.Conv2d) and isinstance(following, torch.nn.BatchNorm2d):
                block[i], block[i + 1] = fuse_conv_bn_eval(layer, following), torch.nn.Identity()
    return live.to(memory_format=torch.channels_last)


def live_predictor(ckpt: Checkpoint) -> Predictor:
    """The game's Predictor for a checkpoint: :func:`live_model` on one thread, and the
    test-time flip (when the checkpoint is evaluated with it) computed as one batch of the
    drawing and its mirror image. Same probabilities as ``Predictor.from_checkpoint``."""
    model, flip = live_model(ckpt.build_model("cpu")), ckpt.tta_flip

    @torch.inference_mode()
    def logits(x: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(x)
        if flip:
            batch = torch.cat([batch, batch.flip(-1)])
        with torch_threads(1):
            out = model(batch.contiguous(memory_format=torch.channels_last)).double()
        if not flip:
            return out.numpy()
        proba = out.softmax(1)
        # the log of the flip-averaged probabilities: the Predictor's softmax gives them back
        return ((proba[:len(x)] + proba[len(x):]) / 2).log().numpy()
    return Predictor(ckpt.classes, logits, "torch (live)")


def read_drawing(predictor: Predictor, strokes, target: str, k: int = 3) -> tuple[np.ndarray, list[Guess], float]:
    """The kernel's work per update: strokes -> 28x28 (``rasterize_strokes``) -> the model.
    Returns (the image the model saw, its top-``k`` guesses, the target's probability);
    no guesses and 0 for a blank drawing (:func:`~quicksketch_lib.drawing.is_blank`)."""
    image = rasterize_strokes(strokes)
    if is_blank(image):  # one 28x28 drawing: a bool
        return image, [], 0.0
    proba = predictor.predict_proba(image)
    return image, top_k_classes(proba, predictor.classes, k)[0], float(proba[0, predictor.classes.index(target)])


# --------------------------------------------------------------------------- the rounds
@dataclass
class GameConfig:
    """A game: ``rounds`` prompts of ``seconds`` each; ``threshold`` None = the model's
    (:func:`model_threshold`); prompts drawn with ``seed``; the widget guesses at least
    ``live_hz`` times a second while the pen moves (and after every stroke)."""

    rounds: int = 6
    seconds: float = 20.0
    threshold: float | None = None
    seed: int = 0
    live_hz: float = 5.0

    def __post_init__(self):
        if self.rounds < 1 or not self.seconds > 0 or not self.live_hz > 0:
            raise InputError(f"a game needs rounds >= 1, seconds > 0 and live_hz > 0; got rounds={self.rounds}, "
                             f"seconds={self.seconds}, live_hz={self.live_hz}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise InputError(f"threshold must be a probability in (0, 1], got {self.threshold}")


@dataclass
class RoundResult:
    """One round as it ended: won when recognised; lost on "time", "skipped" or "ended"."""

    prompt: str
    won: bool
    reason: str  # "recognised", "time", "skipped", "ended"
    seconds: float | None  # time to recognition (None when lost)
    top3: list[Guess]  # the model's top 3 at the end ([] for a blank drawing)
    image: np.ndarray  # 28x28 uint8: what the model saw at the end
    strokes: list  # the raw strokes ([xs, ys(, ts)] each), for replay
    guesses: list[tuple[float, str]]  # (seconds into the round, phrase) as they were said


@dataclass
class Update:
    """What one update of a round gives the widget."""

    phrase: str  # what the machine says now ("" before there is a drawing)
    top3: list[Guess]
    p_target: float
    won: bool
    seconds: float  # into the round
    image: np.ndarray
    said: bool  # the phrase is new (say it; the same phrase is not repeated)
    result: RoundResult | None = None  # set when this update ended the round


@dataclass
class _Round:
    prompt: str
    start: float
    strokes: list = field(default_factory=list)
    image: np.ndarray = field(default_factory=lambda: np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8))
    top3: list = field(default_factory=list)
    guesses: list = field(default_factory=list)
    named: str | None = None  # the top guess the last phrase named


class GameSession:
    """The game as a state machine; every call is given the time (``now``, in seconds).

    ``model``: a Predictor, a Checkpoint, or a checkpoint path / shipped name
    (``"pretrained-54"``); with a checkpoint the threshold it records is used.
    ``classes``: the prompts' classes (default: every class the model knows, taught ones
    included). ``results`` holds the rounds played so far.
    """

    def __init__(self, model, config: GameConfig | None = None, classes: Sequence[str] | None = None):
        self.config = config or GameConfig()
        self.checkpoint: Checkpoint | None = None
        if isinstance(model, Predictor):
            self.predictor = model
        else:
            self.checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
            self.predictor = live_predictor(self.checkpoint)
        unknown = [c for c in (classes or []) if c not in self.predictor.classes]
        if unknown:
            raise InputError(f"the model does not know {', '.join(map(repr, unknown))}; "
                             f"it knows {', '.join(self.predictor.classes)}")
        self.threshold = float(self.config.threshold if self.config.threshold is not None
                               else model_threshold(self.checkpoint or self.predictor))
        self.prompts = choose_prompts(list(classes or self.predictor.classes), self.config.rounds, self.config.seed)
        self.results: list[RoundResult] = []
        self._round: _Round | None = None
        self._ended = False

    @property
    def in_round(self) -> bool:
        return self._round is not None

    @property
    def over(self) -> bool:
        """No round is left to play (all played, or the game was ended)."""
        return self._ended or (len(self.results) >= len(self.prompts) and not self.in_round)

    @property
    def prompt(self) -> str | None:
        """The prompt of the round being played (None between rounds)."""
        return self._round.prompt if self._round else None

    def time_left(self, now: float) -> float:
        return 0.0 if self._round is None else max(0.0, self.config.seconds - (now - self._round.start))

    def start_round(self, now: float) -> str:
        """Start the next round; returns its prompt."""
        if self.in_round:
            raise InputError("a round is being played; finish, skip or end it first")
        if self.over:
            raise InputError("the game is over; start a new GameSession to play again")
        self._round = _Round(self.prompts[len(self.results)], now)
        return self._round.prompt

    def update(self, strokes, now: float) -> Update:
        """The drawing so far (``[[xs, ys(, ts)], ...]``, screen pixels): guess, speak, and end
        the round when the prompt is recognised (or the time is already up)."""
        r = self._playing()
        elapsed = now - r.start
        if elapsed >= self.config.seconds:
            result = self._finish(now, "time")
            phrase = guess_phrase(result.top3, r.prompt, self.threshold, done=True)
            return Update(phrase, result.top3, 0.0, False, elapsed, result.image, False, result)
        r.image, r.top3, p_target = read_drawing(self.predictor, strokes, r.prompt)
        r.strokes = [np.asarray(s, dtype=np.float64).tolist() for s in strokes]
        phrase = guess_phrase(r.top3, r.prompt, self.threshold, before=r.named)
        said = self._say(r, elapsed, phrase)
        if p_target >= self.threshold:
            result = self._finish(now, "recognised")
            return Update(phrase, r.top3, p_target, True, elapsed, r.image, said, result)
        return Update(phrase, r.top3, p_target, False, elapsed, r.image, said)

    def tick(self, now: float) -> RoundResult | None:
        """The round's result when its time ran out (lost), else None."""
        if self._round is not None and now - self._round.start >= self.config.seconds:
            return self._finish(now, "time")
        return None

    def skip(self, now: float) -> RoundResult:
        """Give up the round (lost, "skipped")."""
        self._playing()
        return self._finish(now, "skipped")

    def end(self, now: float) -> list[RoundResult]:
        """End the game: the round being played is lost ("ended"); returns every result."""
        if self._round is not None:
            self._finish(now, "ended")
        self._ended = True
        return self.results

    def _playing(self) -> _Round:
        if self._round is None:
            raise InputError("no round is being played; call start_round first")
        return self._round

    def _say(self, r: _Round, elapsed: float, phrase: str) -> bool:
        """Record ``phrase`` when it is new; remember which guess it named."""
        if phrase.startswith(("I see", "… or")):
            r.named = r.top3[0][0]
        elif phrase.startswith("I'm not sure"):
            r.named = None
        if not phrase or (r.guesses and r.guesses[-1][1] == phrase):
            return False
        r.guesses.append((round(elapsed, 3), phrase))
        return True

    def _finish(self, now: float, reason: str) -> RoundResult:
        r = self._round
        won = reason == "recognised"
        elapsed = min(now - r.start, self.config.seconds)
        if reason == "time":
            self._say(r, elapsed, guess_phrase(r.top3, r.prompt, self.threshold, done=True))
        result = RoundResult(r.prompt, won, reason, round(elapsed, 3) if won else None, list(r.top3),
                             r.image, r.strokes, list(r.guesses))
        self.results.append(result)
        self._round = None
        return result


# --------------------------------------------------------------------------- how early it knows
def drawing_prefixes(strokes, step: float = 0.05, by: str = "ink") -> list[tuple[float, list]]:
    """The drawing as it grows: ``(share of the ink so far, strokes so far)`` at the end of
    every stroke and, within strokes, every ``step`` of the whole drawing's ink (``by="ink"``)
    or every ``step`` seconds of drawing time (``by="time"``, from the strokes' timestamps:
    what a widget guessing at ``1 / step`` Hz while the pen moves sees). The ink is measured
    by stroke length; a stroke cut part-way ends at an interpolated point."""
    return [(share, prefix) for share, _, _, prefix in _growing(strokes, step, by)]


def timed_prefixes(strokes, every: float = 0.2) -> list[tuple[float, list]]:
    """The drawing as a widget guessing every ``every`` seconds while the pen moves (and at
    every stroke's end) sees it: ``(seconds since the first point, strokes so far)``, from the
    strokes' timestamps (``[xs, ys, ts]``, milliseconds, as in Quick Draw's raw files)."""
    grown = _growing(strokes, every, "time")
    if any(seconds is None for _, seconds, _, _ in grown):
        raise InputError("the strokes carry no timestamps; expected [xs, ys, ts] strokes (ts in milliseconds)")
    return [(seconds, prefix) for _, seconds, _, prefix in grown]


def _growing(strokes, step: float, by: str) -> list[tuple[float, float | None, bool, list]]:
    """``(share of the ink, seconds since the first point or None, whether a stroke ends there,
    strokes so far)`` at every cut (see :func:`drawing_prefixes`)."""
    if by not in ("ink", "time"):
        raise ValueError(f"by={by!r}; expected 'ink' or 'time'")
    if not step > 0:
        raise InputError(f"step must be positive, got {step}")
    arrays = [np.asarray(s, dtype=np.float64) for s in strokes]
    arrays = [a for a in arrays if a.ndim == 2 and a.shape[1] > 0]
    arcs = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(a[:2], axis=1)))]) for a in arrays]
    total = sum(arc[-1] for arc in arcs)
    t0 = next((a[2, 0] for a in arrays if len(a) > 2), 0.0)
    grown, done, offset = [], [], 0.0
    for i, (a, arc) in enumerate(zip(arrays, arcs)):
        seconds = (a[2] - t0) / 1000.0 if len(a) > 2 else None
        ink = (offset + arc) / total if total > 0 else np.zeros_like(arc)
        key = seconds if by == "time" and seconds is not None else ink
        cuts = step * np.arange(np.floor(key[0] / step) + 1, np.ceil(key[-1] / step))
        for cut in cuts[(cuts > key[0]) & (cuts < key[-1])]:
            at = float(np.interp(cut, key, arc))  # arc length within the stroke at the cut
            part = sample_along(a[:2].T, lambda s, at=at: np.append(s[s < at], at)).T
            when = None if seconds is None else float(np.interp(cut, key, seconds))
            grown.append(((offset + at) / total, when, False, done + [part.tolist()]))
        done = done + [a[:2].tolist()]
        offset += arc[-1]
        grown.append((offset / total if total > 0 else (i + 1) / len(arrays),
                      None if seconds is None else float(seconds[-1]), True, done))
    return grown


def recognition_curve(predictor: Predictor, strokes, step: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The drawing replayed stroke by stroke (:func:`drawing_prefixes` by ink): the shares of
    the ink ``(P,)``, the model's probabilities ``(P, C)`` at each (zeros when blank) and
    whether a stroke ends there ``(P,)`` (the replays a widget that guessed only after each
    stroke would see)."""
    grown = _growing(strokes, step, "ink")
    if not grown:
        return np.zeros(0), np.zeros((0, len(predictor.classes))), np.zeros(0, dtype=bool)
    images = np.stack([rasterize_strokes(prefix) for *_, prefix in grown]).reshape(len(grown), -1)
    proba = np.zeros((len(images), len(predictor.classes)))
    drawn = ~is_blank(images)  # (N, 784) rows: one bool each
    if drawn.any():
        proba[drawn] = predictor.predict_proba(images[drawn])
    return np.array([g[0] for g in grown]), proba, np.array([g[2] for g in grown])


def first_passing(shares: np.ndarray, p_target: np.ndarray, threshold: float) -> float | None:
    """The first share of the ink at which ``p_target`` passes ``threshold`` (None: never)."""
    hits = np.flatnonzero(np.asarray(p_target) >= threshold)
    return float(shares[hits[0]]) if len(hits) else None


def recognition_point(predictor: Predictor, strokes, target: str, threshold: float,
                      step: float = 0.05) -> float | None:
    """The share of the ink (by stroke length) at which the target's probability first passes
    ``threshold`` when the drawing is replayed stroke by stroke (and within strokes every
    ``step`` of the ink); None when it never does."""
    shares, proba, _ = recognition_curve(predictor, strokes, step)
    return first_passing(shares, proba[:, predictor.classes.index(target)], threshold)


# --------------------------------------------------------------------------- why a round was lost
def replay_drawings(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """The drawings a checkpoint carries per class, uint8 ``(n, 784)``: its replay drawings
    (a shipped model carries a few dozen training drawings per class) and a taught class's examples.
    Classes with none are left out."""
    found = dict((ckpt.data.get("replay") or {}).get("drawings", {}))
    for taught in ckpt.data.get("taught", []):
        found.setdefault(taught["name"], taught["drawings"])
    return {c: as_drawings(np.asarray(found[c])) for c in ckpt.classes if c in found and len(found[c])}


@torch.no_grad()
def embed_drawings(model: torch.nn.Module, drawings) -> torch.Tensor:
    """The model's 256 features of each drawing (``model.embed``), scaled to unit length."""
    x = normalize_batch(torch.from_numpy(as_drawings(drawings)))
    return torch.nn.functional.normalize(model.eval().embed(x).float(), dim=1)


def nearest_drawings(model: torch.nn.Module, replay: Mapping[str, np.ndarray], image: np.ndarray,
                     cls: str, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` drawings of class ``cls`` in ``replay`` nearest to ``image`` by the model's
    features (cosine similarity): ``(drawings (k, 28, 28) uint8, similarities (k,))``,
    nearest first."""
    if cls not in replay:
        raise InputError(f"no drawings of {cls!r} to compare with (the model carries none)")
    rows = as_drawings(np.asarray(replay[cls]))
    similarity = (embed_drawings(model, rows) @ embed_drawings(model, image)[0]).numpy()
    order = np.argsort(-similarity, kind="stable")[:k]
    return rows[order].reshape(-1, IMAGE_SIZE, IMAGE_SIZE), similarity[order]


def why_lost(model: torch.nn.Module, replay: Mapping[str, np.ndarray], result: RoundResult,
             k: int = 3) -> dict | None:
    """For a lost round: what the model guessed instead, its ``k`` drawings nearest to the
    player's, and the ``k`` nearest of the prompt's class. None when the round was won, the
    drawing was blank, or the model carries no drawings of those classes."""
    if result.won or not result.top3:
        return None
    guessed = next((c for c, _ in result.top3 if c != result.prompt), None)
    if guessed is None or guessed not in replay or result.prompt not in replay:
        return None
    near_guess, sim_guess = nearest_drawings(model, replay, result.image, guessed, k)
    near_prompt, sim_prompt = nearest_drawings(model, replay, result.image, result.prompt, k)
    return {"guessed": guessed, "guessed_nearest": near_guess, "guessed_similarity": sim_guess,
            "prompt_nearest": near_prompt, "prompt_similarity": sim_prompt}
