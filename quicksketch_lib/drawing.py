"""What a drawing is: the one definition every input of QuickSketch goes through.

A drawing is a 28x28 grid of uint8 pixels, 0 = background, 255 = ink (Google's
``numpy_bitmap`` layout: one row of 784 values per drawing). This module holds that
definition and the accepted ways in:

* :data:`IMAGE_SIZE` (28) and :data:`PIXELS` (784), defined once;
* :func:`as_image_batch` (the accepted shapes) and :func:`as_drawings` (the accepted
  values: uint8 ``(N, 784)`` out).

It imports no torch (``predict`` through onnxruntime reads its inputs here) and no
other QuickSketch module but :mod:`errors`.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

IMAGE_SIZE = 28  # a drawing is IMAGE_SIZE x IMAGE_SIZE pixels
PIXELS = IMAGE_SIZE * IMAGE_SIZE  # one drawing as a row: 784 uint8 values


# --------------------------------------------------------------------------- shapes and values
def as_image_batch(images, side: int | None = IMAGE_SIZE):
    """Drawings in any shape QuickSketch accepts -- one ``(28, 28)`` or ``(784,)``, a batch
    ``(N, 28, 28)``, ``(N, 784)`` or ``(N, 1, 28, 28)`` -- as a batch ``(N, 28, 28)``, and
    whether one drawing was given. NumPy arrays and torch tensors keep their kind (a view
    where possible; lists become arrays). ``side=None`` accepts any square size. The one
    place that decides these shapes (:func:`as_drawings`, ``data.to_tensor``, plots)."""
    a = images if hasattr(images, "reshape") else np.asarray(images)
    shape = tuple(a.shape)
    single = len(shape) == 1 or (len(shape) == 2 and shape[0] == shape[1]
                                 and shape[1] != (side or IMAGE_SIZE) ** 2)
    n = 1 if single else shape[0]
    per_image = math.prod(shape if single else shape[1:])
    if side is None:
        side = round(math.sqrt(per_image)) if n else IMAGE_SIZE
    if n and per_image != side * side:
        raise InputError(f"images of shape {shape} are not square; "
                         "expected (28, 28), (784,), (N, 784) or (N, 28, 28)")
    return a.reshape(n, side, side), single


def as_drawings(x) -> np.ndarray:
    """Any of (28,28), (N,28,28), (784,), (N,784) -> uint8 (N, 784), 0 = background."""
    a = np.asarray(as_image_batch(x)[0]).reshape(-1, PIXELS)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.isnan(a).any():
            raise InputError(f"drawing array of dtype {a.dtype} has non-numeric or NaN values")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] are scaled up
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    return a

