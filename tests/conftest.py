"""Shared fixtures: real drawings from ../shared/data when present, small made-up data otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from quicksketch_lib.categories import THE_TEN  # noqa: F401  (the tests import it from here)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
QUICKDRAW = SHARED_DATA / "quickdraw"
STROKES = SHARED_DATA / "strokes"

# `predict` keeps the shipped models' ONNX exports in the user's cache: the tests (and the
# notebooks' kernels, started from this process) keep theirs in artifacts/, as `make test` does.
os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / "artifacts" / "cache"))

needs_shared_data = pytest.mark.skipif(
    not QUICKDRAW.is_dir(), reason=f"real Quick Draw drawings not found at {QUICKDRAW} (../shared/data)")


@pytest.fixture(scope="session")
def quickdraw_dir() -> Path:
    """The real bitmaps folder (54 classes); skips the test when ../shared/data is absent."""
    if not QUICKDRAW.is_dir():
        pytest.skip(f"real Quick Draw drawings not found at {QUICKDRAW} (../shared/data)")
    return QUICKDRAW


@pytest.fixture(scope="session")
def strokes_dir() -> Path:
    if not STROKES.is_dir():
        pytest.skip(f"real stroke drawings not found at {STROKES} (../shared/data)")
    return STROKES


def make_shapes(n_per_class: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    """Three easy classes of 28x28 uint8 drawings (box, cross, ring) with jitter: learnable in seconds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = {}
    for name in ("box", "cross", "ring"):
        imgs = np.zeros((n_per_class, 28, 28), np.uint8)
        for i in range(n_per_class):
            cx, cy, r = rng.uniform(11, 17), rng.uniform(11, 17), rng.uniform(6, 10)
            if name == "box":
                m = (np.maximum(abs(xx - cx), abs(yy - cy)) - r) ** 2 < 2
            elif name == "cross":
                m = ((abs(xx - cx) < 1.5) | (abs(yy - cy) < 1.5)) & (np.hypot(xx - cx, yy - cy) < r)
            else:
                m = (np.hypot(xx - cx, yy - cy) - r) ** 2 < 2
            imgs[i][m] = rng.integers(180, 256)
        out[name] = imgs.reshape(n_per_class, 784)
    return out


@pytest.fixture
def shapes_dir(tmp_path) -> Path:
    """A data folder of three made-up classes (box, cross, ring), 60 drawings each."""
    folder = tmp_path / "shapes"
    folder.mkdir()
    for name, arr in make_shapes().items():
        np.save(folder / f"{name}.npy", arr)
    return folder


@pytest.fixture(scope="session")
def ten_class_model(tmp_path_factory):
    """A SketchCNN trained briefly on real bitmaps of the ten classes (300 per class, 3 epochs of
    batches of 64, the learning rate annealed by cosine): a model trained by the tests themselves,
    clearly better than chance. Tests that need a good model use the shipped ones."""
    if not QUICKDRAW.is_dir():
        pytest.skip(f"real Quick Draw drawings not found at {QUICKDRAW} (../shared/data)")
    from quicksketch_lib.data import load_folder
    from quicksketch_lib.model import ModelConfig, SketchCNN
    from quicksketch_lib.training import TrainConfig, fit

    data = load_folder(QUICKDRAW, classes=THE_TEN, per_class=300)
    path = tmp_path_factory.mktemp("ten") / "ten.pt"
    config = TrainConfig(epochs=3, batch_size=64, schedule="cosine", precision="fp32")
    result = fit(SketchCNN(ModelConfig(num_classes=10)), data, config, out=path, progress=False)
    return path, result, data


@pytest.fixture(scope="session")
def shapes_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained for a few epochs on the made-up shapes (box, cross, ring)."""
    import torch

    from quicksketch_lib.data import load_folder
    from quicksketch_lib.model import ModelConfig, SketchCNN
    from quicksketch_lib.training import TrainConfig, fit

    folder = tmp_path_factory.mktemp("shapes_ckpt")
    data_dir = folder / "shapes"
    data_dir.mkdir()
    for name, arr in make_shapes().items():
        np.save(data_dir / f"{name}.npy", arr)
    # Cosine annealing ends at a learning rate near 0, so the model does not stop mid-swing: with
    # StepLR and 6 epochs, 2 of 8 seeds (and CI's CPU with seed 0) left a model at 57-80 %;
    # with this, 8 of 8 seeds reach 100 % on its drawings (tests ask >= 80 % and int8 >= 95 %).
    torch.manual_seed(0)
    fit(SketchCNN(ModelConfig(num_classes=3)), load_folder(data_dir),
        TrainConfig(epochs=10, batch_size=32, schedule="cosine", precision="fp32"),
        out=folder / "shapes.pt", progress=False)
    return folder / "shapes.pt"
