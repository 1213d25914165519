"""Teach a trained model a new class from a few drawings, and forget it again.

::

    ckpt = load_checkpoint("pretrained")                  # the ten
    taught = teach_class(ckpt, "apple", apple_drawings)   # uint8 (K, 784), K >= 5
    save_checkpoint(taught, "models/ten-plus-apple.pt")   # predict, evaluate, export, SketchPad
    back = forget_class(taught, "apple")                  # the ten again, weights exactly as before

How (few-shot transfer learning on the model's own features):

1. **Features.** The trained network up to its last layer turns a drawing into a 256-number
   feature vector (the *penultimate* features). That body stays frozen.
2. **A new output row.** The output layer gets one more row of 256 weights and a bias: the
   new class's score is ``w · features + b``.
3. **Imprinting.** The row starts as the mean of the examples' normalised feature vectors,
   scaled like the other rows (weight imprinting); its bias is set so that the new class
   scores on its examples as the old classes score on their own drawings.
4. **Fine-tuning the row.** A few hundred full-batch Adam steps on cached features of the K
   examples (each in many drawing-preserving augmented copies, see ``augment.py``) and of a
   small, class-balanced replay of the old classes' drawings. The replay is what keeps the
   old classes working: without it the new row learns "everything is the new class".
5. **Bias calibration.** The bias is lowered, if needed, until the new class takes (comes within
   ``margin`` logits of the old answer on) at most a set share of the replay drawings the old
   classes answered right (``false_positive_rate``),
   and at most a set share of any ONE old class's (``per_class_rate``, the guard: a new class
   that looks like one old class must not empty it). An old drawing the new class takes is
   what teaching costs the old classes; the bench (``scripts/teach_bench.py``, README) measures
   it on every class of the data folder. ``calibration_per_class`` calibrates on a larger pool
   of training drawings instead (it needs the training folder; README, "a larger replay pool").
6. **Only the new row changes.** The old rows and the body are never updated, so forgetting a
   class is exact: drop its row. What tuning more would gain and cost is measured in README
   "Teach it your own class" (``scripts/teach_ablation.py``); it would make forgetting inexact.

The result is an ordinary checkpoint with one more class. It records what was taught in
``data["taught"]`` (name, example drawings, settings) and carries the replay drawings in
``data["replay"]`` so that it can be taught again without its training data.
"""

from __future__ import annotations

import copy
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
from .drawing import PIXELS, as_drawings, load_inputs, refuse_blank
from .errors import QuickSketchError
from .model import HEAD_KEY, SketchCNN


class TeachError(QuickSketchError):
    """Drawings or a name that cannot be taught (too few, blank, a name already known)."""


@dataclass
class TeachConfig:
    """How a class is taught; the defaults are the measured method (README table)."""

    min_drawings: int = 5  # fewer examples than this is refused
    new_samples: int = 160  # augmented copies of the examples, in all (at least 2 per example)
    augment: float = 1.0  # drawing-preserving augmentation strength for those copies
    replay_per_class: int = 50  # replayed drawings per old class (the shipped models carry 50)
    steps: int = 200  # full-batch Adam steps on the new row
    lr: float = 0.05
    weight_decay: float = 1e-3  # L2 on the new row
    new_class_weight: float = 1.0  # loss weight of the new class relative to one old class
    false_positive_rate: float = 0.005  # bias calibration: at most this share of replay -> new (1 = off)
    per_class_rate: float = 0.04  # guard: at most this share of any one old class's replay -> new (1 = off)
    # A replay drawing counts as taken when the new class comes within this many logits of the old
    # answer: replay drawings are training drawings, on which the old classes are surer than on
    # drawings they never saw (0.75: the worst class's cost 1.78 -> 1.25 points, README table).
    margin: float = 0.75
    # Calibrate the bias on this many replay drawings per old class instead of on the ones the row
    # is fit on (0). More drawings than a shipped model carries (50) need its training folder
    # (replay=SketchData, CLI --data): a larger, unbiased sample lets the calibration hold the cost
    # with a smaller margin (README "Teach it your own class", the pool experiment).
    calibration_per_class: int = 0
    imprint: bool = True  # start the new row from the examples' features (False: from zeros)
    seed: int = 0
    # Teaching's steps are small: one thread was the fastest measured (README "Teach it your own
    # class"). 0 = torch's current setting.
    num_threads: int = 1

    @property
    def pool_per_class(self) -> int:
        """Replay drawings per old class teaching needs: for the fit and for the calibration."""
        return max(self.replay_per_class, self.calibration_per_class)

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


