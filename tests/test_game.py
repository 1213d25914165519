"""quicksketch_lib/game.py: prompts, words, the round state machine (an injected clock, no
sleeping), the measured threshold, how early a drawing is known, and why a round was lost.

Most tests use a scripted Predictor (the probabilities of each call are given), so they
check the game's rules, not a model's skill; the last ones play real stroke drawings with
the shipped model and skip without ../shared/data.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quicksketch_lib import game
from quicksketch_lib.checkpoint import Checkpoint, load_checkpoint
from quicksketch_lib.errors import InputError
from quicksketch_lib.game import GameConfig, GameSession, guess_phrase, spoken
from quicksketch_lib.inference import Predictor
from quicksketch_lib.model import ModelConfig, SketchCNN

CLASSES = ["camel", "banana", "boomerang"]
LINE = [[[10, 60, 110], [50, 50, 50]]]  # a drawing: one horizontal stroke
TRIANGLE = [[[0, 100, 50, 0], [100, 100, 0, 100]]]


def scripted(*rows: list[float], classes=CLASSES) -> Predictor:
    """A Predictor that answers its n-th call with probabilities ``rows[n]`` (then the last)."""
    calls = {"n": 0}

    def logits(x: np.ndarray) -> np.ndarray:
        row = rows[min(calls["n"], len(rows) - 1)]
        calls["n"] += 1
        return np.log(np.tile(np.asarray(row, dtype=np.float64), (len(x), 1)))
    return Predictor(classes, logits, "scripted")


# --------------------------------------------------------------------------- prompts and words
def test_prompts_are_seeded_and_do_not_repeat_while_possible():
    classes = [f"c{i}" for i in range(10)]
    first = game.choose_prompts(classes, 6, seed=0)
    assert first == game.choose_prompts(classes, 6, seed=0)
    assert len(set(first)) == 6 and set(first) <= set(classes)
    assert game.choose_prompts(classes, 6, seed=1) != first
    twice = game.choose_prompts(classes[:3], 7, seed=0)
    assert sorted(twice[:3]) == sorted(twice[3:6]) == classes[:3]  # every class once before any repeats
    with pytest.raises(InputError):
        game.choose_prompts(classes, 0, seed=0)


def test_class_names_are_said_with_the_right_article():
    assert spoken("boomerang") == "a boomerang"
    assert spoken("airplane") == "an airplane"
    assert spoken("octopus") == "an octopus"
    assert spoken("hourglass") == "an hourglass"
    assert spoken("unicorn") == "a unicorn"
    assert spoken("scissors") == "scissors" and spoken("flip flops") == "flip flops"
    assert spoken("The Mona Lisa") == "the Mona Lisa"


def test_phrases_read_like_a_person_thinking_aloud():
    assert guess_phrase([], "camel", 0.3) == ""  # nothing drawn, nothing said
    top = [("boomerang", 0.7), ("banana", 0.2), ("camel", 0.1)]
    assert guess_phrase(top, "camel", 0.3) == "I see a boomerang"
    assert guess_phrase([("boomerang", 0.5), ("banana", 0.3)], "camel", 0.6) == "I see a boomerang, or a banana"
    assert guess_phrase([("banana", 0.6), ("boomerang", 0.2)], "camel", 0.3, before="boomerang") == "… or a banana"
    assert guess_phrase([("banana", 0.15), ("boomerang", 0.1)], "camel", 0.3) == "I'm not sure what that is"
    # the game does not wait for top-1: the target passing the threshold wins from second place
    assert guess_phrase([("banana", 0.55), ("camel", 0.4)], "camel", 0.3) == "Oh, I know, it's a camel!"
    assert guess_phrase(top, "camel", 0.3, done=True) == "Sorry, I couldn't guess it."


# --------------------------------------------------------------------------- the rounds
def test_a_round_is_won_when_the_target_passes_the_threshold_even_if_not_top1():
    predictor = scripted([0.1, 0.2, 0.7], [0.1, 0.6, 0.3], [0.35, 0.6, 0.05])
    s = GameSession(predictor, GameConfig(rounds=2, seconds=20, threshold=0.3, seed=0), classes=["camel"])
    assert s.threshold == 0.3 and s.prompts == ["camel", "camel"]
    assert s.start_round(now=100.0) == "camel" and s.prompt == "camel"
    blank = s.update([], now=100.5)
    assert blank.phrase == "" and not blank.said and blank.top3 == [] and not blank.won
    first = s.update(LINE, now=101.0)
    assert first.phrase == "I see a boomerang" and first.said and not first.won
    assert first.top3[0][0] == "boomerang" and first.p_target == pytest.approx(0.1)
    assert first.image.shape == (28, 28) and first.image.dtype == np.uint8 and first.image.any()
    second = s.update(LINE, now=102.0)
    assert second.phrase == "… or a banana" and second.result is None
    won = s.update(TRIANGLE, now=103.5)
    assert won.won and won.phrase == "Oh, I know, it's a camel!" and won.top3[0][0] == "banana"
    r = won.result
    assert r is s.results[0] and r.won and r.reason == "recognised" and r.seconds == pytest.approx(3.5)
    assert [p for _, p in r.guesses] == ["I see a boomerang", "… or a banana", "Oh, I know, it's a camel!"]
    assert [t for t, _ in r.guesses] == [1.0, 2.0, 3.5]
    assert r.strokes == [[[0.0, 100.0, 50.0, 0.0], [100.0, 100.0, 0.0, 100.0]]]
    assert [c for c, _ in r.top3] == ["banana", "camel", "boomerang"]
    assert not s.in_round and s.prompt is None and not s.over
    with pytest.raises(InputError):
        s.update(LINE, now=104.0)  # between rounds


def test_the_same_phrase_is_not_said_twice():
    s = GameSession(scripted([0.1, 0.2, 0.7]), GameConfig(threshold=0.5), classes=["camel"])
    s.start_round(0.0)
    assert s.update(LINE, 0.2).said
    again = s.update(LINE, 0.4)
    assert again.phrase == "I see a boomerang" and not again.said
    assert s.skip(0.5).guesses == [(0.2, "I see a boomerang")]


def test_a_round_is_lost_when_the_time_runs_out():
    s = GameSession(scripted([0.1, 0.2, 0.7]), GameConfig(rounds=3, seconds=20, threshold=0.5), classes=["camel"])
    s.start_round(now=0.0)
    s.update(LINE, now=1.0)
    assert s.tick(now=19.9) is None and s.time_left(19.5) == pytest.approx(0.5)
    r = s.tick(now=20.0)
    assert not r.won and r.reason == "time" and r.seconds is None
    assert r.guesses[-1][1] == "Sorry, I couldn't guess it." and r.top3[0][0] == "boomerang"
    assert s.tick(now=25.0) is None  # nothing is being played
    s.start_round(now=30.0)
    late = s.update(LINE, now=50.5)  # the drawing came after the time: lost, not judged
    assert not late.won and late.result.reason == "time" and len(s.results) == 2


def test_a_blank_round_is_lost_at_time_out_with_nothing_guessed():
    s = GameSession(scripted([0.1, 0.2, 0.7]), GameConfig(seconds=5, threshold=0.5), classes=["camel"])
    s.start_round(0.0)
    s.update([], 1.0)
    r = s.tick(5.0)
    assert r.reason == "time" and r.top3 == [] and not r.image.any() and r.strokes == []


def test_skip_and_end():
    s = GameSession(scripted([0.1, 0.2, 0.7]), GameConfig(rounds=3, threshold=0.5), classes=["camel"])
    s.start_round(0.0)
    with pytest.raises(InputError):
        s.start_round(1.0)  # one round at a time
    skipped = s.skip(2.0)
    assert skipped.reason == "skipped" and not skipped.won and skipped.seconds is None
    with pytest.raises(InputError):
        s.skip(2.5)
    s.start_round(3.0)
    results = s.end(4.0)
    assert [r.reason for r in results] == ["skipped", "ended"] and s.over
    with pytest.raises(InputError):
        s.start_round(5.0)


def test_the_game_is_over_after_its_rounds():
    s = GameSession(scripted([0.9, 0.05, 0.05]), GameConfig(rounds=2, threshold=0.5), classes=["camel"])
    for t in (0.0, 10.0):
        s.start_round(t)
        assert s.update(LINE, t + 1).won
    assert s.over and [r.seconds for r in s.results] == [1.0, 1.0]


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(InputError):
        GameConfig(threshold=1.5)
    with pytest.raises(InputError):
        GameConfig(seconds=0)
    with pytest.raises(InputError, match="does not know 'zebra'"):
        GameSession(scripted([0.1, 0.2, 0.7]), GameConfig(threshold=0.5), classes=["zebra"])


@pytest.mark.parametrize("flip", [True, False])
def test_the_live_predictor_gives_the_checkpoints_probabilities(flip):
    ckpt = tiny_checkpoint()
    g = torch.Generator().manual_seed(1)
    for k, v in ckpt.model_state.items():  # BatchNorm statistics that are not the identity
        if k.endswith("running_mean") or k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) + (0.5 if k.endswith("var") else -0.5))
    ckpt.train_config = {"tta_flip": flip}
    drawings = np.random.default_rng(0).integers(0, 256, (3, 784)).astype(np.uint8)
    expected = Predictor.from_model(ckpt.build_model(), ckpt.classes, tta_flip=flip).predict_proba(drawings)
    live = game.live_predictor(ckpt)
    assert np.allclose(live.predict_proba(drawings), expected, atol=1e-5)
    assert np.allclose(live.predict_proba(drawings[:1]), expected[:1], atol=1e-5)


# --------------------------------------------------------------------------- the threshold
def brute_force_j(proba, labels, t):
    """Macro Youden's J at t, written out plainly (the test's own definition)."""
    js = []
    for c in range(proba.shape[1]):
        tpr = np.mean(proba[labels == c, c] >= t)
        fpr = np.mean(proba[labels != c, c] >= t)
        js.append(tpr - fpr)
    return np.mean(js)


def test_measured_threshold_maximises_the_macro_youden_j():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 2.0 * np.eye(4)[labels]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    report = game.measure_threshold(proba, labels)
    best = max(brute_force_j(proba, labels, t) for t in game.THRESHOLD_GRID)
    assert report.youden_j == pytest.approx(best)
    assert report.youden_j == pytest.approx(brute_force_j(proba, labels, report.threshold))
    assert report.tpr - report.fpr == pytest.approx(report.youden_j)
    assert report.drawings == 400 and report.classes == 4 and "Youden" in report.criterion
    assert len(report.curve["threshold"]) == len(report.curve["youden_j"]) == len(game.THRESHOLD_GRID)


def test_cleanly_separated_classes_get_a_threshold_between_them():
    labels = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.2], [0.7, 0.3], [0.35, 0.65], [0.25, 0.75]])
    report = game.measure_threshold(proba, labels)
    assert 0.35 < report.threshold <= 0.65 and report.youden_j == 1.0 and report.fpr == 0.0


def tiny_checkpoint(classes=CLASSES, metrics=None, data=None) -> Checkpoint:
    torch.manual_seed(0)
    model = SketchCNN(ModelConfig(num_classes=len(classes), channels=(8, 16, 16), hidden=32))
    return Checkpoint(model_state=model.state_dict(), model_config=model.config, classes=list(classes),
                      metrics=metrics or {}, data=data or {})


def test_the_threshold_recorded_in_a_checkpoint_is_the_games(tmp_path):
    ckpt = tiny_checkpoint()
    game.record_threshold(ckpt, game.ThresholdReport(0.42, 0.9, 0.95, 0.05))
    from quicksketch_lib.checkpoint import save_checkpoint
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    assert game.model_threshold(path) == 0.42
    assert GameSession(path).threshold == 0.42
    assert GameSession(path, GameConfig(threshold=0.6)).threshold == 0.6  # the config wins
    assert game.model_threshold(tiny_checkpoint()) == game.DEFAULT_THRESHOLD  # nothing recorded
    assert game.model_threshold(scripted([0.1, 0.2, 0.7])) == game.DEFAULT_THRESHOLD


def test_shipped_models_without_a_record_use_their_measured_figure():
    ckpt = load_checkpoint("pretrained")
    expected = ckpt.metrics.get(game.THRESHOLD_KEY, game.MEASURED_THRESHOLDS.get("pretrained"))
    assert expected is not None, "the ten-class model's threshold is neither recorded nor measured"
    assert game.model_threshold("pretrained") == expected


# --------------------------------------------------------------------------- how early it knows
def test_prefixes_grow_by_ink_with_every_stroke_end():
    strokes = [[[0, 100], [0, 0]], [[0, 0], [0, 100]]]  # two strokes of 100 units each
    prefixes = game.drawing_prefixes(strokes, step=0.25)
    assert [round(s, 3) for s, _ in prefixes] == [0.25, 0.5, 0.75, 1.0]
    assert prefixes[0][1] == [[[0.0, 50.0], [0.0, 0.0]]]  # the first stroke cut half-way
    assert prefixes[1][1] == [[[0.0, 100.0], [0.0, 0.0]]]  # the first stroke's end
    assert prefixes[-1][1] == [[[0.0, 100.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 100.0]]]


def test_prefixes_by_time_follow_the_timestamps():
    stroke = [[0, 10, 20, 30, 40], [0, 0, 0, 0, 0], [0, 100, 200, 300, 400]]  # 40 units in 0.4 s
    prefixes = game.drawing_prefixes([stroke], step=0.2, by="time")
    assert [round(s, 3) for s, _ in prefixes] == [0.5, 1.0]
    assert prefixes[0][1] == [[[0.0, 10.0, 20.0], [0.0, 0.0, 0.0]]]
    second = [[50, 60], [0, 0], [1000, 1100]]  # after a pause of 0.6 s
    assert [(round(t, 3), len(p)) for t, p in game.timed_prefixes([stroke, second], every=0.2)] == \
        [(0.2, 1), (0.4, 1), (1.1, 2)]
    with pytest.raises(InputError, match="no timestamps"):
        game.timed_prefixes(LINE)


def ink_predictor() -> Predictor:
    """'camel' grows more likely with every pixel of ink (a stand-in for a model)."""
    def logits(x: np.ndarray) -> np.ndarray:
        ink = (x.reshape(len(x), -1) > 0).sum(1) / 40.0
        return np.stack([ink, np.ones(len(x)), np.zeros(len(x))], axis=1)
    return Predictor(CLASSES, logits, "ink")


def test_recognition_point_is_the_first_share_of_ink_past_the_threshold():
    strokes = [[[0, 200], [0, 0]], [[200, 200], [0, 200]], [[200, 0], [200, 200]]]
    shares, proba, ends = game.recognition_curve(ink_predictor(), strokes, step=0.1)
    assert shares[-1] == pytest.approx(1.0) and np.all(np.diff(shares) > 0)
    assert np.allclose(shares[ends], [1 / 3, 2 / 3, 1])  # three strokes of equal length
    p = proba[:, 0]
    t = float((p.min() + p.max()) / 2)
    point = game.recognition_point(ink_predictor(), strokes, "camel", t, step=0.1)
    assert 0 < point < 1 and point == shares[np.argmax(p >= t)]
    assert game.recognition_point(ink_predictor(), strokes, "camel", 0.999, step=0.1) is None


# --------------------------------------------------------------------------- why a round was lost
def test_nearest_drawings_finds_the_same_drawing_first():
    ckpt = tiny_checkpoint()
    rng = np.random.default_rng(0)
    camels = rng.integers(0, 256, (5, 784)).astype(np.uint8)
    replay = {"camel": camels, "banana": rng.integers(0, 256, (4, 784)).astype(np.uint8)}
    model = ckpt.build_model()
    near, sim = game.nearest_drawings(model, replay, camels[3].reshape(28, 28), "camel", k=2)
    assert near.shape == (2, 28, 28) and np.array_equal(near[0], camels[3].reshape(28, 28))
    assert sim[0] == pytest.approx(1.0, abs=1e-5) and sim[0] >= sim[1]
    with pytest.raises(InputError):
        game.nearest_drawings(model, replay, camels[0], "boomerang")


def test_why_lost_sets_the_guess_beside_the_prompt():
    ckpt = tiny_checkpoint(data={"replay": {"drawings": {c: torch.full((3, 784), 9 * i, dtype=torch.uint8)
                                                         for i, c in enumerate(CLASSES)}},
                                 "taught": []})
    replay = game.replay_drawings(ckpt)
    assert set(replay) == set(CLASSES) and replay["banana"].shape == (3, 784)
    image = np.zeros((28, 28), np.uint8)
    image[10:18, 5:20] = 255
    lost = game.RoundResult("camel", False, "time", None, [("camel", 0.5), ("banana", 0.3)], image, [], [])
    why = game.why_lost(ckpt.build_model(), replay, lost, k=2)
    assert why["guessed"] == "banana" and why["guessed_nearest"].shape == why["prompt_nearest"].shape == (2, 28, 28)
    won = game.RoundResult("camel", True, "recognised", 2.0, [("camel", 0.9)], image, [], [])
    assert game.why_lost(ckpt.build_model(), replay, won) is None


# --------------------------------------------------------------------------- real drawings
def test_real_drawings_are_recognised_before_they_are_finished(strokes_dir):
    """The shipped ten-class model, its threshold, real raw strokes of 'cat': most are known
    before the last of their ink (how much earlier is scripts/how_early.py's measurement)."""
    from quicksketch_lib.rasterize import read_ndjson

    predictor = Predictor.from_checkpoint("pretrained", backend="torch")
    threshold = game.model_threshold("pretrained")
    points = [game.recognition_point(predictor, r["drawing"], "cat", threshold)
              for r in read_ndjson(strokes_dir / "cat.ndjson")]
    known = [p for p in points if p is not None]
    assert len(known) >= len(points) // 2 and min(known) < 1.0


def test_real_drawings_win_rounds_replayed_at_five_updates_a_second(strokes_dir):
    """Rounds played with real 'house' strokes, guessing every 0.2 s of their drawing time."""
    from quicksketch_lib.rasterize import read_ndjson

    drawings = [r["drawing"] for r in read_ndjson(strokes_dir / "house.ndjson")]
    s = GameSession("pretrained", GameConfig(rounds=len(drawings), seed=0), classes=["house"])
    for i, drawing in enumerate(drawings):
        start = 100.0 * i
        s.start_round(start)
        for t, prefix in game.timed_prefixes(drawing, every=0.2):
            if s.update(prefix, now=start + t).won or not s.in_round:
                break
        if s.in_round:
            s.skip(start + 30.0)
    won = [r for r in s.results if r.won]
    assert len(won) >= len(drawings) // 2
    assert all(r.guesses[-1][1] == "Oh, I know, it's a house!" and 0 < r.seconds <= 20 for r in won)
