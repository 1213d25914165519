import json

import numpy as np
import pytest

from conftest import make_shapes
from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import load_folder
from quicksketch_lib.evaluation import evaluate, evaluation_set, expected_calibration_error, metrics_from_proba
from quicksketch_lib.plots import save_confusion_png


def test_metrics_on_a_known_example():
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 1, 1, 2])
    r = metrics_from_proba(proba, labels, ["a", "b", "c"])
    assert r.accuracy == 0.75 and r.top3_accuracy == 1.0
    assert r.confusion == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert r.precision == [0.5, 1.0, 1.0] and r.recall == [1.0, 0.5, 1.0] and r.support == [1, 2, 1]


def test_ece_is_zero_when_confidence_matches_accuracy():
    proba = np.array([[0.5, 0.5]] * 4)
    assert expected_calibration_error(proba, np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(1.0)


def test_uses_the_recorded_split_on_the_training_folder(shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    data = load_folder(ckpt.data["root"])
    images, labels, subset = evaluation_set(ckpt, data)
    assert len(labels) == 18 and "held-out" in subset
    assert np.array_equal(images, data.images[ckpt.split["val_indices"].numpy()])


def test_fewer_training_drawings_use_only_the_held_out_among_them(shapes_checkpoint):
    """The first 20 drawings per class of the training folder were trained on (but the
    held-out ones): only those held-out ones are evaluated, never the trained ones."""
    ckpt = load_checkpoint(shapes_checkpoint)
    fewer = load_folder(ckpt.data["root"], per_class=20)
    _, labels, subset = evaluation_set(ckpt, fewer)
    assert 0 < len(labels) < 60 and "held-out drawings recorded in the checkpoint" in subset


def test_uses_every_drawing_of_another_folder(shapes_checkpoint, tmp_path):
    ckpt = load_checkpoint(shapes_checkpoint)
    for name, arr in make_shapes(20, seed=9).items():  # same classes, other drawings
        np.save(tmp_path / f"{name}.npy", arr)
    _, labels, subset = evaluation_set(ckpt, load_folder(tmp_path))
    assert len(labels) == 60 and subset.startswith("all drawings")


def test_report_json_text_and_png(shapes_checkpoint, tmp_path):
    ckpt = load_checkpoint(shapes_checkpoint)
    report = evaluate(ckpt, load_folder(ckpt.data["root"]))
    assert report.accuracy >= 0.8
    d = json.loads(report.save_json(tmp_path / "r.json").read_text())
    assert 0 <= d["accuracy"] <= 1 and len(d["confusion"]) == 3 and "ece" in d
    assert "box" in report.format_text() and "confusion matrix" in report.format_text()
    png = save_confusion_png(report, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
