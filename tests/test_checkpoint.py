import pickle

import numpy as np
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
    assert ckpt.train_config["lr"] == 1e-3 and ckpt.train_config["epochs"] == 10
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
def _edited(shapes_checkpoint, tmp_path, edit):
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
    from quicksketch_lib.data import RowFingerprints, load_folder

    ckpt = load_checkpoint(shapes_checkpoint)
    data = load_folder(ckpt.data["root"])
    rows = RowFingerprints.from_dict(ckpt.data["train_rows"])
    val = ckpt.split["val_indices"].numpy()
    train = np.setdiff1d(np.arange(len(data)), val)
    assert len(rows) == len(train) == 162
    assert rows.contains(data.images[train]).all() and not rows.contains(data.images[val]).any()


# --------------------------------------------------------------------------- the shipped models
def _make_pretrained():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_pretrained.py"
    spec = importlib.util.spec_from_file_location("make_pretrained", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_pretrained_records_fingerprints_and_checks_the_size(shapes_checkpoint, tmp_path, monkeypatch, capsys):
    import sys

    from quicksketch_lib.data import RowFingerprints

    mp = _make_pretrained()
    ckpt = load_checkpoint(shapes_checkpoint)
    args = ["make_pretrained.py", str(shapes_checkpoint), "--data", ckpt.data["root"], "--replay-per-class", "5"]
    monkeypatch.setattr(sys, "argv", args + ["--out", str(tmp_path / "small.pt"), "--max-mb", "0.1"])
    with pytest.raises(SystemExit, match="over --max-mb 0.1.*Nothing was written"):
        mp.main()
    assert not (tmp_path / "small.pt").exists()
    monkeypatch.setattr(sys, "argv", args + ["--out", str(tmp_path / "p.pt")])
    mp.main()
    assert "162 training drawings fingerprinted" in capsys.readouterr().out
    packed = load_checkpoint(tmp_path / "p.pt")
    assert packed.train_state is None and packed.data["root"] == "data/quickdraw"
    assert torch.load(tmp_path / "p.pt", weights_only=True)["model_state"]["classifier.4.weight"].dtype == torch.float16
    assert all(len(v) == 5 for v in packed.data["replay"]["drawings"].values())
    assert np.array_equal(RowFingerprints.from_dict(packed.data["train_rows"]).values,
                          RowFingerprints.from_dict(ckpt.data["train_rows"]).values)
    wrong = tmp_path / "wrong"  # another folder: refused, its drawings are not the training ones
    wrong.mkdir()
    for name in ckpt.classes:
        np.save(wrong / f"{name}.npy", np.random.default_rng(0).integers(0, 256, (60, 784), dtype=np.uint8))
    monkeypatch.setattr(sys, "argv", [args[0], args[1], "--data", str(wrong), "--out", str(tmp_path / "w.pt")])
    with pytest.raises(SystemExit, match="does not hold the drawings the checkpoint was trained on"):
        mp.main()


def test_the_shipped_model_records_every_training_drawing():
    from quicksketch_lib.data import RowFingerprints

    ckpt = load_checkpoint("pretrained")
    rows = RowFingerprints.from_dict(ckpt.data["train_rows"])
    assert len(rows) == sum(ckpt.data["counts"]) - len(ckpt.split["val_indices"]) == 36_009
    assert rows.contains(np.concatenate([v.numpy() for v in ckpt.data["replay"]["drawings"].values()])).all()


def test_copies_of_the_shipped_models_training_rows_are_left_out(quickdraw_dir, tmp_path):
    """The first 100 rows of each of the ten's files, in another folder: exactly the training
    drawings among them are left out; the recorded held-out ones among them are kept."""
    from quicksketch_lib.data import load_folder
    from quicksketch_lib.evaluation import select_unseen

    ckpt = load_checkpoint("pretrained")
    for name in ckpt.classes:
        np.save(tmp_path / f"{name}.npy", np.load(quickdraw_dir / f"{name}.npy", mmap_mode="r")[:100])
    chosen = select_unseen(ckpt, load_folder(tmp_path))
    offsets = np.concatenate([[0], np.cumsum(ckpt.data["counts"])])
    val = ckpt.split["val_indices"].numpy()
    first = np.concatenate([np.arange(o, o + 100) for o in offsets[:-1]])
    held = int(np.isin(first, val).sum())
    assert chosen.excluded == 1000 - held and len(chosen.index) == held
