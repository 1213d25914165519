import json
from pathlib import Path

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
    assert d["data"] == "…/" + Path(ckpt.data["root"]).name  # a folder outside the checkout: no machine path
    assert "box" in report.format_text() and "confusion matrix" in report.format_text()
    png = save_confusion_png(report, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- classes by name
def _folder(path, arrays: dict):
    path.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(path / f"{name}.npy", arr)
    return path


def test_a_subset_of_the_classes_is_evaluated_over_all_outputs(shapes_checkpoint, tmp_path):
    """Only cross and ring in the folder: their drawings are scored over all three outputs (a
    drawing answered "box" is wrong), the table has two rows, and box is said to be missing."""
    from quicksketch_lib.evaluation import class_probabilities

    ckpt = load_checkpoint(shapes_checkpoint)
    shapes = make_shapes(20, seed=9)
    data = load_folder(_folder(tmp_path / "two", {"ring": shapes["ring"], "cross": shapes["cross"]}))
    report = evaluate(ckpt, data)
    assert report.classes == ["cross", "ring"] and report.not_in_data == ["box"] and report.n == 40
    proba = class_probabilities(ckpt.build_model(), data.images, tta_flip=ckpt.tta_flip)
    truth = np.array([1] * 20 + [2] * 20)  # the model's own indices of cross and ring
    assert report.accuracy == pytest.approx(float((proba.argmax(1) == truth).mean()))
    assert [sum(r) + o for r, o in zip(report.confusion, report.other)] == [20, 20]
    assert report.other == [int((proba[:20].argmax(1) == 0).sum()), int((proba[20:].argmax(1) == 0).sum())]
    text = report.format_text()
    assert "not in the data: 1 of the model's 3 classes (box)" in text and " other" in text


def test_class_order_never_matters_and_unknown_classes_are_refused(shapes_checkpoint, tmp_path):
    from quicksketch_lib.errors import DataError
    from quicksketch_lib.evaluation import classes_to_evaluate, load_for_checkpoint

    ckpt = load_checkpoint(shapes_checkpoint)
    ckpt.classes = ["ring", "box", "cross"]  # the same model with its outputs in another order ...
    state = dict(ckpt.model_state)
    for key in ("classifier.4.weight", "classifier.4.bias"):
        state[key] = state[key][[2, 0, 1]]
    ckpt.model_state = state
    shapes = make_shapes(20, seed=9)
    folder = _folder(tmp_path / "three", shapes)
    a = evaluate(ckpt, load_for_checkpoint(ckpt, folder))
    b = evaluate(load_checkpoint(shapes_checkpoint), load_folder(folder))
    assert a.accuracy == b.accuracy and a.classes == ["ring", "box", "cross"]  # ... answers the same
    _folder(folder, {"star": shapes["box"]})
    with pytest.raises(DataError, match="'star' not known to the model.*--classes"):
        classes_to_evaluate(ckpt, folder)
    assert classes_to_evaluate(ckpt, folder, ["ring", "box"]) == ["ring", "box"]
    with pytest.raises(DataError, match="'star' not known"):
        evaluate(ckpt, load_folder(folder))


# --------------------------------------------------------------------------- drawings it was trained on
def test_copies_of_training_drawings_are_recognised_anywhere(shapes_checkpoint, tmp_path):
    """The first 20 rows of each training file, copied to another folder with new drawings:
    the trained-on ones among them are left out and counted; held-out ones and new ones stay."""
    ckpt = load_checkpoint(shapes_checkpoint)
    train = load_folder(ckpt.data["root"])
    val = set(ckpt.split["val_indices"].tolist())
    new = make_shapes(10, seed=9)
    arrays = {c: np.concatenate([train.images[i * 60:i * 60 + 20], new[c]]) for i, c in enumerate(train.classes)}
    data = load_folder(_folder(tmp_path / "copy", arrays))
    report = evaluate(ckpt, data)
    trained = sum(1 for c in range(3) for r in range(20) if c * 60 + r not in val)
    assert report.excluded == trained and report.n == 90 - trained
    assert "recognised by their fingerprints" in report.excluded_why
    assert "left out" in report.format_text()


def test_the_training_folder_still_uses_exactly_the_recorded_split(shapes_checkpoint):
    ckpt = load_checkpoint(shapes_checkpoint)
    report = evaluate(ckpt, load_folder(ckpt.data["root"]))
    assert report.subset == "held-out split recorded in the checkpoint" and report.n == 18
    assert report.excluded == 162 and "outside the recorded held-out split" in report.excluded_why


def test_a_checkpoint_without_per_drawing_fingerprints_falls_back_and_says_so(shapes_checkpoint, tmp_path):
    from quicksketch_lib.evaluation import PER_FILE_ONLY

    ckpt = load_checkpoint(shapes_checkpoint)
    ckpt.data = {k: v for k, v in ckpt.data.items() if k != "train_rows"}  # as before this change
    train = load_folder(ckpt.data["root"])
    arrays = {c: train.images[i * 60:i * 60 + 20] for i, c in enumerate(train.classes)}
    _, labels, subset = evaluation_set(ckpt, load_folder(_folder(tmp_path / "copy", arrays)))
    assert len(labels) == 60 and subset.endswith(PER_FILE_ONLY)  # the old rule: a copy passes, said


def test_a_taught_class_is_evaluated_and_its_examples_left_out(shapes_checkpoint, tmp_path):
    from quicksketch_lib.teach import TeachConfig, teach_class
    from test_teach import triangles

    ckpt = load_checkpoint(shapes_checkpoint)
    examples = triangles(12, seed=1)
    taught = teach_class(ckpt, "triangle", examples[:8],
                         config=TeachConfig(new_samples=40, replay_per_class=20, steps=50))
    shapes = make_shapes(10, seed=9)
    folder = _folder(tmp_path / "four", {**shapes, "triangle": examples})  # sorted: triangle is last here
    report = evaluate(taught, load_folder(folder))
    assert report.classes == ["box", "cross", "ring", "triangle"] and report.support[-1] == 4
    assert report.excluded == 8 and report.n == 34


def test_metrics_restricted_to_the_evaluated_classes():
    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.7, 0.2, 0.1]])
    r = metrics_from_proba(proba, np.array([1, 2, 2]), ["a", "b", "c"], evaluated=[1, 2])
    assert r.classes == ["b", "c"] and r.not_in_data == ["a"]
    assert r.confusion == [[1, 0], [0, 1]] and r.other == [0, 1] and r.support == [1, 2]
    assert r.accuracy == pytest.approx(2 / 3) and r.recall == [1.0, 0.5]