# --------------------------------------------------------------------------- features and the row
@torch.no_grad()
def penultimate_features(model: SketchCNN, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The 256-d features the output layer reads, for a normalised batch ``(B, 1, 28, 28)``."""
    model.eval().to(memory_format=torch.channels_last)  # faster on CPUs, same numbers
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.cat([model.embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


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
    direction = F.normalize(F.normalize(new_features, dim=1).mean(0), dim=0)
    w = direction * weight.norm(dim=1).mean()
    if len(old_features) == 0:
        return w, bias.mean()
    own = (old_features @ weight.T + bias).gather(1, old_labels[:, None]).mean()
    b = own - (new_features @ w).mean()
    return w, b


def fit_row(w: torch.Tensor, b: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor,
            weight: torch.Tensor, bias: torch.Tensor, sample_weight: torch.Tensor,
            config: TeachConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch Adam on the new row only; the old rows' scores are fixed numbers."""
    old_logits = feats @ weight.T + bias
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=config.lr)
    for _ in range(config.steps):
        logits = torch.cat([old_logits, (feats @ w + b)[:, None]], dim=1)
        loss = (F.cross_entropy(logits, labels, reduction="none") * sample_weight).sum()
        loss = loss + config.weight_decay * w.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


def calibrate_bias(w: torch.Tensor, b: torch.Tensor, old_feats: torch.Tensor, old_labels: torch.Tensor,
                   weight: torch.Tensor, bias: torch.Tensor, rate: float,
                   per_class_rate: float = 1.0, margin: float = 0.0) -> torch.Tensor:
    """The bias, lowered if needed so that the new class takes at most ``rate`` of the replay
    drawings the old classes answered right, and at most ``per_class_rate`` of any one old
    class's (the guard: a new class must not empty one old class). A drawing the old classes
    already got wrong costs nothing when the new class takes it, so it is not counted. "Takes"
    means: the new class's score comes within ``margin`` of the old answer's (a safety margin
    for drawings the model has not seen, on which the old answer is less sure)."""
    if len(old_feats) == 0 or (rate >= 1 and per_class_rate >= 1):
        return b
    old_logits = old_feats @ weight.T + bias
    right = old_logits.argmax(1) == old_labels
    # the new class takes a drawing where its bias exceeds this gap
    gap = (old_logits.max(1).values - old_feats @ w)[right] - margin
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
    previous_threads = torch.get_num_threads()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    try:
        w, b = _teach_row(ckpt, rows, replay_rows, config)
    finally:
        torch.set_num_threads(previous_threads)
    entry = {"name": name, "drawings": torch.from_numpy(rows), "config": config.to_dict(),
             "seconds": time.perf_counter() - t0}
    return _with_row(ckpt, name, w, b, entry)


def _teach_row(ckpt: Checkpoint, rows: np.ndarray, replay_rows: dict[str, np.ndarray],
               config: TeachConfig) -> tuple[torch.Tensor, torch.Tensor]:
    model = ckpt.build_model("cpu")
    old_x = torch.cat([normalize_batch(torch.from_numpy(replay_rows[c])) for c in ckpt.classes])
    old_y = torch.cat([torch.full((len(replay_rows[c]),), i) for i, c in enumerate(ckpt.classes)])
    old_x = torch.where(replay_flips(len(old_x), config.seed)[:, None, None, None], old_x.flip(-1), old_x)
    new_x = augmented_copies(rows, config.new_samples, config.augment, torch.Generator().manual_seed(config.seed))
    feats = penultimate_features(model, torch.cat([old_x, new_x]))
    weight, bias = (ckpt.model_state[f"{HEAD_KEY}.weight"].float(), ckpt.model_state[f"{HEAD_KEY}.bias"].float())
    return row_from_pool(feats[len(old_x):], feats[:len(old_x)], old_y, weight, bias, config)


