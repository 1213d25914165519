"""What a drawing is: the one definition every input of QuickSketch goes through.

A drawing is a 28x28 grid of uint8 pixels, 0 = background, 255 = ink (Google's
``numpy_bitmap`` layout: one row of 784 values per drawing). This module holds that
definition and the accepted ways in:

* :data:`IMAGE_SIZE` (28) and :data:`PIXELS` (784), defined once;
* :func:`as_image_batch` (the accepted shapes) and :func:`as_drawings` (the accepted
  values: uint8 ``(N, 784)`` out);
* :func:`clean_strokes`, the one check of strokes (Google's ``[xs, ys(, ts)]`` layout)
  before the rasteriser or the widget use them.

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


# --------------------------------------------------------------------------- strokes
def clean_strokes(strokes) -> list[np.ndarray]:
    """A drawing's strokes, checked: each non-empty stroke as a ``(k, n)`` float array.

    ``strokes`` is Google's ndjson layout: a list of ``[xs, ys]`` or ``[xs, ys, ts]`` (lists
    or arrays, floats allowed); ``None`` is no strokes. A stroke with fewer than two
    coordinate lists, non-numeric values, lists of unequal length or NaN/infinite values
    raises :class:`InputError` naming the stroke. Empty strokes are dropped. The one stroke
    check of QuickSketch: the widget, the rasteriser and the ndjson reader use it.
    """
    out = []
    for i, stroke in enumerate(strokes if strokes is not None else []):
        if len(stroke) < 2:
            raise InputError(f"stroke {i} has {len(stroke)} coordinate lists; "
                             "expected [xs, ys] or [xs, ys, ts]")
        try:
            lists = [np.asarray(c, dtype=np.float64).reshape(-1) for c in stroke]
        except (TypeError, ValueError) as e:
            raise InputError(f"stroke {i} has non-numeric coordinates ({e}); "
                             "expected [xs, ys] lists of numbers") from None
        if len({len(c) for c in lists}) != 1:
            raise InputError(f"stroke {i} has {lists[0].size} x values and {lists[1].size} y values"
                             + (f" and {lists[2].size} times" if len(lists) > 2 else "")
                             + "; expected equal lengths")
        points = np.stack(lists)
        if not np.isfinite(points).all():
            raise InputError(f"stroke {i} contains NaN or infinite coordinates; expected finite numbers")
        if points.shape[1]:
            out.append(points)
    return out
