"""What a drawing is: the one definition every input of QuickSketch goes through.

A drawing is a 28x28 grid of uint8 pixels, 0 = background, 255 = ink (Google's
``numpy_bitmap`` layout: one row of 784 values per drawing). This module holds that
definition and the accepted ways in:

* :data:`IMAGE_SIZE` (28) and :data:`PIXELS` (784), defined once;
* :func:`as_image_batch` (the accepted shapes) and :func:`as_drawings` (the accepted
  values: uint8 ``(N, 784)`` out);
* :func:`clean_strokes`, the one check of strokes (Google's ``[xs, ys(, ts)]`` layout)
  before the rasteriser or the widget use them.
* :func:`read_npy_header`, which checks a ``.npy`` file of drawings before it is loaded.

It imports no torch (``predict`` through onnxruntime reads its inputs here) and no
other QuickSketch module but :mod:`errors`.
"""

from __future__ import annotations

import io
import math
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DataError, InputError

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


# --------------------------------------------------------------------------- .npy files
NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000  # numpy's own limit for a header it reads without trusting the file
NPY_FORMAT_HINT = "expected (N, 784) uint8 -- see README 'Data format'"


class NpyHeader(NamedTuple):
    """What a ``.npy`` file's header says: shape, dtype, memory order and where the data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def parse_npy_header(data: bytes) -> NpyHeader | int:
    """The header of a ``.npy`` file from its first bytes.

    Returns the number of bytes needed instead when ``data`` is too short to hold the
    whole header; raises :class:`ValueError` (one line, what was found) when it is not a
    ``.npy`` file or its header is longer than :data:`MAX_HEADER_BYTES`.
    """
    if not data:
        raise ValueError("it is empty (0 bytes)")
    if len(data) < 12 and NPY_MAGIC.startswith(data[:6]):
        return 12
    if data[:6] != NPY_MAGIC:
        return _not_npy(data)
    major = data[6]
    if major not in (1, 2, 3):
        raise ValueError(f"unsupported .npy format version {major}")
    offset = 10 + struct.unpack("<H", data[8:10])[0] if major == 1 else 12 + struct.unpack("<I", data[8:12])[0]
    if offset - 12 > MAX_HEADER_BYTES:
        raise ValueError(f"its .npy header claims {offset:,} bytes; at most {MAX_HEADER_BYTES:,} are read")
    if len(data) < offset:
        return offset
    buf = io.BytesIO(data[:offset])
    np.lib.format.read_magic(buf)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = read_header(buf)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"its .npy header is malformed ({_short(exc)})") from None
    if dtype.hasobject:
        raise ValueError("it holds Python objects (pickled data), which QuickSketch never loads")
    return NpyHeader(tuple(shape), np.dtype(dtype), bool(fortran), offset)


def _not_npy(data: bytes) -> int:
    start = data[:16]
    kind = "text" if all(32 <= b < 127 or b in b"\t\r\n" for b in start) else "binary data"
    if start.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        kind = "an HTML/XML page"
    raise ValueError(f"it is {kind} starting with {start[:12]!r}, not a .npy file (those start with {NPY_MAGIC!r})")


def read_npy_header(path: str | os.PathLike, hint: str = NPY_FORMAT_HINT) -> NpyHeader:
    """Read and check a ``.npy`` file's header without loading its data.

    Raises :class:`DataError` naming the file (and ending with ``hint``, what was expected)
    when it is not a ``.npy`` file, holds objects, or its header promises more (or fewer)
    bytes than the file has -- so a header claiming 10^12 rows is refused before anything
    is allocated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(12)
            parsed = parse_npy_header(data)
            if isinstance(parsed, int):
                data += f.read(parsed - len(data))
                parsed = parse_npy_header(data)
            size = os.fstat(f.fileno()).st_size
    except ValueError as exc:
        raise DataError(f"{path}: {exc}; {hint}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if isinstance(parsed, int):
        raise DataError(f"{path}: ends inside its .npy header ({size} bytes); it is truncated -- "
                        "re-download or regenerate it")
    if size - parsed.offset != parsed.data_bytes:
        raise DataError(f"{path}: its header promises {parsed.data_bytes:,} bytes of {parsed.dtype} "
                        f"{parsed.shape} but the file holds {size - parsed.offset:,}; it is truncated or "
                        "damaged -- re-download or regenerate it")
    return parsed


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
