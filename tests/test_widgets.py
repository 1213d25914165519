"""The SketchPad's Python side, without a browser: strokes in, 28x28 and top-5 out."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from conftest import STROKES, THE_TEN, make_shapes
from quicksketch_lib.locations import PRETRAINED, PRETRAINED_PATH
from quicksketch_lib.doodles import draw_doodle
from quicksketch_lib.errors import CheckpointError, InputError, QuickSketchError
from quicksketch_lib.inference import Predictor
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.rasterize import rasterize_strokes, read_ndjson
from quicksketch_lib.teach import TeachConfig
from quicksketch_lib import locations
from quicksketch_lib.widgets import (BLANK_TEXT, SketchPad, checkpoint_for_drawing, default_save_path,
                                     drawing_checkpoint, find_checkpoint, predict_strokes, saliency_map,
                                     time_update)


def recorded_drawings(name: str, limit: int | None = None) -> list[list]:
    """Real raw strokes of class ``name`` from ../shared/data/strokes."""
    return [r["drawing"] for r in read_ndjson(STROKES / f"{name}.ndjson", limit)]


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
    assert untrained_pad._error.startswith("error: stroke 0 has 1 coordinate lists")
    assert untrained_pad.output.outputs[-1]["text"] == untrained_pad._error + "\n"
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


def test_checkpoint_search_order_ends_with_the_pretrained_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    monkeypatch.delenv(locations.ENV_CHECKPOINT, raising=False)
    assert drawing_checkpoint()[0] == PRETRAINED_PATH  # nothing trained here: the shipped model, no training
    assert checkpoint_for_drawing() == PRETRAINED_PATH and "Drawing with " in capsys.readouterr().out
    pad = SketchPad()
    assert pad.classes == list(THE_TEN) and pad._model_info.startswith("pretrained (the shipped pretrained")
    (tmp_path / "models").mkdir()
    demo = tmp_path / "models" / "demo.pt"
    shutil.copy(PRETRAINED_PATH, demo)
    assert find_checkpoint() == (demo, "written by `make demo`")
    assert SketchPad()._model_info.startswith(f"{demo} (written by `make demo`) · 10 classes")
    monkeypatch.setattr(locations, "PRETRAINED_PATH", tmp_path / "no-pretrained.pt")
    demo.unlink()
    with pytest.raises(CheckpointError, match="shipped pretrained model is missing"):
        SketchPad()
    monkeypatch.setenv(locations.ENV_CHECKPOINT, str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="does not exist"):
        find_checkpoint()


# ----------------------------------------------------------------------- teach mode
def doodles(name: str, count: int, seed: int = 0) -> list[list]:
    """``count`` synthetic doodles of ``name`` as strokes (the shapes of quicksketch_lib.doodles)."""
    rng = np.random.default_rng(seed)
    return [draw_doodle(name, rng) for _ in range(count)]


def send(pad: SketchPad, kind: str, **content) -> None:
    """A message as the browser sends it when a teach-mode button is pressed."""
    pad._on_message(pad, {"kind": kind, **content}, [])


@pytest.fixture
def teach_pad() -> SketchPad:
    """The shipped pretrained model of the ten, in teach mode (no data needed)."""
    return SketchPad(PRETRAINED, teach_mode=True, backend="torch")


def add_drawn_examples(pad: SketchPad, drawings) -> None:
    for strokes in drawings:
        pad.strokes = strokes  # pointer-up sends the strokes ...
        send(pad, "add_example")  # ... then the button press


def test_examples_are_the_rasterised_drawings_and_undo_removes_the_last(teach_pad):
    stars = doodles("star", 3)
    add_drawn_examples(teach_pad, stars)
    assert teach_pad._error == "" and len(teach_pad.examples) == 3
    np.testing.assert_array_equal(teach_pad.examples[1], rasterize_strokes(stars[1]))
    assert teach_pad._examples == np.stack(teach_pad.examples).tobytes()  # what the thumbnails show
    assert teach_pad.strokes == [] and teach_pad.headline == BLANK_TEXT  # canvas ready for the next
    send(teach_pad, "undo_example")
    assert len(teach_pad.examples) == 2 and len(teach_pad._examples) == 2 * 784
    np.testing.assert_array_equal(teach_pad.examples[-1], rasterize_strokes(stars[1]))


def test_teach_forget_and_save_a_class(teach_pad, tmp_path):
    teach_pad.class_name = "star"  # typed in the name box
    add_drawn_examples(teach_pad, doodles("star", 10))
    send(teach_pad, "teach")
    assert teach_pad._error == "", teach_pad._error
    assert teach_pad.classes == list(THE_TEN) + ["star"] and teach_pad.taught == ["star"]
    assert teach_pad.examples == [] and teach_pad._busy == ""
    assert teach_pad._examples_of == "star" and len(teach_pad._examples) == 10 * 784  # taught from these
    assert teach_pad._status.startswith("taught 'star' from 10 drawings in ")
    assert "taught: star" in teach_pad._model_info
    unseen = doodles("star", 5, seed=1)
    top5 = [[c for c, _ in teach_pad.update_from_strokes(d)] for d in unseen]
    assert sum("star" in t for t in top5) >= 4, top5  # the live top-5 knows the new class
    assert [c for c, _ in teach_pad._predictions] == top5[-1]  # and so does the page

    path = teach_pad.save(tmp_path / "taught.pt")
    assert teach_pad._status == f"saved {path}"
    reloaded = SketchPad(path, backend="torch")
    assert reloaded.classes == teach_pad.classes and reloaded.taught == ["star"]
    again, before = reloaded.update_from_strokes(unseen[0]), teach_pad.update_from_strokes(unseen[0])
    assert [c for c, _ in again] == [c for c, _ in before]
    np.testing.assert_allclose([p for _, p in again], [p for _, p in before], atol=1e-6)

    send(teach_pad, "forget")  # the name box still says "star"
    assert teach_pad._error == "" and teach_pad.classes == list(THE_TEN) and teach_pad.taught == []
    assert teach_pad._status == "forgot 'star': the model knows 10 classes"
    assert teach_pad._examples == b"" and teach_pad._examples_of == ""
    assert "star" not in [c for c, _ in teach_pad.update_from_strokes(unseen[0])]


def test_save_defaults_to_models_and_never_writes_into_the_package(teach_pad, tmp_path, monkeypatch):
    monkeypatch.setattr(locations, "project_root", lambda: tmp_path)
    assert default_save_path("sketchcnn", ["smiley face", "star"]) == tmp_path / "models" / "sketchcnn+smiley_face+star.pt"
    send(teach_pad, "save")
    assert (tmp_path / "models" / "sketchcnn_ten+copy.pt").is_file() and teach_pad._error == ""
    with pytest.raises(InputError, match="inside the installed package"):
        teach_pad.save(PRETRAINED_PATH.parent / "mine.pt")


@pytest.mark.parametrize("name, examples, expected", [
    ("star", 2, "too few|at least"),
    ("cat", 10, "already"),
    ("", 10, "type the name"),
])
def test_teaching_errors_show_in_the_pad(teach_pad, name, examples, expected):
    teach_pad.class_name = name
    add_drawn_examples(teach_pad, doodles("star", examples))
    send(teach_pad, "teach")
    assert re.search(expected, teach_pad._error) and teach_pad._error.startswith("error: "), teach_pad._error
    assert "\n" not in teach_pad._error  # one line, no traceback
    assert teach_pad.output.outputs[-1]["text"] == teach_pad._error + "\n"
    assert teach_pad.classes == list(THE_TEN) and len(teach_pad.examples) == examples  # nothing lost


def test_blank_examples_and_missing_ones_show_errors(teach_pad):
    send(teach_pad, "add_example")  # nothing drawn yet
    assert teach_pad._error.startswith("error: the canvas is blank") and teach_pad.examples == []
    send(teach_pad, "undo_example")
    assert teach_pad._error == "error: there is no example to remove"
    send(teach_pad, "forget")
    assert teach_pad._error.startswith("error: ")
    with pytest.raises(QuickSketchError, match="blank"):  # the library refuses blank drawings too
        teach_pad.examples = [np.zeros((28, 28), np.uint8)] * 10
        teach_pad.teach("nothing")


def test_a_model_without_stored_replay_is_taught_with_the_replay_given():
    model = SketchCNN(ModelConfig(num_classes=3, channels=(8, 16, 32), hidden=32))
    shapes = make_shapes(n_per_class=30)
    quick = TeachConfig(new_samples=20, steps=20)  # the plumbing, not the method's quality
    pad = SketchPad((model, list(shapes)), replay=shapes, teach_mode=True, teach_config=quick)
    pad.class_name = "star"
    add_drawn_examples(pad, doodles("star", 5))
    send(pad, "teach")
    assert pad._error == "" and pad.classes == ["box", "cross", "ring", "star"]
    plain = SketchPad((model, list(shapes)), teach_mode=True, teach_config=quick)  # nothing to replay: the pad says so
    plain.class_name = "star"
    add_drawn_examples(plain, doodles("star", 5))
    send(plain, "teach")
    assert plain._error.startswith("error: ") and "replay" in plain._error


def test_a_pad_without_a_checkpoint_cannot_teach(untrained_pad):
    pad = SketchPad(untrained_pad.predictor, teach_mode=True)
    assert not pad._can_teach
    pad.update_from_strokes(SQUARE)
    send(pad, "add_example")
    pad.class_name = "box2"
    send(pad, "teach")
    assert "cannot learn" in pad._error


# ----------------------------------------------------------------------- real drawings
def test_recorded_strokes_match_the_rasteriser(strokes_dir, untrained_pad):
    for name in ("cat", "clock"):
        for drawing in recorded_drawings(name, limit=3):
            untrained_pad.update_from_strokes(drawing)
            np.testing.assert_array_equal(untrained_pad.image, rasterize_strokes(drawing))


def test_pretrained_model_names_recorded_drawings(strokes_dir):
    """The shipped model names every class of the ten on real recorded strokes (measured:
    top-1 right for 83-100 % of each class's 8-15 drawings)."""
    pad = SketchPad(PRETRAINED, backend="torch")
    predictor = Predictor.from_checkpoint(PRETRAINED, backend="torch")
    for name in THE_TEN:
        drawings = recorded_drawings(name)
        top1 = []
        for drawing in drawings:
            predictions = pad.update_from_strokes(drawing)
            assert predictions == predict_strokes(predictor, drawing)[1]
            assert pad.headline.startswith(predictions[0][0])
            top1.append(predictions[0][0])
        hits = top1.count(name) / len(drawings)
        assert hits >= 0.75, f"{name}: top-1 right for {hits:.0%} of {len(drawings)} drawings: {top1}"
