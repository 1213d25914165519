"""Tests for quicksketch_lib/doodles.py: the synthetic offline data set."""

from __future__ import annotations

import numpy as np
import pytest

from quicksketch_lib.doodles import (DOODLE_CLASSES, MARKER_FILE, doodle_bitmaps, draw_doodle,
                                     generate_doodles)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("doodles")
    return generate_doodles(out, per_class=12, seed=3, progress=False)


def test_classes():
    assert len(DOODLE_CLASSES) >= 10 and len(set(DOODLE_CLASSES)) == len(DOODLE_CLASSES)
    for name in ("circle", "square", "triangle", "star", "house", "smiley", "zigzag", "spiral",
                 "arrow", "cloud"):
        assert name in DOODLE_CLASSES


def test_files_shapes_and_marker(small_set):
    files = sorted(p.stem for p in small_set.glob("*.npy"))
    assert files == sorted(DOODLE_CLASSES)
    for name in DOODLE_CLASSES:
        arr = np.load(small_set / f"{name}.npy")
        assert arr.shape == (12, 784) and arr.dtype == np.uint8
        assert (arr.reshape(12, -1).max(axis=1) == 255).all()  # every drawing has ink
    marker = (small_set / MARKER_FILE).read_text()
    assert "SYNTHETIC" in marker and "NOT Google's Quick, Draw! data" in marker
    assert "seed=3" in marker
    assert not [p.name for p in small_set.iterdir() if p.name.startswith(".")]  # no temp files


def test_same_seed_same_bytes_other_seed_differs(small_set, tmp_path):
    again = generate_doodles(tmp_path / "again", per_class=12, seed=3, progress=False)
    other = generate_doodles(tmp_path / "other", per_class=12, seed=4, progress=False,
                             classes=("circle",))
    for name in DOODLE_CLASSES:
        assert (again / f"{name}.npy").read_bytes() == (small_set / f"{name}.npy").read_bytes()
    assert (other / "circle.npy").read_bytes() != (small_set / "circle.npy").read_bytes()


def test_draw_doodle_gives_google_layout_strokes():
    strokes = draw_doodle("house", np.random.default_rng(0))
    assert len(strokes) >= 2
    for xs, ys in strokes:
        assert len(xs) == len(ys) >= 2 and all(isinstance(v, float) for v in xs[:3])
    with pytest.raises(ValueError, match="unknown doodle class 'dragon'"):
        draw_doodle("dragon", np.random.default_rng(0))


@pytest.mark.parametrize("name", DOODLE_CLASSES)
def test_variety_within_class(name):
    imgs = doodle_bitmaps(name, 8, np.random.default_rng(11)).astype(np.float64) / 255
    diffs = [np.abs(imgs[i] - imgs[j]).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(diffs) > 0.01, "two doodles of a class are nearly identical"
    ink = imgs.sum(axis=1)
    assert ink.std() / ink.mean() > 0.03, "ink does not vary between doodles"


def test_classes_differ_on_average():
    rng = np.random.default_rng(5)
    means = {n: doodle_bitmaps(n, 20, rng).astype(float).mean(axis=0) / 255 for n in DOODLE_CLASSES}
    for a in DOODLE_CLASSES:
        for b in DOODLE_CLASSES:
            if a < b:
                assert np.abs(means[a] - means[b]).mean() > 0.01, (a, b)


def test_generator_writes_no_progress_bar_into_logs(tmp_path, capsys):
    """stderr is not a terminal under pytest (as in a log or CI): no stream of bar updates."""
    generate_doodles(tmp_path, per_class=3, seed=0)
    assert capsys.readouterr().err == ""
