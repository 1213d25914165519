"""Named training recipes: ``original`` (exactly the original project) and better ones.

A recipe is a set of ``TrainConfig`` overrides; ``quicksketch train --recipe NAME``
picks one and any explicit option (``--epochs`` ...) still wins.
"""

from __future__ import annotations

from .errors import QuickSketchError
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


def recipe_config(name: str = "original", base: dict | None = None, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name``, then ``base`` (e.g. a resumed run's settings),
    then ``overrides`` (None values ignored)."""
    if name not in RECIPES:
        raise QuickSketchError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    values = {**RECIPES[name], **(base or {}), **{k: v for k, v in overrides.items() if v is not None}}
    values.pop("recipe", None)
    return TrainConfig(recipe=name, **values)
