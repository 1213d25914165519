"""quicksketch_lib/drawing.py: what a drawing is, defined once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quicksketch_lib.drawing import (IMAGE_SIZE, MIN_CONTRAST, MIN_INK_PIXELS, PIXELS, as_drawings, as_image_batch,
                                     clean_strokes, is_blank, load_inputs, preprocess_image, refuse_blank)
from quicksketch_lib.errors import DataError, InputError
from quicksketch_lib.rasterize import rasterize_strokes

ROOT = Path(__file__).resolve().parents[1]


def test_the_size_is_defined_once():
    assert (IMAGE_SIZE, PIXELS) == (28, 784)


def test_importing_the_drawing_module_imports_no_torch():
    code = "import sys, quicksketch_lib.drawing; print('torch' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], cwd=ROOT, text=True).strip() == "False"


def test_as_image_batch_accepts_every_documented_shape_and_says_if_one_was_given():
    for shape, single in [((28, 28), True), ((784,), True), ((5, 28, 28), False), ((5, 784), False),
                          ((5, 1, 28, 28), False), ((1, 784), False)]:
        batch, one = as_image_batch(np.zeros(shape, np.uint8))
        assert batch.shape == (1 if single else shape[0], 28, 28) and one == single, shape
    assert as_image_batch(np.zeros((2, 64, 64)), side=None)[0].shape == (2, 64, 64)
    with pytest.raises(InputError, match="not square"):
        as_image_batch(np.zeros((2, 783)))


def test_as_drawings_accepts_every_documented_shape():
    img = np.zeros((28, 28), np.uint8)
    assert as_drawings(img).shape == (1, 784)
    assert as_drawings(np.zeros((5, 28, 28), np.uint8)).shape == (5, 784)
    assert as_drawings(np.zeros(784, np.uint8)).shape == (1, 784)
    assert as_drawings(np.ones((2, 784), np.float32)).max() == 255  # floats in [0, 1] scaled
    with pytest.raises(InputError, match="shape"):
        as_drawings(np.zeros((3, 3)))


def test_clean_strokes_keeps_every_coordinate_list_and_drops_empty_strokes():
    strokes = [[[0, 10], [5, 5], [0, 16]], [[], []], [np.array([3.5]), np.array([4])]]
    cleaned = clean_strokes(strokes)
    assert [s.shape for s in cleaned] == [(3, 2), (2, 1)]
    assert cleaned[0].tolist() == [[0, 10], [5, 5], [0, 16]] and cleaned[0].dtype == np.float64
    assert clean_strokes(None) == [] and clean_strokes([]) == []


@pytest.mark.parametrize("strokes,match", [
    ([[[0, 1]]], "stroke 0 has 1 coordinate lists"),
    ([[[0, 1], [0, 1]], [[0, 1, 2], [0, 1]]], "stroke 1 has 3 x values and 2 y values"),
    ([[[0, 1], [0, 1], [0]]], "stroke 0 has 2 x values and 2 y values and 1 times"),
    ([[[0, float("nan")], [0, 1]]], "stroke 0 contains NaN"),
    ([[[0, float("inf")], [0, 1]]], "stroke 0 contains NaN or infinite"),
    ([[["a", "b"], [0, 1]]], "stroke 0 has non-numeric coordinates"),
])
def test_clean_strokes_refuses_what_is_not_a_stroke_in_one_line(strokes, match):
    with pytest.raises(InputError, match=match) as info:
        clean_strokes(strokes)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- values
def test_as_drawings_keeps_uint8_and_scales_other_numbers_by_the_largest_value():
    rows = np.arange(784 * 2).reshape(2, 784) % 256
    u8 = rows.astype(np.uint8)
    assert np.shares_memory(as_drawings(u8), u8)  # taken as it is
    assert np.array_equal(as_drawings(rows.astype(np.int16)), u8)  # integers are pixel values
    assert np.array_equal(as_drawings(rows.astype(np.float64)), u8)  # largest value above 1: 0..255
    assert np.array_equal(as_drawings(rows / 255.0), u8)  # largest value at most 1: 0..1
    assert as_drawings(np.full(784, 0.5)).max() == 128  # rounded, not truncated
    assert as_drawings(np.zeros((0, 784), np.float32)).shape == (0, 784)


@pytest.mark.parametrize("values,dtype,match", [
    ([0, 1, np.inf], np.float32, r"^x\.npy\[2\]: holds NaN or infinite values;"),
    ([0, np.nan, np.nan], np.float64, r"^x\.npy\[1\]: holds NaN or infinite values \(and 1 more row\);"),
    ([0, 100, -100], np.int16, r"^x\.npy\[2\]: holds values -100\.\.0, outside 0\.\.255;"),
    ([0, 256, 10], np.int64, r"^x\.npy\[1\]: holds values 0\.\.256, outside 0\.\.255;"),
    ([0, 0.5, -0.5], np.float32, r"^x\.npy\[2\]: holds values -0\.5\.\.0, outside 0\.\.255;"),
    ([0, 300.5, 7], np.float32, r"^x\.npy\[1\]: holds values 0\.\.300\.5, outside 0\.\.255;"),
])
def test_as_drawings_refuses_non_finite_and_out_of_range_values_naming_the_row(values, dtype, match):
    rows = np.zeros((3, 784), dtype)
    rows[:, 0] = values
    with pytest.raises(InputError, match=match) as info:
        as_drawings(rows, "x.npy")
    assert "\n" not in str(info.value) and "0..1 or 0..255" in str(info.value)


def test_as_drawings_refuses_booleans_and_text_and_names_rows_without_a_file():
    with pytest.raises(InputError, match="drawings: have dtype bool"):
        as_drawings(np.zeros((2, 784), bool))
    with pytest.raises(InputError, match=r"^drawings\[0\]: holds NaN"):
        as_drawings(np.full((1, 784), np.nan))
    with pytest.raises(InputError, match=r"^x\.npy: images of shape \(3, 3\)"):
        as_drawings(np.zeros((3, 3)), "x.npy")


# --------------------------------------------------------------------------- blank
def _faint_noise() -> np.ndarray:
    return (np.random.default_rng(0).random(784) < 0.3).astype(np.uint8) * 30  # max 30: paper noise


def _one_pixel() -> np.ndarray:
    row = np.zeros(784, np.uint8)
    row[400] = 255
    return row


def test_is_blank_is_fewer_than_four_pixels_of_ink_at_least_64():
    rows = np.zeros((6, 784), np.uint8)
    rows[1] = _faint_noise()
    rows[2] = _one_pixel()
    rows[3, :3] = 255  # three strong pixels: still blank
    rows[4, :4] = MIN_CONTRAST  # four at the threshold: a drawing
    rows[5, :500] = MIN_CONTRAST - 1  # much faint ink: blank
    assert (MIN_INK_PIXELS, MIN_CONTRAST) == (4, 64)
    assert is_blank(rows).tolist() == [True, True, True, True, False, True]
    assert is_blank(rows[4].reshape(28, 28)) is False and is_blank(rows[2]) is True  # one drawing: a bool
    assert is_blank(rows[4:5].astype(np.float32) / 255).tolist() == [False]  # any accepted values


def test_refuse_blank_names_where_and_the_rows_in_one_line():
    rows = np.vstack([np.full((2, 784), 255, np.uint8), _faint_noise(), _one_pixel()])
    with pytest.raises(InputError) as info:
        refuse_blank(rows, "cat.npy")
    assert str(info.value).startswith("cat.npy: 2 of 4 drawings are blank (fewer than 4 pixels with ink "
                                      "of at least 64/255): rows 2, 3;")
    with pytest.raises(DataError, match=r"^1 of 2 drawings are blank .*: row 1; remove it$"):
        refuse_blank(rows[1:3], error=DataError, fix="remove it")
    refuse_blank(rows[:2], "cat.npy")  # no blank row: nothing to say


def test_no_real_drawing_is_blank(quickdraw_dir):
    """The rule against the real data (104,700 drawings of 54 classes): none is blank."""
    files = sorted(quickdraw_dir.glob("*.npy"))
    blank = {p.stem: int(is_blank(np.load(p)).sum()) for p in files}
    assert sum(len(np.load(p, mmap_mode="r")) for p in files) > 100_000
    assert not any(blank.values()), {c: n for c, n in blank.items() if n}

# --------------------------------------------------------------------------- pictures and files
def _zigzag_and_circle():
    t = np.linspace(0, 2 * np.pi, 40)
    return [[[0, 50, 100, 150], [0, 80, 0, 80]],
            [list(75 + 30 * np.cos(t)), list(140 + 30 * np.sin(t))]]


def test_preprocess_image_matches_the_rasteriser_on_a_rendered_drawing():
    reference = rasterize_strokes(_zigzag_and_circle())
    big = np.asarray(Image.fromarray(reference).resize((280, 280), Image.BILINEAR))
    for picture in (big, 255 - big):  # light on dark and dark on light
        got = preprocess_image(picture)
        assert got.shape == (28, 28) and got.dtype == np.uint8
        assert np.corrcoef(got.ravel().astype(float), reference.ravel().astype(float))[0, 1] > 0.85


def test_blank_picture_gives_a_blank_drawing():
    assert preprocess_image(np.full((50, 80), 255, np.uint8)).max() == 0


def test_load_inputs_reads_npy_rows_and_images(tmp_path):
    rows = np.zeros((3, 784), np.uint8)
    np.save(tmp_path / "x.npy", rows)
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "blank.png")
    names, drawings = load_inputs([tmp_path / "x.npy", tmp_path / "blank.png"])
    assert names == ["x.npy[0]", "x.npy[1]", "x.npy[2]", "blank.png"] and drawings.shape == (4, 784)


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    for path, match in [("fake.png", "not a readable image"), ("notes.txt", "unsupported input"),
                        ("bad.npy", "shape"), ("missing.npy", "not found")]:
        with pytest.raises(InputError, match=match) as info:
            load_inputs([tmp_path / path])
        assert "\n" not in str(info.value) and path in str(info.value)


def test_load_inputs_refuses_a_file_of_zero_drawings_and_bad_rows_by_file_and_row(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 784), np.uint8))
    np.save(tmp_path / "inf.npy", np.vstack([np.zeros((1, 784)), np.full((1, 784), np.inf)]))
    for name, message in [("empty.npy", "holds 0 drawings"), ("inf.npy", r"inf\.npy\[1\]: holds NaN or infinite")]:
        with pytest.raises(InputError, match=message):
            load_inputs([tmp_path / name])


def test_a_fortran_ordered_file_is_the_same_drawings(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    np.save(tmp_path / "c.npy", rows)
    np.save(tmp_path / "f.npy", np.asfortranarray(rows))
    assert np.array_equal(load_inputs([tmp_path / "f.npy"])[1], load_inputs([tmp_path / "c.npy"])[1])
