"""The SketchPad's Python side, without a browser: strokes in, 28x28 and top-5 out."""

from __future__ import annotations

import asyncio
import re
import shutil

import numpy as np
import pytest

from conftest import STROKES, THE_TEN, make_shapes
from quicksketch_lib.locations import PRETRAINED, PRETRAINED_PATH
from quicksketch_lib.doodles import draw_doodle
from quicksketch_lib.errors import CheckpointError, InputError, QuickSketchError
from quicksketch_lib.game import DEFAULT_THRESHOLD, choose_prompts, model_threshold, spoken
from quicksketch_lib.inference import Predictor
from quicksketch_lib.model import ModelConfig, SketchCNN
from quicksketch_lib.rasterize import rasterize_strokes, read_ndjson
from quicksketch_lib.teach import TeachConfig
from quicksketch_lib import locations
from quicksketch_lib.widgets import (BLANK_TEXT, Game, SketchPad, checkpoint_for_drawing, default_save_path,
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


# ----------------------------------------------------------------------- the game
def untrained_game(**options) -> Game:
    """A Game on an untrained 3-class model (probabilities near 1/3 each): the plumbing."""
    model = SketchCNN(ModelConfig(num_classes=3, channels=(8, 16, 32), hidden=32))
    return Game((model, ["box", "cross", "ring"]), **options)


def message(game: Game, kind: str, **content) -> None:
    """A message as game.js sends it."""
    game._on_message(game, {"kind": kind, **content}, [])


def test_a_game_shows_its_first_card_and_its_threshold():
    game = untrained_game(rounds=4, seconds=10, seed=3)
    assert game.threshold == DEFAULT_THRESHOLD == game._threshold  # a model with no measured threshold
    assert game.prompts == choose_prompts(["box", "cross", "ring"], 4, seed=3)
    assert (game._phase, game._round, game._rounds, game._prompt) == ("ready", 1, 4, game.prompts[0])
    assert untrained_game(threshold=0.9).threshold == 0.9
    assert Game(PRETRAINED).threshold == model_threshold(PRETRAINED)  # the shipped model's own
    assert repr(game) and game._repr_mimebundle_()["text/plain"] == (
        "Game: 4 rounds of 10 s against a model; press Go! (or space) to start")


def test_a_round_is_won_when_the_prompt_passes_the_threshold_then_the_next_card():
    game = untrained_game(rounds=2, threshold=0.01)  # any drawing passes
    prompt = game.start(now=10.0)
    assert game._phase == "drawing" and game._remaining == 20.0
    update = game.draw(CROSS, now=12.5)
    assert update.won and update.phrase == f"Oh, I know, it's {spoken(prompt)}!"
    assert game._phrase == update.phrase and len(game._guesses) == 3 and game._updates == 1
    assert game._last == {"prompt": prompt, "won": True, "reason": "recognised", "seconds": 2.5,
                          "outcome": f"✓ {prompt}: recognised in 2.5 s"}
    assert (game._phase, game._round, game._prompt) == ("ready", 2, game.prompts[1])


def test_rounds_are_lost_at_time_out_and_by_skipping_then_the_summary():
    game = untrained_game(rounds=3, seconds=5, threshold=1.0)  # nothing passes
    game.start(now=0.0)
    assert game.draw(SQUARE, now=1.0).won is False and game._phase == "drawing"
    assert game.tick(now=4.9) is None and game._phase == "drawing"
    lost = game.tick(now=5.0)
    assert lost.reason == "time" and not lost.won and game._last["outcome"].endswith("not recognised: time's up")
    game.start(now=10.0)
    game.draw(CROSS, now=15.5)  # a drawing after the time is up ends the round, lost
    assert game.results[-1].reason == "time" and game._round == 3
    game.start(now=20.0)
    assert game.skip(now=21.0).reason == "skipped"
    assert game._phase == "over" and len(game.summary) == 3
    assert [s.outcome for s in game.summary] == ["not recognised: time's up"] * 2 + ["skipped"]


def test_the_summary_explains_each_round_to_the_page():
    game = untrained_game(rounds=2, threshold=1.0)
    game.start(now=0.0)
    game.draw(CROSS, now=1.0)
    game.skip(now=2.0)
    game.start(now=3.0)
    summary = game.end(now=4.0)  # a blank round, ended
    assert game._phase == "over" and [s.result.reason for s in summary] == ["skipped", "ended"]
    drawn, blank = summary
    np.testing.assert_array_equal(drawn.result.image, rasterize_strokes(CROSS))
    assert drawn.heat.shape == (28, 28) and drawn.heat.max() == pytest.approx(1.0)
    assert not blank.heat.any() and blank.result.top3 == []
    cards, pictures = game._summary, game._pictures
    assert len(pictures) % 784 == 0 and [c["prompt"] for c in cards] == game.prompts[:2]
    assert cards[0]["top3"] == [[c, round(p, 4)] for c, p in drawn.result.top3]
    assert cards[0]["strokes"] == drawn.result.strokes and cards[0]["outcome"] == "skipped"
    first = np.frombuffer(pictures, np.uint8).reshape(-1, 28, 28)
    np.testing.assert_array_equal(first[cards[0]["input"]], drawn.result.image)
    np.testing.assert_array_equal(first[cards[0]["heat"]], np.round(drawn.heat * 255).astype(np.uint8))
    assert cards[0]["nearest"] == []  # an untrained pair carries no drawings to compare with
    p = game.predictor.predict_proba(drawn.result.image)[0, game.predictor.classes.index(drawn.result.prompt)]
    assert drawn.p_prompt == pytest.approx(p) and cards[0]["p_prompt"] == round(float(p), 4)
    assert blank.p_prompt == 0.0


def test_browser_messages_play_the_game():
    game = untrained_game(rounds=2, seconds=60, threshold=1.0)
    message(game, "skip")  # no round yet: nothing happens
    assert game.results == [] and game._phase == "ready"
    message(game, "start")
    assert game._phase == "drawing"
    message(game, "draw", strokes=SQUARE, seq=1, final=False)
    message(game, "draw", strokes=SQUARE + CROSS, seq=2, final=True)
    assert game._ack == 2 and game._updates == 2 and len(game._guesses) == 3
    message(game, "skip")
    message(game, "draw", strokes=SQUARE, seq=3, final=True)  # late: the round had ended
    assert game._ack == 3 and game._phase == "ready" and game.results[0].reason == "skipped"
    assert game.results[0].strokes == SQUARE + CROSS
    message(game, "end")
    assert game._phase == "over" and len(game._summary) == 1
    message(game, "again")  # a new game: the next seed's prompts
    assert game._phase == "ready" and game.results == [] and game._summary == []
    assert game.prompts == choose_prompts(["box", "cross", "ring"], 2, seed=1)
    message(game, "draw", strokes=[[[1, 2]]], seq=4, final=True)  # no round: ignored, acknowledged
    assert game._error == "" and game._ack == 4
    message(game, "start")
    message(game, "draw", strokes=[[[1, 2]]], seq=5, final=True)  # a broken stroke
    assert game._error.startswith("error: stroke 0 has 1 coordinate lists")
    assert game.output.outputs[-1]["text"] == game._error + "\n"


def test_the_kernel_times_a_round_out_with_no_event_from_the_browser():
    """Started from the page inside a kernel (an asyncio loop), a round left blank ends at its
    time-out by the kernel's own timer; outside a loop nothing is scheduled (ticks decide)."""
    game = untrained_game(rounds=2, seconds=0.2)

    async def play():
        message(game, "start")
        await asyncio.sleep(0.5)

    asyncio.run(play())
    assert [r.reason for r in game.results] == ["time"] and game._phase == "ready" and game._round == 2
    message(game, "start")  # no event loop here
    assert game._timer is None


def test_a_taught_checkpoint_prompts_its_class_and_explains_lost_rounds():
    pad = SketchPad(PRETRAINED, teach_mode=True, backend="torch")
    pad.class_name = "star"
    for strokes in doodles("star", 10):
        pad.add_example(strokes)
    taught = pad.teach()
    game = Game(taught, rounds=11, threshold=1.0)  # every class once; nothing is ever won
    assert "star" in game.prompts and sorted(game.prompts) == sorted(taught.classes)
    assert game.threshold == 1.0 and "star" in game.replay
    while game.prompts[len(game.results)] != "star":
        game.start(now=0.0)
        game.skip(now=1.0)
    game.start(now=0.0)
    game.draw(doodles("star", 1, seed=5)[0], now=1.0)
    summary = game.end(now=2.0)[-1]
    assert summary.result.prompt == "star" and summary.why is not None
    assert summary.why["prompt_nearest"].shape == (3, 28, 28) and summary.why["guessed"] != "star"
    card = game._summary[-1]
    assert [n["class"] for n in card["nearest"]] == [summary.why["guessed"], "star"]
    assert all(len(n["pictures"]) == 3 for n in card["nearest"])


def test_a_real_game_replayed_from_recorded_drawings(strokes_dir):
    """The shipped model plays six rounds with recorded players' drawings, each update at the
    time its player drew that stroke: most rounds are won, each within its time."""
    game = Game(PRETRAINED, rounds=6, seed=0)
    for k, prompt in enumerate(game.prompts):
        start = 100.0 * k
        game.start(now=start)
        drawing = recorded_drawings(prompt, limit=1)[0]
        for i, stroke in enumerate(drawing):
            if game.draw(drawing[:i + 1], now=start + stroke[2][-1] / 1000).result:
                break
        else:
            game.tick(now=start + game.config.seconds)
    won = [r for r in game.results if r.won]
    assert len(won) >= 4, [(r.prompt, r.reason) for r in game.results]
    assert all(0 < r.seconds <= 20 for r in won) and game._phase == "over"
    assert all(len(c["top3"]) == 3 for c in game._summary)
