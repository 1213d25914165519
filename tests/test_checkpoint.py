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


# --------------------------------------------------------------------------- metadata checked on load
def _edited(shapes_checkpoint, tmp_path, edit) -> "Path":
    d = torch.load(shapes_checkpoint, weights_only=True)
    edit(d)
    torch.save(d, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


TAUGHT = {"name": "triangle", "drawings": torch.full((5, 784), 255, dtype=torch.uint8), "config": {}}


def _teach_record(d, entry):
    d["classes"] = d["classes"][:2] + ["triangle"]  # keep the output layer's 3 rows
    d["data"]["classes"], d["data"]["counts"], d["data"]["sha256"] = (d["data"][k][:2] for k in ("classes", "counts", "sha256"))
    d["split"]["val_indices"] = d["split"]["val_indices"][d["split"]["val_indices"] < 120]
    d["data"]["taught"] = entry


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(data="abc"), "data record is a str"),
    (lambda d: _teach_record(d, "abc"), "taught-class record is a str"),
    (lambda d: _teach_record(d, [{"name": "triangle"}]), "lacks a name or its example drawings"),
    (lambda d: _teach_record(d, [{**TAUGHT, "drawings": torch.zeros(5, 784)}]), "lacks a name or its example"),
    (lambda d: _teach_record(d, [{**TAUGHT, "name": "kite"}]), "taught class 'kite' is not one of its classes"),
    (lambda d: _teach_record(d, [TAUGHT, TAUGHT]), "names a class twice"),
    (lambda d: d["data"].update(replay="abc"), "replay record has no drawings"),
    (lambda d: d["data"].update(replay={"source": "x"}), "replay record has no drawings"),
    (lambda d: d["data"].update(replay={"drawings": {"kite": torch.zeros(3, 784, dtype=torch.uint8)}}),
     "replay drawings are for 'kite'"),
    (lambda d: d["data"].update(replay={"drawings": {"box": torch.zeros(3, 784)}}), "not uint8 drawings"),
    (lambda d: d["data"].update(train_rows={"hash": "md5"}), "per-drawing fingerprint is not 'blake2b-32'"),
    (lambda d: d["data"].update(counts=[60, 60]), "per-class counts"),
    (lambda d: d["data"].update(sha256=["x"] * 3), "one SHA-256 per training class"),
    (lambda d: d["data"].update(classes=["box", "cross", "kite"]), "training classes are not names of its own"),
    (lambda d: d["split"].update(val_indices="1 2 3"), "held-out split is not a list of drawing numbers"),
    (lambda d: d["split"].update(val_indices=torch.tensor([0, 500])), "outside the 180 it was trained with"),
])
def test_malformed_metadata_is_refused_in_one_line(shapes_checkpoint, tmp_path, edit, message):
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(_edited(shapes_checkpoint, tmp_path, edit))
    assert "\n" not in str(info.value)


def test_the_fingerprint_of_every_training_drawing_is_recorded(shapes_checkpoint):
    import numpy as np

    from quicksketch_lib.data import RowFingerprints, load_folder

    ckpt = load_checkpoint(shapes_checkpoint)
    data = load_folder(ckpt.data["root"])
    rows = RowFingerprints.from_dict(ckpt.data["train_rows"])
    val = ckpt.split["val_indices"].numpy()
    train = np.setdiff1d(np.arange(len(data)), val)
    assert len(rows) == len(train) == 162
    assert rows.contains(data.images[train]).all() and not rows.contains(data.images[val]).any()
