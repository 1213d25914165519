"""The SketchPad's Python side, without a browser: strokes in, 28x28 and top-5 out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import QUICKDRAW, STROKES, THE_TEN
from quicksketch_lib.errors import InputError
from quicksketch_lib.inference import Predictor
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.rasterize import rasterize_strokes, read_ndjson
from quicksketch_lib import locations
from quicksketch_lib.widgets import (BLANK_TEXT, SketchPad, checkpoint_for_drawing, find_checkpoint,
                                     predict_strokes, saliency_map, time_update)

# A small SketchCNN on real bitmaps of the ten classes: about 20 s on 2 busy cores.
SMALL_MODEL = {"channels": (16, 32, 64), "hidden": 128}
WELL_LEARNED = ["house", "banana", "book"]  # classes the small model gets right most often


def train_small_checkpoint(out_dir: Path, per_class: int = 300, epochs: int = 2) -> Path:
    """Train (once per test session: cached in ``out_dir``) a small model on the ten classes."""
    from quicksketch_lib.data import load_folder
    from quicksketch_lib.training import TrainConfig, fit

    path = Path(out_dir) / "small-ten.pt"
    if not path.exists():
        data = load_folder(QUICKDRAW, classes=THE_TEN, per_class=per_class)
        model = SketchCNN(ModelConfig(num_classes=len(data.classes), **SMALL_MODEL))
        fit(model, data, TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, seed=0), out=path,
            progress=False)
    return path


def recorded_drawings(name: str, limit: int | None = None) -> list[list]:
    """Real raw strokes of class ``name`` from ../shared/data/strokes."""
    return [r["drawing"] for r in read_ndjson(STROKES / f"{name}.ndjson", limit)]


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, quickdraw_dir) -> Path:
    return train_small_checkpoint(tmp_path_factory.getbasetemp() / "widget-model")


@pytest.fixture
def untrained_pad() -> SketchPad:
    """A pad on an untrained 3-class model: enough to test the plumbing."""
    model = SketchCNN(ModelConfig(num_classes=3, channels=(8, 16, 32), hidden=32))
    return SketchPad((model, ["box", "cross", "ring"]), top_k=5)


SQUARE = [[[10, 200, 200, 10, 10], [10, 10, 200, 200, 10]]]
CROSS = [[[10, 200], [10, 200]], [[200, 10], [10, 200]]]


def test_blank_pad_says_draw_something(untrained_pad):
    assert untrained_pad.headline == BLANK_TEXT
    assert untrained_pad.predictions == []
    assert untrained_pad.image.shape == (28, 28) and not untrained_pad.image.any()


def test_strokes_give_the_rasterisers_image_and_a_top_k(untrained_pad):
    predictions = untrained_pad.update_from_strokes(CROSS)
    np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(CROSS))
    assert untrained_pad.image.dtype == np.uint8
    assert [c for c, _ in predictions] and len(predictions) == 3  # top_k capped by 3 classes
    assert untrained_pad.predictions == predictions
    assert untrained_pad.headline.startswith(predictions[0][0])
    assert untrained_pad._input == untrained_pad.image.tobytes()  # what the browser shows


def test_undo_and_clear(untrained_pad):
    untrained_pad.update_from_strokes(SQUARE + CROSS)
    assert len(untrained_pad.strokes) == 3
    untrained_pad.undo()
    assert len(untrained_pad.strokes) == 2
    np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(SQUARE + CROSS[:1]))
    untrained_pad.clear()
    assert untrained_pad.strokes == [] and untrained_pad.headline == BLANK_TEXT
    assert untrained_pad.predictions == [] and not untrained_pad.image.any()


def test_browser_stroke_updates_and_previews(untrained_pad):
    """What the browser sends: the strokes trait on pointer-up, preview messages while drawing."""
    untrained_pad.strokes = SQUARE  # as a frontend change would arrive
    np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(SQUARE))
    untrained_pad._on_message(untrained_pad, {"kind": "preview", "stroke": CROSS[0], "seq": 4}, [])
    np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(SQUARE + CROSS[:1]))
    assert untrained_pad.strokes == SQUARE and untrained_pad._preview_ack == 4


def test_errors_in_browser_events_go_to_the_output(untrained_pad):
    untrained_pad._on_message(untrained_pad, {"kind": "preview", "stroke": [[1, 2]], "seq": 1}, [])
    assert "InputError" in untrained_pad._error
    assert "InputError" in untrained_pad.output.outputs[-1]["text"]
    with pytest.raises(InputError):  # the Python API raises directly
        untrained_pad.update_from_strokes([[[1, 2, 3]]])


def test_explanation_is_a_map_over_the_input(untrained_pad):
    untrained_pad.update_from_strokes(SQUARE)
    heat = saliency_map(untrained_pad.model, untrained_pad.image)
    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert 0 <= heat.min() and heat.max() == pytest.approx(1.0)
    untrained_pad.explain = True
    assert len(untrained_pad._heat) == 28 * 28
    assert not saliency_map(untrained_pad.model, np.zeros((28, 28), np.uint8)).any()


def test_a_predictor_alone_has_no_explanation(untrained_pad):
    pad = SketchPad(untrained_pad.predictor)
    assert pad.model is None and pad.explanation() is None and not pad._can_explain


def test_rejects_what_is_not_a_model():
    with pytest.raises(InputError, match="expected a checkpoint path"):
        SketchPad(42)


def test_time_update_reports_milliseconds(untrained_pad):
    timing = time_update(untrained_pad.predictor, SQUARE, repeats=3)
    assert timing.repeats == 3 and timing.median_ms > 0 and "ms" in timing.describe()


def test_display_text_is_stable(untrained_pad):
    bundle = untrained_pad._repr_mimebundle_()
    assert bundle["text/plain"].startswith("SketchPad: draw in the square")
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_checkpoint_search_order_and_quick_training(tmp_path, shapes_dir, monkeypatch, capsys):
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    monkeypatch.setattr(locations, "PRETRAINED_PATH", tmp_path / "no-pretrained.pt")  # nothing shipped either
    monkeypatch.delenv(locations.ENV_CHECKPOINT, raising=False)
    monkeypatch.setenv("QUICKSKETCH_DATA", str(shapes_dir))
    assert find_checkpoint() == (None, "no checkpoint found")
    path = checkpoint_for_drawing(epochs=1, max_batches=1)  # nothing found: trains a short one
    assert path == tmp_path / "models" / "sketchpad.pt" and "just trained" in capsys.readouterr().out
    assert SketchPad(path).classes == ["box", "cross", "ring"]
    assert find_checkpoint()[0] == path  # found next time
    monkeypatch.setenv(locations.ENV_CHECKPOINT, str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="does not exist"):
        find_checkpoint()


# ----------------------------------------------------------------------- real drawings
def test_recorded_strokes_match_the_rasteriser(strokes_dir, untrained_pad):
    for name in ("cat", "clock"):
        for drawing in recorded_drawings(name, limit=3):
            untrained_pad.update_from_strokes(drawing)
            np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(drawing))


def test_trained_model_names_recorded_drawings(small_checkpoint, strokes_dir):
    pad = SketchPad(small_checkpoint, backend="torch")
    predictor = Predictor.from_checkpoint(small_checkpoint, backend="torch")
    for name in WELL_LEARNED:
        drawings = recorded_drawings(name)
        top1 = []
        for drawing in drawings:
            predictions = pad.update_from_strokes(drawing)
            assert predictions == predict_strokes(predictor, drawing)[1]
            assert pad.headline.startswith(predictions[0][0])
            top1.append(predictions[0][0])
        hits = top1.count(name) / len(drawings)
        assert hits >= 0.6, f"{name}: top-1 right for {hits:.0%} of {len(drawings)} drawings: {top1}"
