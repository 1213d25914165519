import pickle

import pytest
import torch

from quicksketch_lib.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from quicksketch_lib.errors import CheckpointError
from quicksketch_lib.model import SketchCNN


def test_checkpoint_describes_itself(shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    assert ckpt.classes == ["box", "cross", "ring"]
    assert ckpt.model_config.num_classes == 3
    assert ckpt.normalization["mean"] == 0.5 and ckpt.normalization["std"] == 0.5
    assert ckpt.train_config["lr"] == 1e-3 and ckpt.train_config["epochs"] == 6
    assert 0 <= ckpt.metrics["val_accuracy"] <= 1
    assert ckpt.data["counts"] == [60, 60, 60]
    assert ckpt.train_state is not None and "optimizer" in ckpt.train_state
    raw = torch.load(shapes_checkpoint, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION


def test_build_model_reproduces_the_weights(shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    model = ckpt.build_model()
    assert isinstance(model, SketchCNN) and not model.training
    assert torch.equal(model.state_dict()["classifier.4.bias"], ckpt.model_state["classifier.4.bias"])


def test_save_round_trip(shapes_checkpoint, tmp_path):
    ckpt = load_checkpoint(shapes_checkpoint)
    again = load_checkpoint(save_checkpoint(ckpt, tmp_path / "sub" / "copy.pt"))
    assert again.classes == ckpt.classes and again.history == ckpt.history


def test_refuses_missing_corrupt_foreign_and_pickled_files(shapes_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(shapes_checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(truncated)
    bare = tmp_path / "bare.pt"
    torch.save(SketchCNN().state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a QuickSketch checkpoint"):
        load_checkpoint(bare)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:  # an arbitrary pickled object: weights_only refuses it
        pickle.dump({"format": "quicksketch-checkpoint", "x": object()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


def test_newer_format_version_is_refused(shapes_checkpoint, tmp_path):
    d = torch.load(shapes_checkpoint, weights_only=True)
    d["format_version"] = FORMAT_VERSION + 1
    torch.save(d, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(tmp_path / "future.pt")


def test_class_mismatch_is_a_clear_error(shapes_checkpoint):
    with pytest.raises(CheckpointError, match="missing from data: \\['ring'\\]"):
        load_checkpoint(shapes_checkpoint).check_classes(["box", "cross"])
