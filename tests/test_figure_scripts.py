"""The arithmetic of the scripts behind README figures: the top-3 ceiling of several checkpoints
(scripts/top3_ceiling.py) and the game referee's wrong wins (scripts/how_early.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from how_early import referee_row, wrong_wins  # noqa: E402
from top3_ceiling import by_size, ensembles, in_top  # noqa: E402
from top3_ceiling import main as top3_ceiling  # noqa: E402


def test_in_top_counts_the_label_among_the_k_most_probable():
    proba = np.array([[0.5, 0.3, 0.2, 0.0],
                      [0.1, 0.2, 0.3, 0.4]])
    labels = np.array([2, 0])
    assert in_top(proba, labels, 1).tolist() == [False, False]
    assert in_top(proba, labels, 3).tolist() == [True, False]  # class 0 is 4th in row 1
    assert in_top(proba, labels, 4).tolist() == [True, True]


def test_an_ensemble_averages_probabilities_and_by_size_keeps_the_best_subset():
    labels = np.array([0, 1])
    a = np.array([[0.9, 0.1], [0.8, 0.2]])  # right on drawing 0 only
    b = np.array([[0.4, 0.6], [0.0, 1.0]])  # right on drawing 1 only
    c = np.array([[0.6, 0.4], [0.3, 0.7]])  # right on both
    rows = ensembles({"a": a, "b": b, "c": c}, labels)
    assert [r["models"] for r in rows] == [["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "c"]]
    ab = rows[0]  # mean: [0.65, 0.35], [0.4, 0.6]: both right
    assert ab["top1"] == 1.0
    sizes = by_size(rows)
    assert sizes["2"]["subsets"] == 3 and sizes["3"]["subsets"] == 1
    assert sizes["3"]["best"]["models"] == ["a", "b", "c"]


def test_the_top3_ceiling_of_two_copies_of_one_model_is_that_model(shapes_checkpoint, tmp_path):
    out = tmp_path / "ceiling.json"
    record = top3_ceiling([str(shapes_checkpoint), str(shapes_checkpoint),
                           "--data", str(shapes_checkpoint.parent / "shapes"), "--json", str(out)])
    single = record["single"]["shapes"]
    assert record["drawings"] > 0 and 0.8 <= single["top1"] <= 1.0
    both = record["ensembles_by_size"]["2"]["best"]
    assert (both["top1"], both["top3"]) == (single["top1"], single["top3"])
    assert record["oracle_top3"] == record["every_model_top3"] == single["top3"] == 1.0  # 3 classes: always in the top 3
    assert record["missed_by_all"]["drawings"] == 0
    assert json.loads(out.read_text()) == record


def test_the_top3_ceiling_needs_two_checkpoints(shapes_checkpoint):
    with pytest.raises(SystemExit):
        top3_ceiling([str(shapes_checkpoint), "--data", str(shapes_checkpoint.parent / "shapes")])


def test_wrong_wins_counts_other_classes_passing_the_threshold_during_and_at_the_end():
    # one drawing each of classes a and b in a 3-class model (a, b, c); NaN: the drawing's own class
    nan = float("nan")
    points = {"a": {"others_peak": [np.array([nan, 0.5, 0.01])], "others_finished": [np.array([nan, 0.02, 0.0])]},
              "b": {"others_peak": [np.array([0.04, nan, 0.2])], "others_finished": [np.array([0.04, nan, 0.01])]}}
    at = wrong_wins(points, 0.03, ["a", "b", "c"], most=2)
    assert at["during"] == 0.75  # 0.5, 0.04 and 0.2 of the four pairs
    assert at["finished"] == 0.25  # only 0.04
    assert at["drawings_winning_another_round"] == 1.0
    assert at["easiest_prompts"] == {"a": 1.0, "b": 1.0}  # c: one of its two others' drawings
    strict = wrong_wins(points, 0.3, ["a", "b", "c"])
    assert (strict["during"], strict["finished"], strict["drawings_winning_another_round"]) == (0.25, 0.0, 0.5)
    assert strict["easiest_prompts"] == {"b": 1.0, "a": 0.0, "c": 0.0}


def test_live_j_is_drawings_winning_their_own_round_minus_other_rounds_won():
    row = referee_row({"drawings": 10, "median_share": 0.35, "never": 0.1}, {"during": 0.2, "finished": 0.01})
    assert row["live_j"] == 0.7 and row["median_share"] == 0.35 and row["wrong_wins"]["during"] == 0.2
