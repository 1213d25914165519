"""Tests for quicksketch_lib/plots.py: every figure has a title, axis labels and class names."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from quicksketch_lib import plots  # noqa: E402
from quicksketch_lib.data import SketchData, format_statistics, pixel_statistics, walkthrough_classes  # noqa: E402
from quicksketch_lib.model import ModelConfig, SketchCNN  # noqa: E402

from conftest import make_shapes  # noqa: E402

CLASSES = ["box", "cross", "ring"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def shapes():
    arrays = make_shapes(n_per_class=20)
    images = np.concatenate([arrays[c] for c in CLASSES])
    labels = np.repeat(np.arange(3), 20)
    return images, labels


def _texts(fig) -> str:
    """Every piece of text in a figure: titles, labels, tick labels, annotations."""
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.texts]
    for attr in ("_supxlabel", "_supylabel"):
        if getattr(fig, attr, None) is not None:
            out.append(getattr(fig, attr).get_text())
    return "\n".join(out)


def _has_title(fig) -> bool:
    return bool((fig._suptitle and fig._suptitle.get_text()) or any(ax.get_title() for ax in fig.axes))


def test_class_balance_has_bars_labels_and_class_names():
    fig = plots.plot_class_balance([5, 7, 9], CLASSES)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [5, 7, 9]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert all(c in _texts(fig) for c in CLASSES)


def test_drawing_grid_one_row_per_class_and_seeded(shapes):
    images, labels = shapes
    fig = plots.plot_drawing_grid(images, labels, CLASSES, per_class=4, seed=1)
    assert len(fig.axes) == 3 * 4
    assert _has_title(fig) and all(c in _texts(fig) for c in CLASSES)
    again = plots.plot_drawing_grid(images, labels, CLASSES, per_class=4, seed=1)
    first = [ax.images[0].get_array().tolist() for ax in fig.axes]
    assert first == [ax.images[0].get_array().tolist() for ax in again.axes]
    row = fig.axes[4:8]  # the second row shows only "cross" drawings
    cross = {tuple(r) for r in images[labels == 1]}
    assert all(tuple(np.asarray(ax.images[0].get_array()).reshape(-1)) in cross for ax in row)


def test_mean_drawings_are_class_means(shapes):
    images, labels = shapes
    fig = plots.plot_mean_drawings(images, labels, CLASSES)
    shown = np.asarray(fig.axes[2].images[0].get_array())
    np.testing.assert_allclose(shown, images[labels == 2].reshape(-1, 28, 28).mean(0))
    assert _has_title(fig) and all(c in _texts(fig) for c in CLASSES)
    # ink on paper like every other drawing, on one scale with a colour bar
    panels = [ax.images[0] for ax in fig.axes[:3]]
    assert {im.get_cmap().name for im in panels} == {plots.INK}
    assert len({im.get_clim() for im in panels}) == 1 and "mean pixel value" in fig.axes[-1].get_ylabel()


def test_strokes_vs_bitmap_shows_raw_simplified_and_bitmap():
    strokes = [[[10, 60, 110, 160], [10, 80, 10, 80]], [[20, 150], [150, 150]]]
    fig = plots.plot_strokes_vs_bitmap(strokes, title="a zigzag")
    assert len(fig.axes) == 3
    assert fig.axes[2].images[0].get_array().shape == (28, 28)
    assert "raw strokes (2 strokes" in fig.axes[0].get_title()
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert fig.axes[0].yaxis_inverted()


def test_stroke_stages_one_panel_per_stage_and_the_bitmap():
    square = [np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], float)]
    fig = plots.plot_stroke_stages({"raw": square, "simplified": [square[0][::2]]}, np.zeros((28, 28), np.uint8))
    raw, simple, bitmap = fig.axes
    assert "5 points" in raw.get_title() and "3 points" in simple.get_title()
    assert raw.yaxis_inverted() and "28×28" in bitmap.get_title()
    assert len(plots.plot_stroke_stages({"raw": square}).axes) == 1


def test_first_layer_filters_one_panel_per_filter():
    torch.manual_seed(0)
    model = SketchCNN(ModelConfig(num_classes=3, channels=(8, 16, 16)))
    fig = plots.plot_first_layer_filters(model)
    assert sum(1 for ax in fig.axes if ax.images) == 8
    assert "8 filters" in fig._suptitle.get_text()
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(),
                               model.features[0][0].weight.detach()[0, 0].numpy(), rtol=1e-6)


def test_cross_correlation_shows_the_input_then_each_kernel_and_its_map():
    image = np.where(np.arange(28)[:, None] > 14, 1.0, -1.0) * np.ones((28, 28))
    kernel = np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], float)
    out = np.arange(28 * 28, dtype=float).reshape(28, 28)
    fig = plots.plot_cross_correlation(image, {"top edges": kernel}, {"top edges": out})
    assert len(fig.axes) == 3 and fig._suptitle.get_text()
    assert [t.get_text() for t in fig.axes[1].texts] == ["-1", "-1", "-1", "0", "0", "0", "1", "1", "1"]
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), out)
    assert "top edges" in fig.axes[2].get_title()


def test_feature_maps_one_row_per_stage_with_the_most_varied_channels():
    image = np.zeros(784, np.uint8)
    varied = np.zeros((4, 7, 7))
    varied[2, 3, 3] = 5.0  # the one channel with any spread
    fig = plots.plot_feature_maps(image, {"block 1": np.zeros((6, 28, 28)), "block 3": varied}, channels=3)
    assert len(fig.axes) == 2 * 4  # each row: the drawing + 3 channels
    assert "6×28×28" in fig.axes[0].get_ylabel() and "4×7×7" in fig.axes[4].get_ylabel()
    assert fig.axes[5].get_title() == "ch 2"  # the most varied channel comes first
    assert "3 channels" in fig._suptitle.get_text()


HISTORY = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "train_accuracy": 0.3 * e,
            "val_accuracy": 0.28 * e} for e in (1, 2, 3)]


def test_training_curves_plot_every_epoch():
    fig = plots.plot_training_curves(HISTORY, epochs=5)
    loss_ax, acc_ax = fig.axes
    assert [list(l.get_xdata()) for l in loss_ax.lines] == [[1, 2, 3], [1, 2, 3]]
    assert list(acc_ax.lines[1].get_ydata()) == [h["val_accuracy"] for h in HISTORY]
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() and acc_ax.get_ylabel()


def test_training_curves_mark_events_on_both_panels():
    fig = plots.plot_training_curves(HISTORY, title="Original", events={2.5: "lr halved"})
    for ax in fig.axes:
        assert [list(l.get_xdata()) for l in ax.lines[2:]] == [[2.5, 2.5]]
        assert [t.get_text() for t in ax.texts] == ["lr halved"]


def test_live_curves_callback_collects_records_outside_jupyter():
    live = plots.LiveCurves(epochs=3)
    for record in HISTORY:
        live(record)
    assert [h["epoch"] for h in live.history] == [1, 2, 3]
    assert len(live.figure.axes[1].lines[1].get_xdata()) == 3
    assert "84.0%" in live.figure._suptitle.get_text()


def test_lr_schedule_plot_has_a_line_per_schedule():
    fig = plots.plot_lr_schedule({"original": [1e-3] * 10 + [5e-4] * 10, "flat": [1e-3] * 20}, steps_per_epoch=10)
    ax = fig.axes[0]
    assert [l.get_label() for l in ax.lines] == ["original", "flat"]
    assert ax.lines[0].get_xdata()[10] == pytest.approx(1.0)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "learning rate" and ax.get_title()


def test_lr_range_test_plots_raw_and_smoothed_loss_against_log_lr_with_marks():
    records = [{"lr": 1e-5 * 10 ** (i / 4), "loss": 2.3 - 0.1 * i, "smoothed_loss": 2.3 - 0.05 * i} for i in range(9)]
    fig = plots.plot_lr_range_test(records, marks={"peak": 1e-3})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [r["loss"] for r in records])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [r["smoothed_loss"] for r in records])
    assert ax.lines[2].get_label() == "peak" and list(ax.lines[2].get_xdata()) == [1e-3, 1e-3]


def test_drawing_rows_one_labelled_row_per_entry_uint8_or_normalised(shapes):
    images, _ = shapes
    normalised = images[:4].astype(np.float32) / 127.5 - 1
    fig = plots.plot_drawing_rows({"original": images[:4], "as the model sees it": normalised}, title="t")
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in rows] == ["original", "as the model sees it"]
    first, second = (ax.images[0].get_array() for ax in rows)
    np.testing.assert_allclose(first, images[0].reshape(28, 28))
    np.testing.assert_allclose(second, images[0].reshape(28, 28), atol=1e-3)  # mapped back to 0-255


def test_run_comparison_plots_each_run_against_epochs_and_drawings_seen():
    short = [{"epoch": e, "images": 100, "val_accuracy": 0.8 + 0.05 * e} for e in (1, 2)]
    long = [{"epoch": e, "images": 50, "val_accuracy": 0.85} for e in (1, 2, 3)]
    fig = plots.plot_run_comparison({"short": short, "long": long})
    ax_epoch, ax_seen = fig.axes
    assert [line.get_label() for line in ax_epoch.lines] == ["short", "long"]
    np.testing.assert_allclose(ax_seen.lines[0].get_xdata(), [0.1, 0.2])  # thousands, cumulative
    np.testing.assert_allclose(ax_seen.lines[1].get_ydata(), [0.85] * 3)
    assert ax_epoch.get_xlabel() == "epoch" and "drawings trained on" in ax_seen.get_xlabel()


def test_examples_needed_plots_recall_and_the_old_classes_change_against_k():
    fig = plots.plot_examples_needed([1, 5, 10], [0.2, 0.7, 0.9], [0.0, -0.01, -0.02], "apple")
    ax_new, ax_old = fig.axes
    np.testing.assert_allclose(ax_new.lines[0].get_ydata(), [20, 70, 90])
    np.testing.assert_allclose(ax_old.lines[0].get_ydata(), [0, -1, -2])
    assert ax_new.get_xscale() == "log" and [t.get_text() for t in ax_new.get_xticklabels()] == ["1", "5", "10"]
    assert "apple" in ax_new.get_title() and ax_old.get_ylabel() and fig._suptitle.get_text()


def test_per_class_accuracy_sorted_with_names():
    fig = plots.plot_per_class_accuracy([0.9, 0.5, 0.7], CLASSES, overall=0.7)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cross", "ring", "box"]
    assert [p.get_width() for p in ax.patches] == [0.5, 0.7, 0.9]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_confident_mistakes_orders_wrong_predictions_by_confidence():
    labels = np.array([0, 1, 2, 0])
    proba = np.array([[0.9, 0.05, 0.05],   # right
                      [0.6, 0.3, 0.1],     # wrong, 0.6
                      [0.05, 0.9, 0.05],   # wrong, 0.9
                      [0.2, 0.1, 0.7]])    # wrong, 0.7
    assert plots.confident_mistakes(labels, proba, n=2).tolist() == [2, 3]
    fig = plots.plot_confident_mistakes(np.zeros((4, 784), np.uint8), labels, proba, CLASSES, n=3, cols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[0] == "true: ring\nsaid: cross 90%"
    assert len(titles) == 3 and _has_title(fig)


def test_pixel_statistics_and_walkthrough_classes(tmp_path, shapes):
    images, labels = shapes
    data = SketchData(images, labels, CLASSES)
    rows = pixel_statistics(data)
    assert [r["class"] for r in rows] == CLASSES
    box = images[labels == 0]
    assert rows[0]["ink"] == pytest.approx(box.sum() / 255 / len(box))
    assert rows[0]["background"] + rows[0]["full_ink"] + rows[0]["edge"] == pytest.approx(1.0)
    assert 0 < rows[2]["bbox_h"] <= 28
    assert format_statistics(rows).splitlines()[1].startswith("box")
    for c in CLASSES:
        np.save(tmp_path / f"{c}.npy", images[:2])
    assert walkthrough_classes(tmp_path) is None
    assert walkthrough_classes(tmp_path, preferred=["ring", "box"]) == ["ring", "box"]


# ----------------------------------------------------------------------- the game (notebook 07)
def _round(prompt: str, won: bool, why: bool):
    """A widgets.RoundSummary-like round: result, heat, why (and outcome)."""
    from types import SimpleNamespace

    from quicksketch_lib.game import RoundResult

    image = np.zeros((28, 28), np.uint8)
    image[10:18, 5:23] = 255
    result = RoundResult(prompt, won, "recognised" if won else "time", 2.5 if won else None,
                         [("box", 0.7), ("cross", 0.2), ("ring", 0.1)], image,
                         [[[0, 50, 100], [0, 40, 0], [0, 100, 200]]], [])
    near = np.full((3, 28, 28), 200, np.uint8)
    explained = {"guessed": "box", "guessed_nearest": near, "prompt_nearest": near} if why else None
    return SimpleNamespace(result=result, p_prompt=0.7 if prompt == "box" else 0.05,
                           heat=np.linspace(0, 1, 784).reshape(28, 28), why=explained,
                           outcome="recognised in 2.5 s" if won else "not recognised: time's up")


def test_game_summary_one_fixed_row_per_round_and_the_nearest_of_lost_ones():
    fig = plots.plot_game_summary([_round("box", True, False), _round("star", False, True)])
    assert len(fig.axes) == 2 * 8  # 2 + 2 x 3 panels a row, whatever was lost
    text = _texts(fig)
    assert "star\nnot recognised: time's up" in text and "box 70%" in text
    assert "(star 5%)" in text and "(box" not in text  # the prompt's probability, when not in the top-3
    assert "nearest box\n(its guess)" in text and "nearest star\n(the prompt)" in text
    assert len(fig.axes[8 + 2].images) == 1 and not fig.axes[2].images  # nearest drawings: the lost round only


def test_threshold_curve_marks_the_chosen_threshold():
    fig = plots.plot_threshold_curve({"threshold": [0.1, 0.2, 0.3], "youden_j": [0.8, 0.9, 0.85]}, 0.2)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and _has_title(fig)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chosen: 0.20"]


def test_how_early_sorts_classes_and_shows_the_overall_median():
    fig = plots.plot_how_early({"box": 0.8, "cross": 0.3, "ring": 0.5}, 0.55)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cross", "ring", "box"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all drawings: 55%"]
