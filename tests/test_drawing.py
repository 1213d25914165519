"""quicksketch_lib/drawing.py: what a drawing is, defined once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quicksketch_lib.drawing import IMAGE_SIZE, PIXELS, as_drawings, as_image_batch
from quicksketch_lib.errors import InputError

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
