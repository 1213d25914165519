"""Tests for quicksketch_lib/files.py: how summaries show a path."""

from __future__ import annotations

from pathlib import Path

from quicksketch_lib.data import SketchData
from quicksketch_lib.files import CHECKOUT, shown_path
from quicksketch_lib.locations import DataSource

import numpy as np


def test_shown_path_is_relative_inside_the_checkout_and_a_name_elsewhere(tmp_path):
    assert shown_path(CHECKOUT / "data" / "quickdraw") == str(Path("data") / "quickdraw")
    assert shown_path(Path("data") / "quickdraw") == str(Path("data") / "quickdraw")  # relative: as given
    elsewhere = tmp_path / "shared" / "quickdraw"
    assert shown_path(elsewhere) == "…/quickdraw"
    assert str(tmp_path) not in shown_path(elsewhere)


def test_data_summaries_never_print_an_absolute_path(tmp_path):
    folder = tmp_path / "somewhere" / "quickdraw"
    data = SketchData(np.zeros((2, 784), np.uint8), np.array([0, 1]), ["a", "b"], folder)
    for text in (data.describe(), DataSource(folder, "env").describe()):
        assert str(tmp_path) not in text and "…/quickdraw" in text