def row_from_pool(new_f: torch.Tensor, pool_f: torch.Tensor, pool_y: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor, config: TeachConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`row_from_features` on a replay pool (``config.pool_per_class`` per class): the row
    fit on the first ``replay_per_class`` of each class, its bias calibrated on the first
    ``calibration_per_class`` (0: on the same drawings it was fit on)."""
    fit = first_per_class(pool_y, config.replay_per_class)
    cal = first_per_class(pool_y, config.calibration_per_class) if config.calibration_per_class else None
    return row_from_features(new_f, pool_f[fit], pool_y[fit], weight, bias, config,
                             calibration=None if cal is None else (pool_f[cal], pool_y[cal]))


def first_per_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first ``n`` items of every label, in order."""
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        where = labels == c
        rank[where] = torch.arange(int(where.sum()))
    return torch.nonzero(rank < n).flatten()


def replay_flips(n: int, seed: int) -> torch.Tensor:
    """Which replay drawings are shown mirrored (a seeded half), as test-time flip shows them."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def row_from_features(new_f: torch.Tensor, old_f: torch.Tensor, old_y: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor, config: TeachConfig,
                      calibration: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The new row ``(w, b)`` from features alone: the examples' augmented copies ``new_f``,
    the replay drawings' ``old_f`` with their classes ``old_y``, and the old head; the bias is
    calibrated on ``calibration`` (features, classes) when given, else on the replay drawings."""
    if config.imprint:
        w, b = imprint_row(new_f, weight, bias, old_f, old_y)
    else:
        w, b = torch.zeros(weight.shape[1]), torch.zeros(())
    feats = torch.cat([old_f, new_f])
    labels = torch.cat([old_y, torch.full((len(new_f),), len(weight))])
    counts = torch.bincount(labels, minlength=len(weight) + 1).float().clamp(min=1)
    per_class = torch.ones_like(counts)
    per_class[-1] = config.new_class_weight
    sample_weight = (per_class / counts / per_class.sum())[labels]  # every class weighs the same
    w, b = fit_row(w, b, feats, labels, weight, bias, sample_weight, config)
    cal_f, cal_y = calibration if calibration is not None else (old_f, old_y)
    return w, calibrate_bias(w, b, cal_f, cal_y, weight, bias, config.false_positive_rate, config.per_class_rate,
                             config.margin)


def _with_row(ckpt: Checkpoint, name: str, w: torch.Tensor, b: torch.Tensor, entry: dict) -> Checkpoint:
    state = dict(ckpt.model_state)
    state[f"{HEAD_KEY}.weight"] = torch.cat([state[f"{HEAD_KEY}.weight"].float(), w[None]])
    state[f"{HEAD_KEY}.bias"] = torch.cat([state[f"{HEAD_KEY}.bias"].float(), b.reshape(1)])
    out = copy.copy(ckpt)
    out.model_state = state
    out.model_config = replace(ckpt.model_config, num_classes=len(ckpt.classes) + 1)
    out.classes = [*ckpt.classes, name]
    out.data = {**ckpt.data, "taught": [*ckpt.data.get("taught", []), entry]}
    out.train_state, out.path = None, None
    return out


def forget_class(ckpt: Checkpoint, name: str) -> Checkpoint:
    """A NEW checkpoint without the taught class ``name``: its output row and record removed,
    every other weight exactly as it was (teaching changes nothing else)."""
    names = taught_classes(ckpt)
    if name not in names:
        known = f"taught classes: {', '.join(names)}" if names else "no class was taught to it"
        original = " (it is one of the classes the model was trained on)" if name in ckpt.classes else ""
        raise TeachError(f"cannot forget '{name}'{original}; {known}")
    row = ckpt.classes.index(name)
    keep = [i for i in range(len(ckpt.classes)) if i != row]
    state = dict(ckpt.model_state)
    state[f"{HEAD_KEY}.weight"] = state[f"{HEAD_KEY}.weight"][keep].clone()
    state[f"{HEAD_KEY}.bias"] = state[f"{HEAD_KEY}.bias"][keep].clone()
    out = copy.copy(ckpt)
    out.model_state = state
    out.model_config = replace(ckpt.model_config, num_classes=len(keep))
    out.classes = [ckpt.classes[i] for i in keep]
    taught = [t for t in ckpt.data.get("taught", []) if t["name"] != name]
    out.data = {k: v for k, v in ckpt.data.items() if k != "taught"}
    if taught:
        out.data["taught"] = taught
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
