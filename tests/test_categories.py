"""quicksketch_lib/categories.py: the official class names and what may name a class."""

import pytest

from quicksketch_lib.categories import CATEGORIES, MAX_NAME_LENGTH, THE_TEN, check_class_name


def test_every_official_name_is_a_valid_class_name():
    assert all(check_class_name(c) == c for c in CATEGORIES) and set(THE_TEN) <= set(CATEGORIES)


def test_a_class_name_is_stripped_one_line_printable_text():
    assert check_class_name("  snow man ") == "snow man"
    assert check_class_name("Éclair 🍫") == "Éclair 🍫"
    for bad, why in (("", "empty"), (" \t ", "empty"), ("two\nlines", "line break"), ("a\x00b", "control"),
                     ("a\u200bb", "control"), ("x" * (MAX_NAME_LENGTH + 1), "characters long")):
        with pytest.raises(ValueError, match=why):
            check_class_name(bad)
