import json

import numpy as np
import pytest
import torch

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.recipes import recipe_config
from quicksketch_lib.training import TrainConfig, fit, history_path, lr_schedule


def _model(n=3, seed=0):
    torch.manual_seed(seed)  # the initial weights, as `quicksketch train` seeds them
    return SketchCNN(ModelConfig(num_classes=n))


def test_defaults_are_the_original_recipe():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay) == (20, 256, 1e-3, 1e-4)
    assert (c.optimizer, c.schedule, c.step_size, c.gamma, c.val_fraction) == ("adam", "step", 10, 0.5, 0.1)
    assert c.label_smoothing == 0 and c.augment == 0 and c.ema_decay == 0
    assert recipe_config("original") == c


def test_step_schedule_halves_every_ten_epochs():
    lrs = lr_schedule(TrainConfig(), steps_per_epoch=2)
    assert lrs[0] == 1e-3 and lrs[19] == 1e-3 and lrs[20] == 5e-4 and lrs[-1] == 5e-4
    assert len(lrs) == 40


def test_short_run_learns_and_writes_checkpoint_and_history(shapes_dir, tmp_path):
    data = load_folder(shapes_dir)
    out = tmp_path / "m.pt"
    result = fit(_model(), data, TrainConfig(epochs=6, batch_size=32), out=out, progress=False)
    assert result.val_accuracy >= 0.8  # 3 classes: chance is 0.33
    ckpt = load_checkpoint(out)
    assert ckpt.classes == ["box", "cross", "ring"] and ckpt.metrics["epochs"] == 6
    assert len(ckpt.history) == 6 and ckpt.history[-1]["val_accuracy"] == result.val_accuracy
    assert json.loads(history_path(out).read_text()) == ckpt.history
    assert len(ckpt.split["val_indices"]) == 18  # 10% of each class of 60


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_resume_equals_uninterrupted(shapes_dir, tmp_path, precision):
    data = load_folder(shapes_dir)
    cfg = TrainConfig(epochs=4, batch_size=32, precision=precision, seed=5)
    full = fit(_model(), data, cfg, out=tmp_path / "full.pt", progress=False)
    # "interrupted" after 2 epochs, then resumed to 4
    fit(_model(), data, TrainConfig(**{**cfg.to_dict(), "epochs": 2}), out=tmp_path / "part.pt", progress=False)
    resumed = fit(_model(), data, cfg, out=tmp_path / "part.pt", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    a, b = load_checkpoint(tmp_path / "full.pt").model_state, load_checkpoint(tmp_path / "part.pt").model_state
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.history[-1]["val_accuracy"] == full.history[-1]["val_accuracy"]


def test_resume_refuses_other_data(shapes_dir, tmp_path):
    data = load_folder(shapes_dir)
    fit(_model(), data, TrainConfig(epochs=1), out=tmp_path / "m.pt", progress=False)
    from quicksketch_lib.errors import CheckpointError
    with pytest.raises(CheckpointError, match="different drawings"):
        fit(_model(), data.subset(np.arange(0, 180, 2)), TrainConfig(epochs=2), out=tmp_path / "m.pt",
            resume=True, progress=False)


def test_interrupted_save_leaves_the_old_checkpoint_intact(shapes_dir, tmp_path, monkeypatch):
    data = load_folder(shapes_dir)
    out = tmp_path / "m.pt"
    fit(_model(), data, TrainConfig(epochs=1), out=out, progress=False)
    before = out.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), data, TrainConfig(epochs=1, seed=9), out=out, progress=False)
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_quicksketch_recipe_knobs_run(shapes_dir):
    data = load_folder(shapes_dir)
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer="adamw", schedule="cosine", warmup_epochs=0.5,
                      label_smoothing=0.1, ema_decay=0.9)
    result = fit(_model(), data, cfg, progress=False)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])


def test_real_drawings_reach_clearly_non_random_accuracy(ten_class_model):
    _, result, _ = ten_class_model
    assert result.val_accuracy >= 0.5  # ten classes: chance is 0.10
