"""Teach a trained model a new class from a few drawings, and forget it again.

::

    ckpt = load_checkpoint("pretrained")                  # the ten
    taught = teach_class(ckpt, "apple", apple_drawings)   # uint8 (K, 784), K >= 5
    save_checkpoint(taught, "models/ten-plus-apple.pt")   # predict, evaluate, export, SketchPad
    back = forget_class(taught, "apple")                  # the ten again, weights exactly as before

How (few-shot transfer learning on the model's own features):

1. **Features.** The trained network's convolution blocks turn a drawing into 4096 numbers (the
   *body* features, ``model.body``); its hidden layer turns those into 256 (the *penultimate*
   features, ``model.embed``) that the output layer reads. The body and the hidden layer stay frozen.
2. **A new class.** Its score is ``w · features + u · body + b``: a new output row over the 256
   features, plus a linear read of the 4096 body features. The 256 were trained to tell the OLD
   classes apart and may have dropped what tells the new one from them (a horse from a dog);
   ``u`` lets it use what the body still sees. In the network, ``u · body`` is carried by two
   hidden units of the class's own (``NewClass.hidden_units``: LeakyReLU(z) - LeakyReLU(-z) is
   exactly (1 + slope) z), which every old row reads with weight 0. ``read_body=False``: the row only.
3. **Imprinting.** The row starts as the mean of the examples' normalised features, scaled like
   the other rows (weight imprinting), ``u`` at 0; the bias is set so that the new class scores
   on its examples as the old classes score on their own drawings.
4. **Fine-tuning.** Full-batch Adam on features computed once: the K examples (each in many
   drawing-preserving augmented copies, see ``augment.py``) and a class-balanced replay of the
   old classes' drawings, the new class weighted ``new_class_weight`` times one old class. The
   replay is what keeps the old classes working: without it the new class learns "everything is
   the new class". The loss is convex in ``(w, u, b)``.
5. **Bias calibration.** On OTHER replay drawings than the fit saw (``split_pool``), the bias is
   lowered, if needed, until, of the ones the old classes answered right, the new class takes
   (beats the old answer on) at most a set share of all of them (``false_positive_rate``) and of
   any ONE old class's at most a set share of that class's (``per_class_rate``, the guard: a new
   class that looks like one old class must not empty it). An old drawing the new class takes is
   what teaching costs the old classes; the bench (``scripts/teach_bench.py``, README) measures
   it on every class of the data folder.
6. **Only the new class's parameters change.** The old rows, the hidden layer's old units and the
   body are never updated, so forgetting a class is exact: drop its row and its two units. What
   tuning more would gain and cost is measured in README "Teach it your own class"
   (``scripts/teach_ablation.py``); it would make forgetting inexact.

The result is an ordinary checkpoint with one more class. It records what was taught in
``data["taught"]`` (name, example drawings, settings, its hidden units) and carries the replay
drawings in ``data["replay"]`` so that it can be taught again without its training data.
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment_batch
from .categories import check_class_name
from .checkpoint import Checkpoint
from .data import SketchData, load_folder, normalize_batch
from .device import torch_threads
from .drawing import PIXELS, as_drawings, load_inputs, refuse_blank
from .errors import QuickSketchError
from .model import HEAD_KEY, HIDDEN_KEY, SketchCNN


class TeachError(QuickSketchError):
    """Drawings or a name that cannot be taught (too few, blank, a name already known)."""


@dataclass
class TeachConfig:
    """How a class is taught; the defaults are the measured method (README table)."""

    min_drawings: int = 5  # fewer examples than this is refused
    new_samples: int = 160  # augmented copies of the examples, in all (at least 2 per example)
    augment: float = 1.0  # drawing-preserving augmentation strength for those copies
    # The new class also reads the body's 4096 features (linearly, through two hidden units of its
    # own), not only the 256 hidden features trained to tell the OLD classes apart (False: its
    # output row only). README "Teach it your own class".
    read_body: bool = True
    # Replay: the fit sees up to replay_per_class drawings of each old class, the bias calibration
    # up to calibration_per_class OTHER ones (split_pool). The shipped ten carry 400 per class;
    # fewer are split in the same proportion; calibration_per_class=0 calibrates on the fit's own.
    replay_per_class: int = 200
    calibration_per_class: int = 200
    steps: int = 300  # full-batch Adam steps on the new class's parameters
    lr: float = 0.01
    weight_decay: float = 1e-3  # L2 on the new row and units
    new_class_weight: float = 3.0  # loss weight of the new class relative to one old class
    false_positive_rate: float = 0.01  # bias calibration: at most this share of replay -> new (1 = off)
    per_class_rate: float = 0.08  # guard: at most this share of any one old class's replay -> new (1 = off)
    # A calibration drawing counts as taken when the new class comes within this many logits of the
    # old answer. 0: the calibration drawings are ones the fit never saw, as a user's will be.
    margin: float = 0.0
    imprint: bool = True  # start the new row from the examples' features (False: from zeros)
    seed: int = 0
    # Threads for the body's forward pass over the replay drawings, most of teaching's time; 0 = torch's
    # current setting (all cores by default): two threads did it faster than one, also beside another
    # busy process. The Adam steps always run on one (README "Teach it your own class", "Seconds").
    num_threads: int = 0

    @property
    def pool_per_class(self) -> int:
        """Replay drawings per old class teaching asks for: for the fit and for the calibration."""
        return self.replay_per_class + self.calibration_per_class

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TeachConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------- checks
def check_drawings(drawings, min_drawings: int) -> np.ndarray:
    """uint8 ``(K, 784)`` examples, or TeachError for too few or blank drawings."""
    rows = np.array(as_drawings(drawings))  # a private, writable copy
    refuse_blank(rows, error=TeachError)  # the one rule: what predict and the widget call blank
    if len(rows) < min_drawings:
        raise TeachError(f"got {len(rows)} drawing(s); teaching a class needs at least {min_drawings}")
    return rows


def check_name(ckpt: Checkpoint, name: str) -> str:
    """The stripped class name, or TeachError if it is not one line of printable text
    (``categories.check_class_name``) or already known (any case)."""
    try:
        name = check_class_name(name)
    except ValueError as exc:
        raise TeachError(str(exc)) from None
    known = {c.lower(): c for c in ckpt.classes}
    if name.lower() in known:
        raise TeachError(f"the model already knows a class '{known[name.lower()]}'; "
                         "choose another name (or forget that class first)")
    return name


def taught_classes(ckpt: Checkpoint) -> list[str]:
    """Names of the classes added by :func:`teach_class`, in the order they were taught."""
    return [t["name"] for t in ckpt.data.get("taught", [])]


# --------------------------------------------------------------------------- replay drawings
def sample_replay(images: np.ndarray, labels: np.ndarray, classes: list[str], per_class: int,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded sample of ``per_class`` drawings of every class: ``{name: uint8 (n, 784)}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        pick = np.sort(rng.permutation(idx)[:per_class])
        out[name] = torch.from_numpy(np.ascontiguousarray(images[pick]))
    return out


def replay_from_training_data(ckpt: Checkpoint, data: SketchData, per_class: int,
                              seed: int = 0) -> dict[str, torch.Tensor]:
    """Replay drawings from the TRAINING part of ``data`` (its recorded held-out split is
    left out when ``data`` is the checkpoint's training data)."""
    missing = [c for c in ckpt.classes if c not in data.classes and c not in taught_classes(ckpt)]
    if missing:
        raise TeachError(f"{data.root}: has no drawings of {', '.join(map(repr, missing))} to replay")
    trained_on = ckpt.data.get("classes") or []
    if trained_on and set(trained_on) <= set(data.classes) and data.classes != trained_on:
        data = data.subset(np.flatnonzero(np.isin(data.labels, [data.classes.index(c) for c in trained_on])))
        data = SketchData(data.images, np.searchsorted([data.classes.index(c) for c in trained_on],
                                                       data.labels), list(trained_on), data.root)
    keep = np.ones(len(data), dtype=bool)
    if data.counts == ckpt.data.get("counts") and data.classes == trained_on and "val_indices" in ckpt.split:
        keep[ckpt.split["val_indices"].numpy()] = False  # never replay the recorded held-out drawings
    wanted = [c for c in data.classes if c in ckpt.classes]
    idx = np.flatnonzero(keep & np.isin(data.labels, [data.classes.index(c) for c in wanted]))
    sample = sample_replay(data.images[idx], data.labels[idx], data.classes, per_class, seed)
    return {c: sample[c] for c in wanted}


def attach_replay(ckpt: Checkpoint, replay: Mapping[str, torch.Tensor], source: str) -> None:
    """Store replay drawings in ``ckpt.data["replay"]`` (what ``teach_class`` reads)."""
    ckpt.data = {**ckpt.data, "replay": {"source": source, "drawings": dict(replay)}}


def _replay_for(ckpt: Checkpoint, replay, per_class: int, seed: int) -> dict[str, np.ndarray]:
    """Replay drawings per old class: ``replay`` given, else stored, else the recorded folder."""
    if isinstance(replay, SketchData):
        found = replay_from_training_data(ckpt, replay, per_class, seed)
    elif isinstance(replay, Mapping):
        found = dict(replay)
    elif replay is not None:
        raise TypeError(f"replay must be SketchData or a {{class: drawings}} mapping, got {type(replay).__name__}")
    elif ckpt.data.get("replay"):
        found = dict(ckpt.data["replay"]["drawings"])
    else:
        found = _replay_from_recorded_root(ckpt, per_class, seed)
    for t in ckpt.data.get("taught", []):  # a taught class replays its own examples
        found.setdefault(t["name"], t["drawings"])
    missing = [c for c in ckpt.classes if c not in found]
    if missing:
        raise TeachError(f"no replay drawings of {', '.join(map(repr, missing))}; "
                         "pass the training data (replay=SketchData, CLI --data DIR)")
    return {c: as_drawings(np.asarray(found[c]))[:per_class] for c in ckpt.classes}


def _replay_from_recorded_root(ckpt: Checkpoint, per_class: int, seed: int) -> dict:
    root = ckpt.data.get("root")
    where = f"{ckpt.path or 'the checkpoint'}"
    if not root or not Path(root).is_dir():
        raise TeachError(f"{where} carries no replay drawings and its training data "
                         f"({root or 'not recorded'}) is not here; pass replay=SketchData "
                         "(CLI: --data DIR with the old classes' .npy files)")
    original = [c for c in ckpt.classes if c not in taught_classes(ckpt)]
    warnings.warn(f"{where} carries no replay drawings; reading them from {root}")
    data = load_folder(root, classes=original, per_class=ckpt.data.get("per_class"))
    return replay_from_training_data(ckpt, data, per_class, seed)


# --------------------------------------------------------------------------- features and the new class
def penultimate_features(model: SketchCNN, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The features the output layer reads (``model.embed``), for a normalised batch ``(B, 1, 28, 28)``."""
    return _in_batches(model, model.embed, x, batch_size)


def body_features(model: SketchCNN, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The 4096 numbers the hidden layer reads (``model.body``), for a normalised batch."""
    return _in_batches(model, model.body, x, batch_size)


_BODY_CACHE: dict[str, torch.Tensor] = {}  # the last replay's body features, by digest of body and drawings


def cached_body_features(model: SketchCNN, x: torch.Tensor) -> torch.Tensor:
    """:func:`body_features`, remembered for the last ``(body weights, drawings)`` pair: teaching
    the same model again with the same replay skips most of the work. The key is a digest of
    every number of the body's state and of ``x``, so a changed weight or drawing is never served
    stale features."""
    digest = hashlib.blake2b(digest_size=16)
    for t in [*model.features.state_dict().values(), x]:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    key = digest.hexdigest()
    if key not in _BODY_CACHE:
        _BODY_CACHE.clear()  # one entry: 4096 floats a drawing
        _BODY_CACHE[key] = body_features(model, x)
    return _BODY_CACHE[key]


@torch.no_grad()
def _in_batches(model: SketchCNN, stage, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval().to(memory_format=torch.channels_last)  # faster on CPUs, same numbers
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.cat([stage(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@dataclass
class Seen:
    """What the frozen model makes of some drawings: the body's features ``g`` (N, 4096), the
    ``base`` hidden features (N, 256: the units the model was trained with, none a taught class's
    own) and the logits of the classes it knows (N, C)."""

    g: torch.Tensor
    base: torch.Tensor
    logits: torch.Tensor

    def take(self, index) -> "Seen":
        """The same for some of the drawings (an index, a slice or a mask)."""
        return Seen(self.g[index], self.base[index], self.logits[index])

    @staticmethod
    def cat(parts: list["Seen"]) -> "Seen":
        return Seen(*(torch.cat([getattr(p, f) for p in parts]) for f in ("g", "base", "logits")))


@torch.no_grad()
def seen_from_body(model: SketchCNN, g: torch.Tensor, base_units: int) -> Seen:
    """:class:`Seen` from body features ``g``: the hidden layer and the head applied to them."""
    h = F.leaky_relu(model.hidden_layer(g), model.config.negative_slope)
    return Seen(g, h[:, :base_units], model.head(h))


@dataclass
class NewClass:
    """A taught class. Its score for a drawing is ``w · base + u · g + b``: a row over the model's
    own hidden features plus, when ``u`` is not empty, a linear read of the body's 4096 features,
    which the 256 hidden features (trained to tell the OLD classes apart) may have left out."""

    w: torch.Tensor
    u: torch.Tensor  # (4096,), or (0,): the row only
    b: torch.Tensor

    def score(self, seen: Seen) -> torch.Tensor:
        """The new class's logit without its bias, for every drawing of ``seen``."""
        return seen.base @ self.w + (seen.g @ self.u if len(self.u) else 0)

    def logits(self, seen: Seen) -> torch.Tensor:
        """The logits of the model with the new class added: the old classes', then its own."""
        return torch.cat([seen.logits, (self.score(seen) + self.b)[:, None]], dim=1)

    def hidden_units(self, slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``u · g`` as hidden units of the class's own: weights (m, 4096), biases (m,) and their
        weights in its row (m,). LeakyReLU(z) - LeakyReLU(-z) = (1 + slope) z for every z, so two
        mirrored units carry ``u · g`` exactly through the hidden layer's activation (m = 2; 0 for
        a row only)."""
        if not len(self.u):
            return torch.zeros(0, 0), torch.zeros(0), torch.zeros(0)
        return torch.stack([self.u, -self.u]), torch.zeros(2), torch.tensor([1.0, -1.0]) / (1 + slope)


def augmented_copies(rows: np.ndarray, n: int, strength: float, generator: torch.Generator) -> torch.Tensor:
    """The examples plus augmented copies, ``n`` normalised drawings in all (at least two per
    example: the original and its mirror image, which test-time flip also shows the model)."""
    x = normalize_batch(torch.from_numpy(rows))
    reps = max(2, -(-n // len(rows)))
    batch = x.repeat(reps, 1, 1, 1)
    out = augment_batch(batch, strength, generator)
    out[:len(x)] = x
    out[len(x):2 * len(x)] = x.flip(-1)
    return out


def imprint_row(new_features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                old_features: torch.Tensor, old_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight imprinting: the mean normalised feature, scaled to the old rows' mean norm; the
    bias makes the new score on its examples equal the old classes' mean score on their own."""
    w = imprint_weight(new_features, weight)
    if len(old_features) == 0:
        return w, bias.mean()
    return w, imprint_bias(w, new_features, old_features @ weight.T + bias, old_labels)


def imprint_weight(new_features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The examples' mean normalised feature vector, as long as the old rows are on average."""
    direction = F.normalize(F.normalize(new_features, dim=1).mean(0), dim=0)
    return direction * weight.norm(dim=1).mean()


def imprint_bias(w: torch.Tensor, new_features: torch.Tensor, old_logits: torch.Tensor,
                 old_labels: torch.Tensor) -> torch.Tensor:
    """The bias at which the row ``w`` scores its examples, on average, as the old classes score
    their own drawings (``old_logits``: the old classes' logits of those drawings; none: 0)."""
    own = old_logits.gather(1, old_labels[:, None]).mean() if len(old_labels) else torch.zeros(())
    return own - (new_features @ w).mean()


def fit_class(start: NewClass, seen: Seen, labels: torch.Tensor, sample_weight: torch.Tensor,
              config: TeachConfig) -> NewClass:
    """Full-batch Adam on the new class's parameters only (``start``'s; its ``u`` starts at 0).
    The old classes' logits are fixed numbers; ``labels == seen.logits.shape[1]`` marks the new
    class's drawings. The loss is convex in the parameters (a logistic regression against fixed
    competitors), so tiny changes of the input change the result little."""
    params = [t.clone().requires_grad_(True) for t in (start.w, start.u, start.b)]
    opt = torch.optim.Adam(params, lr=config.lr)
    for _ in range(config.steps):
        new = NewClass(*params)
        loss = (F.cross_entropy(new.logits(seen), labels, reduction="none") * sample_weight).sum()
        loss = loss + config.weight_decay * (new.w.pow(2).sum() + new.u.pow(2).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return NewClass(*(t.detach() for t in params))


def calibrate_bias(w: torch.Tensor, b: torch.Tensor, old_feats: torch.Tensor, old_labels: torch.Tensor,
                   weight: torch.Tensor, bias: torch.Tensor, rate: float,
                   per_class_rate: float = 1.0, margin: float = 0.0) -> torch.Tensor:
    """:func:`calibrate_scores` for a new row ``w`` over features ``old_feats`` (no hidden units
    of its own), the old classes' rows being ``weight``, ``bias``."""
    return calibrate_scores(b, old_feats @ w, old_feats @ weight.T + bias, old_labels, rate, per_class_rate, margin)


def calibrate_scores(b: torch.Tensor, new_scores: torch.Tensor, old_logits: torch.Tensor, old_labels: torch.Tensor,
                     rate: float, per_class_rate: float = 1.0, margin: float = 0.0) -> torch.Tensor:
    """The bias, lowered if needed so that the new class (scoring ``new_scores + bias`` on the
    old classes' drawings, whose logits are ``old_logits``) takes, of the drawings the old classes
    answered right, at most ``rate`` times the number of drawings, and of one old class's at most
    ``per_class_rate`` times that class's number (the guard: a new class must not empty one old
    class). A drawing the old classes already got wrong costs nothing when the new class takes
    it, so it is not counted. "Takes" means: the new
    class's score comes within ``margin`` of the old answer's."""
    if len(old_logits) == 0 or (rate >= 1 and per_class_rate >= 1):
        return b
    right = old_logits.argmax(1) == old_labels
    # the new class takes a drawing where its bias exceeds this gap
    gap = (old_logits.max(1).values - new_scores)[right] - margin
    labels = old_labels[right]
    limit = b
    if rate < 1:
        limit = torch.minimum(limit, _bias_taking_at_most(gap, int(rate * len(old_labels))))
    if per_class_rate < 1:
        for c in labels.unique():
            own = gap[labels == c]
            limit = torch.minimum(limit, _bias_taking_at_most(own, int(per_class_rate * (old_labels == c).sum())))
    return limit


def _bias_taking_at_most(margin: torch.Tensor, n: int) -> torch.Tensor:
    """The largest bias at which at most ``n`` of these margins are exceeded (ties: fewer)."""
    ordered = margin.sort().values
    if n >= len(ordered):
        return torch.tensor(float("inf"))
    return ordered[n]


# --------------------------------------------------------------------------- teach and forget
def teach_class(ckpt: Checkpoint, name: str, drawings, *, replay=None,
                config: TeachConfig | None = None) -> Checkpoint:
    """A NEW checkpoint that also knows ``name``, taught from ``drawings`` (uint8 ``(K, 784)``
    or ``(K, 28, 28)``, K >= ``config.min_drawings``). See the module doc for the method.

    ``replay``: drawings of the old classes to keep them working -- a SketchData (its
    training part is sampled) or ``{class: uint8 drawings}``; by default the ones the
    checkpoint carries, else its recorded training folder when present.
    """
    config = config or TeachConfig()
    t0 = time.perf_counter()
    name = check_name(ckpt, name)
    rows = check_drawings(drawings, config.min_drawings)
    replay_rows = _replay_for(ckpt, replay, config.pool_per_class, config.seed)
    with torch_threads(config.num_threads or torch.get_num_threads()):
        new = _teach(ckpt, rows, replay_rows, config)
    entry = {"name": name, "drawings": torch.from_numpy(rows), "config": config.to_dict(),
             "seconds": time.perf_counter() - t0}
    return _with_class(ckpt, name, new, entry)


def base_units(ckpt: Checkpoint) -> int:
    """Hidden units the model was trained with (the first ones): ``hidden`` less the taught classes' own."""
    return ckpt.model_config.hidden - sum(t.get("hidden_units", 0) for t in ckpt.data.get("taught", []))


def _teach(ckpt: Checkpoint, rows: np.ndarray, replay_rows: dict[str, np.ndarray],
           config: TeachConfig) -> NewClass:
    model = ckpt.build_model("cpu")
    old_x = torch.cat([normalize_batch(torch.from_numpy(replay_rows[c])) for c in ckpt.classes])
    old_y = torch.cat([torch.full((len(replay_rows[c]),), i) for i, c in enumerate(ckpt.classes)])
    old_x = torch.where(replay_flips(len(old_x), config.seed)[:, None, None, None], old_x.flip(-1), old_x)
    new_x = augmented_copies(rows, config.new_samples, config.augment, torch.Generator().manual_seed(config.seed))
    # the original classes' replay comes first (taught classes are appended); the same model taught
    # again with the same replay reuses its body features (the widget, a notebook's K loop)
    n_original = sum(len(replay_rows[c]) for c in ckpt.classes if c not in taught_classes(ckpt))
    g = torch.cat([cached_body_features(model, old_x[:n_original]),
                   body_features(model, torch.cat([old_x[n_original:], new_x]))])
    base = base_units(ckpt)
    seen = seen_from_body(model, g, base)
    new, old = seen.take(slice(len(old_x), None)), seen.take(slice(len(old_x)))
    with torch_threads(1):  # the Adam steps are small: more threads only add overhead (README "Seconds")
        return class_from_pool(new, old, old_y, model.head.weight.detach()[:, :base], config)


def _ranks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's rank among the items of its label, and how many items its label has."""
    rank, count = torch.zeros_like(labels), torch.zeros_like(labels)
    for c in labels.unique():
        where = labels == c
        rank[where] = torch.arange(int(where.sum()))
        count[where] = int(where.sum())
    return rank, count


def first_per_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first ``n`` items of every label, in order."""
    return torch.nonzero(_ranks(labels)[0] < n).flatten()


def split_pool(labels: torch.Tensor, fit_n: int, cal_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the replay drawings to fit on and to calibrate on: of each class's, the first
    ``fit_n`` and the next ``cal_n``; a class with fewer than ``fit_n + cal_n`` is split in the
    same proportion (at least one to fit on, unless ``fit_n`` is 0). ``cal_n == 0``: calibrate on
    the fit drawings."""
    if cal_n == 0:
        return first_per_class(labels, fit_n), first_per_class(labels, fit_n)
    rank, count = _ranks(labels)
    n_fit = torch.clamp(-(-count * fit_n // (fit_n + cal_n)), min=min(fit_n, 1), max=fit_n)
    return torch.nonzero(rank < n_fit).flatten(), torch.nonzero((rank >= n_fit) & (rank < n_fit + cal_n)).flatten()


def replay_flips(n: int, seed: int) -> torch.Tensor:
    """Which replay drawings are shown mirrored (a seeded half), as test-time flip shows them."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def class_from_pool(new: Seen, pool: Seen, pool_y: torch.Tensor, head_weight: torch.Tensor,
                    config: TeachConfig) -> NewClass:
    """The new class from what the frozen model makes of its examples' augmented copies (``new``)
    and of the old classes' replay drawings (``pool``, classes ``pool_y``): fit on up to
    ``replay_per_class`` drawings of each old class, its bias calibrated on up to
    ``calibration_per_class`` OTHER ones (:func:`split_pool`). ``head_weight``: the output layer's
    rows over the base hidden features (imprinting scales the new row like them)."""
    fit, cal = split_pool(pool_y, config.replay_per_class, config.calibration_per_class)
    old, old_y = pool.take(fit), pool_y[fit]
    n_old = old.logits.shape[1]
    if config.imprint:  # imprint_row, with the old classes' scores read from their logits
        w = imprint_weight(new.base, head_weight)
        b = imprint_bias(w, new.base, old.logits, old_y)
    else:
        w, b = torch.zeros(new.base.shape[1]), torch.zeros(())
    seen = Seen.cat([old, new])
    labels = torch.cat([old_y, torch.full((len(new.g),), n_old)])
    counts = torch.bincount(labels, minlength=n_old + 1).float().clamp(min=1)
    per_class = torch.ones_like(counts)
    per_class[-1] = config.new_class_weight
    sample_weight = (per_class / counts / per_class.sum())[labels]  # every class weighs the same
    u = torch.zeros(new.g.shape[1] if config.read_body else 0)
    fitted = fit_class(NewClass(w, u, b), seen, labels, sample_weight, config)
    c = pool.take(cal)  # drawings the fit did not see
    fitted.b = calibrate_scores(fitted.b, fitted.score(c), c.logits, pool_y[cal], config.false_positive_rate,
                                config.per_class_rate, config.margin)
    return fitted


def _with_class(ckpt: Checkpoint, name: str, new: NewClass, entry: dict) -> Checkpoint:
    """``ckpt`` with the new class: its hidden units (``NewClass.hidden_units``) appended to the
    hidden layer, where every old row reads them with weight 0 (the old classes' logits do not
    change), and its row (``w`` over the base units, then its units) to the head; ``entry``
    (recorded in ``data["taught"]``) gains how many units it has."""
    units_w, units_b, v = new.hidden_units(ckpt.model_config.negative_slope)
    w, b = new.w, new.b
    state = dict(ckpt.model_state)
    if len(v):
        state[f"{HIDDEN_KEY}.weight"] = torch.cat([state[f"{HIDDEN_KEY}.weight"].float(), units_w])
        state[f"{HIDDEN_KEY}.bias"] = torch.cat([state[f"{HIDDEN_KEY}.bias"].float(), units_b])
    head, m = state[f"{HEAD_KEY}.weight"].float(), len(v)
    row = torch.zeros(head.shape[1] + m)
    row[:len(w)], row[head.shape[1]:] = w, v  # 0 for other taught classes' units: forgetting stays exact
    state[f"{HEAD_KEY}.weight"] = torch.cat([F.pad(head, (0, m)), row[None]])
    state[f"{HEAD_KEY}.bias"] = torch.cat([state[f"{HEAD_KEY}.bias"].float(), b.reshape(1)])
    out = copy.copy(ckpt)
    out.model_state = state
    out.model_config = replace(ckpt.model_config, num_classes=len(ckpt.classes) + 1, hidden=head.shape[1] + m)
    out.classes = [*ckpt.classes, name]
    out.data = {**ckpt.data, "taught": [*ckpt.data.get("taught", []), {**entry, "hidden_units": m}]}
    out.train_state, out.path = None, None
    return out


def forget_class(ckpt: Checkpoint, name: str) -> Checkpoint:
    """A NEW checkpoint without the taught class ``name``: its output row, its own hidden units
    and its record removed, every other weight exactly as it was (teaching changes nothing else)."""
    names = taught_classes(ckpt)
    if name not in names:
        known = f"taught classes: {', '.join(names)}" if names else "no class was taught to it"
        original = " (it is one of the classes the model was trained on)" if name in ckpt.classes else ""
        raise TeachError(f"cannot forget '{name}'{original}; {known}")
    taught, which = ckpt.data["taught"], names.index(name)
    first = base_units(ckpt) + sum(t.get("hidden_units", 0) for t in taught[:which])
    units = set(range(first, first + taught[which].get("hidden_units", 0)))
    kept_units = [i for i in range(ckpt.model_config.hidden) if i not in units]
    keep = [i for i, c in enumerate(ckpt.classes) if c != name]
    state = dict(ckpt.model_state)
    state[f"{HIDDEN_KEY}.weight"] = state[f"{HIDDEN_KEY}.weight"][kept_units].clone()
    state[f"{HIDDEN_KEY}.bias"] = state[f"{HIDDEN_KEY}.bias"][kept_units].clone()
    state[f"{HEAD_KEY}.weight"] = state[f"{HEAD_KEY}.weight"][keep][:, kept_units].clone()
    state[f"{HEAD_KEY}.bias"] = state[f"{HEAD_KEY}.bias"][keep].clone()
    out = copy.copy(ckpt)
    out.model_state = state
    out.model_config = replace(ckpt.model_config, num_classes=len(keep), hidden=len(kept_units))
    out.classes = [ckpt.classes[i] for i in keep]
    rest = [t for i, t in enumerate(taught) if i != which]
    out.data = {k: v for k, v in ckpt.data.items() if k != "taught"}
    if rest:
        out.data["taught"] = rest
    out.train_state, out.path = None, None
    return out


# --------------------------------------------------------------------------- reading drawings
def load_drawings(paths) -> np.ndarray:
    """uint8 ``(N, 784)`` drawings from ``.npy`` rows, pictures (PNG/JPEG...) and ``.ndjson``
    strokes (Google's raw format, one drawing a line), rasterised the Quick Draw way."""
    from .rasterize import iter_ndjson, rasterize_strokes

    parts = []
    for path in map(Path, paths):
        if path.suffix.lower() == ".ndjson":
            drawings = [rasterize_strokes(r["drawing"]).reshape(-1) for r in iter_ndjson(path)]
            if not drawings:
                raise TeachError(f"{path}: holds no drawings; expected one Quick Draw drawing per line")
            parts.append(np.stack(drawings))
        else:
            parts.append(load_inputs([path])[1])
        refuse_blank(parts[-1], str(path), TeachError)  # named by file and row
    return np.concatenate(parts) if parts else np.zeros((0, PIXELS), np.uint8)
