"""Named training recipes: ``original`` (exactly the original project) and better ones.

A recipe is a set of ``TrainConfig`` overrides; ``quicksketch train --recipe NAME``
picks one and any explicit option (``--epochs`` ..., or ``--set KEY=VALUE`` for any
field, parsed by :func:`parse_override`) still wins. A recipe may also cap the drawings
per class (:data:`RECIPE_PER_CLASS`, used unless ``--per-class`` is given): ``learner``
is the quicksketch recipe cut to fit a 2-core CPU in 10 minutes. And it may change the
architecture (:data:`RECIPE_MODEL`: ``ModelConfig`` fields), as ``--set model.FIELD=VALUE``
does (``--set model.channels=32,64,128 --set model.dropout=0.3``); the checkpoint records it.
"""

from __future__ import annotations

import typing

from .errors import QuickSketchError
from .model import ModelConfig
from .training import TrainConfig

RECIPES: dict[str, dict] = {
    # The original QuickSketch recipe: Adam 1e-3, wd 1e-4, StepLR(10, 0.5), 20 epochs, batch 256.
    "original": {},
    # QuickSketch: same model, epochs and batch; AdamW one-cycle (warm-up built in) at a higher
    # peak lr, label smoothing and light drawing-preserving augmentation (see augment.py).
    # EMA of weights was tried and left out: it lowered held-out accuracy (ablation and
    # accuracy table: scripts/accuracy_runs.py).
    "quicksketch": {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.05,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "augment": 1.0,
        "tta_flip": True,  # evaluate on each drawing and its mirror (augmentation mirrors too)
    },
}
# The learner's CPU run (notebook 03 without a GPU): the quicksketch recipe for 3 epochs on
# 2,000 drawings per class, 54,000 training images in all, chosen from the sweep in
# notebooks/runs/sweep.json (its accuracies: notebooks/runs/README.md and notebook 03).
RECIPES["learner"] = {**RECIPES["quicksketch"], "epochs": 3}
# The game's model (pretrained-54): the quicksketch recipe, with each training drawing, with
# probability 0.3 each time it is batched, cut part-way (augment.partial_ink), meant to make the
# model know a drawing before it is finished (measured against the same recipe without it: at
# most a small gain, README "Play").
RECIPES["game"] = {**RECIPES["quicksketch"], "partial": 0.3}
RECIPE_PER_CLASS: dict[str, int] = {"learner": 2000}  # drawings per class; other recipes use all
# ModelConfig fields a recipe changes (every recipe so far trains the original architecture).
RECIPE_MODEL: dict[str, dict] = {}
MODEL_PREFIX = "model."  # --set model.FIELD=VALUE sets a ModelConfig field
DATA_DECIDES = ("num_classes", "in_channels")  # ModelConfig fields the data sets, never --set


def recipe_per_class(name: str) -> int | None:
    """How many drawings per class recipe ``name`` trains on (None: every drawing)."""
    return RECIPE_PER_CLASS.get(name)

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def recipe_model_config(name: str = "original", base: dict | None = None, **overrides) -> ModelConfig:
    """The ``ModelConfig`` of recipe ``name`` (the original architecture, then
    :data:`RECIPE_MODEL`), then ``base`` (a resumed run's), then ``overrides``."""
    return ModelConfig.from_dict({**ModelConfig().to_dict(), **RECIPE_MODEL.get(name, {}), **(base or {}),
                                  **overrides})


def recipe_config(name: str = "original", base: dict | None = None, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name``, then ``base`` (e.g. a resumed run's settings),
    then ``overrides`` (None values ignored)."""
    if name not in RECIPES:
        raise QuickSketchError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    kept = {k: v for k, v in (base or {}).items() if k != "recipe"}  # a resumed run's settings
    values = {"recipe": name, **RECIPES[name], **kept, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(**values)


def parse_override(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` -> ``(key, value)`` for any ``TrainConfig`` field, or ``model.FIELD`` for
    a ``ModelConfig`` field, the value parsed as the field's type (``true``/``false`` for flags,
    ``none`` where None is allowed, ``32,64,128`` for a tuple). Raises ValueError naming the
    fields when the key is unknown or the value does not parse."""
    types = {**typing.get_type_hints(TrainConfig),
             **{MODEL_PREFIX + k: t for k, t in typing.get_type_hints(ModelConfig).items() if k not in DATA_DECIDES}}
    return parse_field(text, types, "a TrainConfig field or model.FIELD")


def parse_field(text: str, types: dict, what: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` -> ``(key, value)`` for a key of ``types`` (field name -> type hint), the
    value parsed as :func:`parse_override` describes; ``what`` names the keys in the error."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in types:
        raise ValueError(f"{text!r} is not KEY=VALUE with KEY {what}; fields: {', '.join(types)}")
    if typing.get_origin(types[key]) is tuple:
        try:
            return key, tuple(int(v) for v in raw.split(","))
        except ValueError:
            raise ValueError(f"{key}={raw!r}: expected whole numbers separated by commas, e.g. 32,64,128") from None
    allowed = typing.get_args(types[key]) or (types[key],)
    if raw.strip().lower() == "none" and type(None) in allowed:
        return key, None
    kind, value = next(t for t in allowed if t is not type(None)), raw.strip()
    if kind is bool:
        if value.lower() not in _BOOLS:
            raise ValueError(f"{key}={raw!r}: expected true or false")
        return key, _BOOLS[value.lower()]
    try:
        return key, kind(value)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected {kind.__name__}") from None


def check_override(key: str, value) -> None:
    """Raise ValueError (the config's own message) unless ``key=value`` is a value
    ``TrainConfig`` (or for ``model.FIELD``, ``ModelConfig``) takes: ``--set`` values are
    checked by the same rules as the options."""
    if key.startswith(MODEL_PREFIX):
        try:
            ModelConfig(**{key[len(MODEL_PREFIX):]: value})
        except ValueError as exc:
            raise ValueError(f"{MODEL_PREFIX}{exc}") from None
    else:
        TrainConfig(**{key: value})


def split_model_overrides(overrides: dict) -> tuple[dict, dict]:
    """``--set`` values -> (``TrainConfig`` fields, ``ModelConfig`` fields without ``model.``)."""
    model = {k[len(MODEL_PREFIX):]: v for k, v in overrides.items() if k.startswith(MODEL_PREFIX)}
    return {k: v for k, v in overrides.items() if not k.startswith(MODEL_PREFIX)}, model
